import CortexControl
import CortexCore
import Foundation
import Testing

/// The hiredis-based client against a real redis-server.
@Suite(.serialized) struct RedisClientTests {
    /// The script's shared server when there is one (a unique key prefix keeps tests apart), else a private one.
    func withRedis(_ body: (RedisEndpoint) async throws -> Void) async throws {
        if let url = sharedTestRedisURL {
            try await body(try RedisEndpoint(url: url))
        } else {
            let redis = try await PrivateRedis.start()
            defer { Task { await redis.stop() } }
            try await body(redis.endpoint)
        }
    }

    @Test func binarySafeCommandsAndPipelining() async throws {
        try await withRedis { endpoint in
            let client = RedisClient(endpoint: endpoint)
            defer { client.close() }
            let key = "test:binary:\(UUID().uuidString)"
            let value: [UInt8] = [0, 13, 10, 255, 42, 0, 36]  // NUL, CRLF, '$' and a high byte
            try await client.send("SET", key, value).orThrow()
            #expect(try await client.send("GET", key) == .bulk(value))
            let replies = try await client.pipeline([["INCR", key + ":n"], ["INCR", key + ":n"], ["GET", key + ":n"], ["NOSUCHCMD"]])
            #expect(replies[0] == .integer(1) && replies[1] == .integer(2) && replies[2].string == "2")
            if case .error(let message) = replies[3] { #expect(message.contains("unknown command")) } else { Issue.record("expected an error reply") }
            #expect(try await client.send("GET", key + ":missing") == .null)
            #expect(await client.ping())
            await #expect(throws: RedisError.self) { try await client.send("NOSUCHCMD").orThrow() }
        }
    }

    /// Callers that send at the same time share the connection's pipelines: each still gets its own
    /// replies, in order, and a request's commands go out back to back.
    @Test func concurrentCallersEachGetTheirOwnRepliesInOrder() async throws {
        try await withRedis { endpoint in
            let client = RedisClient(endpoint: endpoint)
            defer { client.close() }
            let key = "test:concurrent:\(UUID().uuidString)"
            let replies = try await withThrowingTaskGroup(of: (Int, [RedisReply]).self) { group in
                for i in 0..<500 {
                    group.addTask { (i, try await client.pipeline([["ECHO", "m\(i)"], ["RPUSH", key, "\(i)"], ["LINDEX", key, "-1"]])) }
                }
                var out: [Int: [RedisReply]] = [:]
                for try await (i, r) in group { out[i] = r }
                return out
            }
            #expect(replies.count == 500)
            for (i, r) in replies {
                #expect(r[0].string == "m\(i)")
                // Nothing of another caller's ran between this request's RPUSH and LINDEX.
                #expect(r[2].string == "\(i)")
            }
            #expect(Set(replies.values.compactMap { $0[1].int }) == Set(1...500))
            #expect(try await client.send("LLEN", key).int == 500)
        }
    }

    @Test func streamsWithConsumerGroups() async throws {
        try await withRedis { endpoint in
            let client = RedisClient(endpoint: endpoint)
            defer { client.close() }
            let stream = "test:stream:\(UUID().uuidString)"
            try await client.ensureGroup(stream, group: "g")
            try await client.ensureGroup(stream, group: "g")  // idempotent
            let id1 = try await client.xadd(stream, fields: [("item", "one")])
            _ = try await client.xadd(stream, fields: [("item", "two")])
            let got = try await client.xreadgroup(group: "g", consumer: "a", streams: [stream], count: 1)
            #expect(got.map(\.entry.id) == [id1] && got.first?.entry.fields["item"] == "one")
            var pending = try await client.xpending(stream, group: "g")
            #expect(pending.count == 1 && pending[0].consumer == "a" && pending[0].deliveries == 1)
            // Consumer "a" dies: "b" claims the idle entry.
            try await Task.sleep(for: .milliseconds(60))
            let claimed = try await client.xautoclaim(stream, group: "g", consumer: "b", minIdle: .milliseconds(50))
            #expect(claimed.map(\.id) == [id1])
            #expect(try await client.xack(stream, group: "g", ids: [id1]) == 1)
            pending = try await client.xpending(stream, group: "g")
            #expect(pending.isEmpty)
            // BLOCK returns the second entry at once, then times out empty.
            let next = try await client.xreadgroup(group: "g", consumer: "b", streams: [stream], block: .milliseconds(100))
            #expect(next.first?.entry.fields["item"] == "two")
            let none = try await client.xreadgroup(group: "g", consumer: "b", streams: [stream], block: .milliseconds(100))
            #expect(none.isEmpty)
        }
    }

    @Test func subscriberReceivesPublishedMessages() async throws {
        try await withRedis { endpoint in
            let channel = "test:chan:\(UUID().uuidString)"
            let subscriber = RedisSubscriber(endpoint: endpoint, channels: [channel])
            defer { subscriber.stop() }
            #expect(await subscriber.waitUntilSubscribed())
            let client = RedisClient(endpoint: endpoint)
            defer { client.close() }
            let receivers = try await client.send("PUBLISH", channel, [0, 1, 2] as [UInt8]).int
            #expect(receivers == 1)
            var iterator = subscriber.messages.makeAsyncIterator()
            let message = await iterator.next()
            #expect(message?.channel == channel && message?.payload == [0, 1, 2])
        }
    }

    /// An outstanding PING gets the whole command timeout from when it was sent. A server that stalls
    /// (CLIENT PAUSE, on a private server: it stops every client) for 4.5 s right after the subscription
    /// answers the PING sent after 2 s of quiet 2.5 s later, within the 4 s timeout: the subscription stays
    /// (counted from the last traffic, the PING had 2 s, and the link was dropped and re-made).
    @Test func aStallShorterThanThePingTimeoutKeepsTheSubscription() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        // Connected before the subscription, so the PAUSE can follow it at once.
        let admin = RedisClient(endpoint: redis.endpoint)
        defer { admin.close() }
        try await admin.send("PING").orThrow()
        for attempt in 1...3 {
            let states = Locked<[Bool]>([])
            let subscribedAt = Locked<ContinuousClock.Instant?>(nil)
            let subscriber = RedisSubscriber(endpoint: redis.endpoint, channels: ["test:stall"], configuration: .init(commandTimeout: .seconds(4)),
                                             onConnectionChange: { up in
                                                 states.withLock { $0.append(up) }
                                                 if up { subscribedAt.withLock { $0 = $0 ?? .now } }
                                             })
            #expect(await subscriber.waitUntilSubscribed())
            try await admin.send("CLIENT", "PAUSE", 4500, "ALL").orThrow()
            // The stall must begin within a second of the subscription for the PING (sent after 2 s of quiet)
            // to be the one that waits; a test process stalled longer than that proves nothing: again.
            let lag = ContinuousClock.now - (subscribedAt.value ?? .now)
            if lag > .seconds(1) && attempt < 3 {
                print("attempt \(attempt): the pause began \(lag) after the subscription; again")
                subscriber.stop()
                try await Task.sleep(for: .seconds(5))  // the pause ends
                continue
            }
            try await Task.sleep(for: .seconds(7))
            #expect(states.value == [true], "\(states.value)")
            #expect(try await admin.send("PUBLISH", "test:stall", "after").int == 1)
            var iterator = subscriber.messages.makeAsyncIterator()
            #expect(await iterator.next()?.payload == Array("after".utf8))
            subscriber.stop()
            return
        }
    }

    @Test func authenticatesWithACLUser() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let admin = RedisClient(endpoint: redis.endpoint)
        defer { admin.close() }
        try await admin.send("ACL", "SETUSER", "cortex", "on", ">s3cret:pw", "~*", "&*", "+@all").orThrow()
        let good = try RedisClient(url: "redis://cortex:s3cret%3Apw@127.0.0.1:\(redis.server.port)/2")
        defer { good.close() }
        #expect(try await good.send("ACL", "WHOAMI").string == "cortex")
        try await good.send("SET", "in-db-2", "yes").orThrow()
        #expect(try await admin.send("EXISTS", "in-db-2").int == 0)  // SELECT 2 took effect
        let bad = try RedisClient(url: "redis://cortex:wrong@127.0.0.1:\(redis.server.port)")
        defer { bad.close() }
        await #expect(throws: RedisError.self) { try await bad.send("PING") }
    }

    @Test func reconnectsAfterTheServerComesBack() async throws {
        let dir = try temporaryDirectory("cortex-reconnect")
        let supervisor = try ProcessSupervisor(logDirectory: dir)
        let first = try await LocalRedis(supervisor: supervisor, directory: dir)
        let port = first.port
        let states = Locked<[Bool]>([])
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port),
                                 configuration: .init(connectTimeout: .milliseconds(300), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)),
                                 onConnectionChange: { up in states.withLock { $0.append(up) } })
        defer { client.close() }
        #expect(await client.ping())
        await first.stop()
        await #expect(throws: RedisError.self) { try await client.send("PING") }
        #expect(!client.isConnected)
        // Same port again: the client must find it without being rebuilt.
        let server = try #require(ExecutableLocator.system("redis-server"))
        let second = try supervisor.start(name: "redis-again", executable: server, arguments: ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--dir", dir.path])
        defer { second.signal(SIGKILL) }
        #expect(await eventually(timeout: .seconds(60)) { await client.ping() })
        #expect(states.value == [true, false, true])
    }

    @Test func unreachableServerFailsFastWithAClearError() async throws {
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: try FreePort.find()), configuration: .init(connectTimeout: .milliseconds(300)))
        defer { client.close() }
        do {
            try await client.send("PING")
            Issue.record("expected a connection error")
        } catch let error as RedisError {
            #expect(error.isConnectionError)
            #expect(error.description.contains("Redis unreachable"))
        }
    }
}
