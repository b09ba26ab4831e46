import CortexCore
import GraphQL

/// Parsed and validated GraphQL documents by query text, so a client that sends the same text again
/// (every real client does: its queries are constants, the values are variables) skips the parser
/// and the library's validation, which were most of a small query's CPU under `perf`.
///
/// Only documents that passed every check before execution are kept (the token pre-scan, parsing,
/// the depth/cost limits, validation); the limits that depend on variables are still checked per
/// request. Bounded three ways, because a syntax tree keeps every token of its text (comments too) and
/// is many times the text's size: at most `capacity` documents, texts longer than `maxTextBytes` are not
/// kept, and the kept texts add up to at most `maxTotalBytes` — the least recently used documents make
/// room. Keyed by the text's exact UTF-8 bytes: Swift's `String` equality treats canonically equivalent
/// texts (é precomposed or with a combining accent) as one, and two such texts are different queries.
/// Thread-safe: requests on every event loop share one cache.
public final class DocumentCache: Sendable {
    /// How many documents the cache holds at most.
    public let capacity: Int
    /// The longest query text (UTF-8 bytes) that is kept.
    public let maxTextBytes: Int
    /// The most text (UTF-8 bytes, all kept texts together) the cache holds.
    public let maxTotalBytes: Int

    /// A text by its bytes.
    private struct Key: Hashable {
        let bytes: [UInt8]
        init(_ text: String) { bytes = Array(text.utf8) }
    }

    private struct Entry {
        let document: Document
        var lastUsed: UInt64
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var totalBytes = 0
        /// A clock of uses: the entry with the smallest `lastUsed` is the least recently used.
        var tick: UInt64 = 0
    }

    private let state = Locked(State())

    public init(capacity: Int = 256, maxTextBytes: Int = 8192, maxTotalBytes: Int = 256 * 1024) {
        self.capacity = max(1, capacity)
        self.maxTextBytes = maxTextBytes
        self.maxTotalBytes = max(maxTextBytes, maxTotalBytes)
    }

    /// The document parsed and validated from exactly this text, if it is cached.
    public func document(for text: String) -> Document? {
        // A text too long to be kept is not looked up: no hashing of a large body under the lock.
        guard text.utf8.count <= maxTextBytes else { return nil }
        let key = Key(text)
        return state.withLock { s in
            guard var entry = s.entries[key] else { return nil }
            s.tick += 1
            entry.lastUsed = s.tick
            s.entries[key] = entry
            return entry.document
        }
    }

    /// Keeps a document that passed validation, evicting the least recently used ones while a bound is exceeded.
    public func insert(_ document: Document, for text: String) {
        guard text.utf8.count <= maxTextBytes else { return }
        let key = Key(text)
        state.withLock { s in
            s.tick += 1
            if s.entries[key] == nil {
                // A linear scan, only when a new text arrives at a full cache: 256 entries are cheaper
                // to scan than a linked list is to keep up on every hit.
                while !s.entries.isEmpty, s.entries.count >= capacity || s.totalBytes + key.bytes.count > maxTotalBytes,
                      let oldest = s.entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                    s.entries.removeValue(forKey: oldest)
                    s.totalBytes -= oldest.bytes.count
                }
                s.totalBytes += key.bytes.count
            }
            s.entries[key] = Entry(document: document, lastUsed: s.tick)
        }
    }

    /// How many documents are cached.
    public var count: Int { state.withLock { $0.entries.count } }
}
