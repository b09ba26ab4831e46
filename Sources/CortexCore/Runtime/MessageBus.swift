import Logging

/// Publishing and receiving channel messages, with validation, history and metrics in one place.
public struct MessageBus: Sendable {
    public let redis: RedisClient
    public let source: String
    public let metrics: CortexMetrics
    public let decoder: EnvelopeDecoder
    public let logger: Logger
    /// Where failed notifications wait for Redis (nil: they are only logged).
    public let journal: Journal?
    /// Entries kept in the capped event history stream.
    public static let historyLength = 10_000

    public init(redis: RedisClient, source: String, metrics: CortexMetrics, decoder: EnvelopeDecoder, logger: Logger, journal: Journal? = nil) {
        self.journal = journal
        self.redis = redis
        self.source = source
        self.metrics = metrics
        self.decoder = decoder
        self.logger = logger
    }

    /// Builds and publishes an envelope on its type's channel, and appends it to the event history.
    @discardableResult
    public func publish(_ type: MessageType, runID: String? = nil, data: JSONValue) async throws -> Envelope {
        let envelope = Envelope(type: type, source: source, runID: runID, data: data)
        try await publish(envelope)
        return envelope
    }

    /// The commands that publish an envelope: PUBLISH plus XADD to the history.
    public static func commands(for envelope: Envelope) -> [[String]] {
        let payload = envelope.encodedString
        return [
            ["PUBLISH", envelope.channel.rawValue, payload],
            ["XADD", CortexNames.eventHistory, "MAXLEN", "~", String(historyLength), "*", "channel", envelope.channel.rawValue, "message", payload],
        ]
    }

    /// Publishes a ready-made envelope (PUBLISH + XADD to the history in one round trip).
    public func publish(_ envelope: Envelope) async throws {
        let replies = try await redis.pipeline(Self.commands(for: envelope).map { $0.map { $0 as any RedisArgument } })
        for r in replies { try r.orThrow() }
        metrics.messagePublished(channel: envelope.channel, type: envelope.type)
    }

    /// Publishes without throwing: while Redis is unreachable the message goes to the journal and is
    /// published on reconnect (heartbeats excepted: a late heartbeat says nothing true).
    public func notify(_ type: MessageType, runID: String? = nil, data: JSONValue) async {
        let envelope = Envelope(type: type, source: source, runID: runID, data: data)
        do {
            try await publish(envelope)
        } catch {
            metrics.redisError(operation: "publish")
            if let journal, !type.isHeartbeat, (error as? RedisError)?.isConnectionError == true {
                do {
                    try await journal.append(Self.commands(for: envelope))
                    logger.notice("\(type.rawValue) journaled until Redis is back: \(error)")
                    return
                } catch {
                    logger.error("journal write failed: \(error)")
                }
            }
            logger.warning("could not publish \(type.rawValue): \(error)")
        }
    }

    /// Subscribes to `channels` and yields every valid envelope; invalid ones are logged, counted and dropped.
    public func subscribe(_ channels: [CortexNames.Channel]) -> (subscriber: RedisSubscriber, envelopes: AsyncStream<Envelope>) {
        let subscriber = RedisSubscriber(endpoint: redis.endpoint, channels: channels.map(\.rawValue), configuration: redis.configuration)
        let (stream, continuation) = AsyncStream.makeStream(of: Envelope.self)
        let task = Task { [self] in
            for await message in subscriber.messages {
                let channel = CortexNames.Channel(rawValue: message.channel)
                switch decoder.decode(message.payload, channel: channel) {
                case .success(let envelope):
                    metrics.messageReceived(channel: envelope.channel, type: envelope.type)
                    continuation.yield(envelope)
                case .failure(let rejection):
                    metrics.messageRejected(rejection.reason)
                    logger.warning("rejected message", metadata: [
                        "cortex.channel": "\(message.channel)", "cortex.reject.reason": "\(rejection.reason.rawValue)",
                        "cortex.reject.detail": "\(rejection.detail)", "cortex.message.bytes": "\(message.payload.count)",
                    ])
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return (subscriber, stream)
    }
}
