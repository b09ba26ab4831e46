import CortexCore
import CortexKubernetes
import Foundation
import Logging
import ServiceLifecycle

/// One worker Job a master spawned, as kept in `CortexNames.workerJobs(master)` for `cortexctl status`.
public struct WorkerJobRecord: Codable, Sendable, Equatable {
    public var job: String
    public var pool: String
    public var workerType: String
    public var runID: String
    public var taskID: String
    public var memoryMiB: Int
    /// pending (created, no pod running yet), running, or how it ended: succeeded, failed, oom_killed,
    /// evicted, node_lost, deadline_exceeded, deleted.
    public var state: String
    public var node: String?
    public var pod: String?
    public var reason: String?
    public var respawnOf: String?
    /// Nodes its pod may not run on (where an earlier pod of the same line died).
    public var avoidNodes: [String]
    public var createdMs: Int
    public var endedMs: Int?

    enum CodingKeys: String, CodingKey {
        case job, pool, workerType = "worker_type", runID = "run_id", taskID = "task_id", memoryMiB = "memory_mib", state, node, pod, reason
        case respawnOf = "respawn_of", avoidNodes = "avoid_nodes", createdMs = "created_ms", endedMs = "ended_ms"
    }

    public var isFinished: Bool { !["pending", "running"].contains(state) }
}

/// Spawn mode of a master (`CORTEX_WORKER_MODE` jobs or both): creates worker Jobs when its pool's
/// backlog outgrows the live workers, watches its Jobs and their pods, and brings an OOMKilled worker
/// back with 1.5× the memory on another node (its held items handed back to the pool stream, where
/// they resume from their checkpoints). An item held by `oomLimit` OOMKilled pods is dead-lettered and
/// an ESCALATION published. Evicted and node-lost pods are respawned without the bump.
public final class WorkerJobSpawner: Sendable {
    public enum Mode: String, Sendable { case pool, jobs, both }

    let context: ProcessContext
    let role: MasterRole
    let client: KubernetesClient
    let namespace: String
    /// The pod template from CORTEX_WORKER_JOB_TEMPLATE.
    let template: JSONValue
    let maxActive: Int
    let maxPerRun: Int
    let perWorker: Int
    let deadlineSeconds: Int
    let ttlSeconds: Int
    let idleExitSeconds: Int
    /// CORTEX_WORKER_CONCURRENCY of a spawned worker (`CORTEX_WORKER_JOB_CONCURRENCY`).
    let jobConcurrency: Int
    let oomLimit: Int
    let memoryCapMiB: Int
    private let state = Locked(State())
    /// Status writes, one at a time (`write`).
    private let writes: AsyncStream<(job: String, done: CheckedContinuation<Void, Never>)>.Continuation

    /// What the spawner keeps in memory. Every entry is dropped once it is older than the retention
    /// (`prune`): a master that runs for months and creates tens of thousands of Jobs keeps only those of
    /// its recent runs.
    struct State {
        var records: [String: WorkerJobRecord] = [:]
        var perRun: [String: Int] = [:]
        /// When a Job was last counted for the run (epoch ms).
        var runTouchedMs: [String: Int] = [:]
        /// Lines for the task's report: which Jobs died how, and what replaced them.
        var notes: [String: [String]] = [:]
        /// When a task's last line was added (epoch ms).
        var notedMs: [String: Int] = [:]
        /// Pods whose end was handled (a watch replays objects after a relist), with their Job.
        var handledPods: [String: String] = [:]
        /// Tasks with a worker Job's death being handled now (how many deaths): their reports wait for it.
        var handling: [String: Int] = [:]
        /// Jobs whose create is not answered yet, and the end a watch reported for one of them meanwhile
        /// (announced once the Job's creation has been).
        var creating: Set<String> = []
        var endsBeforeCreated: [String: KubernetesClient.WatchEvent] = [:]
        /// Jobs a watch has reported: they exist, whatever their create was answered.
        var observed: Set<String> = []
        var terminated: Set<String> = []

        /// Adds a line to the report of `taskID`.
        mutating func note(_ line: String, task taskID: String) {
            notes[taskID, default: []].append(line)
            notedMs[taskID] = epochMilliseconds()
        }
    }

    /// How much the spawner holds in memory (`tracked`, for tests and the debug log).
    struct Tracked: Equatable, CustomStringConvertible {
        var jobs: Int, pods: Int, tasksWithNotes: Int, runs: Int, jobsSeen: Int
        var description: String { "Jobs: \(jobs), pods handled: \(pods), tasks with report lines: \(tasksWithNotes), runs counted: \(runs), Jobs seen by the watches: \(jobsSeen)" }
    }

    /// The spawner the settings ask for: nil in pool mode. Spawn mode without Kubernetes access or a
    /// template is a configuration error (said at start, not at the first backlog).
    public static func configured(role: MasterRole, context: ProcessContext) throws -> WorkerJobSpawner? {
        let s = context.settings
        guard let mode = Mode(rawValue: s.string(.workerMode)) else {
            throw ConfigurationError("CORTEX_WORKER_MODE must be pool, jobs or both, got '\(s.string(.workerMode))'")
        }
        if mode == .pool { return nil }
        let kubernetes = s.string(.kubernetes)
        guard let access = try KubeAccess.configured(kubernetes == "off" ? "on" : kubernetes) else {
            throw ConfigurationError("CORTEX_WORKER_MODE=\(mode.rawValue) needs Kubernetes access (in a pod, or KUBECONFIG)")
        }
        guard let path = s.raw(.workerJobTemplate), !path.isEmpty else {
            throw ConfigurationError("CORTEX_WORKER_MODE=\(mode.rawValue) needs CORTEX_WORKER_JOB_TEMPLATE (the worker pod template, JSON)")
        }
        guard let data = FileManager.default.contents(atPath: path), let template = try? JSONText.parse([UInt8](data)),
              template["spec"]?["containers"]?.arrayValue?.isEmpty == false else {
            throw ConfigurationError("CORTEX_WORKER_JOB_TEMPLATE \(path) is not a pod template (JSON with spec.containers)")
        }
        let namespace = s.raw(.workerJobNamespace)
            ?? (try? String(contentsOfFile: "\(KubeAccess.serviceAccountDirectory)/namespace", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? "default"
        let itemSeconds = try s.int(.workerItemSeconds, range: 1...86_400)
        return WorkerJobSpawner(
            context: context, role: role, client: KubernetesClient(access: access), namespace: namespace, template: template,
            maxActive: try s.int(.workerJobsMax, range: 1...1000), maxPerRun: try s.int(.workerJobsPerRun, range: 1...10_000),
            perWorker: max(1, try s.int(.workerJobTarget, range: 1...86_400) / itemSeconds),
            deadlineSeconds: try s.int(.workerJobDeadline, range: 1...604_800), ttlSeconds: try s.int(.workerJobTTL, range: 0...604_800),
            idleExitSeconds: try s.int(.workerJobIdle, range: 1...86_400),
            jobConcurrency: try s.int(.workerJobConcurrency, range: 1...1024), oomLimit: try s.int(.workerJobOOMLimit, range: 1...100),
            memoryCapMiB: try s.int(.workerJobMemoryCap, range: 64...1_048_576))
    }

    init(context: ProcessContext, role: MasterRole, client: KubernetesClient, namespace: String, template: JSONValue, maxActive: Int, maxPerRun: Int,
         perWorker: Int, deadlineSeconds: Int, ttlSeconds: Int, idleExitSeconds: Int, jobConcurrency: Int = 1, oomLimit: Int, memoryCapMiB: Int) {
        self.context = context
        self.role = role
        self.client = client
        self.namespace = namespace
        self.template = template
        self.maxActive = maxActive
        self.maxPerRun = maxPerRun
        self.perWorker = perWorker
        self.deadlineSeconds = deadlineSeconds
        self.ttlSeconds = ttlSeconds
        self.idleExitSeconds = idleExitSeconds
        self.jobConcurrency = jobConcurrency
        self.oomLimit = oomLimit
        self.memoryCapMiB = memoryCapMiB
        // One writer for the status hash: the two watches and the spawner change records at the same time,
        // and two writes in flight at once could land in either order, the older record last. Written one
        // after another, each with the record as it is then, the last write always has the latest record.
        let (stream, writes) = AsyncStream.makeStream(of: (job: String, done: CheckedContinuation<Void, Never>).self)
        self.writes = writes
        let (state, role) = (self.state, role)
        Task {
            for await (job, done) in stream {
                let (record, counts) = state.withLock { s in
                    (s.records[job], Dictionary(grouping: s.records.values, by: \.state).mapValues(\.count))
                }
                for st in ["pending", "running", "succeeded", "failed", "oom_killed", "evicted", "node_lost", "deadline_exceeded", "deleted"] {
                    context.metrics.workerJobs(master: role, state: st, counts[st] ?? 0)
                }
                if let record {
                    do {
                        try await context.redis.pipeline([.hset(CortexNames.workerJobs(role), record.job, try WireJSON.encode(record)),
                                                          .expire(CortexNames.workerJobs(role), seconds: context.retentionSeconds)]).forEach { _ = try $0.orThrow() }
                    } catch {
                        // Only `cortexctl status` reads the hash; the master's own decisions use the records in memory.
                        context.logger.warning("could not write the status of worker Job \(job) to \(CortexNames.workerJobs(role)): \(error)")
                    }
                }
                done.resume()
            }
        }
    }

    deinit { writes.finish() }

    var jobsPath: String { "/apis/batch/v1/namespaces/\(namespace)/jobs" }
    var podsPath: String { "/api/v1/namespaces/\(namespace)/pods" }
    /// Every Job (and, through the pod template, every pod) this master made carries these labels.
    var selector: String { "app.kubernetes.io/managed-by=cortex,cortex.dev/master=\(role.rawValue)" }

    // MARK: the spawn rule

    /// How many Jobs to create: enough that the backlog drains within the target time, less the live
    /// workers, within both caps. Pure, so the rule is tested directly.
    static func jobsNeeded(backlog: Int, liveWorkers: Int, perWorker: Int, active: Int, maxActive: Int, spawnedForRun: Int, maxPerRun: Int) -> Int {
        guard backlog > 0 else { return 0 }
        let wanted = (backlog + perWorker - 1) / perWorker - liveWorkers
        return max(0, min(wanted, maxActive - active, maxPerRun - spawnedForRun))
    }

    /// After a master queued items on `pool`: creates the Jobs the rule asks for.
    func afterDispatch(task: TaskSpec, pool: WorkerPool, log: Logger) async {
        do {
            let backlog = try await context.redis.send("XLEN", CortexNames.workStream(pool)).orThrow().int ?? 0
            let registered = try await liveWorkers(pool)
            let (active, pendingJobs, spawned) = state.withLock { s in
                (s.records.values.filter { !$0.isFinished }.count, s.records.values.filter { $0.state == "pending" && $0.pool == pool.rawValue }.count, s.perRun[task.runID] ?? 0)
            }
            let n = Self.jobsNeeded(backlog: backlog, liveWorkers: registered + pendingJobs, perWorker: perWorker, active: active, maxActive: maxActive,
                                    spawnedForRun: spawned, maxPerRun: maxPerRun)
            log.info("spawn rule: backlog \(backlog) on pool \(pool.rawValue), \(registered) live workers + \(pendingJobs) starting Jobs, \(perWorker) items per worker in the target time: \(n) Jobs to create",
                     metadata: [LogKey.workerPools: "\(pool.rawValue)"])
            for _ in 0..<n {
                _ = await spawn(pool: pool, runID: task.runID, taskID: task.id, memoryMiB: WorkerTypeResources.forPool(pool).memoryMiB, avoidNodes: [], respawnOf: nil, log: log)
            }
        } catch {
            log.warning("spawn mode: could not read the backlog of pool \(pool.rawValue) (no Jobs created; the items wait for live workers): \(error)")
        }
    }

    /// Registered workers of the pool whose heartbeat key is alive.
    private func liveWorkers(_ pool: WorkerPool) async throws -> Int {
        let ids = try await context.redis.smembers(CortexNames.workerSet)
        guard !ids.isEmpty else { return 0 }
        let replies = try await context.redis.pipeline(ids.flatMap { [RedisCommand.hget(CortexNames.workerRegistry($0), "pools"), .exists(CortexNames.workerHeartbeat($0))] })
        var n = 0
        for i in ids.indices {
            let pools = replies[2 * i].string?.split(separator: ",").map(String.init) ?? []
            if pools.contains(pool.rawValue) && replies[2 * i + 1].int == 1 { n += 1 }
        }
        return n
    }

    /// The memory limit of a respawn after an OOMKill: × 1.5, at most the cap.
    static func bumpedMemory(_ miB: Int, cap: Int) -> Int { min(cap, Int((Double(miB) * 1.5).rounded(.up))) }

    /// Why no Job was created: the per-run cap, or the API server's refusal.
    struct SpawnRefusal: Error, CustomStringConvertible { let description: String }

    /// Creates one Job (a 409 from a retried create is the same Job); returns its name, nil when refused
    /// (the reason is logged).
    @discardableResult
    func spawn(pool: WorkerPool, runID: String, taskID: String, memoryMiB: Int, avoidNodes: [String], respawnOf: String?, log: Logger) async -> String? {
        switch await create(pool: pool, runID: runID, taskID: taskID, memoryMiB: memoryMiB, avoidNodes: avoidNodes, respawnOf: respawnOf, log: log) {
        case .success(let name): return name
        case .failure: return nil
        }
    }

    /// Creates one Job; the refusal says why not.
    func create(pool: WorkerPool, runID: String, taskID: String, memoryMiB: Int, avoidNodes: [String], respawnOf: String?, log: Logger) async -> Result<String, SpawnRefusal> {
        let reserved = state.withLock { s -> Bool in
            guard (s.perRun[runID] ?? 0) < maxPerRun else { return false }
            s.perRun[runID, default: 0] += 1
            s.runTouchedMs[runID] = epochMilliseconds()
            return true
        }
        guard reserved else {
            let refusal = SpawnRefusal(description: "\(maxPerRun) worker Jobs for run \(runID) already (CORTEX_WORKER_JOBS_PER_RUN)")
            log.warning("spawn mode: \(refusal); no more")
            return .failure(refusal)
        }
        let resources = WorkerTypeResources.forPool(pool)
        let name = Self.jobName(role: role, pool: pool)
        let job = makeJob(name: name, pool: pool, runID: runID, taskID: taskID, resources: resources, memoryMiB: memoryMiB, avoidNodes: avoidNodes)
        // Known before it is created: the watches may report the Job and its pod (even their ends) before the
        // create is answered, and events about a Job that is not ours yet would be dropped.
        let record = WorkerJobRecord(job: name, pool: pool.rawValue, workerType: resources.type, runID: runID, taskID: taskID, memoryMiB: memoryMiB,
                                     state: "pending", respawnOf: respawnOf, avoidNodes: avoidNodes, createdMs: epochMilliseconds())
        state.withLock { s in
            s.records[name] = record
            s.creating.insert(name)
        }
        do {
            _ = try await client.create(jobsPath, job)
        } catch {
            if await exists(name, afterFailedCreate: error, log: log) {
                log.warning("spawn mode: the create of worker Job \(name) was answered with an error (\(error)), but the Job exists; it is followed")
            } else {
                state.withLock { s in
                    s.records.removeValue(forKey: name)
                    s.creating.remove(name)
                    s.endsBeforeCreated.removeValue(forKey: name)
                    s.perRun[runID, default: 1] -= 1
                }
                await write(name)  // refreshes the per-state gauge, which counted it pending
                let refusal = SpawnRefusal(description: "could not create worker Job \(name): \(error)")
                log.error("spawn mode: \(refusal)")
                return .failure(refusal)
            }
        }
        await write(name)
        await context.bus.notify(WorkerSpawn(taskID: taskID, master: role.rawValue, pool: pool.rawValue, items: 0, job: name, memoryMib: memoryMiB, respawnOf: respawnOf),
                                 runID: runID)
        log.info("worker Job \(name) created (\(resources.type), \(memoryMiB) MiB\(avoidNodes.isEmpty ? "" : ", not on \(avoidNodes.joined(separator: ", "))"))")
        let endedMeanwhile = state.withLock { s in
            s.creating.remove(name)
            return s.endsBeforeCreated.removeValue(forKey: name)
        }
        if let endedMeanwhile { await jobEvent(endedMeanwhile) }
        return .success(name)
    }

    /// Whether a Job whose create failed exists all the same: a timeout or a server error can come after
    /// the server created it. A refusal (4xx) created nothing; otherwise a watch event or a GET says.
    private func exists(_ name: String, afterFailedCreate error: Error, log: Logger) async -> Bool {
        if state.withLock({ $0.observed.contains(name) }) { return true }
        if let refusal = error as? KubernetesClient.APIError, (400..<500).contains(refusal.status) { return false }
        do {
            _ = try await client.send("GET", "\(jobsPath)/\(name)")
            return true
        } catch let e as KubernetesClient.APIError where e.status == 404 {
            return false
        } catch {
            // Not knowable now. Forgetting it is the lesser harm: a Job that does exist still ends on its own
            // (idle exit, activeDeadlineSeconds, TTL); a record of one that does not would count against the caps.
            log.warning("spawn mode: could not check whether worker Job \(name) exists after its create failed: \(error); taken as not created")
            return state.withLock { $0.observed.contains(name) }
        }
    }

    /// `cw-<master>-<pool>-<random>`: DNS-1123, short enough for the pod names Kubernetes derives from it.
    static func jobName(role: MasterRole, pool: WorkerPool) -> String {
        let suffix = UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(8)
        return "cw-\(role.rawValue)-\(pool.rawValue)-\(suffix)"
    }

    /// A label value: at most 63 of [A-Za-z0-9_.-], starting and ending alphanumeric.
    static func labelValue(_ s: String) -> String {
        var v = String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" }.suffix(63))
        while let f = v.first, !(f.isLetter || f.isNumber) { v.removeFirst() }
        while let l = v.last, !(l.isLetter || l.isNumber) { v.removeLast() }
        return v
    }

    /// The Job: the template's pod with the pool, labels, resources, node anti-affinity and idle exit.
    func makeJob(name: String, pool: WorkerPool, runID: String, taskID: String, resources: WorkerTypeResources, memoryMiB: Int, avoidNodes: [String]) -> JSONValue {
        let labels: [String: JSONValue] = [
            "app.kubernetes.io/name": "cortex-worker", "app.kubernetes.io/component": "worker-job", "app.kubernetes.io/managed-by": "cortex",
            "cortex.dev/master": .string(role.rawValue), "cortex.dev/pool": .string(pool.rawValue), "cortex.dev/worker-type": .string(resources.type),
            "cortex.dev/run": .string(Self.labelValue(runID)), "cortex.dev/task": .string(Self.labelValue(taskID)),
        ]
        var pod = template.objectValue ?? [:]
        var metadata = pod["metadata"]?.objectValue ?? [:]
        metadata["labels"] = .object((metadata["labels"]?.objectValue ?? [:]).merging(labels) { $1 })
        metadata.removeValue(forKey: "name")
        pod["metadata"] = .object(metadata)
        var spec = pod["spec"]?.objectValue ?? [:]
        spec["restartPolicy"] = "Never"  // a failed pod is the master's to replace (bigger, elsewhere), not the kubelet's
        var containers = spec["containers"]?.arrayValue ?? []
        var worker = containers.first?.objectValue ?? [:]
        worker["args"] = .array((worker["args"]?.arrayValue ?? []) + [.string("--pools"), .string(pool.rawValue)])
        // The spawner's own values win over the template's: a Job leaves when its pool is empty, and runs as
        // many items at once as its memory limit was sized for (an OOMKill is charged to every item it held).
        let own: [(Setting, Int)] = [(.workerIdleExit, idleExitSeconds), (.workerConcurrency, jobConcurrency)]
        worker["env"] = .array((worker["env"]?.arrayValue ?? []).filter { e in !own.contains { $0.0.env == e["name"]?.stringValue } }
            + own.map { ["name": .string($0.0.env), "value": .string(String($0.1))] })
        worker["resources"] = [
            "requests": ["cpu": .string(resources.cpuRequest), "memory": .string("\(memoryMiB)Mi")],
            "limits": ["cpu": .string(resources.cpuLimit), "memory": .string("\(memoryMiB)Mi")],
        ]
        if !containers.isEmpty { containers[0] = .object(worker) }
        spec["containers"] = .array(containers)
        if !avoidNodes.isEmpty {
            spec["affinity"] = ["nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [
                ["matchExpressions": [["key": "kubernetes.io/hostname", "operator": "NotIn", "values": .array(avoidNodes.map(JSONValue.string))]]],
            ]]]]
        }
        pod["spec"] = .object(spec)
        return [
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": ["name": .string(name), "namespace": .string(namespace), "labels": .object(labels)],
            "spec": [
                "backoffLimit": 0, "activeDeadlineSeconds": .number(Double(deadlineSeconds)), "ttlSecondsAfterFinished": .number(Double(ttlSeconds)),
                "template": .object(pod),
            ],
        ]
    }

    // MARK: watching

    /// Watches this master's Jobs and their pods until cancelled.
    func run() async {
        let log = context.logger
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                await ResourceWatch(client: client, path: jobsPath, labelSelector: selector).run(
                    onEvent: { await self.jobEvent($0) }, onProblem: { log.warning("worker Jobs watch: \($0)") })
            }
            group.addTask { [self] in
                await ResourceWatch(client: client, path: podsPath, labelSelector: selector).run(
                    onEvent: { await self.podEvent($0) }, onProblem: { log.warning("worker pods watch: \($0)") })
            }
            group.addTask { [self] in
                let retention = context.retentionSeconds
                while (try? await Task.sleep(for: Self.pruneInterval(retentionSeconds: retention))) != nil {
                    await prune(endedBefore: epochMilliseconds() - retention * 1000)
                }
            }
        }
    }

    // MARK: forgetting

    /// How often finished Jobs past the retention are forgotten: a tenth of the retention, between a
    /// minute and an hour.
    static func pruneInterval(retentionSeconds: Int) -> Duration { .seconds(min(3600, max(60, retentionSeconds / 10))) }

    /// How much the spawner holds in memory now.
    func tracked() -> Tracked {
        state.withLock { s in
            Tracked(jobs: s.records.count, pods: s.handledPods.count, tasksWithNotes: s.notes.count, runs: s.perRun.count, jobsSeen: s.observed.count)
        }
    }

    /// Forgets what is older than `cutoffMs` (epoch ms; the retention before now): Jobs that ended before
    /// it, with their pods, watch marks and status entries (HDEL from `CortexNames.workerJobs`, which
    /// `cortexctl status` reads), report lines last added before it, and the per-run Job count of a run
    /// with no Job left. A Job still pending or running, being created, or whose task's report waits for
    /// a death, is kept whatever its age. Events a watch replays later about a forgotten Job are ignored,
    /// as for any Job that is not this master's. Returns the Jobs forgotten.
    ///
    /// The per-run count is what `CORTEX_WORKER_JOBS_PER_RUN` caps; it goes only once every Job of the run
    /// ended a retention ago, and a retention is at least twice `CORTEX_RUN_TIMEOUT`, so that run is over.
    @discardableResult
    func prune(endedBefore cutoffMs: Int) async -> [String] {
        let forgotten = state.withLock { s -> [String] in
            let old = s.records.values.filter { r in
                r.isFinished && (r.endedMs ?? r.createdMs) < cutoffMs && !s.creating.contains(r.job) && s.handling[r.taskID] == nil
            }.map(\.job)
            let gone = Set(old)
            for job in old {
                s.records.removeValue(forKey: job)
                s.terminated.remove(job)
                s.observed.remove(job)
                s.endsBeforeCreated.removeValue(forKey: job)
            }
            s.handledPods = s.handledPods.filter { !gone.contains($0.value) }
            for (task, at) in s.notedMs where at < cutoffMs && s.handling[task] == nil {
                s.notes.removeValue(forKey: task)
                s.notedMs.removeValue(forKey: task)
            }
            let live = Set(s.records.values.map(\.runID))
            for (run, at) in s.runTouchedMs where at < cutoffMs && !live.contains(run) {
                s.perRun.removeValue(forKey: run)
                s.runTouchedMs.removeValue(forKey: run)
            }
            return old.sorted()
        }
        guard let first = forgotten.first else { return [] }
        do {
            for chunk in stride(from: 0, to: forgotten.count, by: 500).map({ Array(forgotten[$0..<min($0 + 500, forgotten.count)]) }) {
                _ = try await context.redis.send(.hdel(CortexNames.workerJobs(role), chunk)).orThrow()
            }
        } catch {
            // They expire with the hash when the master writes no more records; until then `cortexctl status` lists them.
            context.logger.warning("could not remove \(forgotten.count) forgotten worker Jobs from \(CortexNames.workerJobs(role)): \(error)")
        }
        await write(first)  // refreshes the per-state gauge (the record is gone, so nothing is written)
        context.logger.info("forgot \(forgotten.count) worker Jobs that ended more than the retention ago; holding \(tracked())")
        return forgotten
    }

    private func record(_ job: String) -> WorkerJobRecord? { state.withLock { $0.records[job] } }

    /// Applies `change` to the latest record of `job` under the lock and writes the result; nil when the
    /// Job is not one of ours. The Jobs watch and the pods watch change the same record concurrently, so a
    /// change is made to the record as it is now, never to a copy read before an await, and a state never
    /// goes back: pending → running → an end, and an end is only replaced by another end.
    @discardableResult
    private func update(_ job: String, _ change: (inout WorkerJobRecord) -> Void) async -> WorkerJobRecord? {
        let updated = state.withLock { s -> WorkerJobRecord? in
            guard let before = s.records[job] else { return nil }
            var after = before
            change(&after)
            func rank(_ state: String) -> Int { state == "pending" ? 0 : state == "running" ? 1 : 2 }
            if rank(after.state) < rank(before.state) { after.state = before.state }
            s.records[job] = after
            return after
        }
        guard updated != nil else { return nil }
        await write(job)
        return updated
    }

    /// Writes the record of `job` as it is when its turn comes, and refreshes the per-state gauge; returns once written.
    private func write(_ job: String) async {
        await withCheckedContinuation { done in
            if case .terminated = writes.yield((job, done)) { done.resume() }
        }
    }

    func jobEvent(_ event: KubernetesClient.WatchEvent) async {
        guard let name = event.object["metadata"]?["name"]?.stringValue, record(name) != nil else { return }
        state.withLock { _ = $0.observed.insert(name) }
        let conditions = event.object["status"]?["conditions"]?.arrayValue ?? []
        func condition(_ type: String) -> JSONValue? { conditions.first { $0["type"]?.stringValue == type && $0["status"]?.stringValue == "True" } }
        var outcome: String?
        var reason: String?
        if event.type == "DELETED" { outcome = "deleted" }
        if condition("Complete") != nil { outcome = "succeeded" }
        if let failed = condition("Failed") {
            outcome = failed["reason"]?.stringValue == "DeadlineExceeded" ? "deadline_exceeded" : "failed"
            reason = failed["message"]?.stringValue ?? failed["reason"]?.stringValue
        }
        guard let outcome else {
            if (event.object["status"]?["active"]?.intValue ?? 0) > 0, record(name)?.state == "pending" {
                await update(name) { if $0.state == "pending" { $0.state = "running" } }
            }
            return
        }
        // An end before the create's answer is announced after the creation is (spawn replays it).
        let early = state.withLock { s -> Bool in
            guard s.creating.contains(name) else { return false }
            s.endsBeforeCreated[name] = event
            return true
        }
        if early { return }
        if outcome == "failed" {
            // The Job's Failed condition may arrive before its pod's status: read the pods, so an OOMKill is
            // answered (and reported) as one, not as a plain failure.
            do {
                for pod in try await client.list(podsPath, labelSelector: "job-name=\(name)") { await podEvent(.init(type: "MODIFIED", object: pod)) }
            } catch {
                context.logger.warning("worker Job \(name) failed; its pods could not be read (an OOMKill among them is seen only if the pods watch reports it): \(error)")
            }
        }
        let first = state.withLock { $0.terminated.insert(name).inserted }
        guard first, let record = await update(name, { r in
            if r.reason == nil { r.reason = reason }
            // A pod's end (OOMKilled, evicted, node lost) says more than the Job's Failed condition.
            if !["oom_killed", "evicted", "node_lost"].contains(r.state) { r.state = outcome }
            r.endedMs = r.endedMs ?? epochMilliseconds()
        }) else { return }
        await context.bus.notify(WorkerTerminate(master: role.rawValue, pool: record.pool, job: name, outcome: record.state, node: record.node,
                                                 memoryMib: record.memoryMiB, reason: record.reason), runID: record.runID)
        context.logger.info("worker Job \(name) ended: \(record.state)")
    }

    func podEvent(_ event: KubernetesClient.WatchEvent) async {
        let pod = event.object
        guard let podName = pod["metadata"]?["name"]?.stringValue,
              let jobName = pod["metadata"]?["labels"]?["job-name"]?.stringValue ?? pod["metadata"]?["labels"]?["batch.kubernetes.io/job-name"]?.stringValue,
              let known = record(jobName) else { return }
        state.withLock { _ = $0.observed.insert(jobName) }
        let node = pod["spec"]?["nodeName"]?.stringValue
        if known.pod != podName || (known.node == nil && node != nil) || (pod["status"]?["phase"]?.stringValue == "Running" && known.state == "pending") {
            await update(jobName) { r in
                r.pod = podName
                r.node = node ?? r.node
                if pod["status"]?["phase"]?.stringValue == "Running", r.state == "pending" { r.state = "running" }
            }
        }
        // How the pod ended, if it did in a way the master answers.
        let statuses = pod["status"]?["containerStatuses"]?.arrayValue ?? []
        let oom = statuses.first { $0["state"]?["terminated"]?["reason"]?.stringValue == "OOMKilled" || $0["lastState"]?["terminated"]?["reason"]?.stringValue == "OOMKilled" }
        let podReason = pod["status"]?["reason"]?.stringValue
        let end: String?
        if oom != nil { end = "oom_killed" }
        else if podReason == "Evicted" { end = "evicted" }
        else if podReason == "NodeLost" || (pod["status"]?["conditions"]?.arrayValue ?? []).contains(where: { $0["type"]?.stringValue == "DisruptionTarget" && $0["reason"]?.stringValue == "DeletionByPodGC" }) { end = "node_lost" }
        else { end = nil }
        guard let end, state.withLock({ $0.handledPods.updateValue(jobName, forKey: podName) == nil }) else { return }
        let reason = oom.map { "container \($0["name"]?.stringValue ?? "?"): OOMKilled" } ?? pod["status"]?["message"]?.stringValue ?? podReason ?? end
        guard let record = await update(jobName, { r in
            r.state = end
            r.reason = reason
            r.endedMs = epochMilliseconds()
        }) else { return }
        // Handled apart from the watch that saw it: creating the replacement can take as long as the API
        // server does, and the watches must go on reporting other pods and Jobs meanwhile. The task's report
        // waits for it from now on (`reportNotes`).
        state.withLock { $0.handling[record.taskID, default: 0] += 1 }
        Task { await podDied(record, pod: podName, node: node, oom: end == "oom_killed") }
    }

    /// A worker pod died holding items: they go back on the pool stream (or, after `oomLimit` OOMKills,
    /// to the dead letters), and the Job is replaced — with 1.5× the memory after an OOMKill — on another node.
    ///
    /// Items go back before the replacement is asked for, so that it finds them (a Job that finds its pool
    /// empty leaves after `CORTEX_WORKER_JOB_IDLE`). A handed-back item can then finish its task while the
    /// replacement is still being created: the tasks concerned are marked as handling a death until the
    /// report's lines are written, and `reportNotes` waits for that.
    private func podDied(_ record: WorkerJobRecord, pod: String, node: String?, oom: Bool) async {
        var marked: Set<String> = [record.taskID]  // marked by the caller
        func mark(_ taskID: String) {
            guard marked.insert(taskID).inserted else { return }
            state.withLock { $0.handling[taskID, default: 0] += 1 }
        }
        defer {
            state.withLock { s in
                for t in marked {
                    s.handling[t, default: 1] -= 1
                    if s.handling[t] == 0 { s.handling.removeValue(forKey: t) }
                }
            }
        }
        let log = context.logger.forRun(record.runID)
        guard let pool = WorkerPool(rawValue: record.pool) else { return }
        if oom { context.metrics.workerOOM(master: role, pool: record.pool) }
        let stream = CortexNames.workStream(pool)
        var handedBack: [WorkItem] = []
        var buried: [WorkItem] = []
        do {
            // The dead worker's consumer name is its instance id: the pod name (the template sets CORTEX_INSTANCE_ID from it).
            for pending in try await context.redis.xpending(stream, group: CortexNames.Group.workers, count: 100, consumer: pod) {
                guard let entry = try await context.redis.xrange(stream, from: pending.id, to: pending.id).first,
                      let text = entry.fields["item"], let item = try? WireJSON.decode(WorkItem.self, from: text) else { continue }
                mark(item.taskID)  // before any commit that could finish its task
                let ooms = oom ? (try await context.redis.send(.hincrby(CortexNames.workerJobOOMs(role), item.id, by: 1)).orThrow().int ?? 1) : 0
                if oom && ooms >= oomLimit {
                    // The task's report waits for this death to be handled (`mark` above), so the line can follow the commit.
                    if await bury(item, entry: entry, stream: stream, ooms: ooms, pod: pod, node: node, log: log) {
                        let note = "worker Job \(record.job) (\(record.memoryMiB) MiB) OOMKilled on node \(node ?? "?") holding \(item.id): dead-lettered after \(ooms) OOMKills"
                        state.withLock { $0.note(note, task: item.taskID) }
                        buried.append(item)
                    }
                } else {
                    // A copy at the stream's end and the old entry acknowledged, at once: the next worker takes it
                    // now, not after the visibility timeout, and resumes from the item's checkpoint.
                    _ = try await context.redis.transaction([
                        .xadd(stream, fields: entry.fields.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }),
                        .xack(stream, group: CortexNames.Group.workers, ids: [entry.id]), .xdel(stream, ids: [entry.id]),
                        .expire(CortexNames.workerJobOOMs(role), seconds: context.retentionSeconds),
                    ])
                    handedBack.append(item)
                }
            }
        } catch {
            log.warning("pod \(pod) died; its items could not be handed back (other workers claim them after the visibility timeout): \(error)")
        }
        let backlog: Int
        do {
            backlog = try await context.redis.send("XLEN", stream).orThrow().int ?? 0
        } catch {
            // Not knowing is no reason to leave the pool short: respawn as if work were waiting.
            log.warning("could not read the backlog of \(stream) after pod \(pod) died: \(error); respawning")
            backlog = 1
        }
        var replacement: String?
        var notRespawned = "nothing left to do"
        let memory = oom ? Self.bumpedMemory(record.memoryMiB, cap: memoryCapMiB) : record.memoryMiB
        let avoid = node.map { Array(Set(record.avoidNodes + [$0])).sorted() } ?? record.avoidNodes
        if backlog > 0 || !handedBack.isEmpty {
            switch await create(pool: pool, runID: record.runID, taskID: record.taskID, memoryMiB: memory, avoidNodes: avoid, respawnOf: record.job, log: log) {
            case .success(let name): replacement = name
            case .failure(let refusal): notRespawned = refusal.description
            }
        }
        let what = oom ? "OOMKilled" : record.state.replacingOccurrences(of: "_", with: " ")
        var line = "worker Job \(record.job) (\(record.memoryMiB) MiB) \(what) on node \(node ?? "?")"
        if !handedBack.isEmpty { line += " holding \(handedBack.map(\.id).joined(separator: ", ")) (handed back, resumed from checkpoints)" }
        if !buried.isEmpty && handedBack.isEmpty && replacement == nil {
            log.warning("\(line); dead-lettered: \(buried.map(\.id).joined(separator: ", "))")
            return  // each dead-lettered item has its own line in the report
        }
        line += replacement.map { "; respawned as \($0) with \(memory) MiB, not on \(avoid.joined(separator: ", "))" } ?? "; not respawned (\(notRespawned))"
        log.warning("\(line)")
        let tasks = Set((handedBack + buried).map(\.taskID) + [record.taskID])
        state.withLock { s in for t in tasks { s.note(line, task: t) } }
    }

    /// The item failed for good: its result written as failed (so its task can finish), moved to the
    /// dead letters, announced (TASK_FAILED) and escalated to the operator. False when that could not be
    /// committed (said in the task's report).
    private func bury(_ item: WorkItem, entry: StreamEntry, stream: String, ooms: Int, pod: String, node: String?, log: Logger) async -> Bool {
        let reason = "dead-lettered after \(ooms) OOMKilled workers (last \(pod) on \(node ?? "?")); raise the \(WorkerTypeResources.type(for: item.pool)) memory or split the item"
        let result = WorkResult(itemID: item.id, taskID: item.taskID, worker: pod, node: node ?? "?", status: .failed, error: reason, durationMs: 0,
                                filesExamined: 0, output: .null, finishedAtMs: epochMilliseconds())
        let failed = Envelope(TaskFailed(itemID: item.id, taskID: item.taskID, worker: pod, reason: reason, status: Outcome.failed.rawValue),
                              source: context.processName, runID: item.runID)
        let fields = JSONValue.object(entry.fields.mapValues { .string($0) }).description
        do {
            _ = try await context.redis.transaction([
                .hsetnx(CortexNames.taskResults(item.taskID), item.id, try WireJSON.encode(result)),
                .expire(CortexNames.taskResults(item.taskID), seconds: context.retentionSeconds),
                .xadd(CortexNames.taskResultEvents(item.taskID), maxLength: 1000, fields: [("item", item.id)]),
                .expire(CortexNames.taskResultEvents(item.taskID), seconds: context.retentionSeconds),
                .xadd(CortexNames.deadLetters, maxLength: CortexNames.Retention.deadLetterLength, fields: [
                    ("stream", stream), ("entry", entry.id), ("reason", reason), ("run_id", item.runID), ("item_id", item.id), ("fields", fields),
                ]),
                .xack(stream, group: CortexNames.Group.workers, ids: [entry.id]), .xdel(stream, ids: [entry.id]),
            ] + MessageBus.commands(for: failed))
            context.metrics.deadLettered(reason: "oom_killed")
        } catch {
            // Still pending under the dead consumer: another worker claims it after the visibility timeout.
            let note = "\(item.id) could not be dead-lettered (\(error)); claimed by another worker after the visibility timeout"
            log.error("\(note)")
            state.withLock { $0.note(note, task: item.taskID) }
            return false
        }
        await context.bus.notify(Escalation(severity: "high", reason: "work item \(item.id) \(reason)", subject: item.id), runID: item.runID)
        return true
    }

    /// The report section about this task's worker Jobs (empty when none died). A death still being handled
    /// for the task (its items handed back, the replacement being created) is waited for, so that the report
    /// tells all of it: at most `wait` (25 s, inside the chart's 30 s termination grace period; a create
    /// the API server answers later, or retries after 429s, go to the master's log) and not past the start
    /// of a graceful shutdown. The master handles one task at a time, so this wait holds its next task too.
    func reportNotes(taskID: String, wait: Duration = .seconds(25)) async -> String {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        var unfinished = false
        while state.withLock({ $0.handling[taskID] != nil }) {
            guard clock.now < deadline, !Task.isShuttingDownGracefully else { unfinished = true; break }
            do { try await Task.sleep(for: .milliseconds(20)) } catch { unfinished = true; break }
        }
        var lines = state.withLock { $0.notes[taskID] ?? [] }
        if unfinished { lines.append("a worker Job's death was still being handled when this report was written (more in the master's log)") }
        guard !lines.isEmpty else { return "" }
        return "\n### Worker Jobs\n\n" + lines.map { "- \($0)" }.joined(separator: "\n") + "\n"
    }
}
