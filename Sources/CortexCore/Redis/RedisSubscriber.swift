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
/// so a silently dead server is noticed. Messages are delivered through an `AsyncStream`.
public final class RedisSubscriber: Sendable {
    public let endpoint: RedisEndpoint
    public let channels: [String]
    /// Messages as they arrive; finishes when `stop()` is called.
    public let messages: AsyncStream<PubSubMessage>
    private let continuation: AsyncStream<PubSubMessage>.Continuation
    private let executor: BlockingExecutor
    private let control: Mutex<Control>
    private let configuration: RedisClientConfiguration
    private let onConnectionChange: (@Sendable (Bool) -> Void)?

    private struct Control {
        var stopped = false
        var connection: RedisConnection?
        var subscribed = false
    }

    public init(
        endpoint: RedisEndpoint, channels: [String], configuration: RedisClientConfiguration = .init(),
        onConnectionChange: (@Sendable (Bool) -> Void)? = nil
    ) {
        self.endpoint = endpoint
        self.channels = channels
        self.configuration = configuration
        self.onConnectionChange = onConnectionChange
        (messages, continuation) = AsyncStream.makeStream(of: PubSubMessage.self, bufferingPolicy: .bufferingNewest(10_000))
        executor = BlockingExecutor(name: "cortex-subscriber")
        control = Mutex(Control())
        executor.enqueue { [self] in self.loop() }
    }

    /// True once SUBSCRIBE has been confirmed for every channel (and false while reconnecting).
    public var isSubscribed: Bool { control.withLock { $0.subscribed } }

    /// Waits until the subscription is live, or the timeout passes; returns whether it is.
    public func waitUntilSubscribed(timeout: Duration = .seconds(5)) async -> Bool {
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
                var pingOutstanding = false
                try connection.flush()
                while !stopped {
                    guard let reply = try connection.readReply(timeoutMilliseconds: 250) else {
                        let idle = ContinuousClock.now - lastTraffic
                        if pingOutstanding && idle > configuration.commandTimeout {
                            throw RedisError.disconnected("no answer to PING within \(configuration.commandTimeout)")
                        }
                        if !pingOutstanding && idle > .seconds(2) {
                            try connection.append([Array("PING".utf8)])
                            try connection.flush()
                            pingOutstanding = true
                        }
                        continue
                    }
                    lastTraffic = ContinuousClock.now
                    pingOutstanding = false
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
                            continuation.yield(PubSubMessage(channel: channel, payload: payload))
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
