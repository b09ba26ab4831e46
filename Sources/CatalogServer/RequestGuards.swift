import CortexCore
import Foundation
import GraphQL
import Logging

/// Bounds on running a GraphQL operation (the document limits are `QueryLimits`).
public struct ExecutionLimits: Sendable {
    /// How long a query or mutation may run; after it the client gets a `TIMEOUT` error and the
    /// execution is cancelled.
    public var timeout: Duration
    /// Most values (objects, list items, leaves) a result may hold; a larger one is answered with
    /// `RESULT_TOO_LARGE` instead of being encoded and sent.
    public var maxResultNodes: Int
    /// Queries and mutations one client (a token; all anonymous callers together) may have running at once.
    public var maxConcurrentPerClient: Int

    public init(timeout: Duration = .seconds(15), maxResultNodes: Int = 200_000, maxConcurrentPerClient: Int = 16) {
        self.timeout = timeout
        self.maxResultNodes = maxResultNodes
        self.maxConcurrentPerClient = maxConcurrentPerClient
    }
}

/// Counts the operations each client has running and refuses one over the limit.
///
/// A slot is released when the execution really ends, not when the client was answered: an operation
/// abandoned at its deadline keeps its slot until it has stopped, so timed-out work cannot pile up.
public final class ClientLimiter: Sendable {
    public let limit: Int
    private let running = Locked<[String: Int]>([:])

    public init(limit: Int) { self.limit = limit }

    /// Takes a slot for `client`; false when it already has `limit` operations running.
    public func acquire(_ client: String) -> Bool {
        running.withLock { counts in
            let n = counts[client, default: 0]
            guard n < limit else { return false }
            counts[client] = n + 1
            return true
        }
    }

    public func release(_ client: String) {
        running.withLock { counts in
            let n = counts[client, default: 0] - 1
            counts[client] = n > 0 ? n : nil
        }
    }

    /// Operations running for `client` now.
    public func inFlight(_ client: String) -> Int { running.withLock { $0[client, default: 0] } }
}

/// Logs and counts what the limits refuse: one line each, the query shortened (it may be megabytes
/// long, and it is the client's text).
struct RefusalLog: Sendable {
    let metrics: CortexMetrics
    let logger: Logger

    /// Every reason catalog-api refuses for, so each reads 0 rather than "no data" from the start.
    static let reasons = ["tokens", "nesting", "depth", "cost", "fragment_cycle", "concurrency", "timeout", "result_size", "header_timeout"]

    func start() {
        for reason in Self.reasons { metrics.catalogRefused(reason: reason, by: 0) }
    }

    func refused(_ reason: String, client: String?, query: String?, _ message: String) {
        metrics.catalogRefused(reason: reason)
        var metadata: Logger.Metadata = [LogKey.reason: "\(reason)"]
        if let client { metadata[LogKey.client] = "\(client)" }
        if let query { metadata[LogKey.query] = "\(Self.excerpt(query))" }
        logger.warning("request refused: \(message)", metadata: metadata)
    }

    /// The first 160 characters, white space collapsed, and the length when cut.
    static func excerpt(_ text: String, limit: Int = 160) -> String {
        var out = ""
        var lastWasSpace = false
        for c in text.prefix(limit * 4) {
            if c.isWhitespace || c == "," {
                if !lastWasSpace && !out.isEmpty { out.append(" ") }
                lastWasSpace = true
            } else {
                out.append(c)
                lastWasSpace = false
            }
            if out.count >= limit { break }
        }
        return text.utf8.count > out.utf8.count ? out + "… (\(text.utf8.count) bytes)" : out
    }
}

/// Waits for `task` at most `limit`: its value, or nil when the time ran out first (the task keeps
/// running; the caller decides whether to cancel it). Unlike a task group, returning does not wait
/// for the slower side.
func value<T: Sendable>(of task: Task<T, Never>, within limit: Duration) async -> T? {
    let waiter = Locked<CheckedContinuation<T?, Never>?>(nil)
    return await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
        waiter.withLock { $0 = continuation }
        let timer = Task {
            do { try await Task.sleep(for: limit) } catch { return }  // cancelled: the task finished first
            waiter.withLock { w -> CheckedContinuation<T?, Never>? in defer { w = nil }; return w }?.resume(returning: nil)
        }
        Task {
            let result = await task.value
            timer.cancel()
            waiter.withLock { w -> CheckedContinuation<T?, Never>? in defer { w = nil }; return w }?.resume(returning: result)
        }
    }
}

/// How many values a result holds (objects, list items and leaves), counted without recursion and
/// stopping once past `limit`.
func resultNodes(_ data: Map?, limit: Int) -> Int {
    guard let data else { return 0 }
    var stack = [data]
    var count = 0
    while let m = stack.popLast() {
        count += 1
        if count > limit { return count }
        switch m {
        case .array(let items): stack.append(contentsOf: items)
        case .dictionary(let fields): stack.append(contentsOf: fields.values)
        default: continue
        }
    }
    return count
}
