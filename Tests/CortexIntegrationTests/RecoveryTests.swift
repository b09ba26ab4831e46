import CortexControl
import CortexCore
@testable import CortexOrchestration
import Foundation
import Logging
import Testing

/// Failure paths with real processes: dead workers, poison items, dead masters, a lost Redis.
@Suite(.serialized) struct RecoveryTests {
    /// Fast heartbeats and a short visibility timeout, so failures are noticed within a few seconds. Not
    /// shorter: on a loaded 2-core CI machine a live process can stall for a second, and a 1 s timeout
    /// then declares it dead (a false MASTER_DOWN hands its task to another master).
    static let fast = ["CORTEX_HEARTBEAT_INTERVAL": "0.5", "CORTEX_HEARTBEAT_TIMEOUT": "3", "CORTEX_CLAIM_IDLE": "3"].merging(checkedAdvisories) { $1 }

    static func suite(_ name: String, _ env: [String: String] = fast, appendOnly: Bool = false) async throws -> LocalSuite {
        let work = try temporaryDirectory("cortex-\(name)")
        return try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                    environment: env, appendOnly: appendOnly)
    }

    static func client(_ suite: LocalSuite) -> RedisClient {
        RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
    }

    static func bus(_ suite: LocalSuite) -> MessageBus {
        MessageBus(redis: client(suite), source: "test", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
    }

    /// Queues one catalog item over a whole target and lets consumer `dead-worker` take it (and "die").
    static func strandItem(_ redis: RedisClient, target: URL, task: String) async throws -> WorkItem {
        let item = WorkItem(id: "\(task).0", taskID: task, runID: "run-\(task)", master: .inventory, pool: .catalog, skill: .languageCensus,
                            target: target.path, shard: 0, shards: 1)
        let stream = CortexNames.workStream(.catalog)
        try await redis.ensureGroup(stream, group: CortexNames.Group.workers)
        try await redis.xadd(stream, fields: [("item", try WireJSON.encode(item))])
        let taken = try await redis.xreadgroup(group: CortexNames.Group.workers, consumer: "dead-worker", streams: [stream], count: 1)
        #expect(taken.count == 1)
        return item
    }

    static func result(_ redis: RedisClient, _ item: WorkItem) async throws -> WorkResult? {
        guard let text = try await redis.send("HGET", CortexNames.taskResults(item.taskID), item.id).string else { return nil }
        return try WireJSON.decode(WorkResult.self, from: text)
    }

    @Test func strandedItemIsClaimedAndResumedFromItsCheckpoint() async throws {
        let suite = try await Self.suite("resume")
        let redis = Self.client(suite)
        let target = try makeRepository()
        let item = try await Self.strandItem(redis, target: target, task: "t-resume")
        // The dead worker had examined 3 of the 8 files and saved its progress.
        let files = try RepositoryFiles.list(root: target)
        let checkpoint = Checkpoint(next: 3, fileCount: files.count, lastPath: files[2],
                                    records: [["language": "Checkpointed", "files": 3, "lines": 0]])
        try await redis.send("SET", CortexNames.checkpoint(item.id), try WireJSON.encode(checkpoint), "EX", 600).orThrow()
        let worker = try suite.startWorker(pools: [.catalog])
        var done: WorkResult?
        #expect(await eventually { done = try? await Self.result(redis, item); return done != nil })
        let r = try #require(done)
        #expect(r.status == .succeeded && r.worker == "worker-1")
        #expect(r.resumedFrom == 3 && r.filesExamined == 5)
        let records = (r.output.arrayValue ?? []).compactMap(\.objectValue)
        #expect(records.first { $0["language"] == "Checkpointed" }?["files"] == 3)
        #expect(records.reduce(0) { $0 + ($1["files"]?.intValue ?? 0) } == 8)
        #expect(try await redis.send("EXISTS", CortexNames.checkpoint(item.id)).int == 0)
        #expect(try await redis.xpending(CortexNames.workStream(.catalog), group: CortexNames.Group.workers).isEmpty)
        #expect(logLines(worker).contains { ($0["msg"] as? String)?.hasPrefix("resuming from checkpoint at file 3 of 8") == true })
        await suite.stop()
    }

    @Test func checkpointOfTheWrongShapeIsReportedAndSkipped() async throws {
        let suite = try await Self.suite("badcheckpoint")
        let redis = Self.client(suite)
        let target = try makeRepository()
        let item = try await Self.strandItem(redis, target: target, task: "t-badck")
        try await redis.send("SET", CortexNames.checkpoint(item.id), #"{"next":"three"}"#).orThrow()
        let worker = try suite.startWorker(pools: [.catalog])
        var done: WorkResult?
        #expect(await eventually { done = try? await Self.result(redis, item); return done != nil })
        #expect(done?.status == .succeeded && done?.resumedFrom == nil && done?.filesExamined == 8)
        #expect(logLines(worker).contains { ($0["msg"] as? String)?.contains("is not a checkpoint") == true })
        #expect(worker.isRunning)
        await suite.stop()
    }

    @Test func poisonItemMovesToTheDeadLetterStream() async throws {
        var env = Self.fast
        env["CORTEX_MAX_DELIVERIES"] = "3"
        let suite = try await Self.suite("poison", env)
        let redis = Self.client(suite)
        let item = try await Self.strandItem(redis, target: try makeRepository(), task: "t-poison")
        // Two more workers took it and died: three deliveries so far.
        let stream = CortexNames.workStream(.catalog)
        let id = try #require(try await redis.xpending(stream, group: CortexNames.Group.workers).first?.id)
        for consumer in ["dead-2", "dead-3"] {
            _ = try await redis.xclaim(stream, group: CortexNames.Group.workers, consumer: consumer, minIdle: .zero, ids: [id])
        }
        #expect(try await redis.xpending(stream, group: CortexNames.Group.workers).first?.deliveries == 3)
        try suite.startWorker(pools: [.catalog])
        var done: WorkResult?
        #expect(await eventually { done = try? await Self.result(redis, item); return done != nil })
        #expect(done?.status == .failed)
        #expect(done?.error == "dead-lettered after 4 deliveries without completing")
        let dead = try await redis.xrange(CortexNames.deadLetters)
        #expect(dead.count == 1 && dead[0].fields["item_id"] == item.id && dead[0].fields["entry"] == id)
        #expect(try await redis.xpending(stream, group: CortexNames.Group.workers).isEmpty)
        await suite.stop()
    }

    @Test func silentWorkerIsMarkedLost() async throws {
        let suite = try await Self.suite("lost")
        let bus = Self.bus(suite)
        let (subscriber, events) = bus.subscribe([.workersStatus])
        defer { subscriber.stop() }
        _ = await subscriber.waitUntilSubscribed()
        try suite.startCoordinator()
        let worker = try suite.startWorker()
        #expect(await eventually { (try? await bus.redis.send("EXISTS", CortexNames.workerHeartbeat("worker-1")).int) == 1 })
        worker.signal(SIGKILL)
        var lost: Envelope?
        for await e in events where e.type == .WORKER_LOST {
            lost = e
            break
        }
        #expect(lost?.string("worker") == "worker-1")
        #expect(try await bus.redis.send("HGET", CortexNames.workerRegistry("worker-1"), "status").string == "lost")
        await suite.stop()
    }

    @Test func workersGoneForADayAreForgotten() async throws {
        let suite = try await Self.suite("forget")
        let redis = Self.client(suite)
        let twoDaysAgo = epochMilliseconds() - 2 * 24 * 3600 * 1000
        try await redis.send("HSET", CortexNames.workerRegistry("old-pod"), "status", "stopped", "last_heartbeat", twoDaysAgo).orThrow()
        try await redis.send("HSET", CortexNames.workerRegistry("recent-pod"), "status", "lost", "last_heartbeat", epochMilliseconds()).orThrow()
        try await redis.send("SADD", CortexNames.workerSet, "old-pod", "recent-pod").orThrow()
        try suite.startCoordinator()
        #expect(await eventually { (try? await redis.send("SISMEMBER", CortexNames.workerSet, "old-pod").int) == 0 })
        #expect(try await redis.send("EXISTS", CortexNames.workerRegistry("old-pod")).int == 0)
        #expect(try await redis.send("SISMEMBER", CortexNames.workerSet, "recent-pod").int == 1)
        await suite.stop()
    }

    /// Starts everything but the scan pool, submits a run and waits until security-master is waiting on its items.
    static func runBlockedOnSecurity(_ suite: LocalSuite) async throws -> (RunClient, String, Task<RunState, Error>, Locked<[Envelope]>) {
        try suite.startCoordinator()
        for role in MasterRole.allCases { try suite.startMaster(role) }
        try suite.startWorker(pools: WorkerPool.allCases.filter { $0 != .scan })
        let bus = Self.bus(suite)
        let client = RunClient(bus: bus)
        let all = Locked<[Envelope]>([])
        let watcher = bus.subscribe(CortexNames.Channel.allCases)
        _ = await watcher.subscriber.waitUntilSubscribed()
        Task { for await e in watcher.envelopes { all.withLock { $0.append(e) } } }
        let follow = bus.subscribe(CortexNames.Channel.allCases)
        _ = await follow.subscriber.waitUntilSubscribed()
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [try makeRepository().path], requestedBy: "test"))
        let follower = Task { try await client.follow(runID: runID, subscribedBeforeSubmit: follow, timeout: .seconds(90)) { _ in } }
        #expect(await eventually(timeout: .seconds(60)) { all.value.contains { $0.type == .WORKER_SPAWN && $0.string("master") == "security" } })
        return (client, runID, follower, all)
    }

    @Test func killedMasterIsAnnouncedAndItsTaskHandedToTheRestartedOne() async throws {
        let suite = try await Self.suite("masterdown")
        let (_, _, follower, events) = try await Self.runBlockedOnSecurity(suite)
        let security = try #require(suite.supervisor.all.first { $0.name == "security-master-local" })
        security.signal(SIGKILL)
        #expect(await eventually { events.value.contains { $0.type == .MASTER_DOWN && $0.string("master") == "security" } })
        #expect(await eventually { events.value.contains { $0.type == .ESCALATION && $0.string("subject") == "security-master" } })
        let down = try #require(events.value.first { $0.type == .MASTER_DOWN && $0.string("master") == "security" })
        #expect(down.int("held_tasks") == 1)
        // Restarted under a new name (as a new pod would be), with a scan worker this time.
        try suite.startMaster(.security, instance: "security-master-2")
        try suite.startWorker(pools: [.scan])
        let state = try await follower.value
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)
        #expect(summary.contains("\"instance\":\"security-master-2\""))
    }

    @Test func masterThatNeverReturnsEndsTheRunWithAPartialReport() async throws {
        var env = Self.fast
        env["CORTEX_MASTER_DOWN_TIMEOUT"] = "1"
        let suite = try await Self.suite("masternever", env)
        let (_, _, follower, _) = try await Self.runBlockedOnSecurity(suite)
        try #require(suite.supervisor.all.first { $0.name == "security-master-local" }).signal(SIGKILL)
        let state = try await follower.value
        await suite.stop()
        #expect(state.status == "partial")
        #expect(state.reason?.contains("security-master down since") == true)
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.md", encoding: .utf8)
        #expect(summary.contains("Unfinished tasks") && summary.contains("security-master"))
        #expect(summary.contains("inventory-master"))  // the others still reported
        let snapshot = try String(contentsOf: suite.workDirectory.appendingPathComponent("coordination/current-execution.json"), encoding: .utf8)
        #expect(snapshot.contains("\"status\":\"partial\""))
    }

    @Test func redisKilledAndRestartedMidRunLosesNothing() async throws {
        let suite = try await Self.suite("redisdown", appendOnly: true)
        let (_, _, follower, _) = try await Self.runBlockedOnSecurity(suite)
        let worker = try #require(suite.supervisor.all.first { $0.name == "worker-1" })
        let port = try #require(await opsPort(worker))
        await suite.redis.kill()
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 503 })
        try await suite.redis.restart()
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 200 })
        try suite.startWorker(pools: [.scan])
        let state = try await follower.value
        // Every task's four items are there, each once (in the run's archive: phase 5 moved them out of Redis).
        let archive = try RunArchive.load(reportDirectory: try #require(state.reportDir))
        for task in MasterRole.allCases.map({ "\(state.runID).\($0.rawValue).0" }) {
            #expect(archive[CortexNames.taskResults(task)]?.objectValue?.count == 4, "\(task)")
        }
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        for child in suite.supervisor.all where !child.name.hasPrefix("redis-server") {
            #expect(exitStatus(child) == 0, "\(child.name)")
        }
    }
}
