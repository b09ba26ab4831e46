@testable import CatalogServer
import GraphQL
import Testing

/// The bounds of catalog-api's document cache (what it keeps is tested end to end in CatalogFastPathTests).
@Suite struct CatalogDocumentCacheTests {
    static func document(_ text: String) throws -> Document { try parse(source: Source(body: text, name: "test")) }

    @Test func keepsAtMostItsCapacityEvictingTheLeastRecentlyUsed() throws {
        let cache = DocumentCache(capacity: 2)
        let a = "{ asset(id: \"a\") { id } }", b = "{ asset(id: \"b\") { id } }", c = "{ asset(id: \"c\") { id } }"
        cache.insert(try Self.document(a), for: a)
        cache.insert(try Self.document(b), for: b)
        #expect(cache.document(for: a) != nil)  // a is now more recent than b
        cache.insert(try Self.document(c), for: c)
        #expect(cache.count == 2)
        #expect(cache.document(for: b) == nil, "b was the least recently used")
        #expect(cache.document(for: a) != nil && cache.document(for: c) != nil)
        // Inserting a text that is there replaces it without evicting anything.
        cache.insert(try Self.document(c), for: c)
        #expect(cache.count == 2 && cache.document(for: a) != nil)
        // The document kept is the one parsed from that text.
        let kept = try #require(cache.document(for: a))
        #expect(print(ast: kept) == print(ast: try Self.document(a)))
    }

    @Test func longTextsAreNotKept() throws {
        let cache = DocumentCache(capacity: 4, maxTextBytes: 64)
        let long = "{ " + String(repeating: "a: __typename ", count: 10) + "}"
        #expect(long.utf8.count > 64)
        cache.insert(try Self.document(long), for: long)
        #expect(cache.document(for: long) == nil && cache.count == 0)
        let short = "{ __typename }"
        cache.insert(try Self.document(short), for: short)
        #expect(cache.document(for: short) != nil)
    }

    @Test func keptTextsStayWithinTheirTotalBytes() throws {
        let text = { (i: Int) in "{ a\(i): __typename }" }  // 18 bytes each for i < 10
        let cache = DocumentCache(capacity: 100, maxTextBytes: 20, maxTotalBytes: 60)
        for i in 0..<5 { cache.insert(try Self.document(text(i)), for: text(i)) }
        #expect(cache.count == 3, "three texts of 18 bytes fit in 60, four do not")
        #expect(cache.document(for: text(0)) == nil && cache.document(for: text(1)) == nil)
        #expect((2..<5).allSatisfy { cache.document(for: text($0)) != nil })
    }

    @Test func canonicallyEquivalentTextsAreDifferentKeys() throws {
        // The same literal written precomposed and decomposed: equal as Swift strings, different queries.
        let composed = "{ asset(id: \"caf\u{E9}\") { id } }", decomposed = "{ asset(id: \"cafe\u{301}\") { id } }"
        #expect(composed == decomposed && Array(composed.utf8) != Array(decomposed.utf8))
        let cache = DocumentCache()
        cache.insert(try Self.document(composed), for: composed)
        #expect(cache.document(for: composed) != nil)
        #expect(cache.document(for: decomposed) == nil, "a different text must be parsed on its own")
    }
}
