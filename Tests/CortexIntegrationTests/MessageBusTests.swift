import CortexCore
import Foundation
import Logging
import Testing

/// Envelopes published through the bus arrive intact on each channel, and land in the event history.
@Suite(.serialized) struct MessageBusTests {
    @Test func envelopeRoundTripOnEachChannel() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let metrics = CortexMetrics()
        let bus = MessageBus(redis: RedisClient(endpoint: redis.endpoint), source: "bus-test", metrics: metrics, decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
        let (subscriber, envelopes) = bus.subscribe(CortexNames.Channel.allCases)
        defer { subscriber.stop() }
        #expect(await subscriber.waitUntilSubscribed())
        var sent: [Envelope] = []
        for channel in CortexNames.Channel.allCases {
            let type = try #require(MessageType.allCases.first { $0.channel == channel })
            sent.append(try await bus.publish(type, runID: "run-rt", data: type.exampleData))
        }
        var received: [Envelope] = []
        for await e in envelopes {
            received.append(e)
            if received.count == sent.count { break }
        }
        #expect(received.map(\.encodedString) == sent.map(\.encodedString))  // the wire form, timestamps at millisecond precision
        #expect(Set(received.map(\.channel)) == Set(CortexNames.Channel.allCases))
        let history = try await bus.redis.xread(CortexNames.eventHistory, after: "0")
        #expect(history.count == CortexNames.Channel.allCases.count)
        #expect(history.map { $0.fields["channel"] } == sent.map { $0.channel.rawValue })
        #expect(metric(metrics.exposition(), #"cortex_messages_received_total{channel="cortex:workers:status",type="\#(sent[1].type.rawValue)"}"#) == 1)
    }
}
