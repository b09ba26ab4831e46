@testable import CatalogServer
import CortexCatalog
import CortexCore
import GraphQL
import Testing

/// The catalog's pure parts: ids, words, cursors, tokens and the query limits.
@Suite struct CatalogUnitTests {
    @Test func idsAreDerivedFromTypeNamespaceAndName() {
        #expect(AssetInput(type: .POD, name: "web-1", namespace: "shop").resolvedID == "pod:shop/web-1")
        #expect(AssetInput(type: .PERSISTENT_VOLUME_CLAIM, name: "data").resolvedID == "persistent_volume_claim:data")
        #expect(AssetInput(id: "", type: .NODE, name: "n").resolvedID == "node:n")
        #expect(AssetInput(id: "custom", type: .NODE, name: "n").resolvedID == "custom")
    }

    @Test func wordsAreLowercasedRunsOfLettersAndDigits() {
        #expect(CatalogValidation.words("pod:Shop/web-7d9f_A") == ["pod", "shop", "web", "7d9f", "a"])
        #expect(CatalogValidation.words("--//--").isEmpty)
    }

    @Test func validationNamesTheField() {
        #expect(throws: CatalogError(.invalid, "assets[3].name must not be empty")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: ""), at: "assets[3]")
        }
        #expect(throws: CatalogError(.invalid, "asset.labels: key 'a=b' must not contain '='")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: "n", labels: ["a=b": "c"]))
        }
        #expect(throws: CatalogError(.invalid, "asset.properties must be a JSON object")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: "n", properties: [1, 2]))
        }
    }

    @Test func cursorsRoundTripAnyID() throws {
        for id in ["pod:shop/web-1", "ünïcode:ns/✓", "a"] {
            #expect(try CatalogStore.decodeCursor(CatalogStore.encodeCursor(id)) == id)
            #expect(!CatalogStore.encodeCursor(id).contains { "+/=".contains($0) })
        }
        #expect(throws: CatalogError.self) { try CatalogStore.decodeCursor("!!") }
    }

    @Test func tokensHaveScopesAndBadEntriesNeverEchoTheSecret() throws {
        let auth = try CatalogAuth(entries: "write:0123456789abcdef:ci, read:fedcba9876543210", anonymous: false)
        #expect(try auth.authorize("Bearer 0123456789abcdef", requires: .write).name == "ci")
        #expect(try auth.authorize("bearer fedcba9876543210", requires: .read).name == "read-token-2")
        #expect(throws: CatalogError(.forbidden, "this token has read scope; write is needed")) {
            try auth.authorize("Bearer fedcba9876543210", requires: .write)
        }
        #expect(throws: CatalogError(.unauthenticated, "unknown bearer token")) { try auth.authorize("Bearer 0123456789abcdeX", requires: .read) }
        #expect(throws: CatalogError(.unauthenticated, "missing bearer token (Authorization: Bearer <token>)")) { try auth.authorize(nil, requires: .read) }
        #expect(throws: CatalogError(.unauthenticated, "Authorization must be 'Bearer <token>'")) { try auth.authorize("Basic abc", requires: .read) }
        do {
            _ = try CatalogAuth(entries: "write:tooshort", anonymous: false)
            Issue.record("a short token was accepted")
        } catch {
            #expect(!"\(error)".contains("tooshort"))
        }
        #expect(throws: ConfigurationError.self) { try CatalogAuth(entries: "", anonymous: false) }
        #expect(try CatalogAuth(entries: "", anonymous: true).authorize(nil, requires: .write).scope == .write)
    }

    @Test func depthAndCostAreMeasuredBeforeExecution() throws {
        let limits = QueryLimits(maxDepth: 4, maxCost: 1000, maxPage: 500)
        let simple = try parse(source: "{ stats { total byType { key count } } }")
        #expect(try limits.check(simple, operationName: nil, variables: [:]) == (3, 1 + (1 + (1 + 25 * 2))))
        // `first` multiplies what is under the list, from a literal or a variable.
        let page = try parse(source: "query($n: Int) { assets(first: $n) { nodes { id name } } }")
        #expect(try limits.check(page, operationName: nil, variables: ["n": 10]) == (3, 1 + 10 * 3))
        #expect(throws: QueryLimitError(reason: "cost", code: "QUERY_TOO_COSTLY", message: "query cost 1501 exceeds the limit of 1000 (lower `first` or select fewer fields)")) {
            try limits.check(page, operationName: nil, variables: ["n": 500])
        }
        // Fragments count where they are spread; a fragment cycle is refused (not walked, not left to validation).
        let fragments = try parse(source: "fragment F on Asset { health { status } } { asset(id: \"x\") { ...F } }")
        #expect(try limits.check(fragments, operationName: nil, variables: [:]).depth == 3)
        let cycle = try parse(source: "fragment F on Asset { health { status } ...F } { asset(id: \"x\") { ...F } }")
        #expect(throws: QueryLimitError(reason: "fragment_cycle", code: "GRAPHQL_VALIDATION_FAILED", message: "fragments spread each other in a cycle: F")) {
            try limits.check(cycle, operationName: nil, variables: [:])
        }
        let deep = try parse(source: "{ assets { edges { node { health { status } } } } }")
        #expect(throws: QueryLimitError(reason: "depth", code: "QUERY_TOO_DEEP", message: "query depth 5 exceeds the limit of 4")) {
            try limits.check(deep, operationName: nil, variables: [:])
        }
        // Introspection counts too, every field one, against its own depth limit (20 by default).
        let introspection = try parse(source: "{ __schema { types { fields { type { ofType { ofType { name } } } } } } }")
        #expect(try limits.check(introspection, operationName: nil, variables: [:]) == (7, 7))
        // The raw text is measured before parsing: tokens and bracket nesting.
        #expect(try limits.prescan("{ a: __typename, b: __typename } # comment") == (tokens: 8, nesting: 1))
        #expect(throws: QueryLimitError.self) { try limits.prescan("{" + String(repeating: "a {", count: 100) + String(repeating: "}", count: 101)) }
    }

    @Test func theOpenAPIDocumentDescribesTheRoutes() throws {
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/assets/pod%3Ashop%2Fweb") == ["DELETE", "GET", "PUT"])
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/assets/x/lineage") == ["GET"])
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/nothing") == nil)
        let doc = try #require(OpenAPIDocument.document.objectValue)
        #expect(doc["openapi"] == "3.1.0")
        #expect(doc["paths"]?.objectValue?.count == 10)
    }
}
