import Foundation
import Synchronization

/// A message received on a subscribed channel.
public struct PubSubMessage: Sendable {
    public var channel: String
    public var payload: [UInt8]
}

/// A dedicated pub/sub connection on its own thread.
///
/// It resubscribes after a dropped connection (with backoff) and checks the link with PING while idle,
/// so a silently dead server is noticed. Messages are handed to a `handler` on the subscriber's thread
/// (what `MessageBus` uses: it decodes there and buffers with a byte budget), or, without one, delivered
/// through `messages`, buffered up to `bufferLimit` messages; what does not fit is dropped and counted
/// in `droppedMessages` — pub/sub is for notifications, and a reader that falls that far behind must
/// be told, not grow without bound.
public final class RedisSubscriber: Sendable {
    public let endpoint: RedisEndpoint
    public let channels: [String]
    /// Messages as they arrive (when no handler was given); finishes when `stop()` is called.
    public let messages: AsyncStream<PubSubMessage>
    private let continuation: AsyncStream<PubSubMessage>.Continuation
    private let executor: BlockingExecutor
    private let control: Mutex<Control>
    private let configuration: RedisClientConfiguration
    private let onConnectionChange: (@Sendable (Bool) -> Void)?
    private let handler: (@Sendable (PubSubMessage) -> Void)?
    private let dropped = Atomic<Int>(0)

    /// Messages `messages` could not buffer (its reader was `bufferLimit` messages behind).
    public var droppedMessages: Int { dropped.load(ordering: .relaxed) }

    private struct Control {
        var stopped = false
        var connection: RedisConnection?
        var subscribed = false
    }

    /// Subscribes to `channels`. With `handler`, every message is passed to it on the subscriber's own
    /// thread (it must not block) and `messages` stays empty.
    public init(
        endpoint: RedisEndpoint, channels: [String], configuration: RedisClientConfiguration = .init(),
        bufferLimit: Int = 10_000,
        onConnectionChange: (@Sendable (Bool) -> Void)? = nil,
        handler: (@Sendable (PubSubMessage) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.channels = channels
        self.configuration = configuration
        self.onConnectionChange = onConnectionChange
        self.handler = handler
        (messages, continuation) = AsyncStream.makeStream(of: PubSubMessage.self, bufferingPolicy: .bufferingNewest(max(1, bufferLimit)))
        executor = BlockingExecutor(name: "cortex-subscriber")
        control = Mutex(Control())
        executor.enqueue { [self] in self.loop() }
    }

    /// True once SUBSCRIBE has been confirmed for every channel (and false while reconnecting).
    public var isSubscribed: Bool { control.withLock { $0.subscribed } }

    /// Waits until the subscription is live, or the timeout passes; returns whether it is. It returns as
    /// soon as the subscription is live (milliseconds, normally); the default bound is generous so a
    /// loaded machine is not mistaken for a missing server.
    public func waitUntilSubscribed(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isSubscribed { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return isSubscribed
    }

    /// Ends the subscription and finishes `messages`.
    public func stop() {
        // The loop notices within one poll interval (250 ms) and finishes the stream itself.
        control.withLock { $0.stopped = true }
        executor.shutdown()
    }

    private var stopped: Bool { control.withLock { $0.stopped } }

    private func loop() {
        var backoff = configuration.initialBackoff
        while !stopped {
            let connection = RedisConnection(endpoint: endpoint, connectTimeout: configuration.connectTimeout, commandTimeout: nil)
            do {
                try connection.open()
                control.withLock { $0.connection = connection }
                if stopped { break }
                try connection.append(["SUBSCRIBE"] .map { Array($0.utf8) } + channels.map { Array($0.utf8) })
                var confirmed = 0
                var lastTraffic = ContinuousClock.now
                // When the outstanding PING was sent: its answer gets the whole command timeout from then
                // (counted from the last traffic instead, it got 2 s less, and a short stall of a loaded
                // server dropped the subscription and the messages published while it was re-made).
                var pingSentAt: ContinuousClock.Instant?
                try connection.flush()
                while !stopped {
                    guard let reply = try connection.readReply(timeoutMilliseconds: 250) else {
                        let now = ContinuousClock.now
                        if let sent = pingSentAt, now - sent > configuration.commandTimeout {
                            throw RedisError.disconnected("no answer to PING within \(configuration.commandTimeout)")
                        }
                        if pingSentAt == nil && now - lastTraffic > .seconds(2) {
                            try connection.append([Array("PING".utf8)])
                            try connection.flush()
                            pingSentAt = now
                        }
                        continue
                    }
                    lastTraffic = ContinuousClock.now
                    pingSentAt = nil
                    guard let parts = reply.array, let kind = parts.first?.string else { continue }
                    switch kind {
                    case "subscribe":
                        confirmed += 1
                        if confirmed == channels.count {
                            control.withLock { $0.subscribed = true }
                            backoff = configuration.initialBackoff
                            onConnectionChange?(true)
                        }
                    case "message" where parts.count == 3:
                        if let channel = parts[1].string, case .bulk(let payload) = parts[2] {
                            let message = PubSubMessage(channel: channel, payload: payload)
                            if let handler {
                                handler(message)
                            } else if case .dropped = continuation.yield(message) {
                                dropped.add(1, ordering: .relaxed)
                            }
                        }
                    default:
                        break  // pong and other control replies
                    }
                }
            } catch {
                let wasSubscribed = control.withLock { c -> Bool in
                    defer { c.subscribed = false; c.connection = nil }
                    return c.subscribed
                }
                connection.close()
                if wasSubscribed { onConnectionChange?(false) }
                if stopped { break }
                let resume = ContinuousClock.now + backoff
                while !stopped && ContinuousClock.now < resume { Thread.sleep(forTimeInterval: 0.05) }
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        connectionCleanup()
        continuation.finish()
    }

    private func connectionCleanup() {
        control.withLock { c in
            c.connection?.close()
            c.connection = nil
            c.subscribed = false
        }
    }
}
