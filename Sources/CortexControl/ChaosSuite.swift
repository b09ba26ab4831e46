import CortexCore
import CortexOrchestration
import Foundation
import Logging

/// Fault injection against real processes: the scenarios of docs/reliability.md.
///
/// Each scenario starts a private suite, submits a real run, injects its faults while the run is in
/// flight, and then counts from Redis what happened to every work item.
public enum ChaosSuite {
    public enum Scenario: String, CaseIterable, Sendable {
        case workerKills = "worker-kills"
        case masterRestart = "master-restart"
        case redisRestart = "redis-restart"
        case sentinelFailover = "sentinel-failover"
    }

    /// Sizes: `full` is what docs/reliability.md records, the short one is what CI runs.
    public struct Options: Sendable {
        public var full: Bool
        public var workDirectory: URL
        public var binDirectory: URL
        public var log: @Sendable (String) -> Void
        public init(full: Bool, workDirectory: URL, binDirectory: URL = ExecutableLocator.binDirectory, log: @escaping @Sendable (String) -> Void = { _ in }) {
            self.full = full
            self.workDirectory = workDirectory
            self.binDirectory = binDirectory
            self.log = log
        }
    }

    /// One line of the table.
    public struct Row: Sendable {
        public var scenario: String
        public var faults: String
        public var submitted = 0
        public var completed = 0
        public var failed = 0
        /// Why items failed, with counts (e.g. dead-lettered after too many deliveries).
        public var failures: [String: Int] = [:]
        public var lost = 0
        public var redone = 0
        public var countedTwice = 0
        public var run = "-"
        public var recovery = "-"
        public var seconds = 0.0

        /// The counts with the scenario's description attached.
        func labelled(_ scenario: String, faults: String, recovery: String) -> Row {
            var r = self
            r.scenario = scenario
            r.faults = faults
            r.recovery = recovery
            return r
        }
    }

    /// Runs the scenarios one after another.
    public static func run(_ scenarios: [Scenario], options: Options) async throws -> [Row] {
        var rows: [Row] = []
        for s in scenarios {
            options.log("scenario \(s.rawValue) (\(options.full ? "full" : "short"))")
            let started = ContinuousClock.now
            var row: Row
            switch s {
            case .workerKills: row = try await workerKills(options)
            case .masterRestart: row = try await masterRestart(options)
            case .redisRestart: row = try await redisRestart(options)
            case .sentinelFailover: row = try await sentinelFailover(options)
            }
            row.seconds = seconds(ContinuousClock.now - started)
            options.log("  -> \(row.run): \(row.completed)/\(row.submitted) completed, \(row.lost) lost, \(row.countedTwice) counted twice")
            for (reason, n) in row.failures { options.log("     \(n) failed: \(reason)") }
            rows.append(row)
        }
        return rows
    }

    /// The Markdown table.
    public static func table(_ rows: [Row]) -> String {
        var out = "| Scenario | Faults injected | Items submitted | Completed | Failed | Lost | Redone (deduplicated) | Counted twice | Run | Time to recover | Wall |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            out += "| \(r.scenario) | \(r.faults) | \(r.submitted) | \(r.completed) | \(r.failed) | \(r.lost) | \(r.redone) | \(r.countedTwice) | \(r.run) | \(r.recovery) | \(String(format: "%.1f s", r.seconds)) |\n"
        }
        return out
    }

    // MARK: - Scenarios

    static func workerKills(_ o: Options) async throws -> Row {
        let items = o.full ? 1000 : 200
        let env = fastEnvironment(itemsPerTask: items)
        let suite = try await makeSuite(o, "workers", env: env)
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 20_000 : 4_000)
        try suite.startCoordinator()
        try suite.startMaster(.inventory)
        for _ in 0..<4 { try suite.startWorker() }
        let harness = Harness(suite: suite, endpoint: localEndpoint(suite))
        let kills = Locked(0)
        let recoveries = Locked<[Double]>([])
        let watchers = Locked<[Task<Void, Never>]>([])
        let row = try await harness.run(goal: "inventory", target: target, itemsPerTask: items) { progress in
            // Once work flows, SIGKILL a random busy worker every interval and start a replacement (as a Deployment would).
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE }
            while !progress.finished {
                try? await Task.sleep(for: .seconds(1))
                if progress.finished { break }
                let workers = suite.supervisor.all.filter { $0.name.hasPrefix("worker-") && $0.isRunning }
                guard let victim = workers.randomElement() else { continue }
                let stranded = (try? await harness.redis.xpending(CortexNames.workStream(.catalog), group: CortexNames.Group.workers, count: 100, consumer: victim.name)) ?? []
                victim.signal(SIGKILL)
                let killedAt = ContinuousClock.now
                kills.withLock { $0 += 1 }
                _ = try? suite.startWorker()
                if !stranded.isEmpty {
                    let watcher = Task { if let t = await harness.timeUntilAcknowledged(stranded.map(\.id), since: killedAt) { recoveries.withLock { $0.append(t) } } }
                    watchers.withLock { $0.append(watcher) }
                }
            }
        }
        for w in watchers.value { await w.value }
        await suite.stop()
        return row.labelled("\(items) items, a random worker killed -9 every second (and replaced)", faults: "\(kills.value) × SIGKILL worker", recovery: recoveries.value.isEmpty ? "-" : String(format: "stranded items re-done within %.1f s (max), %.1f s (median)", recoveries.value.max()!, median(recoveries.value)))
    }

    static func masterRestart(_ o: Options) async throws -> Row {
        let items = o.full ? 100 : 30
        let suite = try await makeSuite(o, "master", env: fastEnvironment(itemsPerTask: items))
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 8_000 : 2_000)
        try suite.startAll(workers: 2)
        let harness = Harness(suite: suite, endpoint: localEndpoint(suite))
        let pause: Duration = .seconds(o.full ? 5 : 2)
        let recovery = Locked("-")
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { $0.type == .WORKER_SPAWN && $0.string("master") == "inventory" }
            suite.supervisor.all.first { $0.name == "inventory-master-local" }?.signal(SIGKILL)
            try? await Task.sleep(for: pause)
            _ = try? suite.startMaster(.inventory, instance: "inventory-master-restarted")
            let restarted = ContinuousClock.now
            if await progress.waitFor(timeout: .seconds(120), { $0.type == .MASTER_REPORT && $0.string("master") == "inventory" }) != nil {
                recovery.withLock { $0 = String(format: "report %.1f s after the restart", seconds(ContinuousClock.now - restarted)) }
            }
        }
        await suite.stop()
        return row.labelled("master killed mid-run, restarted \(seconds(pause)) s later", faults: "SIGKILL inventory-master", recovery: recovery.value)
    }

    static func redisRestart(_ o: Options) async throws -> Row {
        let items = o.full ? 100 : 30
        let suite = try await makeSuite(o, "redis", env: fastEnvironment(itemsPerTask: items), appendOnly: true)
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 8_000 : 2_000)
        try suite.startAll(workers: 4)
        let harness = Harness(suite: suite, endpoint: localEndpoint(suite))
        let recovery = Locked("-")
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE }
            await suite.redis.kill()
            try? await Task.sleep(for: .seconds(1))
            do {
                try await suite.redis.restart()
                let restarted = ContinuousClock.now
                if await harness.allReady(timeout: .seconds(60)) {
                    recovery.withLock { $0 = String(format: "all processes ready %.1f s after the restart", seconds(ContinuousClock.now - restarted)) }
                }
            } catch {
                o.log("  redis restart failed: \(error)")
            }
        }
        await suite.stop()
        return row.labelled("redis-server killed mid-run, restarted 1 s later (AOF, fsync always)", faults: "SIGKILL redis-server", recovery: recovery.value)
    }

    static func sentinelFailover(_ o: Options) async throws -> Row {
        let items = o.full ? 100 : 30
        let suite = try await makeSuite(o, "sentinel", env: fastEnvironment(itemsPerTask: items), appendOnly: true)
        let replica = try await LocalRedis(supervisor: suite.supervisor, directory: suite.workDirectory.appendingPathComponent("replica"), appendOnly: true,
                                           extraArguments: ["--replicaof", "127.0.0.1", "\(suite.redis.port)"])
        try await replica.waitForReplicationLink()
        let sentinel = try await SentinelProcess.start(supervisor: suite.supervisor, directory: suite.workDirectory.appendingPathComponent("sentinel"),
                                                       masterName: "cortex", primaryPort: suite.redis.port)
        suite.environment["CORTEX_REDIS_SENTINELS"] = "127.0.0.1:\(sentinel.port)"
        suite.environment["CORTEX_REDIS_MASTER_NAME"] = "cortex"
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 8_000 : 2_000)
        try suite.startAll(workers: 4)
        var sentinelEndpoint = RedisEndpoint()
        try sentinelEndpoint.useSentinels("127.0.0.1:\(sentinel.port)", masterName: "cortex")
        let endpoint = sentinelEndpoint
        let harness = Harness(suite: suite, endpoint: endpoint)
        let recovery = Locked("-")
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE }
            await suite.redis.kill()
            let killed = ContinuousClock.now
            let probe = RedisClient(endpoint: endpoint, configuration: .init(connectTimeout: .milliseconds(300), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)))
            defer { probe.close() }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if (try? await probe.send("SET", "cortex:chaos:probe", "1").orThrow()) != nil {
                    recovery.withLock { $0 = String(format: "replica promoted and written to %.1f s after the kill", seconds(ContinuousClock.now - killed)) }
                    break
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        await suite.stop()
        replica.child.signal(SIGKILL)
        sentinel.child.signal(SIGKILL)
        return row.labelled("Sentinel failover mid-run (primary killed, replica promoted)", faults: "SIGKILL primary redis-server", recovery: recovery.value)
    }

    // MARK: - Support

    static func fastEnvironment(itemsPerTask: Int) -> [String: String] {
        ["CORTEX_HEARTBEAT_INTERVAL": "0.5", "CORTEX_HEARTBEAT_TIMEOUT": "2", "CORTEX_CLAIM_IDLE": "2",
         "CORTEX_ITEMS_PER_TASK": "\(itemsPerTask)", "CORTEX_MASTER_DOWN_TIMEOUT": "120", "CORTEX_LOG_LEVEL": "notice"]
    }

    static func makeSuite(_ o: Options, _ name: String, env: [String: String], appendOnly: Bool = false) async throws -> LocalSuite {
        let dir = o.workDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(6))")
        return try await LocalSuite(workDirectory: dir, outputDirectory: dir.appendingPathComponent("reports"), binDirectory: o.binDirectory,
                                    environment: env, appendOnly: appendOnly)
    }

    static func localEndpoint(_ suite: LocalSuite) -> RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: suite.redis.port) }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
}

/// Everything seen on the channels during a run, for fault injectors to wait on.
final class RunProgress: @unchecked Sendable {
    private let events = Locked<[Envelope]>([])
    private let done = Locked(false)
    var finished: Bool { done.value }
    func add(_ e: Envelope) { events.withLock { $0.append(e) } }
    func finish() { done.withLock { $0 = true } }

    /// The first event matching `predicate`, waiting up to `timeout`; nil when the run ended first.
    func waitFor(timeout: Duration = .seconds(60), _ predicate: (Envelope) -> Bool) async -> Envelope? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let e = events.value.first(where: predicate) { return e }
            if finished { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

/// Submits a run, runs a fault injector beside it, and counts the outcome from Redis.
struct Harness {
    let suite: LocalSuite
    let endpoint: RedisEndpoint
    let redis: RedisClient

    init(suite: LocalSuite, endpoint: RedisEndpoint) {
        self.suite = suite
        self.endpoint = endpoint
        self.redis = RedisClient(endpoint: endpoint, configuration: .init(connectTimeout: .milliseconds(500), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(500)))
    }

    func run(goal: String, target: URL, itemsPerTask: Int, inject: @escaping @Sendable (RunProgress) async -> Void) async throws -> ChaosSuite.Row {
        var logger = Logger(label: "chaos")
        logger.logLevel = .critical
        let bus = MessageBus(redis: redis, source: "cortex-lab", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: logger)
        let client = RunClient(bus: bus)
        let progress = RunProgress()
        let subscription = bus.subscribe(CortexNames.Channel.orchestration)
        _ = await subscription.subscriber.waitUntilSubscribed()
        let request = RunRequest(goal: goal, targets: [target.path], requestedBy: "cortex-lab")
        try await client.submit(request)
        let injector = Task { await inject(progress) }
        let state: RunState
        do {
            state = try await client.follow(runID: request.runID, subscribedBeforeSubmit: subscription, timeout: .seconds(600)) { progress.add($0) }
        } catch {
            progress.finish()
            await injector.value
            throw error
        }
        progress.finish()
        await injector.value
        defer { redis.close() }
        return try await count(state: state, itemsPerTask: itemsPerTask)
    }

    /// Items submitted, committed, lost, redone and double counted, from Redis and the run's report.
    func count(state: RunState, itemsPerTask: Int) async throws -> ChaosSuite.Row {
        var row = ChaosSuite.Row(scenario: "", faults: "")
        row.run = state.status
        // Phase 5 moved the run's working keys into its report (redis-archive.json) and out of Redis.
        guard let dir = state.reportDir else { throw ConfigurationError("run \(state.runID) has no report directory to count from") }
        let archive = try RunArchive.load(reportDirectory: dir)
        let tasks = (archive[CortexNames.runTasks(state.runID)]?.objectValue ?? [:]).keys.sorted()
        for task in tasks {
            let expected = (0..<itemsPerTask).map { "\(task).\($0)" }
            let results = archive[CortexNames.taskResults(task)]?.objectValue ?? [:]
            row.submitted += expected.count
            for id in expected {
                guard let value = results[id], let r = value.decoded(as: WorkResult.self) else { row.lost += 1; continue }
                if r.status == .succeeded { row.completed += 1 } else {
                    row.failed += 1
                    row.failures[r.error ?? "failed", default: 0] += 1
                }
            }
            row.redone += Int(archive[CortexNames.taskDuplicates(task)]?["count"]?.stringValue ?? "") ?? 0
        }
        if let dir = state.reportDir, let json = try? String(contentsOfFile: dir + "/summary.json", encoding: .utf8) {
            struct Summary: Decodable { var reports: [MasterReport] }
            if let s = try? WireJSON.decode(Summary.self, from: json) {
                let ids = s.reports.flatMap { $0.items.map(\.itemID) }
                row.countedTwice = ids.count - Set(ids).count
            }
        }
        return row
    }

    /// Seconds from `since` until none of `ids` is pending any more (its result committed and acked).
    func timeUntilAcknowledged(_ ids: [String], since: ContinuousClock.Instant) async -> Double? {
        let stream = CortexNames.workStream(.catalog)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let pending = try? await redis.xpending(stream, group: CortexNames.Group.workers, count: 10_000) {
                let still = Set(pending.map(\.id))
                if ids.allSatisfy({ !still.contains($0) }) { return ChaosSuite.seconds(ContinuousClock.now - since) }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// Waits until every running daemon answers /readyz with 200.
    func allReady(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        let daemons = suite.supervisor.all.filter { !$0.name.hasPrefix("redis") && $0.isRunning }
        var ports: [Int] = []
        for d in daemons { if let p = await d.opsPort() { ports.append(p) } }
        while ContinuousClock.now < deadline {
            var ready = 0
            for p in ports where (try? await HTTPClient.request(url: "http://127.0.0.1:\(p)/readyz", timeout: .seconds(2)).status) == 200 { ready += 1 }
            if ready == ports.count { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}

/// A generated source tree of a given size, so work items have real files to read.
public enum SyntheticRepository {
    /// Writes `files` files (Swift, Python, Go, YAML, Markdown in turn) of 20 to 80 lines under `root`.
    public static func make(at root: URL, files: Int) throws -> URL {
        let kinds = [("swift", "let value%d = %d\n"), ("py", "value_%d = %d\n"), ("go", "var value%d = %d\n"), ("yaml", "key%d: %d\n"), ("md", "Line %d of %d.\n")]
        for i in 0..<files {
            let (ext, line) = kinds[i % kinds.count]
            let dir = root.appendingPathComponent("module\(i / 500)")
            if i % 500 == 0 { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
            let lines = 20 + (i * 7) % 61
            var text = ""
            for n in 0..<lines { text += String(format: line, n, i) }
            try Data(text.utf8).write(to: dir.appendingPathComponent("file\(i).\(ext)"))
        }
        return root
    }
}
