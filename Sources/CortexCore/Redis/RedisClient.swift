import Foundation
import Synchronization

/// Timeouts and reconnect pacing for a Redis client.
public struct RedisClientConfiguration: Sendable {
    /// How long a TCP connect (plus AUTH/SELECT) may take.
    public var connectTimeout: Duration
    /// How long one command may wait for its reply; blocking commands need more than their BLOCK time.
    public var commandTimeout: Duration
    /// First wait after a failed connect; doubles up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration

    public init(
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(5),
        initialBackoff: Duration = .milliseconds(100),
        maxBackoff: Duration = .seconds(5)
    ) {
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }
}

/// An argument to a Redis command: text or raw bytes, sent binary-safe.
public protocol RedisArgument: Sendable { var redisBytes: [UInt8] { get } }
extension String: RedisArgument { public var redisBytes: [UInt8] { Array(utf8) } }
extension Int: RedisArgument { public var redisBytes: [UInt8] { Array(String(self).utf8) } }
extension Array: RedisArgument where Element == UInt8 { public var redisBytes: [UInt8] { self } }

/// A Redis client on one hiredis connection, owned by a thread of its own (`RedisConnectionThread`).
///
/// Requests from concurrent tasks are pipelined: whatever is queued when the thread wakes goes out in one
/// round trip. A dropped connection is reopened on the next command; while the server stays unreachable,
/// attempts are spaced by an exponential backoff and commands in between fail fast with
/// `RedisError.disconnected`, so callers' retry loops never hammer a dead server.
public final class RedisClient: Sendable {
    public let endpoint: RedisEndpoint
    public let configuration: RedisClientConfiguration
    private let link: RedisLink
    private let thread: RedisConnectionThread

    /// - Parameter onConnectionChange: called with the new state whenever the connection opens or drops.
    public init(
        endpoint: RedisEndpoint,
        configuration: RedisClientConfiguration = .init(),
        name: String = "redis",
        onConnectionChange: (@Sendable (Bool) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.link = RedisLink(endpoint: endpoint, configuration: configuration, onConnectionChange: onConnectionChange)
        self.thread = RedisConnectionThread(name: "cortex-\(name)", link: link)
    }

    /// Convenience: parse the URL and build a client.
    public convenience init(url: String, configuration: RedisClientConfiguration = .init(), name: String = "redis") throws {
        self.init(endpoint: try RedisEndpoint(url: url), configuration: configuration, name: name)
    }

    deinit { thread.shutdown() }

    /// Whether the last command found the server reachable.
    public var isConnected: Bool { link.state.withLock { $0.connected } }

    /// Runs one command, e.g. `send("HSET", key, "field", value)`.
    @discardableResult
    public func send(_ args: any RedisArgument...) async throws -> RedisReply {
        try await send(args)
    }

    /// Runs one command given as an argument array.
    @discardableResult
    public func send(_ args: [any RedisArgument]) async throws -> RedisReply {
        try await execute([args])[0]
    }

    /// Sends a batch of commands in one round trip and returns the replies in order.
    public func pipeline(_ commands: [[any RedisArgument]]) async throws -> [RedisReply] {
        guard !commands.isEmpty else { return [] }
        return try await execute(commands)
    }

    /// With Sentinel, waits (briefly) until a replica has the writes made so far, so a failover right
    /// after cannot lose them (WAIT). Without Sentinel there is no replica to wait for: returns at once.
    /// When no replica acknowledges (none is connected, e.g. right after a failover), further waits are
    /// skipped for 10 s rather than costing `timeout` on every write.
    public func awaitReplication(replicas: Int = 1, timeout: Duration = .seconds(1)) async {
        guard !endpoint.sentinels.isEmpty else { return }
        if let until = link.state.withLock({ $0.skipReplicationWaitUntil }), ContinuousClock.now < until { return }
        let acked = try? await send("WAIT", replicas, Int(timeout / .milliseconds(1))).int
        if (acked ?? 0) < replicas {
            link.state.withLock { $0.skipReplicationWaitUntil = ContinuousClock.now + .seconds(10) }
        }
    }

    /// Checks reachability with PING.
    public func ping() async -> Bool {
        (try? await send("PING").string) == "PONG"
    }

    /// Closes the connection and ends the client's thread (requests already queued are served first).
    public func close() {
        link.state.withLock { $0.closed = true }
        thread.shutdown()
    }

    /// Queues the commands for the connection's thread and waits for their replies.
    private func execute(_ commands: [[any RedisArgument]]) async throws -> [RedisReply] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[RedisReply], Error>) in
            let accepted = thread.submit(RedisRequest(commands: commands) { continuation.resume(with: $0) })
            if !accepted { continuation.resume(throwing: RedisError.closed) }
        }
    }
}
