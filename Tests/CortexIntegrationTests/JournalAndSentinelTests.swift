import CortexControl
import CortexCore
import Foundation
import Logging
import Testing

@Suite(.serialized) struct JournalTests {
    @Test func replaysInOrderExactlyOnceAndSkipsCorruptLines() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let client = RedisClient(endpoint: redis.endpoint)
        defer { client.close() }
        let dir = try temporaryDirectory("cortex-journal")
        let metrics = CortexMetrics()
        let journal = Journal(directory: dir, name: "test", logger: Logger(label: "test"), metrics: metrics)
        try await journal.append([.rpush("list", "a")])
        try await journal.append([.rpush("list", "b"), .publish("cortex:events:system", "not-an-envelope")])
        // A torn write and a foreign line in the middle: reported, skipped, the rest still replayed.
        let handle = try FileHandle(forWritingTo: journal.file)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"id\":\"x\",\"comm\n[1,2,3]\n".utf8))
        try handle.close()
        try await journal.append([.rpush("list", "c")])
        let before = try String(contentsOf: journal.file, encoding: .utf8)
        #expect(await journal.pendingCount() == 5)

        let first = await journal.replay(redis: client)
        #expect(first.applied == 3 && first.skipped == 2 && first.duplicates == 0)
        #expect(try await client.send("LRANGE", "list", 0, -1).array?.compactMap(\.string) == ["a", "b", "c"])
        #expect(!FileManager.default.fileExists(atPath: journal.file.path))

        // The process died after applying but before truncating: the same records come back.
        try Data(before.utf8).write(to: journal.file)
        let second = await journal.replay(redis: client)
        #expect(second.applied == 0 && second.duplicates == 3)
        #expect(try await client.send("LRANGE", "list", 0, -1).array?.compactMap(\.string) == ["a", "b", "c"])
        #expect(metric(metrics.exposition(), #"cortex_journal_records_total{event="corrupt"}"#) == 4)
    }

    @Test func recordsStayWhileRedisIsUnreachable() async throws {
        let dir = try temporaryDirectory("cortex-journal-down")
        let journal = Journal(directory: dir, name: "test", logger: Logger(label: "test"), metrics: CortexMetrics())
        try await journal.append([.set("k", "v")])
        let nowhere = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: try FreePort.find()), configuration: .init(connectTimeout: .milliseconds(200)))
        defer { nowhere.close() }
        let r = await journal.replay(redis: nowhere)
        #expect(r.applied == 0 && r.skipped == 0)
        #expect(await journal.pendingCount() == 1)
    }
}

@Suite(.serialized) struct SentinelTests {
    @Test func clientsFollowAFailover() async throws {
        let dir = try temporaryDirectory("cortex-sentinel")
        let supervisor = try ProcessSupervisor(logDirectory: dir.appendingPathComponent("logs"))
        let primary = try await LocalRedis(supervisor: supervisor, directory: dir.appendingPathComponent("primary"), appendOnly: true)
        let replica = try await LocalRedis(supervisor: supervisor, directory: dir.appendingPathComponent("replica"), appendOnly: true,
                                           extraArguments: ["--replicaof", "127.0.0.1", "\(primary.port)"])
        try await replica.waitForReplicationLink()
        let sentinel = try await SentinelProcess.start(supervisor: supervisor, directory: dir.appendingPathComponent("sentinel"),
                                                       masterName: "cortex", primaryPort: primary.port)
        defer { supervisor.killAll() }
        var endpoint = RedisEndpoint()
        try endpoint.useSentinels("127.0.0.1:\(sentinel.port)", masterName: "cortex")
        let client = RedisClient(endpoint: endpoint, configuration: .init(connectTimeout: .milliseconds(500), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(300)))
        defer { client.close() }
        try await client.send("SET", "before", "1").orThrow()
        let replicaClient = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: replica.port))
        defer { replicaClient.close() }
        #expect(await eventually { (try? await replicaClient.send("GET", "before").string) == "1" })
        // The sentinel learns of the replica from the primary's INFO (every 10 s at first); killed before
        // that, the primary has no replica to fail over to as far as the sentinel knows.
        let sentinelClient = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: sentinel.port))
        defer { sentinelClient.close() }
        #expect(await eventually(timeout: .seconds(60)) {
            guard let replicas = try? await sentinelClient.send("SENTINEL", "REPLICAS", "cortex").array else { return false }
            return replicas.contains { entry in
                let fields = entry.array?.compactMap(\.string) ?? []
                let flags = zip(fields, fields.dropFirst()).first { $0.0 == "flags" }?.1 ?? ""
                return fields.contains(String(replica.port)) && flags.split(separator: ",").contains("slave")
                    && !flags.contains("s_down") && !flags.contains("disconnected")
            }
        }, "the sentinel never listed the replica")

        await primary.kill()
        // Sentinel promotes the replica; the same client object finds it and writes there.
        #expect(await eventually(timeout: .seconds(30)) { (try? await client.send("SET", "after", "2").orThrow()) != nil })
        // The promotion dropped our connection to the replica; the next command reconnects.
        #expect(await eventually { (try? await replicaClient.send("ROLE").array?.first?.string) == "master" })
        #expect(try await replicaClient.send("GET", "after").string == "2")
        #expect(try await replicaClient.send("GET", "before").string == "1")
    }

    @Test func badSentinelListIsAClearError() {
        var endpoint = RedisEndpoint()
        #expect(throws: RedisError.self) { try endpoint.useSentinels("host-without-port", masterName: "cortex") }
        #expect(throws: RedisError.self) { try endpoint.useSentinels("h:1", masterName: "") }
    }
}
