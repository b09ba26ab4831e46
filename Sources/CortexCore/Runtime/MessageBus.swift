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
    public static let historyLength = CortexNames.Retention.eventHistoryLength

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
    public static func commands(for envelope: Envelope) -> [RedisCommand] {
        let payload = envelope.encodedString
        return [
            .publish(envelope.channel.rawValue, payload),
            .xadd(CortexNames.eventHistory, maxLength: historyLength, fields: [("channel", envelope.channel.rawValue), ("message", payload)]),
        ]
    }

    /// Publishes a ready-made envelope (PUBLISH + XADD to the history in one round trip).
    public func publish(_ envelope: Envelope) async throws {
        try await redis.run(Self.commands(for: envelope))
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

    /// How much a subscription buffers for a reader that is behind: past either bound, incoming messages
    /// are dropped and counted (`cortex_messages_dropped_total`), never held without limit.
    public static let subscriptionBufferMessages = 10_000
    public static let subscriptionBufferBytes = 64 * 1024 * 1024

    /// Subscribes to `channels` and yields every valid envelope; invalid ones are logged (truncated),
    /// counted and dropped. Messages are decoded on the subscriber's thread and buffered up to
    /// `subscriptionBufferMessages` / `subscriptionBufferBytes`; what a slow reader cannot take is
    /// dropped, counted and logged (at most one line per 10 s per subscription).
    public func subscribe(_ channels: [CortexNames.Channel], bufferMessages: Int = subscriptionBufferMessages,
                          bufferBytes: Int = subscriptionBufferBytes) -> (subscriber: RedisSubscriber, envelopes: EnvelopeStream) {
        let (stream, continuation) = AsyncStream.makeStream(of: (Envelope, Int).self)
        let label = channels.map(\.rawValue).joined(separator: ",")
        let buffer = SubscriptionBuffer(maxMessages: bufferMessages, maxBytes: bufferBytes) { [metrics] bytes in
            metrics.subscriptionBuffered(channels: label, bytes: bytes)
        }
        let dropLog = RateLimitedLog(interval: .seconds(10))
        let wasLive = Locked(false)
        let subscriber = RedisSubscriber(
            endpoint: redis.endpoint, channels: channels.map(\.rawValue), configuration: redis.configuration,
            onConnectionChange: { [metrics, logger] up in
                if up {
                    if wasLive.value {
                        // Redis dropped us (e.g. its client-output-buffer-limit for pub/sub) or went away:
                        // whatever was published in between never reached us. Say so.
                        metrics.subscriptionInterrupted()
                        logger.warning("subscription to \(label) re-established; messages published while it was down were not received")
                    }
                    wasLive.withLock { $0 = true }
                }
            },
            handler: { [self] message in
                let channel = CortexNames.Channel(rawValue: message.channel)
                switch decoder.decode(message.payload, channel: channel) {
                case .success(let envelope):
                    metrics.messageReceived(channel: envelope.channel, type: envelope.type)
                    let size = message.payload.count
                    guard buffer.admit(bytes: size) else {
                        metrics.messageDropped(channel: message.channel, reason: "buffer_full")
                        if let dropped = dropLog.tick() {
                            logger.warning("reader too slow: \(dropped) messages dropped", metadata: [
                                LogKey.channel: "\(message.channel)", LogKey.bufferMessages: "\(buffer.messages)",
                                LogKey.bufferBytes: "\(buffer.bytes)",
                            ])
                        }
                        return
                    }
                    if case .terminated = continuation.yield((envelope, size)) { buffer.taken(bytes: size) }
                case .failure(let rejection):
                    metrics.messageRejected(rejection.reason)
                    logger.warning("rejected message", metadata: [
                        LogKey.channel: "\(message.channel)", LogKey.rejectReason: "\(rejection.reason.rawValue)",
                        LogKey.rejectDetail: "\(rejection.detail)", LogKey.messageBytes: "\(message.payload.count)",
                    ])
                }
            })
        continuation.onTermination = { _ in subscriber.stop() }
        // The subscriber finishes its own (unused) `messages` when it stops: end the envelopes then too.
        Task { [subscriber] in
            for await _ in subscriber.messages {}
            continuation.finish()
        }
        return (subscriber, EnvelopeStream(base: stream, buffer: buffer))
    }
}

/// How much a subscription holds for its reader (messages and bytes), with admission against the bounds.
public final class SubscriptionBuffer: Sendable {
    public let maxMessages: Int
    public let maxBytes: Int
    private let state = Locked((messages: 0, bytes: 0))
    /// Told the bytes held after every change (the buffered-bytes gauge).
    private let onChange: @Sendable (Int) -> Void

    public init(maxMessages: Int, maxBytes: Int, onChange: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.maxMessages = max(1, maxMessages)
        self.maxBytes = max(1, maxBytes)
        self.onChange = onChange
    }

    /// Reserves room for one message of `bytes`; false (nothing reserved) when it does not fit.
    public func admit(bytes: Int) -> Bool {
        let held = state.withLock { s -> Int? in
            guard s.messages < maxMessages, s.bytes + bytes <= maxBytes || s.messages == 0 else { return nil }
            s.messages += 1
            s.bytes += bytes
            return s.bytes
        }
        guard let held else { return false }
        onChange(held)
        return true
    }

    /// Releases a message the reader took.
    public func taken(bytes: Int) {
        let held = state.withLock { s -> Int in
            s.messages -= 1
            s.bytes -= bytes
            return s.bytes
        }
        onChange(held)
    }

    public var messages: Int { state.value.messages }
    public var bytes: Int { state.value.bytes }
}

/// The envelopes of one subscription, in arrival order; iterating releases their room in the buffer.
public struct EnvelopeStream: AsyncSequence, Sendable {
    public typealias Element = Envelope
    let base: AsyncStream<(Envelope, Int)>
    /// What is waiting to be read.
    public let buffer: SubscriptionBuffer

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<(Envelope, Int)>.AsyncIterator
        let buffer: SubscriptionBuffer

        public mutating func next() async -> Envelope? {
            guard let (envelope, size) = await base.next() else { return nil }
            buffer.taken(bytes: size)
            return envelope
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), buffer: buffer) }
}

/// Counts events and says when a log line is due: the first event, then at most one per `interval`
/// (with how many happened since the last line), so a flood cannot flood the log too.
public final class RateLimitedLog: Sendable {
    private let interval: Duration
    private let state = Locked((count: 0, last: ContinuousClock.Instant?.none))

    public init(interval: Duration) { self.interval = interval }

    /// Records one event; returns the number of events to report when a line is due, else nil.
    public func tick() -> Int? {
        state.withLock { s in
            s.count += 1
            let now = ContinuousClock.now
            if let last = s.last, now - last < interval { return nil }
            s.last = now
            defer { s.count = 0 }
            return s.count
        }
    }
}
