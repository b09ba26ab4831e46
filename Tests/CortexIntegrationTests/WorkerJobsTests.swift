import CortexControl
import CortexCore
import CortexKubernetes
@testable import CortexOrchestration
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Testing

/// A local server answering like the Kubernetes API for Jobs and Pods in one namespace: create (with
/// injected 409 / 429 + Retry-After answers), get, list with resourceVersion, delete, and `?watch=1`
/// streams of ADDED / MODIFIED / BOOKMARK events from a resourceVersion (the first watch of each kind is
/// answered 410 Gone, as for a compacted version). A created Job gets a pod on a node, and the pod's
/// container command runs for real as a local process (the built `worker`, against the test's
/// redis-server); the pod and Job statuses follow the process: exit 0 is Complete, a kill by `oomPolicy`
/// is an OOMKilled container and a Failed Job.
final class FakeJobsAPI: @unchecked Sendable {
    struct Event { var rv: Int; var kind: String; var type: String; var object: JSONValue }
    struct State {
        var rv = 100
        var objects: [String: [String: JSONValue]] = ["jobs": [:], "pods": [:]]
        var events: [Event] = []
        var requests: [(method: String, path: String, status: Int)] = []
        /// Statuses the next POSTs answer with (409: created, then answered Conflict as if the answer was lost).
        var createFaults: [Int] = []
        /// How long at most the answer to a respawn's create (a Job that avoids a node) is held back, until
        /// that Job has ended (and a second more): the Job is created, and its pod runs, at once; the answer
        /// comes late, as from an API server under load.
        var respawnAnswerHold: Duration = .zero
        var watched: Set<String> = []
        var children: [String: ChildProcess] = [:]
        var oomKilled: Set<String> = []
        var nodeTurn = 0
    }
    let state = Locked(State())
    let nodes = ["k3s-worker01", "k3s-worker02", "k3s-worker03", "k3s-worker04"]
    let supervisor: ProcessSupervisor
    let redis: RedisClient
    let stream: String
    /// Whether to OOM-kill `pod` now that it holds work item `item`.
    let oomPolicy: @Sendable (_ pod: String, _ item: String) -> Bool
    /// Whether a pod is handed its items before its worker starts (`runPod`), so that `oomPolicy` is
    /// applied for certain rather than by a poll that a stalled test process can miss.
    let preassign: Bool
    private var task: Task<Void, Error>?
    private(set) var port = 0

    init(supervisor: ProcessSupervisor, redis: RedisClient, stream: String, preassign: Bool = false,
         oomPolicy: @escaping @Sendable (String, String) -> Bool = { _, _ in false }) {
        self.supervisor = supervisor
        self.redis = redis
        self.stream = stream
        self.preassign = preassign
        self.oomPolicy = oomPolicy
    }

    var jobs: [JSONValue] { state.withLock { Array($0.objects["jobs"]!.values) } }

    private func emit(_ kind: String, _ type: String, _ object: JSONValue) {
        state.withLock { s in
            s.rv += 1
            var o = object.objectValue ?? [:]
            var m = o["metadata"]?.objectValue ?? [:]
            m["resourceVersion"] = .string(String(s.rv))
            o["metadata"] = .object(m)
            let obj = JSONValue.object(o)
            if let name = m["name"]?.stringValue { s.objects[kind]![name] = obj }
            s.events.append(Event(rv: s.rv, kind: kind, type: type, object: obj))
        }
    }

    private func update(_ kind: String, _ name: String, _ change: (inout [String: JSONValue]) -> Void) {
        guard var o = state.withLock({ $0.objects[kind]?[name]?.objectValue }) else { return }
        change(&o)
        emit(kind, "MODIFIED", .object(o))
    }

    static func matches(_ object: JSONValue, selector: String?) -> Bool {
        guard let selector, !selector.isEmpty else { return true }
        return selector.split(separator: ",").allSatisfy { pair in
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            return kv.count == 2 && object["metadata"]?["labels"]?[kv[0]]?.stringValue == kv[1]
        }
    }

    func start() async throws {
        let router = Router()
        router.get("**") { [self] request, _ -> Response in try await get(request) }
        router.post("**") { [self] request, _ -> Response in try await post(request) }
        router.delete("**") { [self] request, _ -> Response in
            let name = String(request.uri.path.split(separator: "/").last ?? "")
            let found = state.withLock { $0.objects["jobs"]!.removeValue(forKey: name) != nil }
            record("DELETE", request.uri.path, found ? 200 : 404)
            return Self.json(found ? .ok : .notFound, ["kind": "Status", "status": found ? "Success" : "Failure"])
        }
        (task, port) = try await startLocalServer(router, name: "fake Kubernetes Jobs API")
    }

    func stop() {
        task?.cancel()
        for c in state.withLock({ Array($0.children.values) }) where c.isRunning { c.signal(SIGKILL) }
    }

    private func record(_ method: String, _ path: String, _ status: Int) { state.withLock { $0.requests.append((method, path, status)) } }

    static func json(_ status: HTTPResponse.Status, _ body: JSONValue, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: body.description)))
    }

    static func kind(of path: String) -> String? {
        if path.hasSuffix("/jobs") || path.contains("/jobs/") { return "jobs" }
        if path.hasSuffix("/pods") { return "pods" }
        return nil
    }

    private func get(_ request: Request) async throws -> Response {
        let path = request.uri.path
        let q = request.uri.queryParameters
        let selector = q["labelSelector"].map { String($0).removingPercentEncoding ?? String($0) }
        guard let kind = Self.kind(of: path) else { record("GET", path, 404); return Self.json(.notFound, ["message": "not found"]) }
        if path.contains("/jobs/") {
            let name = String(path.split(separator: "/").last ?? "")
            let job = state.withLock { $0.objects["jobs"]![name] }
            record("GET", path, job == nil ? 404 : 200)
            return job.map { Self.json(.ok, $0) } ?? Self.json(.notFound, ["kind": "Status", "reason": "NotFound", "message": .string("jobs.batch \"\(name)\" not found"), "code": 404])
        }
        if q["watch"] == "1" {
            let from = Int(q["resourceVersion"].map(String.init) ?? "0") ?? 0
            let timeout = Int(q["timeoutSeconds"].map(String.init) ?? "30") ?? 30
            let stale = state.withLock { $0.watched.insert(kind).inserted }
            if stale {
                // The first watch of each kind: its version "was compacted".
                record("WATCH", path, 410)
                return Self.json(.gone, ["kind": "Status", "status": "Failure", "reason": "Expired", "message": .string("too old resource version: \(from)"), "code": 410])
            }
            record("WATCH", path, 200)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { [self] writer in
                var sent = from
                let end = ContinuousClock.now + .seconds(timeout)
                var lastBookmark = ContinuousClock.now
                while ContinuousClock.now < end && !Task.isCancelled {
                    let (events, rv) = state.withLock { s in (s.events.filter { $0.rv > sent && $0.kind == kind }, s.rv) }
                    for e in events where Self.matches(e.object, selector: selector) {
                        try await writer.write(ByteBuffer(string: JSONValue.object(["type": .string(e.type), "object": e.object]).description + "\n"))
                    }
                    sent = max(sent, events.last?.rv ?? sent)
                    if ContinuousClock.now - lastBookmark > .seconds(1) {
                        lastBookmark = .now
                        sent = max(sent, rv)
                        try await writer.write(ByteBuffer(string: JSONValue.object(["type": "BOOKMARK", "object": ["kind": kind == "jobs" ? "Job" : "Pod",
                            "metadata": ["resourceVersion": .string(String(sent))]]]).description + "\n"))
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await writer.finish(nil)
            })
        }
        let (items, rv) = state.withLock { s in (Array(s.objects[kind]!.values).filter { Self.matches($0, selector: selector) }, s.rv) }
        record("LIST", path, 200)
        return Self.json(.ok, ["kind": kind == "jobs" ? "JobList" : "PodList", "metadata": ["resourceVersion": .string(String(rv))], "items": .array(items)])
    }

    private func post(_ request: Request) async throws -> Response {
        let path = request.uri.path
        let body = try await request.body.collect(upTo: 1 << 20)
        guard Self.kind(of: path) == "jobs", var job = try? JSONText.parse(Array(buffer: body)).objectValue, let name = job["metadata"]?["name"]?.stringValue else {
            record("POST", path, 400)
            return Self.json(.badRequest, ["message": "bad request"])
        }
        let fault = state.withLock { s -> Int? in s.createFaults.isEmpty ? nil : s.createFaults.removeFirst() }
        if fault == 429 {
            record("POST", path, 429)
            return Self.json(.tooManyRequests, ["kind": "Status", "reason": "TooManyRequests", "message": "the server has received too many requests", "code": 429],
                             headers: [HTTPField.Name("Retry-After")!: "1"])
        }
        if state.withLock({ $0.objects["jobs"]![name] != nil }) {
            record("POST", path, 409)
            return Self.json(.conflict, ["kind": "Status", "reason": "AlreadyExists", "message": .string("jobs.batch \"\(name)\" already exists"), "code": 409])
        }
        job["status"] = [:]
        let created = JSONValue.object(job)
        emit("jobs", "ADDED", created)
        Task { [self] in
            do { try await runPod(job: created, name: name) } catch { print("fake Kubernetes API: the pod of Job \(name) could not run: \(error)") }
        }
        if created["spec"]?["template"]?["spec"]?["affinity"] != nil {
            let until = ContinuousClock.now.advanced(by: state.withLock { $0.respawnAnswerHold })
            while ContinuousClock.now < until, state.withLock({ ($0.objects["jobs"]![name]?["status"]?["conditions"]?.arrayValue ?? []).isEmpty }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            // ...and a second more, for the watch to deliver that end to the master first.
            try await Task.sleep(for: .seconds(1))
        }
        if fault == 409 {
            // Created, but answered as if a first attempt had already created it (a retried create).
            record("POST", path, 409)
            return Self.json(.conflict, ["kind": "Status", "reason": "AlreadyExists", "message": .string("jobs.batch \"\(name)\" already exists"), "code": 409])
        }
        record("POST", path, 201)
        return Self.json(.created, state.withLock { $0.objects["jobs"]![name]! })
    }

    /// Schedules the Job's pod on a node its affinity allows, runs its container, follows the process.
    private func runPod(job: JSONValue, name: String) async throws {
        let template = job["spec"]?["template"] ?? [:]
        let avoid = Set((template["spec"]?["affinity"]?["nodeAffinity"]?["requiredDuringSchedulingIgnoredDuringExecution"]?["nodeSelectorTerms"]?.arrayValue ?? [])
            .flatMap { $0["matchExpressions"]?.arrayValue ?? [] }.filter { $0["operator"]?.stringValue == "NotIn" }.flatMap { $0["values"]?.arrayValue ?? [] }.compactMap(\.stringValue))
        let node = state.withLock { s -> String in
            let allowed = nodes.filter { !avoid.contains($0) }
            s.nodeTurn += 1
            return allowed[s.nodeTurn % allowed.count]
        }
        let podName = "\(name)-\(UUID().uuidString.lowercased().prefix(5))"
        var labels = template["metadata"]?["labels"]?.objectValue ?? [:]
        labels["job-name"] = .string(name)
        labels["batch.kubernetes.io/job-name"] = .string(name)
        var spec = template["spec"]?.objectValue ?? [:]
        spec["nodeName"] = .string(node)
        let container = spec["containers"]?.arrayValue?.first ?? [:]
        func pod(phase: String, state cstate: JSONValue) -> JSONValue {
            ["kind": "Pod", "metadata": ["name": .string(podName), "namespace": "cortex", "labels": .object(labels)], "spec": .object(spec),
             "status": ["phase": .string(phase), "containerStatuses": [["name": container["name"] ?? "worker", "state": cstate]]]]
        }
        emit("pods", "ADDED", pod(phase: "Running", state: ["running": ["startedAt": "2026-11-01T10:00:05Z"]]))
        update("jobs", name) { $0["status"] = ["active": 1] }

        // The container: its command (basename, from the build directory) with its args and environment.
        let command = (container["command"]?.arrayValue ?? []).compactMap(\.stringValue) + (container["args"]?.arrayValue ?? []).compactMap(\.stringValue)
        var env: [String: String] = [:]
        for e in container["env"]?.arrayValue ?? [] {
            guard let n = e["name"]?.stringValue else { continue }
            if let v = e["value"]?.stringValue { env[n] = v }
            switch e["valueFrom"]?["fieldRef"]?["fieldPath"]?.stringValue {
            case "metadata.name": env[n] = podName
            case "spec.nodeName": env[n] = node
            default: break
            }
        }
        let executable = binDirectory.appendingPathComponent(URL(fileURLWithPath: command.first ?? "worker").lastPathComponent)
        // With `preassign`, the pod is given its items before its worker starts: read from the stream as its
        // consumer (the worker reads its own pending entries first), up to the first one `oomPolicy` kills
        // it for. Such a pod is killed as its worker starts, in the same step (no suspension between), so
        // it surely dies holding that item: a poll while it runs can be too late when the test process is
        // stalled for longer than the item takes (the worker then commits it and nothing is killed).
        var doomed = false
        if preassign {
            try await redis.ensureGroup(stream, group: CortexNames.Group.workers)  // as the worker makes it on start
            while !doomed, let taken = try await redis.xreadgroup(group: CortexNames.Group.workers, consumer: podName, streams: [stream], count: 1).first {
                let item = taken.entry.fields["item"].flatMap { try? WireJSON.decode(WorkItem.self, from: $0) }
                doomed = item.map { oomPolicy(podName, $0.id) } ?? false
            }
        }
        let child = try supervisor.start(name: podName, executable: executable, arguments: Array(command.dropFirst()), environment: env)
        if doomed {
            state.withLock { _ = $0.oomKilled.insert(podName) }
            child.signal(SIGKILL)
        }
        state.withLock { $0.children[podName] = child }
        while child.isRunning {
            if let held = try? await redis.xpending(stream, group: CortexNames.Group.workers, consumer: podName), !held.isEmpty {
                for p in held {
                    guard let entry = try? await redis.xrange(stream, from: p.id, to: p.id).first, let text = entry.fields["item"],
                          let item = try? WireJSON.decode(WorkItem.self, from: text), oomPolicy(podName, item.id) else { continue }
                    state.withLock { _ = $0.oomKilled.insert(podName) }
                    child.signal(SIGKILL)
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let status = await child.wait(timeout: .seconds(5)) ?? -1
        let oom = state.withLock { $0.oomKilled.contains(podName) }
        if oom {
            emit("pods", "MODIFIED", pod(phase: "Failed", state: ["terminated": ["reason": "OOMKilled", "exitCode": 137]]))
            update("jobs", name) { $0["status"] = ["failed": 1, "conditions": [["type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"]]] }
        } else if status == 0 {
            emit("pods", "MODIFIED", pod(phase: "Succeeded", state: ["terminated": ["reason": "Completed", "exitCode": 0]]))
            update("jobs", name) { $0["status"] = ["succeeded": 1, "conditions": [["type": "Complete", "status": "True"]]] }
        } else {
            emit("pods", "MODIFIED", pod(phase: "Failed", state: ["terminated": ["reason": "Error", "exitCode": .number(Double(status))]]))
            update("jobs", name) { $0["status"] = ["failed": 1, "conditions": [["type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"]]] }
        }
    }
}

/// Spawn mode end to end: a real suite whose inventory master runs in `CORTEX_WORKER_MODE=jobs` against
/// the fake API above; the Jobs' workers really process the run's catalog items.
@Suite(.serialized) struct WorkerJobsTests {
    static let kubeconfig = """
        apiVersion: v1
        kind: Config
        current-context: test
        clusters: [{name: c, cluster: {server: SERVER}}]
        users: [{name: u, user: {token: spawn-test-token-0001}}]
        contexts: [{name: test, context: {cluster: c, user: u, namespace: cortex}}]
        """

    /// A target big enough that a catalog item takes a while (so a pod can die holding one).
    static func bigRepository(files: Int) throws -> URL {
        let root = try makeRepository()
        let line = String(repeating: "let value = compute(x, y, z) // padding so each file takes a moment to read\n", count: 40)
        for i in 0..<files {
            let url = root.appendingPathComponent("Sources/Gen\(i / 500)/File\(i).swift")
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(line.utf8).write(to: url)
        }
        return root
    }

    /// The worker pod template, as the chart renders it from the worker Deployment's.
    static func workerTemplate(redisURL: String, work: URL) -> JSONValue {
        let env: [JSONValue] = [
            ["name": "CORTEX_REDIS_URL", "value": .string(redisURL)], ["name": "CORTEX_HTTP_HOST", "value": "127.0.0.1"], ["name": "CORTEX_HTTP_PORT", "value": "0"],
            ["name": "CORTEX_COORDINATION_DIR", "value": .string(work.appendingPathComponent("coordination").path)],
            ["name": "CORTEX_HEARTBEAT_INTERVAL", "value": "0.5"], ["name": "CORTEX_HEARTBEAT_TIMEOUT", "value": "10"], ["name": "CORTEX_CLAIM_IDLE", "value": "10"],
            ["name": "CORTEX_INSTANCE_ID", "valueFrom": ["fieldRef": ["fieldPath": "metadata.name"]]],
            ["name": "NODE_NAME", "valueFrom": ["fieldRef": ["fieldPath": "spec.nodeName"]]],
            ["name": "CORTEX_EXIT_WITH_PARENT", "value": "1"],
        ]
        return ["metadata": ["labels": ["app.kubernetes.io/part-of": "cortex"]],
                "spec": ["serviceAccountName": "cortex-worker", "containers": [["name": "worker", "image": "ghcr.io/cortex/cortex:test", "command": ["/usr/local/bin/worker"], "env": .array(env)]]]]
    }

    struct Outcome {
        var state: RunState
        var api: FakeJobsAPI
        var events: [Envelope]
        var inventoryLog: String
        var report: String
        var redis: RedisClient
    }

    /// A run against the fake API; with an `oomPolicy`, pods are given their items before they start
    /// (`FakeJobsAPI.preassign`), so the policy's kills happen whatever the machine's load.
    static func scenario(_ name: String, files: Int = 2000, extra: [String: String] = [:], faults: [Int] = [], respawnAnswerHold: Duration = .zero,
                         oomPolicy: (@Sendable (String, String) -> Bool)? = nil, check: (Outcome) async throws -> Void) async throws {
        let work = try temporaryDirectory("jobs-\(name)")
        // Heartbeats and claims short enough for a test, long enough that a loaded CI machine's stall of a
        // few seconds does not make a live Job worker look lost and its item redone (OOMKills are handed
        // back explicitly, not by the visibility timeout).
        let fast = ["CORTEX_HEARTBEAT_INTERVAL": "0.5", "CORTEX_HEARTBEAT_TIMEOUT": "10", "CORTEX_CLAIM_IDLE": "10"]
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: fast.merging(checkedAdvisories) { $1 })
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
        let api = FakeJobsAPI(supervisor: suite.supervisor, redis: redis, stream: CortexNames.workStream(.catalog), preassign: oomPolicy != nil,
                              oomPolicy: oomPolicy ?? { _, _ in false })
        api.state.withLock { $0.createFaults = faults; $0.respawnAnswerHold = respawnAnswerHold }
        try await api.start()
        defer { api.stop() }
        let kubeconfig = work.appendingPathComponent("kubeconfig")
        try Data(Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "http://127.0.0.1:\(api.port)").utf8).write(to: kubeconfig)
        let templateFile = work.appendingPathComponent("worker-job-template.json")
        try Data(Self.workerTemplate(redisURL: suite.redis.url, work: work).description.utf8).write(to: templateFile)
        let spawn = ["CORTEX_WORKER_MODE": "jobs", "KUBECONFIG": kubeconfig.path, "CORTEX_KUBERNETES": "off", "CORTEX_WORKER_JOB_TEMPLATE": templateFile.path,
                     "CORTEX_WORKER_JOB_NAMESPACE": "cortex", "CORTEX_WORKER_JOB_TARGET": "120", "CORTEX_WORKER_ITEM_SECONDS": "60", "CORTEX_WORKER_JOB_IDLE": "2",
                     "CORTEX_WORKER_JOB_DEADLINE": "900", "CORTEX_WORKER_JOB_TTL": "300"].merging(extra) { $1 }
        try suite.startCoordinator(environment: ["CORTEX_KUBERNETES": "off"])
        for role in MasterRole.allCases { try suite.startMaster(role, environment: role == .inventory ? spawn : ["CORTEX_KUBERNETES": "off"]) }
        // The other masters' pools are served by an ordinary pool worker; the catalog pool has no worker but the Jobs.
        try suite.startWorker(pools: WorkerPool.allCases.filter { $0 != .catalog }, environment: ["CORTEX_KUBERNETES": "off"])

        let bus = MessageBus(redis: redis, source: "test", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
        let (subscriber, stream) = bus.subscribe([.mastersCoordination, .workersStatus])
        _ = await subscriber.waitUntilSubscribed()
        let seen = Locked<[Envelope]>([])
        let collector = Task { for await e in stream { seen.withLock { $0.append(e) } } }
        let client = RunClient(bus: bus)
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: [try bigRepository(files: files).path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(180)) { _ in }
        // The Jobs end on their own once the pool stays empty (CORTEX_WORKER_JOB_IDLE).
        _ = await eventually(timeout: .seconds(60)) { api.jobs.allSatisfy { ($0["status"]?["conditions"]?.arrayValue ?? []).isEmpty == false } }
        // ...and the master announces each one's end (WORKER_TERMINATE) when its watch sees it: waited for,
        // not slept on, so a slow watch on a loaded machine still gets its events counted.
        let jobNames = Set(api.jobs.compactMap { $0["metadata"]?["name"]?.stringValue })
        _ = await eventually(timeout: .seconds(60)) {
            jobNames.isSubset(of: seen.value.filter { $0.type == .WORKER_TERMINATE }.compactMap { try? $0.payload(WorkerTerminate.self).job })
        }
        subscriber.stop()
        collector.cancel()
        let inventoryLog = suite.supervisor.all.first { $0.name == "inventory-master-local" }?.output() ?? ""
        let report = state.reportDir.flatMap { dir in
            (try? FileManager.default.contentsOfDirectory(atPath: dir + "/masters"))?.filter { $0.hasPrefix("inventory") && $0.hasSuffix(".md") }
                .compactMap { try? String(contentsOfFile: dir + "/masters/" + $0, encoding: .utf8) }.joined(separator: "\n")
        } ?? ""
        let outcome = Outcome(state: state, api: api, events: seen.value, inventoryLog: inventoryLog, report: report, redis: redis)
        try await check(outcome)
        await suite.stop()
    }

    static func spawns(_ o: Outcome) -> [WorkerSpawn] { o.events.filter { $0.type == .WORKER_SPAWN }.compactMap { try? $0.payload(WorkerSpawn.self) }.filter { $0.job != nil } }
    /// Every item announced done: one by one (TASK_COMPLETE, items past the event threshold) or together
    /// (TASK_BATCH_COMPLETE, the short ones committed in one batch), one entry per item and announcement.
    static func completed(_ o: Outcome) -> [TaskComplete] {
        o.events.flatMap { e -> [TaskComplete] in
            switch e.type {
            case .TASK_COMPLETE: return [try? e.payload(TaskComplete.self)].compactMap { $0 }
            case .TASK_BATCH_COMPLETE:
                guard let b = try? e.payload(TaskBatchComplete.self) else { return [] }
                return b.itemIDs.map { TaskComplete(itemID: $0, taskID: b.taskID, worker: b.worker, node: b.node, durationMs: b.durationMs) }
            default: return []
            }
        }.filter { $0.itemID.contains(".inventory.") }
    }
    static func terminations(_ o: Outcome) -> [WorkerTerminate] { o.events.filter { $0.type == .WORKER_TERMINATE }.compactMap { try? $0.payload(WorkerTerminate.self) } }

    /// The spawn rule and the respawn memory, directly.
    @Test func spawnRuleAndMemoryBump() {
        #expect(WorkerJobSpawner.jobsNeeded(backlog: 4, liveWorkers: 0, perWorker: 2, active: 0, maxActive: 4, spawnedForRun: 0, maxPerRun: 8) == 2)
        #expect(WorkerJobSpawner.jobsNeeded(backlog: 4, liveWorkers: 2, perWorker: 2, active: 0, maxActive: 4, spawnedForRun: 0, maxPerRun: 8) == 0)
        #expect(WorkerJobSpawner.jobsNeeded(backlog: 40, liveWorkers: 1, perWorker: 2, active: 1, maxActive: 4, spawnedForRun: 0, maxPerRun: 8) == 3)
        #expect(WorkerJobSpawner.jobsNeeded(backlog: 40, liveWorkers: 0, perWorker: 2, active: 0, maxActive: 10, spawnedForRun: 7, maxPerRun: 8) == 1)
        #expect(WorkerJobSpawner.jobsNeeded(backlog: 0, liveWorkers: 0, perWorker: 2, active: 0, maxActive: 4, spawnedForRun: 0, maxPerRun: 8) == 0)
        #expect(WorkerJobSpawner.bumpedMemory(512, cap: 8192) == 768)
        #expect(WorkerJobSpawner.bumpedMemory(6000, cap: 8192) == 8192)
        #expect(WorkerJobSpawner.labelValue("run-20261101/abc:def") == "run-20261101_abc_def")
    }

    /// (a) and (d): a backlog of 4 catalog items with 2 items per worker in the target time makes the
    /// master create 2 Jobs with the scan worker type's resources and the run's labels — the first
    /// create answered 429 with Retry-After (retried), the second created but answered 409 (taken as the
    /// Job) — whose workers drain the pool and end; the Jobs watch started with a 410 and relisted.
    @Test func backlogSpawnsJobsThatDrainThePoolAndEnd() async throws {
        try await Self.scenario("drain", faults: [429, 409]) { o in
            #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")\n\(o.inventoryLog.suffix(3000))")
            let jobs = o.api.jobs
            #expect(jobs.count == 2, "\(jobs.map { $0["metadata"]?["name"]?.stringValue ?? "" })")
            for job in jobs {
                let labels = job["metadata"]?["labels"]
                #expect(labels?["cortex.dev/pool"] == "catalog" && labels?["cortex.dev/master"] == "inventory" && labels?["cortex.dev/worker-type"] == "scan")
                #expect(labels?["cortex.dev/run"]?.stringValue == WorkerJobSpawner.labelValue(o.state.runID))
                #expect(job["spec"]?["activeDeadlineSeconds"] == 900 && job["spec"]?["ttlSecondsAfterFinished"] == 300 && job["spec"]?["backoffLimit"] == 0)
                let container = job["spec"]?["template"]?["spec"]?["containers"]?[0]
                #expect(container?["resources"] == ["requests": ["cpu": "250m", "memory": "512Mi"], "limits": ["cpu": "1", "memory": "512Mi"]])
                #expect(container?["args"] == ["--pools", "catalog"] && container?["image"] == "ghcr.io/cortex/cortex:test")
                // The spawner's idle exit and one item at a time (the memory limit is sized for one item).
                let env = Dictionary((container?["env"]?.arrayValue ?? []).compactMap { e in e["name"]?.stringValue.map { ($0, e["value"]?.stringValue ?? "") } }) { $1 }
                #expect(env["CORTEX_WORKER_IDLE_EXIT"] == "2" && env["CORTEX_WORKER_CONCURRENCY"] == "1", "\(env)")
                #expect(job["spec"]?["template"]?["spec"]?["restartPolicy"] == "Never")
                #expect(job["status"]?["conditions"]?[0]?["type"] == "Complete", "\(job["status"] ?? .null)")
            }
            let requests = o.api.state.value.requests
            let posts = requests.filter { $0.method == "POST" }.map(\.status)
            #expect(posts == [429, 201, 409] || posts == [429, 409, 201], "\(posts)")
            #expect(requests.contains { $0.method == "GET" && $0.path.contains("/jobs/cw-inventory-catalog-") && $0.status == 200 }, "the 409 was answered with the existing Job")
            #expect(requests.contains { $0.method == "WATCH" && $0.status == 410 } && requests.filter { $0.method == "LIST" && $0.path.hasSuffix("/jobs") }.count >= 2)
            #expect(Self.spawns(o).count == 2 && Self.spawns(o).allSatisfy { $0.memoryMib == 512 && $0.respawnOf == nil })
            #expect(Set(Self.terminations(o).map(\.job)) == Set(jobs.compactMap { $0["metadata"]?["name"]?.stringValue }))
            #expect(Self.terminations(o).allSatisfy { $0.outcome == "succeeded" })
            // The items were processed by the Jobs' workers (their pod names), each once.
            let done = Self.completed(o)
            #expect(done.count == 4 && Set(done.map(\.itemID)).count == 4 && done.allSatisfy { $0.worker.hasPrefix("cw-inventory-catalog-") }, "\(done)")
            let status = try await o.redis.hgetall(CortexNames.workerJobs(.inventory))
            #expect(status.count == 2 && status.values.allSatisfy { $0.contains("\"state\":\"succeeded\"") },
                    "\(status)\n\(o.inventoryLog.split(separator: "\n").filter { $0.contains("worker Job") || $0.contains("watch") }.joined(separator: "\n"))")
            let bus = MessageBus(redis: o.redis, source: "test", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
            let table = try await ControlCommands.status(bus: bus, runID: nil)
            #expect(table.contains("WORKER JOB") && table.components(separatedBy: "inventory    catalog        512Mi").count == 3 && table.contains("succeeded"), "\(table)")
            print("(a) Kubernetes API requests: \(requests.map { "\($0.method) \($0.path) \($0.status)" }.joined(separator: "; "))\n(a) cortexctl status:\n\(table)")
        }
    }

    /// (b): the first pod that holds an item is reported OOMKilled (and its worker killed); the master
    /// creates a new Job with 1.5× the memory and anti-affinity to the dead pod's node; the run
    /// completes with every item done once, and the report names the respawn.
    ///
    /// The respawn's create is answered only once its Job has ended (at most 20 s late; its pod runs at
    /// once): the new pod finishes the handed-back item, and with it the task, while the master still waits
    /// for that answer. The report must still name the respawn (a master that wrote it then left the respawn
    /// out: a CI failure under load), and the respawn's end, seen before its create was answered, must
    /// still be announced.
    @Test func oomKilledWorkerComesBackBiggerElsewhere() async throws {
        let killed = Locked<String?>(nil)
        try await Self.scenario("oom", respawnAnswerHold: .seconds(20), oomPolicy: { pod, _ in
            killed.withLock { k in
                if k == nil { k = pod; return true }
                return k == pod
            }
        }) { o in
            #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")\n\(o.inventoryLog.suffix(3000))")
            let spawns = Self.spawns(o)
            let respawn = try #require(spawns.first { $0.respawnOf != nil }, "\(spawns)")
            #expect(respawn.memoryMib == 768)
            let dead = try #require(Self.terminations(o).first { $0.outcome == "oom_killed" })
            #expect(dead.job == respawn.respawnOf && dead.memoryMib == 512)
            // Every Job's end is announced, the respawn's too, though its pod ran (and may have ended) before
            // the create was answered: the master follows a Job from before it asks for it.
            let jobNames = Set(o.api.jobs.compactMap { $0["metadata"]?["name"]?.stringValue })
            #expect(jobNames.isSubset(of: Set(Self.terminations(o).map(\.job))), "\(jobNames) \(Self.terminations(o).map(\.job))")
            // ...and after its creation is.
            let created = o.events.firstIndex { $0.type == .WORKER_SPAWN && (try? $0.payload(WorkerSpawn.self).job) == respawn.job }
            let ended = o.events.firstIndex { $0.type == .WORKER_TERMINATE && (try? $0.payload(WorkerTerminate.self).job) == respawn.job }
            #expect(created != nil && ended != nil && created! < ended!, "WORKER_SPAWN at \(created.map(String.init) ?? "-"), WORKER_TERMINATE at \(ended.map(String.init) ?? "-")")
            let newJob = try #require(o.api.jobs.first { $0["metadata"]?["name"]?.stringValue == respawn.job })
            let spec = newJob["spec"]?["template"]?["spec"]
            #expect(spec?["containers"]?[0]?["resources"]?["limits"]?["memory"] == "768Mi")
            #expect(spec?["affinity"]?["nodeAffinity"]?["requiredDuringSchedulingIgnoredDuringExecution"]?["nodeSelectorTerms"]?[0]?["matchExpressions"]?[0]
                    == ["key": "kubernetes.io/hostname", "operator": "NotIn", "values": [.string(dead.node ?? "?")]])
            // 0 lost, 0 counted twice: each of the 4 items committed once (TASK_COMPLETE rides in the commit's
            // transaction), none failed, the task's report succeeded.
            let done = Self.completed(o)
            #expect(done.count == 4 && Set(done.map(\.itemID)).count == 4, "\(done)")
            #expect(!o.events.contains { $0.type == .TASK_FAILED })
            #expect(o.report.contains("OOMKilled on node \(dead.node ?? "?")") && o.report.contains("respawned as \(respawn.job!) with 768 MiB"), "\(o.report)")
            print("(b) the inventory report's worker Jobs:\n\(o.report.components(separatedBy: "### Worker Jobs").last ?? "")")
        }
    }

    /// (c): every pod that holds item .0 is OOMKilled; after the third the item is dead-lettered with the
    /// reason and an ESCALATION is published; the run still ends, reporting the item failed.
    @Test func threeOOMsDeadLetterTheItemWithAnEscalation() async throws {
        try await Self.scenario("oom3", oomPolicy: { _, item in item.hasSuffix(".0") }) { o in
            #expect(o.state.reportDir != nil, "\(o.state.status) \(o.state.reason ?? "")")
            let ooms = Self.terminations(o).filter { $0.outcome == "oom_killed" }
            #expect(ooms.count == 3, "\(Self.terminations(o))")
            // Each respawn asks for 1.5× the memory of the Job it replaces.
            let spawns = Self.spawns(o)
            let memory = Dictionary(uniqueKeysWithValues: spawns.map { ($0.job!, $0.memoryMib ?? 0) })
            let respawns = spawns.filter { $0.respawnOf != nil }
            #expect(respawns.count >= 2 && respawns.allSatisfy { $0.memoryMib == WorkerJobSpawner.bumpedMemory(memory[$0.respawnOf!] ?? 0, cap: 8192) }, "\(spawns)")
            let escalation = try #require(o.events.first { $0.type == .ESCALATION }.flatMap { try? $0.payload(Escalation.self) })
            #expect(escalation.reason.contains("dead-lettered after 3 OOMKilled workers"), "\(escalation)")
            let dead = try await o.redis.xrange(CortexNames.deadLetters)
            #expect(dead.count == 1 && dead[0].fields["item_id"]?.hasSuffix(".0") == true && dead[0].fields["reason"]?.contains("OOMKilled") == true, "\(dead.map(\.fields))")
            #expect(o.state.status != "succeeded")
            #expect(o.report.contains("dead-lettered after 3 OOMKills"), "\(o.report)")
            print("(c) ESCALATION: \(escalation.reason)\n(c) the inventory report's worker Jobs:\n\(o.report.components(separatedBy: "### Worker Jobs").last ?? "")")
        }
    }
    /// A master that runs for months forgets worker Jobs once they ended more than the retention ago: their
    /// records, their pods, the report lines, the per-run count and their entries in the status hash go;
    /// newer ones stay, and a replayed event about a forgotten Job's pod is ignored. The spawner runs in
    /// the test process (real watches on the fake API, real workers, a real redis-server), so its memory
    /// is read directly; `prune` is called with cutoffs instead of waiting out a retention.
    @Test func finishedJobsAreForgottenAfterTheRetention() async throws {
        #expect(WorkerJobSpawner.pruneInterval(retentionSeconds: 7 * 86_400) == .seconds(3600))
        #expect(WorkerJobSpawner.pruneInterval(retentionSeconds: 7200) == .seconds(720))
        #expect(WorkerJobSpawner.pruneInterval(retentionSeconds: 120) == .seconds(60))

        let server = try await PrivateRedis.start()
        let work = try temporaryDirectory("jobs-prune")
        let redis = RedisClient(endpoint: server.endpoint)
        let supervisor = try ProcessSupervisor(logDirectory: work.appendingPathComponent("logs"))
        let stream = CortexNames.workStream(.catalog)
        // The first pod that holds the item is OOMKilled: a death handled, a report line, a respawn that finishes it.
        let killed = Locked<String?>(nil)
        let api = FakeJobsAPI(supervisor: supervisor, redis: redis, stream: stream, preassign: true, oomPolicy: { pod, _ in
            killed.withLock { k in
                if k == nil { k = pod; return true }
                return k == pod
            }
        })
        try await api.start()
        let url = "redis://127.0.0.1:\(server.server.port)"
        let settings = try SettingValues(arguments: [], environment: ["CORTEX_REDIS_URL": url, "CORTEX_COORDINATION_DIR": work.appendingPathComponent("coordination").path],
                                         settings: Setting.all)
        let context = try CortexRuntime.makeContext(process: "inventory-master", settings: settings, logger: Logger(label: "prune-test"))
        let access = try KubeAccess.kubeconfig(yaml: Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "http://127.0.0.1:\(api.port)"), origin: "test", relativeTo: work)
        let spawner = WorkerJobSpawner(context: context, role: .inventory, client: KubernetesClient(access: access), namespace: "cortex",
                                       template: Self.workerTemplate(redisURL: url, work: work), maxActive: 4, maxPerRun: 4, perWorker: 1, deadlineSeconds: 900,
                                       ttlSeconds: 300, idleExitSeconds: 1, oomLimit: 3, memoryCapMiB: 8192)
        let watches = Task { await spawner.run() }
        defer {
            watches.cancel()
            api.stop()
            redis.close()
            context.redis.close()
            context.liveness.close()
            Task { await server.stop() }
        }

        let item = WorkItem(id: "t-prune.inventory.0", taskID: "t-prune", runID: "run-prune", master: .inventory, pool: .catalog, skill: .languageCensus,
                            target: try Self.bigRepository(files: 2000).path, shard: 0, shards: 1)
        try await redis.ensureGroup(stream, group: CortexNames.Group.workers)
        try await redis.run([.xadd(stream, fields: [("item", item.wireJSON)])])
        let first = try #require(await spawner.spawn(pool: .catalog, runID: "run-prune", taskID: "t-prune", memoryMiB: 512, avoidNodes: [], respawnOf: nil,
                                                    log: context.logger))
        // Both Jobs end: the OOMKilled one and its respawn, which finishes the item and leaves when the pool is empty.
        func records() async -> [WorkerJobRecord] {
            ((try? await redis.hgetall(CortexNames.workerJobs(.inventory))) ?? [:]).values.compactMap { try? WireJSON.decode(WorkerJobRecord.self, from: $0) }
        }
        let bothEnded = await eventually(timeout: .seconds(120)) { let r = await records(); return r.count == 2 && r.allSatisfy(\.isFinished) }
        let seen = await records()
        #expect(bothEnded, "\(seen)")
        let notes = await spawner.reportNotes(taskID: "t-prune")
        #expect(notes.contains("OOMKilled") && notes.contains("respawned as"), "\(notes)")
        let ended = await records().sorted { ($0.endedMs ?? 0) < ($1.endedMs ?? 0) }
        #expect(ended.map(\.job).first == first && ended.map(\.state) == ["oom_killed", "succeeded"], "\(ended)")
        let all = WorkerJobSpawner.Tracked(jobs: 2, pods: 1, tasksWithNotes: 1, runs: 1, jobsSeen: 2)
        #expect(spawner.tracked() == all)

        // Nothing ended before the first end: nothing goes.
        #expect(await spawner.prune(endedBefore: ended[0].endedMs!).isEmpty)
        #expect(spawner.tracked() == all)
        // Past the first end only: that Job and its pod go; the report line (added later) and the run (one Job left) stay.
        #expect(await spawner.prune(endedBefore: ended[0].endedMs! + 1) == [first])
        #expect(spawner.tracked() == .init(jobs: 1, pods: 0, tasksWithNotes: 1, runs: 1, jobsSeen: 1))
        #expect(await records().map(\.job) == [ended[1].job])
        // Past everything: nothing is left, in memory or in the status hash.
        #expect(await spawner.prune(endedBefore: epochMilliseconds() + 1000) == [ended[1].job])
        #expect(spawner.tracked() == .init(jobs: 0, pods: 0, tasksWithNotes: 0, runs: 0, jobsSeen: 0))
        #expect(try await redis.hgetall(CortexNames.workerJobs(.inventory)).isEmpty)
        #expect(await spawner.reportNotes(taskID: "t-prune").isEmpty)
        // A watch replaying the OOMKilled pod after a relist: the Job is not this master's any more, so the
        // death is not handled again (no second respawn).
        let deadPod = try #require(api.state.withLock { s in s.objects["pods"]!.values.first { $0["metadata"]?["labels"]?["job-name"]?.stringValue == first } })
        await spawner.podEvent(.init(type: "MODIFIED", object: deadPod))
        #expect(spawner.tracked() == .init(jobs: 0, pods: 0, tasksWithNotes: 0, runs: 0, jobsSeen: 0))
        #expect(api.jobs.count == 2)
    }
}
