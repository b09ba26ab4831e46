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

/// A Redis client on one hiredis connection, running every call on its own thread.
///
/// A dropped connection is reopened on the next command; while the server stays unreachable,
/// attempts are spaced by an exponential backoff and commands in between fail fast with
/// `RedisError.disconnected`, so callers' retry loops never hammer a dead server.
public final class RedisClient: Sendable {
    public let endpoint: RedisEndpoint
    public let configuration: RedisClientConfiguration
    private let executor: BlockingExecutor
    private let state: Mutex<State>
    private let onConnectionChange: (@Sendable (Bool) -> Void)?

    private struct State {
        var connection: RedisConnection?
        var nextAttempt: ContinuousClock.Instant?
        var backoff: Duration
        var lastError: String?
        var closed = false
        var connected = false
        var skipReplicationWaitUntil: ContinuousClock.Instant?
    }

    /// - Parameter onConnectionChange: called with the new state whenever the connection opens or drops.
    public init(
        endpoint: RedisEndpoint,
        configuration: RedisClientConfiguration = .init(),
        name: String = "redis",
        onConnectionChange: (@Sendable (Bool) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.executor = BlockingExecutor(name: "cortex-\(name)")
        self.state = Mutex(State(backoff: configuration.initialBackoff))
        self.onConnectionChange = onConnectionChange
    }

    /// Convenience: parse the URL and build a client.
    public convenience init(url: String, configuration: RedisClientConfiguration = .init(), name: String = "redis") throws {
        self.init(endpoint: try RedisEndpoint(url: url), configuration: configuration, name: name)
    }

    deinit { executor.shutdown() }

    /// Whether the last command found the server reachable.
    public var isConnected: Bool { state.withLock { $0.connected } }

    /// Runs one command, e.g. `send("HSET", key, "field", value)`.
    @discardableResult
    public func send(_ args: any RedisArgument...) async throws -> RedisReply {
        try await send(args)
    }

    /// Runs one command given as an argument array.
    @discardableResult
    public func send(_ args: [any RedisArgument]) async throws -> RedisReply {
        let bytes = args.map { $0.redisBytes }
        return try await withConnection { try $0.command(bytes) }
    }

    /// Sends a batch of commands in one round trip and returns the replies in order.
    public func pipeline(_ commands: [[any RedisArgument]]) async throws -> [RedisReply] {
        let bytes = commands.map { $0.map { $0.redisBytes } }
        return try await withConnection { try $0.pipeline(bytes) }
    }

    /// With Sentinel, waits (briefly) until a replica has the writes made so far, so a failover right
    /// after cannot lose them (WAIT). Without Sentinel there is no replica to wait for: returns at once.
    /// When no replica acknowledges (none is connected, e.g. right after a failover), further waits are
    /// skipped for 10 s rather than costing `timeout` on every write.
    public func awaitReplication(replicas: Int = 1, timeout: Duration = .seconds(1)) async {
        guard !endpoint.sentinels.isEmpty else { return }
        if let until = state.withLock({ $0.skipReplicationWaitUntil }), ContinuousClock.now < until { return }
        let acked = try? await send("WAIT", replicas, Int(timeout / .milliseconds(1))).int
        if (acked ?? 0) < replicas {
            state.withLock { $0.skipReplicationWaitUntil = ContinuousClock.now + .seconds(10) }
        }
    }

    /// Checks reachability with PING.
    public func ping() async -> Bool {
        (try? await send("PING").string) == "PONG"
    }

    /// Closes the connection and ends the client's thread.
    public func close() {
        state.withLock { $0.closed = true }
        executor.enqueue { [self] in
            self.state.withLock { s in s.connection?.close(); s.connection = nil }
        }
        executor.shutdown()
    }

    private func withConnection<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await executor.run { [self] in
            let connection = try self.connectedConnection()
            do {
                return try body(connection)
            } catch let error as RedisError where error.isConnectionError {
                self.markDropped(error)
                throw error
            }
        }
    }

    /// Called on the executor thread only, so at most one connect runs at a time.
    private func connectedConnection() throws -> RedisConnection {
        let pending: (RedisConnection?, Bool, String?) = state.withLock { s in
            if s.closed { return (nil, true, nil) }
            if let c = s.connection, c.isOpen { return (c, false, nil) }
            if let next = s.nextAttempt, ContinuousClock.now < next {
                return (nil, false, s.lastError ?? "reconnecting")
            }
            return (nil, false, nil)
        }
        if pending.1 { throw RedisError.closed }
        if let c = pending.0 { return c }
        if let waiting = pending.2 { throw RedisError.disconnected("\(waiting) (retrying with backoff)") }

        let connection = RedisConnection(endpoint: endpoint, connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout)
        do {
            try connection.open()
        } catch let error as RedisError {
            markDropped(error)
            throw error
        }
        let changed = state.withLock { s -> Bool in
            s.connection = connection
            s.nextAttempt = nil
            s.backoff = configuration.initialBackoff
            s.lastError = nil
            defer { s.connected = true }
            return !s.connected
        }
        if changed { onConnectionChange?(true) }
        return connection
    }

    private func markDropped(_ error: RedisError) {
        let changed = state.withLock { s -> Bool in
            s.connection?.close()
            s.connection = nil
            s.lastError = error.description
            s.nextAttempt = ContinuousClock.now + s.backoff
            s.backoff = min(s.backoff * 2, configuration.maxBackoff)
            defer { s.connected = false }
            return s.connected
        }
        if changed { onConnectionChange?(false) }
    }
}
