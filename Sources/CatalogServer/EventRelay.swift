import CortexCore
import Logging
import ServiceLifecycle

/// One Redis subscription per replica (catalog changes and worker status), fanned out to every local
/// GraphQL subscription and Server-Sent Events client. Because changes travel through Redis, a client of
/// one replica sees what was written through another.
public final class EventRelay: Service, Sendable {
    private let bus: MessageBus
    private let logger: Logger
    private struct Listener: Sendable {
        var types: Set<MessageType>
        var continuation: AsyncStream<Envelope>.Continuation
    }
    private let listeners = Locked<[Int: Listener]>([:])
    private let nextID = Locked(0)
    private let subscribed = Locked(false)

    public static let channels: [CortexNames.Channel] = [.catalogEvents, .workersStatus]

    public init(bus: MessageBus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    private func countListeners() {
        bus.metrics.catalogListeners(listeners.value.count)
    }

    /// Whether the Redis subscription is live (part of /readyz).
    public var isSubscribed: Bool { subscribed.value }

    /// A stream of the envelopes of the given types. A slow reader loses the oldest events beyond 1,000
    /// rather than holding memory for ever; the stream ends when the caller stops iterating.
    public func stream(types: Set<MessageType>) -> AsyncStream<Envelope> {
        let (stream, continuation) = AsyncStream.makeStream(of: Envelope.self, bufferingPolicy: .bufferingNewest(1000))
        let id = nextID.withLock { n -> Int in n += 1; return n }
        listeners.withLock { $0[id] = Listener(types: types, continuation: continuation) }
        countListeners()
        continuation.onTermination = { [self] _ in
            _ = listeners.withLock { $0.removeValue(forKey: id) }
            countListeners()
        }
        return stream
    }

    public var listenerCount: Int { listeners.value.count }

    public func run() async throws {
        let (subscriber, envelopes) = bus.subscribe(Self.channels)
        defer { subscriber.stop() }
        let watch = Task { [subscribed] in
            while !Task.isCancelled {
                subscribed.withLock { $0 = subscriber.isSubscribed }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        defer { watch.cancel() }
        logger.info("relaying \(Self.channels.map(\.rawValue).joined(separator: ", ")) to subscribers")
        await withGracefulShutdownHandler {
            for await envelope in envelopes {
                for listener in listeners.value.values where listener.types.contains(envelope.type) {
                    if case .dropped = listener.continuation.yield(envelope) {
                        bus.metrics.messageDropped(channel: envelope.channel.rawValue, reason: "listener_behind")
                    }
                }
            }
        } onGracefulShutdown: {
            subscriber.stop()
        }
        for listener in listeners.value.values { listener.continuation.finish() }
    }
}
