import Foundation
import Synchronization

/// One caller's commands, sent back to back on a client's connection, and where their replies go.
struct RedisRequest: Sendable {
    let commands: [[any RedisArgument]]
    /// Called on the connection's thread with one reply per command, or the error that ended the request.
    let complete: @Sendable (Result<[RedisReply], Error>) -> Void
}

/// The thread that owns one client's hiredis connection (`RedisLink`) and serves its requests.
///
/// Callers queue requests from any task; each time the thread wakes it takes every request queued
/// meanwhile and sends them as one pipeline — all commands written, then all replies read in order — so
/// concurrent callers share one round trip and one wake-up of this thread instead of paying a hand-off
/// and a round trip each (the profile of a worker showed ~28 % of its CPU in those hand-offs). A single
/// caller waiting for its reply is served at once: nothing waits for a batch to fill.
final class RedisConnectionThread: Sendable {
    /// The most requests served in one pipeline, so one huge burst cannot make every caller wait for all of it.
    static let maxBatch = 512

    private struct Queue {
        var requests: [RedisRequest] = []
        var stopped = false
    }

    private final class Shared: @unchecked Sendable {  // guarded by `condition`
        let condition = NSCondition()
        var queue = Queue()
    }

    private let shared = Shared()

    init(name: String, link: RedisLink) {
        let shared = self.shared
        let thread = Thread { Self.loop(shared, link) }
        thread.name = name
        // hiredis and the reply conversion need little stack; the default 8 MiB would only be reserved.
        thread.stackSize = 256 * 1024
        thread.start()
    }

    deinit { shutdown() }

    /// Queues a request; false once the thread is shut down.
    func submit(_ request: RedisRequest) -> Bool {
        shared.condition.lock()
        defer { shared.condition.unlock() }
        if shared.queue.stopped { return false }
        shared.queue.requests.append(request)
        if shared.queue.requests.count == 1 { shared.condition.signal() }
        return true
    }

    /// Serves what is queued, then closes the connection and ends the thread.
    func shutdown() {
        shared.condition.lock()
        shared.queue.stopped = true
        shared.condition.signal()
        shared.condition.unlock()
    }

    private static func loop(_ shared: Shared, _ link: RedisLink) {
        while true {
            shared.condition.lock()
            while shared.queue.requests.isEmpty && !shared.queue.stopped { shared.condition.wait() }
            if shared.queue.requests.isEmpty {
                shared.condition.unlock()
                link.closeConnection()
                return
            }
            let batch: [RedisRequest]
            if shared.queue.requests.count <= maxBatch {
                batch = shared.queue.requests
                shared.queue.requests.removeAll(keepingCapacity: true)
            } else {
                batch = Array(shared.queue.requests.prefix(maxBatch))
                shared.queue.requests.removeFirst(maxBatch)
            }
            shared.condition.unlock()
            link.serve(batch)
        }
    }
}

/// A client's connection and its reconnect pacing. The connection itself is only touched on the client's
/// thread (`RedisConnectionThread`); the flags others read are under the lock.
final class RedisLink: Sendable {
    let endpoint: RedisEndpoint
    let configuration: RedisClientConfiguration
    private let onConnectionChange: (@Sendable (Bool) -> Void)?
    let state: Mutex<State>

    struct State {
        var connection: RedisConnection?
        var nextAttempt: ContinuousClock.Instant?
        var backoff: Duration
        var lastError: String?
        var closed = false
        var connected = false
        var skipReplicationWaitUntil: ContinuousClock.Instant?
    }

    init(endpoint: RedisEndpoint, configuration: RedisClientConfiguration, onConnectionChange: (@Sendable (Bool) -> Void)?) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.onConnectionChange = onConnectionChange
        self.state = Mutex(State(backoff: configuration.initialBackoff))
    }

    /// Sends every request's commands in one pipeline and hands each request its replies. A connection
    /// error fails the request it happened in and every later one of the batch (their commands may or may
    /// not have run, as for any command whose connection broke); earlier ones already have their replies.
    func serve(_ batch: [RedisRequest]) {
        let connection: RedisConnection
        do { connection = try connectedConnection() } catch {
            for request in batch { request.complete(.failure(error)) }
            return
        }
        var answered = 0
        do {
            for request in batch { for command in request.commands { try connection.append(command) } }
            for request in batch {
                var replies: [RedisReply] = []
                replies.reserveCapacity(request.commands.count)
                for _ in request.commands { replies.append(try connection.readReply()) }
                for reply in replies { try connection.checkRole(reply) }
                answered += 1
                request.complete(.success(replies))
            }
        } catch {
            if let error = error as? RedisError, error.isConnectionError { markDropped(error) }
            for request in batch.dropFirst(answered) { request.complete(.failure(error)) }
        }
    }

    /// Called on the client's thread only, so at most one connect runs at a time.
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

    /// Closes the socket (on the client's thread, as it ends).
    func closeConnection() {
        state.withLock { s in
            s.connection?.close()
            s.connection = nil
        }
    }
}
