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
        /// When the run was submitted (the origin of the times below).
        public var submittedAt: ContinuousClock.Instant?
        /// Each fault as it was injected, in order: taken right after the signal was sent (and, for
        /// redis-server, after the process was seen dead).
        public var faultsAt: [ContinuousClock.Instant] = []
        /// When the run was seen finished: the earlier of its RUN_COMPLETE / RUN_FAILED reaching the
        /// harness and `RunClient.follow` returning. Both come after the coordinator's decision, so this
        /// is an upper bound on the real completion by the pub/sub or polling delay (milliseconds);
        /// the evidence below is what shows the fault acted on the run.
        public var completedAt: ContinuousClock.Instant?
        /// Named counts read from real state after the run (events received, Redis, the daemons' /metrics)
        /// showing what the fault did; each scenario documents its own (docs/reliability.md).
        public var evidence: [String: Int] = [:]
        /// The evidence entry that must be above zero: it is zero when the fault missed the run.
        public var decisive = ""

        /// The first fault came strictly before the run was seen finished.
        public var inFlight: Bool {
            guard let first = faultsAt.first, let done = completedAt else { return false }
            return first < done
        }
        /// The decisive evidence is above zero.
        public var faultTookEffect: Bool { (evidence[decisive] ?? 0) > 0 }
        /// Seconds after submit of the first fault (nil when none was injected).
        public var firstFaultSeconds: Double? { since(faultsAt.first) }
        /// Seconds after submit of the last fault.
        public var lastFaultSeconds: Double? { since(faultsAt.last) }
        /// Seconds after submit at which the run was seen finished.
        public var completedSeconds: Double? { since(completedAt) }

        private func since(_ instant: ContinuousClock.Instant?) -> Double? {
            guard let instant, let submittedAt else { return nil }
            return ChaosSuite.seconds(instant - submittedAt)
        }

        /// The counts with the scenario's description attached.
        func labelled(_ scenario: String, faults: String, recovery: String, evidence: [String: Int], decisive: String) -> Row {
            var r = self
            r.scenario = scenario
            r.faults = faults
            r.recovery = recovery
            r.evidence = evidence
            r.decisive = decisive
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
            options.log("     \(timing(row)); \(evidenceText(row))")
            for (reason, n) in row.failures { options.log("     \(n) failed: \(reason)") }
            rows.append(row)
        }
        return rows
    }

    /// The Markdown table.
    public static func table(_ rows: [Row]) -> String {
        var out = "| Scenario | Faults injected | Fault at (s after submit) | Run done at (s) | Evidence (decisive first) | Items submitted | Completed | Failed | Lost | Redone (deduplicated) | Counted twice | Run | Time to recover | Wall |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let done = r.completedSeconds.map { String(format: "%.1f", $0) } ?? "-"
            out += "| \(r.scenario) | \(r.faults) | \(faultTimes(r)) | \(done) | \(evidenceText(r)) | \(r.submitted) | \(r.completed) | \(r.failed) | \(r.lost) | \(r.redone) | \(r.countedTwice) | \(r.run) | \(r.recovery) | \(String(format: "%.1f s", r.seconds)) |\n"
        }
        return out
    }

    /// "2.1" for one fault, "2.1–9.4" for several (first–last); "none" when nothing was injected, and
    /// "(after the run!)" when the first came after completion — a fault that missed the run.
    static func faultTimes(_ r: Row) -> String {
        guard let first = r.firstFaultSeconds, let last = r.lastFaultSeconds else { return "none" }
        let text = r.faultsAt.count == 1 ? String(format: "%.1f", first) : String(format: "%.1f–%.1f", first, last)
        return r.inFlight ? text : text + " (after the run!)"
    }

    static func timing(_ r: Row) -> String {
        "fault at \(faultTimes(r)) s after submit, run done at \(r.completedSeconds.map { String(format: "%.2f", $0) } ?? "-") s, in flight: \(r.inFlight)"
    }

    /// The evidence as `name: n` pairs, the decisive one first.
    static func evidenceText(_ r: Row) -> String {
        let names = r.evidence.keys.sorted { ($0 == r.decisive ? 0 : 1, $0) < ($1 == r.decisive ? 0 : 1, $1) }
        return names.isEmpty ? "-" : names.map { "\($0): \(r.evidence[$0]!)" }.joined(separator: "; ")
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
        // Items still pending under a worker after it was seen dead: no one but another worker can
        // finish them now. `redone` counts those later acknowledged (claimed and finished by a survivor).
        let stranded = Locked(0)
        let strandedRedone = Locked(0)
        let row = try await harness.run(goal: "inventory", target: target, itemsPerTask: items) { progress in
            // Once work flows, SIGKILL a random busy worker every interval and start a replacement (as a Deployment would).
            // The first kill comes at once: the short run's work can be done within a second, and a kill
            // after the last item strands nothing (the evidence would say so and the test would fail).
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE || $0.type == .TASK_BATCH_COMPLETE }
            var first = true
            while !progress.finished {
                if !first { try? await Task.sleep(for: .seconds(1)) }
                first = false
                if progress.finished { break }
                let workers = suite.supervisor.all.filter { $0.name.hasPrefix("worker-") && $0.isRunning }
                // Prefer a worker holding an item (a kill of an idle or just-started worker tests nothing);
                // any worker when none is seen holding one.
                let busy = await harness.consumersWithPendingItems()
                let holding = workers.filter { busy.contains($0.name) }
                guard let victim = (holding.isEmpty ? workers : holding).randomElement() else { continue }
                victim.signal(SIGKILL)
                progress.faultInjected()
                let killedAt = ContinuousClock.now
                kills.withLock { $0 += 1 }
                _ = try? suite.startWorker()
                // Read the victim's pending entries only once it is gone, so none of them can still be
                // acknowledged by the victim itself: what is left is what the kill stranded.
                _ = await victim.wait(timeout: .seconds(5))
                let pending = (try? await harness.redis.xpending(CortexNames.workStream(.catalog), group: CortexNames.Group.workers, count: 100, consumer: victim.name)) ?? []
                if !pending.isEmpty {
                    stranded.withLock { $0 += pending.count }
                    let watcher = Task {
                        if let t = await harness.timeUntilAcknowledged(pending.map(\.id), since: killedAt) {
                            recoveries.withLock { $0.append(t) }
                            strandedRedone.withLock { $0 += pending.count }
                        }
                    }
                    watchers.withLock { $0.append(watcher) }
                }
            }
        }
        for w in watchers.value { await w.value }
        // Survivors' own count of entries they took over (the killed workers' counts died with them).
        let redeliveries = await harness.metricSum("cortex_stream_redeliveries_total", label: "kind=\"work-item\"")
        harness.close()
        await suite.stop()
        return row.labelled("\(items) items, a random busy worker killed -9 once work flows and every second after (and replaced)", faults: "\(kills.value) × SIGKILL worker",
                            recovery: recoveries.value.isEmpty ? "-" : String(format: "stranded items re-done within %.1f s (max), %.1f s (median)", recoveries.value.max()!, median(recoveries.value)),
                            evidence: ["stranded items re-done": strandedRedone.value, "items stranded by a kill": stranded.value,
                                       "redeliveries (surviving workers' metric)": redeliveries],
                            decisive: "stranded items re-done")
    }

    static func masterRestart(_ o: Options) async throws -> Row {
        let items = o.full ? 100 : 30
        let suite = try await makeSuite(o, "master", env: fastEnvironment(itemsPerTask: items))
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 8_000 : 2_000)
        try suite.startAll(workers: 2)
        let harness = Harness(suite: suite, endpoint: localEndpoint(suite))
        let pause: Duration = .seconds(o.full ? 5 : 2)
        let recovery = Locked("-")
        let redispatched = Locked(0)
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { (try? $0.payload(WorkerSpawn.self))?.master == MasterRole.inventory.rawValue }
            if let master = suite.supervisor.all.first(where: { $0.name == "inventory-master-local" }), master.isRunning {
                master.signal(SIGKILL)
                progress.faultInjected()
            }
            try? await Task.sleep(for: pause)
            _ = try? suite.startMaster(.inventory, instance: "inventory-master-restarted")
            let restarted = ContinuousClock.now
            if await progress.waitFor(timeout: .seconds(120), { (try? $0.payload(MasterReportPublished.self))?.master == MasterRole.inventory.rawValue }) != nil {
                recovery.withLock { $0 = String(format: "report %.1f s after the restart", seconds(ContinuousClock.now - restarted)) }
            }
            if let kill = progress.faults.first {
                redispatched.withLock { $0 = progress.count(after: kill) { (try? $0.payload(WorkerSpawn.self))?.master == MasterRole.inventory.rawValue } }
            }
        }
        // The killed instance dispatched the inventory task once (that WORKER_SPAWN triggered the kill) and
        // can publish nothing after its death: an inventory WORKER_SPAWN received after the kill is the
        // task taken up again by the restarted instance.
        // The coordinator's LivenessMonitor: MASTER_DOWN when no inventory instance was alive (not
        // certain in the short size, where the restart comes about when the heartbeat key expires), and
        // tasks it took from the dead instance to hand to the next.
        let down = await harness.metricSum("cortex_liveness_events_total", label: "event=\"master_down\"", processes: ["coordinator"])
        let held = await harness.metricSum("cortex_liveness_events_total", label: "event=\"tasks_held\"", processes: ["coordinator"])
        harness.close()
        await suite.stop()
        return row.labelled("master killed mid-run, restarted \(seconds(pause)) s later", faults: "SIGKILL inventory-master", recovery: recovery.value,
                            evidence: ["inventory task re-dispatched after the kill": redispatched.value, "MASTER_DOWN (coordinator metric)": down,
                                       "tasks held by the coordinator": held],
                            decisive: "inventory task re-dispatched after the kill")
    }

    static func redisRestart(_ o: Options) async throws -> Row {
        let items = o.full ? 100 : 30
        let suite = try await makeSuite(o, "redis", env: fastEnvironment(itemsPerTask: items), appendOnly: true)
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: o.full ? 8_000 : 2_000)
        try suite.startAll(workers: 4)
        let harness = Harness(suite: suite, endpoint: localEndpoint(suite))
        let recovery = Locked("-")
        // INFO server's run_id is new for every redis-server process: a different one after the run
        // shows the daemons finished on a restarted server.
        let runIDBefore = try await harness.redisRunID()
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE || $0.type == .TASK_BATCH_COMPLETE }
            await suite.redis.kill()
            if !suite.redis.child.isRunning { progress.faultInjected() }
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
        let runIDAfter = try? await harness.redisRunID()
        // Every daemon's subscriptions break when redis-server dies; each counts one when it is back.
        let resubscribed = await harness.metricSum("cortex_subscription_interruptions_total")
        // Writes made while Redis was away, journaled and replayed on reconnect (0 when no daemon wrote in that second).
        let replayed = await harness.metricSum("cortex_journal_records_total", label: "event=\"replayed\"")
        harness.close()
        await suite.stop()
        return row.labelled("redis-server killed mid-run, restarted 1 s later (AOF, fsync always)", faults: "SIGKILL redis-server", recovery: recovery.value,
                            evidence: ["subscriptions re-established": resubscribed, "redis run_id changed": runIDAfter != nil && runIDAfter != runIDBefore ? 1 : 0,
                                       "journal records replayed": replayed],
                            decisive: "subscriptions re-established")
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
        let primaryBefore = await sentinelPrimaryPort(sentinel)
        let row = try await harness.run(goal: "full-orchestration", target: target, itemsPerTask: items) { progress in
            _ = await progress.waitFor { $0.type == .TASK_COMPLETE || $0.type == .TASK_BATCH_COMPLETE }
            await suite.redis.kill()
            if !suite.redis.child.isRunning { progress.faultInjected() }
            let killed = ContinuousClock.now
            let probe = RedisClient(endpoint: endpoint, configuration: .init(connectTimeout: .milliseconds(300), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)))
            defer { probe.close() }
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if (try? await probe.send(.set("cortex:chaos:probe", "1")).orThrow()) != nil {
                    recovery.withLock { $0 = String(format: "replica promoted and written to %.1f s after the kill", seconds(ContinuousClock.now - killed)) }
                    break
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        // The switch itself: the sentinel named the original primary before and names the replica now.
        let primaryAfter = await sentinelPrimaryPort(sentinel)
        let switched = primaryBefore == suite.redis.port && primaryAfter == replica.port
        let resubscribed = await harness.metricSum("cortex_subscription_interruptions_total")
        harness.close()
        await suite.stop()
        replica.child.signal(SIGKILL)
        sentinel.child.signal(SIGKILL)
        return row.labelled("Sentinel failover mid-run (primary killed, replica promoted)", faults: "SIGKILL primary redis-server", recovery: recovery.value,
                            evidence: ["sentinel switched to the replica": switched ? 1 : 0, "subscriptions re-established": resubscribed],
                            decisive: "sentinel switched to the replica")
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

    /// The primary's port as the sentinel names it (`SENTINEL get-master-addr-by-name cortex`), nil if it does not answer.
    static func sentinelPrimaryPort(_ sentinel: SentinelProcess) async -> Int? {
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: sentinel.port), configuration: .init(connectTimeout: .milliseconds(500), commandTimeout: .seconds(2)))
        defer { client.close() }
        guard let reply = try? await client.send(.sentinelPrimary("cortex")).array, reply.count == 2 else { return nil }
        return reply[1].string.flatMap { Int($0) }
    }

    static func localEndpoint(_ suite: LocalSuite) -> RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: suite.redis.port) }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[s.count / 2]
    }
}

/// Everything seen on the channels during a run, for fault injectors to wait on.
/// Also the clock of the scenario: when each fault was injected and when the run was seen finished.
final class RunProgress: @unchecked Sendable {
    private let events = Locked<[(envelope: Envelope, at: ContinuousClock.Instant)]>([])
    private let done = Locked(false)
    private let injected = Locked<[ContinuousClock.Instant]>([])
    private let terminal = Locked<ContinuousClock.Instant?>(nil)
    var finished: Bool { done.value }
    /// The instants recorded with `faultInjected()`, in order.
    var faults: [ContinuousClock.Instant] { injected.value }
    /// When the run's RUN_COMPLETE or RUN_FAILED arrived (nil if it was not received).
    var terminalEventAt: ContinuousClock.Instant? { terminal.value }

    func add(_ e: Envelope) {
        let now = ContinuousClock.now
        events.withLock { $0.append((e, now)) }
        if e.type == .RUN_COMPLETE || e.type == .RUN_FAILED { terminal.withLock { $0 = $0 ?? now } }
    }
    func finish() { done.withLock { $0 = true } }
    /// Injectors call this right after a fault took place (signal sent, process seen dead).
    func faultInjected() { injected.withLock { $0.append(ContinuousClock.now) } }

    /// Events matching `predicate` that arrived after `instant`.
    func count(after instant: ContinuousClock.Instant, _ predicate: (Envelope) -> Bool) -> Int {
        events.value.filter { $0.at > instant && predicate($0.envelope) }.count
    }

    /// The first event matching `predicate`, waiting up to `timeout`; nil when the run ended first.
    func waitFor(timeout: Duration = .seconds(60), _ predicate: (Envelope) -> Bool) async -> Envelope? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let e = events.value.first(where: { predicate($0.envelope) }) { return e.envelope }
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
        let submittedAt = ContinuousClock.now
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
        let followReturned = ContinuousClock.now
        progress.finish()
        await injector.value
        var row = try await count(state: state, itemsPerTask: itemsPerTask)
        row.submittedAt = submittedAt
        row.faultsAt = progress.faults
        // follow polls the run state (and lingers 100 ms for the last events): the terminal event is
        // usually the earlier sign; either one is after the coordinator finished the run.
        row.completedAt = min(progress.terminalEventAt ?? followReturned, followReturned)
        return row
    }

    /// The workers (consumer names) with entries pending on the catalog work stream: `XPENDING` summary form.
    func consumersWithPendingItems() async -> Set<String> {
        guard let reply = try? await redis.send(.xpendingSummary(CortexNames.workStream(.catalog), group: CortexNames.Group.workers)).array,
              reply.count == 4, let consumers = reply[3].array else { return [] }
        return Set(consumers.compactMap { $0.array?.first?.string })
    }

    /// Closes the harness's Redis client (after the last look at Redis and the daemons).
    func close() { redis.close() }

    /// INFO server's run_id: random for each redis-server process, so it tells a restarted server apart.
    func redisRunID() async throws -> String {
        let info = try await redis.info("server")
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("run_id:") }) else {
            throw CortexError(.failed, "INFO server has no run_id")
        }
        return String(line.dropFirst("run_id:".count))
    }

    /// The sum of one metric over the running daemons' /metrics (all, or those named in `processes`),
    /// over the series whose labels contain `label` (all series when nil). Must be read before the suite
    /// stops; a process killed earlier took its counts with it.
    func metricSum(_ name: String, label: String? = nil, processes: [String]? = nil) async -> Int {
        let daemons = suite.supervisor.all.filter { !$0.name.hasPrefix("redis") && $0.isRunning && (processes?.contains($0.name) ?? true) }
        var total = 0.0
        for d in daemons {
            guard let port = await d.opsPort(timeout: .seconds(2)),
                  let text = try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/metrics", timeout: .seconds(5)).text else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                // `name{labels} value` or `name value`; the name must end where the labels or the value begin.
                let rest = line.dropFirst(name.count)
                guard rest.first == "{" || rest.first == " " else { continue }
                if let label, !rest.contains(label) { continue }
                if let value = rest.split(separator: " ").last.flatMap({ Double($0) }) { total += value }
            }
        }
        return Int(total)
    }

    /// Items submitted, committed, lost, redone and double counted, from Redis and the run's report.
    func count(state: RunState, itemsPerTask: Int) async throws -> ChaosSuite.Row {
        var row = ChaosSuite.Row(scenario: "", faults: "")
        row.run = state.status
        // Phase 5 moved the run's working keys into its report (redis-archive.json) and out of Redis.
        guard let dir = state.reportDir else { throw CortexError(.notFound, "run \(state.runID) has no report directory to count from") }
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
