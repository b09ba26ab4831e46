import CortexCore
import GraphQL

/// Parsed and validated GraphQL documents by query text, so a client that sends the same text again
/// (every real client does: its queries are constants, the values are variables) skips the parser
/// and the library's validation, which were most of a small query's CPU under `perf`.
///
/// Only documents that passed every check before execution are kept (the token pre-scan, parsing,
/// the depth/cost limits, validation); the limits that depend on variables are still checked per
/// request. Bounded: at most `capacity` documents, the least recently used one making room, and texts
/// longer than `maxTextBytes` are not kept (a large text is rarely sent twice, and its syntax tree
/// is many times its size). Thread-safe: requests on every event loop share one cache.
public final class DocumentCache: Sendable {
    /// How many documents the cache holds at most.
    public let capacity: Int
    /// The longest query text (UTF-8 bytes) that is kept.
    public let maxTextBytes: Int

    private struct Entry {
        let document: Document
        var lastUsed: UInt64
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// A clock of uses: the entry with the smallest `lastUsed` is the least recently used.
        var tick: UInt64 = 0
    }

    private let state = Locked(State())

    public init(capacity: Int = 256, maxTextBytes: Int = 8192) {
        self.capacity = max(1, capacity)
        self.maxTextBytes = maxTextBytes
    }

    /// The document parsed and validated from exactly this text, if it is cached.
    public func document(for text: String) -> Document? {
        state.withLock { s in
            guard var entry = s.entries[text] else { return nil }
            s.tick += 1
            entry.lastUsed = s.tick
            s.entries[text] = entry
            return entry.document
        }
    }

    /// Keeps a document that passed validation, evicting the least recently used one when full.
    public func insert(_ document: Document, for text: String) {
        guard text.utf8.count <= maxTextBytes else { return }
        state.withLock { s in
            s.tick += 1
            if s.entries[text] == nil, s.entries.count >= capacity,
               let oldest = s.entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })?.key {
                // A linear scan, only when a new text arrives at a full cache: 256 entries are cheaper
                // to scan than a linked list is to keep up on every hit.
                s.entries.removeValue(forKey: oldest)
            }
            s.entries[text] = Entry(document: document, lastUsed: s.tick)
        }
    }

    /// How many documents are cached.
    public var count: Int { state.withLock { $0.entries.count } }
}
