import Foundation

/// The data of one message type as a value: senders build it (`bus.notify(TaskComplete(…), runID:)`),
/// receivers decode it once (`try envelope.payload(HandoffRequest.self)`). Each type's fields — names,
/// JSON kinds, required or optional — are read from its declaration (`MessageFields`), so the schema the
/// decoder enforces and docs/protocol.md come from these types. Keys are the properties' names in
/// snake_case (`taskID` → `task_id`); optional properties may be absent.
public protocol MessagePayload: Codable, Sendable {
    /// The message types this payload is the data of (several only for the phase announcements).
    static var messageTypes: [MessageType] { get }
    /// The payload as envelope data; by default through its `Codable` form. The work item messages, sent
    /// for every batch a worker commits, write theirs by hand (the same JSON, without Foundation's coder).
    var data: JSONValue { get }
    /// The message type of this value.
    var messageType: MessageType { get }
    /// A valid value, for the docs' `redis-cli PUBLISH` examples.
    static var example: Self { get }
}

extension MessagePayload {
    public var messageType: MessageType { Self.messageTypes[0] }

    /// The payload as envelope data.
    public var data: JSONValue { JSONValue.of(self) }
}

extension Envelope {
    /// An envelope carrying `payload`.
    public init<P: MessagePayload>(_ payload: P, source: String, runID: String? = nil) {
        self.init(type: payload.messageType, source: source, runID: runID, data: payload.data)
    }

    /// The data decoded as `type`.
    /// - Throws: `CortexError(.invalidInput)` when the message is of another type or the data does not fit.
    public func payload<P: MessagePayload>(_ type: P.Type) throws -> P {
        guard P.messageTypes.contains(self.type) else {
            throw CortexError(.invalidInput, "\(self.type.rawValue) does not carry \(P.self)")
        }
        do { return try data.decode(P.self) } catch {
            throw CortexError(.invalidInput, "\(self.type.rawValue) \(id): data does not fit \(P.self): \(error)")
        }
    }
}

extension MessageBus {
    /// Publishes `payload` as its message type (see `notify(_:runID:data:)`: never throws, journals while Redis is away).
    public func notify<P: MessagePayload>(_ payload: P, runID: String? = nil) async {
        await notify(payload.messageType, runID: runID, data: payload.data)
    }

    /// Publishes `payload` as its message type; throws when Redis does not take it.
    @discardableResult
    public func publish<P: MessagePayload>(_ payload: P, runID: String? = nil) async throws -> Envelope {
        try await publish(payload.messageType, runID: runID, data: payload.data)
    }
}

/// A payload type's fields, read from its example's declaration: names in snake_case, kinds from the
/// Swift types, optional properties not required.
enum MessageFields {
    static func of<P: MessagePayload>(_ type: P.Type) -> [FieldSpec] {
        Mirror(reflecting: P.example).children.compactMap { child in
            guard let label = child.label else { return nil }
            let (kind, optional) = Self.kind(of: Swift.type(of: child.value))
            return FieldSpec(snakeCase(label), kind, required: !optional)
        }
    }

    /// The JSON kind of a property's type, and whether it is optional.
    static func kind(of type: Any.Type) -> (FieldSpec.Kind, Bool) {
        switch type {
        case is String.Type: return (.string, false)
        case is String?.Type: return (.string, true)
        case is Int.Type: return (.integer, false)
        case is Int?.Type: return (.integer, true)
        case is Double.Type: return (.number, false)
        case is Double?.Type: return (.number, true)
        case is Bool.Type: return (.boolean, false)
        case is Bool?.Type: return (.boolean, true)
        case is [String].Type: return (.array, false)
        case is [String]?.Type: return (.array, true)
        case is JSONValue.Type: return (.object, false)
        case is JSONValue?.Type: return (.object, true)
        default: preconditionFailure("message payload property of unsupported type \(type)")
        }
    }

    /// `taskID` → `task_id`, `durationMs` → `duration_ms`.
    static func snakeCase(_ label: String) -> String {
        var out = ""
        var previousLower = false
        for ch in label {
            if ch.isUppercase && previousLower { out.append("_") }
            out.append(Character(ch.lowercased()))
            previousLower = ch.isLowercase || ch.isNumber
        }
        return out
    }
}

// MARK: - cortex:events:system

/// RUN_REQUESTED.
public struct RunRequested: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.RUN_REQUESTED]
    public var goal: String
    public var targets: [String]
    public init(goal: String, targets: [String]) { self.goal = goal; self.targets = targets }
    public static let example = RunRequested(goal: "full-orchestration", targets: ["/srv/repos/shop"])
}

/// PHASE_0_START … PHASE_5_START.
public struct PhaseStart: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START]
    public var messageType: MessageType { .phaseStart(phase) }
    public var phase: Int
    public var name: String
    public init(phase: Int, name: String) { self.phase = phase; self.name = name }
    /// The announcement of phase `n` (0-5), with its name.
    public init(phase n: Int) { self.init(phase: n, name: Self.names[n]) }
    /// The six phases' names, in order.
    public static let names = ["pre-flight", "master-activation", "work-distribution", "parallel-execution", "aggregation", "reporting"]
    public static let example = PhaseStart(phase: 0)
}

/// MASTER_ACTIVATION_START.
public struct MasterActivationStart: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_ACTIVATION_START]
    public var masters: [String]
    public init(masters: [String]) { self.masters = masters }
    public static let example = MasterActivationStart(masters: MasterRole.allCases.map(\.rawValue))
}

/// RUN_PLAN.
public struct RunPlanPublished: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.RUN_PLAN]
    /// `rules` or `model`.
    public var planner: String
    /// The rule of the table that matched the goal.
    public var rule: String
    /// 1 when planned; one more each time a handoff adds subtasks.
    public var revision: Int
    /// One line per subtask: `<id> <kind> <master> <target>[ after <id>,<id>]`.
    public var subtasks: [String]
    /// How the plan was made, when worth saying ("the model's plan was not used: …").
    public var notes: [String]?
    public init(planner: String, rule: String, revision: Int, subtasks: [String], notes: [String]? = nil) {
        self.planner = planner; self.rule = rule; self.revision = revision; self.subtasks = subtasks; self.notes = notes
    }
    public static let example = RunPlanPublished(planner: "rules", rule: "fix-advisory", revision: 1, subtasks: [
        "security.0 analyze security /repos/shop", "development.fix0 implement development /repos/shop after security.0",
        "testing.branch0 test-branch testing /repos/shop after development.fix0",
    ])
}

/// RUN_COMPLETE.
public struct RunComplete: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.RUN_COMPLETE]
    public var status: String
    public var reportDir: String
    public var durationMs: Int
    public var reason: String?
    enum CodingKeys: String, CodingKey { case status, reportDir = "report_dir", durationMs = "duration_ms", reason }
    public init(status: String, reportDir: String, durationMs: Int, reason: String? = nil) {
        self.status = status; self.reportDir = reportDir; self.durationMs = durationMs; self.reason = reason
    }
    public static let example = RunComplete(status: "succeeded", reportDir: "/coordination/reports/run-debug", durationMs: 1200)
}

/// RUN_FAILED.
public struct RunFailed: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.RUN_FAILED]
    public var reason: String
    public var reportDir: String?
    enum CodingKeys: String, CodingKey { case reason, reportDir = "report_dir" }
    public init(reason: String, reportDir: String? = nil) { self.reason = reason; self.reportDir = reportDir }
    public static let example = RunFailed(reason: "pre-flight: masters not registered after 30s: monitoring")
}

/// MASTER_DOWN.
public struct MasterDown: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_DOWN]
    public var master: String
    public var lastHeartbeat: Int
    public var heldTasks: Int
    enum CodingKeys: String, CodingKey { case master, lastHeartbeat = "last_heartbeat", heldTasks = "held_tasks" }
    public init(master: String, lastHeartbeat: Int, heldTasks: Int) { self.master = master; self.lastHeartbeat = lastHeartbeat; self.heldTasks = heldTasks }
    public static let example = MasterDown(master: "inventory", lastHeartbeat: 1_795_000_000_000, heldTasks: 1)
}

// MARK: - cortex:masters:coordination

/// MASTER_REGISTERED.
public struct MasterRegistered: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_REGISTERED]
    public var master: String
    public var instance: String
    public init(master: String, instance: String) { self.master = master; self.instance = instance }
    public static let example = MasterRegistered(master: "security", instance: "security-master-7d9f")
}

/// MASTER_ACTIVATION_ACK.
public struct MasterActivationAck: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_ACTIVATION_ACK]
    public var master: String
    public var instance: String
    public init(master: String, instance: String) { self.master = master; self.instance = instance }
    public static let example = MasterActivationAck(master: "security", instance: "security-master-7d9f")
}

/// MASTER_HEARTBEAT.
public struct MasterHeartbeat: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_HEARTBEAT]
    public var master: String
    public var instance: String
    public var tasksActive: Int
    enum CodingKeys: String, CodingKey { case master, instance, tasksActive = "tasks_active" }
    public init(master: String, instance: String, tasksActive: Int) { self.master = master; self.instance = instance; self.tasksActive = tasksActive }
    public static let example = MasterHeartbeat(master: "security", instance: "security-master-7d9f", tasksActive: 0)
}

/// TASK_ASSIGNED.
public struct TaskAssigned: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_ASSIGNED]
    public var taskID: String
    public var master: String
    public var target: String
    enum CodingKeys: String, CodingKey { case taskID = "task_id", master, target }
    public init(taskID: String, master: String, target: String) { self.taskID = taskID; self.master = master; self.target = target }
    public static let example = TaskAssigned(taskID: "run-debug.security.0", master: "security", target: "/srv/repos/shop")
}

/// WORKER_SPAWN: a master queued work items for a pool (`job` absent), or created a worker Job for it
/// (spawn mode: `job` names the Job, `memory_mib` its memory limit, `respawn_of` the Job it replaces).
public struct WorkerSpawn: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_SPAWN]
    public var taskID: String
    public var master: String
    public var pool: String
    public var items: Int
    /// The Kubernetes Job created (spawn mode); nil when only items were queued.
    public var job: String?
    /// The Job's memory limit in MiB.
    public var memoryMib: Int?
    /// The Job this one replaces (after an OOMKilled, evicted or node-lost pod).
    public var respawnOf: String?
    enum CodingKeys: String, CodingKey { case taskID = "task_id", master, pool, items, job, memoryMib = "memory_mib", respawnOf = "respawn_of" }
    public init(taskID: String, master: String, pool: String, items: Int, job: String? = nil, memoryMib: Int? = nil, respawnOf: String? = nil) {
        self.taskID = taskID; self.master = master; self.pool = pool; self.items = items; self.job = job; self.memoryMib = memoryMib; self.respawnOf = respawnOf
    }
    public static let example = WorkerSpawn(taskID: "run-debug.security.0", master: "security", pool: "scan", items: 4)
}

/// WORKER_TERMINATE: a worker Job a master spawned has ended.
public struct WorkerTerminate: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_TERMINATE]
    public var master: String
    public var pool: String
    public var job: String
    /// `succeeded`, `failed`, `oom_killed`, `evicted`, `node_lost`, `deadline_exceeded` or `deleted`.
    public var outcome: String
    /// The node the Job's pod ran on, when known.
    public var node: String?
    public var memoryMib: Int?
    public var reason: String?
    enum CodingKeys: String, CodingKey { case master, pool, job, outcome, node, memoryMib = "memory_mib", reason }
    public init(master: String, pool: String, job: String, outcome: String, node: String? = nil, memoryMib: Int? = nil, reason: String? = nil) {
        self.master = master; self.pool = pool; self.job = job; self.outcome = outcome; self.node = node; self.memoryMib = memoryMib; self.reason = reason
    }
    public static let example = WorkerTerminate(master: "inventory", pool: "catalog", job: "cortex-catalog-run-debug-1", outcome: "oom_killed",
                                                node: "k3s-worker01", memoryMib: 512, reason: "container worker: OOMKilled")
}

/// MASTER_REPORT.
public struct MasterReportPublished: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_REPORT]
    public var taskID: String
    public var master: String
    public var status: String
    public var summary: String
    public var reason: String?
    enum CodingKeys: String, CodingKey { case taskID = "task_id", master, status, summary, reason }
    public init(taskID: String, master: String, status: String, summary: String, reason: String? = nil) {
        self.taskID = taskID; self.master = master; self.status = status; self.summary = summary; self.reason = reason
    }
    public static let example = MasterReportPublished(taskID: "run-debug.security.0", master: "security", status: "succeeded", summary: "3 manifests")
}

/// ESCALATION.
public struct Escalation: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.ESCALATION]
    public var severity: String
    public var reason: String
    public var subject: String?
    public init(severity: String, reason: String, subject: String? = nil) { self.severity = severity; self.reason = reason; self.subject = subject }
    public static let example = Escalation(severity: "high", reason: "inventory-master missed its heartbeat", subject: "inventory-master")
}

/// HANDOFF_REQUEST.
public struct HandoffRequest: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.HANDOFF_REQUEST]
    public var from: String
    public var to: String
    public var reason: String
    public var taskID: String?
    public var target: String?
    public var advisories: [String]?
    public var branch: String?
    public var priority: String?
    enum CodingKeys: String, CodingKey { case from, to, reason, taskID = "task_id", target, advisories, branch, priority }
    public init(from: String, to: String, reason: String, taskID: String? = nil, target: String? = nil, advisories: [String]? = nil,
                branch: String? = nil, priority: String? = nil) {
        self.from = from; self.to = to; self.reason = reason; self.taskID = taskID; self.target = target
        self.advisories = advisories; self.branch = branch; self.priority = priority
    }
    public static let example = HandoffRequest(from: "security", to: "development", reason: "Found 3 critical CVEs, need dev input")
}

/// MASTER_SHUTDOWN.
public struct MasterShutdown: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.MASTER_SHUTDOWN]
    public var master: String
    public var instance: String
    public var handedBack: Int
    enum CodingKeys: String, CodingKey { case master, instance, handedBack = "handed_back" }
    public init(master: String, instance: String, handedBack: Int) { self.master = master; self.instance = instance; self.handedBack = handedBack }
    public static let example = MasterShutdown(master: "security", instance: "security-master-7d9f", handedBack: 0)
}

/// BUDGET_REQUEST.
public struct BudgetRequested: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.BUDGET_REQUEST]
    public var requestID: String
    public var agent: String
    public var account: String
    public var amount: Int
    public var priority: String
    public var reason: String
    enum CodingKeys: String, CodingKey { case requestID = "request_id", agent, account, amount, priority, reason }
    public init(requestID: String, agent: String, account: String, amount: Int, priority: String, reason: String) {
        self.requestID = requestID; self.agent = agent; self.account = account; self.amount = amount; self.priority = priority; self.reason = reason
    }
    public static let example = BudgetRequested(
        requestID: "5f0c", agent: "security", account: "security", amount: 1400, priority: "high",
        reason: "security-master assessment of run-debug.security.0: budget security has 200 tokens available, 1400 requested")
}

/// BUDGET_DECISION.
public struct BudgetDecided: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.BUDGET_DECISION]
    public var requestID: String
    public var agent: String
    public var account: String?
    public var decision: String
    public var amount: Int
    public var reason: String
    public var sources: [String]?
    enum CodingKeys: String, CodingKey { case requestID = "request_id", agent, account, decision, amount, reason, sources }
    public init(requestID: String, agent: String, account: String?, decision: String, amount: Int, reason: String, sources: [String]?) {
        self.requestID = requestID; self.agent = agent; self.account = account; self.decision = decision; self.amount = amount
        self.reason = reason; self.sources = sources
    }
    public var granted: Bool { decision == "granted" }
    public static let example = BudgetDecided(requestID: "5f0c", agent: "security", account: "security", decision: "granted", amount: 1400,
                                              reason: "moved coordinator:1200", sources: ["coordinator:1200"])
}

// MARK: - cortex:workers:status

/// WORKER_REGISTERED.
public struct WorkerRegistered: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_REGISTERED]
    public var worker: String
    public var node: String
    public var pools: [String]
    public init(worker: String, node: String, pools: [String]) { self.worker = worker; self.node = node; self.pools = pools }
    public static let example = WorkerRegistered(worker: "worker-k3s01-1", node: "k3s-worker01", pools: ["scan", "catalog"])
}

/// WORKER_HEARTBEAT.
public struct WorkerHeartbeat: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_HEARTBEAT]
    public var worker: String
    public var node: String
    public var status: String
    public init(worker: String, node: String, status: String) { self.worker = worker; self.node = node; self.status = status }
    public static let example = WorkerHeartbeat(worker: "worker-k3s01-1", node: "k3s-worker01", status: "idle")
}

/// TASK_STARTED.
public struct TaskStarted: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_STARTED]
    public var itemID: String
    public var taskID: String
    public var worker: String
    public var node: String
    public var pool: String
    enum CodingKeys: String, CodingKey { case itemID = "item_id", taskID = "task_id", worker, node, pool }
    public init(itemID: String, taskID: String, worker: String, node: String, pool: String) {
        self.itemID = itemID; self.taskID = taskID; self.worker = worker; self.node = node; self.pool = pool
    }
    public var data: JSONValue {
        ["item_id": .string(itemID), "task_id": .string(taskID), "worker": .string(worker), "node": .string(node), "pool": .string(pool)]
    }
    public static let example = TaskStarted(itemID: "run-debug.security.0.1", taskID: "run-debug.security.0", worker: "worker-k3s01-1", node: "k3s-worker01", pool: "scan")
}

/// TASK_PROGRESS.
public struct TaskProgress: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_PROGRESS]
    public var itemID: String
    public var worker: String
    public var done: Int
    public var total: Int
    enum CodingKeys: String, CodingKey { case itemID = "item_id", worker, done, total }
    public init(itemID: String, worker: String, done: Int, total: Int) { self.itemID = itemID; self.worker = worker; self.done = done; self.total = total }
    public static let example = TaskProgress(itemID: "run-debug.security.0.1", worker: "worker-k3s01-1", done: 10, total: 40)
}

/// TASK_COMPLETE.
public struct TaskComplete: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_COMPLETE]
    public var itemID: String
    public var taskID: String
    public var worker: String
    public var node: String
    public var durationMs: Int
    enum CodingKeys: String, CodingKey { case itemID = "item_id", taskID = "task_id", worker, node, durationMs = "duration_ms" }
    public init(itemID: String, taskID: String, worker: String, node: String, durationMs: Int) {
        self.itemID = itemID; self.taskID = taskID; self.worker = worker; self.node = node; self.durationMs = durationMs
    }
    public var data: JSONValue {
        ["item_id": .string(itemID), "task_id": .string(taskID), "worker": .string(worker), "node": .string(node), "duration_ms": .number(Double(durationMs))]
    }
    public static let example = TaskComplete(itemID: "run-debug.security.0.1", taskID: "run-debug.security.0", worker: "worker-k3s01-1", node: "k3s-worker01", durationMs: 35)
}

/// TASK_BATCH_COMPLETE.
public struct TaskBatchComplete: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_BATCH_COMPLETE]
    public var taskID: String
    public var worker: String
    public var node: String
    public var itemIDs: [String]
    /// The longest of the items' durations.
    public var durationMs: Int
    enum CodingKeys: String, CodingKey { case taskID = "task_id", worker, node, itemIDs = "item_ids", durationMs = "duration_ms" }
    public init(taskID: String, worker: String, node: String, itemIDs: [String], durationMs: Int) {
        self.taskID = taskID; self.worker = worker; self.node = node; self.itemIDs = itemIDs; self.durationMs = durationMs
    }
    public var data: JSONValue {
        ["task_id": .string(taskID), "worker": .string(worker), "node": .string(node), "item_ids": .array(itemIDs.map(JSONValue.string)),
         "duration_ms": .number(Double(durationMs))]
    }
    public static let example = TaskBatchComplete(taskID: "run-debug.inventory.0", worker: "worker-k3s01-1", node: "k3s-worker01",
                                                  itemIDs: ["run-debug.inventory.0.0", "run-debug.inventory.0.1"], durationMs: 4)
}

/// TASK_FAILED.
public struct TaskFailed: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.TASK_FAILED]
    public var itemID: String
    public var taskID: String
    public var worker: String
    public var reason: String
    public var status: String?
    enum CodingKeys: String, CodingKey { case itemID = "item_id", taskID = "task_id", worker, reason, status }
    public init(itemID: String, taskID: String, worker: String, reason: String, status: String? = nil) {
        self.itemID = itemID; self.taskID = taskID; self.worker = worker; self.reason = reason; self.status = status
    }
    public var data: JSONValue {
        var o: [String: JSONValue] = ["item_id": .string(itemID), "task_id": .string(taskID), "worker": .string(worker), "reason": .string(reason)]
        if let status { o["status"] = .string(status) }
        return .object(o)
    }
    public static let example = TaskFailed(itemID: "run-debug.security.0.1", taskID: "run-debug.security.0", worker: "worker-k3s01-1", reason: "target not found")
}

/// WORKER_SHUTDOWN.
public struct WorkerShutdown: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_SHUTDOWN]
    public var worker: String
    public var node: String
    public init(worker: String, node: String) { self.worker = worker; self.node = node }
    public static let example = WorkerShutdown(worker: "worker-k3s01-1", node: "k3s-worker01")
}

/// WORKER_LOST.
public struct WorkerLost: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.WORKER_LOST]
    public var worker: String
    public var node: String
    public var lastHeartbeat: Int
    enum CodingKeys: String, CodingKey { case worker, node, lastHeartbeat = "last_heartbeat" }
    public init(worker: String, node: String, lastHeartbeat: Int) { self.worker = worker; self.node = node; self.lastHeartbeat = lastHeartbeat }
    public static let example = WorkerLost(worker: "worker-k3s01-1", node: "k3s-worker01", lastHeartbeat: 1_795_000_000_000)
}

// MARK: - cortex:catalog:events

/// ASSET_ADDED.
public struct AssetAdded: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.ASSET_ADDED]
    /// The asset as catalog-api serves it.
    public var asset: JSONValue
    public init(asset: JSONValue) { self.asset = asset }
    public static let example = AssetAdded(asset: exampleAsset)
}

/// ASSET_CHANGED.
public struct AssetChanged: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.ASSET_CHANGED]
    public var asset: JSONValue
    public var previousHealth: String
    enum CodingKeys: String, CodingKey { case asset, previousHealth = "previous_health" }
    public init(asset: JSONValue, previousHealth: String) { self.asset = asset; self.previousHealth = previousHealth }
    public static let example = AssetChanged(asset: exampleAsset, previousHealth: "OK")
}

/// ASSET_DELETED.
public struct AssetDeleted: MessagePayload, Equatable {
    public static let messageTypes: [MessageType] = [.ASSET_DELETED]
    public var id: String
    public var type: String
    public init(id: String, type: String) { self.id = id; self.type = type }
    public static let example = AssetDeleted(id: "pod:shop/web-7d9f", type: "POD")
}

private let exampleAsset: JSONValue = [
    "id": "pod:shop/web-7d9f", "type": "POD", "name": "web-7d9f", "namespace": "shop", "owner": "team-shop",
    "labels": ["app": "web"], "properties": ["restarts": 4],
    "health": ["status": "DEGRADED", "reason": "4 restarts", "checkedAt": "2026-11-28T03:00:00Z"],
    "discoveredBy": "worker-k3s01-1", "firstSeen": "2026-11-28T02:00:00Z", "lastSeen": "2026-11-28T03:00:00Z", "version": 2,
]

extension MessageType {
    /// The payload type of this message type's data.
    public var payloadType: any MessagePayload.Type {
        switch self {
        case .RUN_REQUESTED: return RunRequested.self
        case .PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START: return PhaseStart.self
        case .MASTER_ACTIVATION_START: return MasterActivationStart.self
        case .RUN_PLAN: return RunPlanPublished.self
        case .RUN_COMPLETE: return RunComplete.self
        case .RUN_FAILED: return RunFailed.self
        case .MASTER_DOWN: return MasterDown.self
        case .MASTER_REGISTERED: return MasterRegistered.self
        case .MASTER_ACTIVATION_ACK: return MasterActivationAck.self
        case .MASTER_HEARTBEAT: return MasterHeartbeat.self
        case .TASK_ASSIGNED: return TaskAssigned.self
        case .WORKER_SPAWN: return WorkerSpawn.self
        case .WORKER_TERMINATE: return WorkerTerminate.self
        case .MASTER_REPORT: return MasterReportPublished.self
        case .ESCALATION: return Escalation.self
        case .HANDOFF_REQUEST: return HandoffRequest.self
        case .MASTER_SHUTDOWN: return MasterShutdown.self
        case .BUDGET_REQUEST: return BudgetRequested.self
        case .BUDGET_DECISION: return BudgetDecided.self
        case .WORKER_REGISTERED: return WorkerRegistered.self
        case .WORKER_HEARTBEAT: return WorkerHeartbeat.self
        case .TASK_STARTED: return TaskStarted.self
        case .TASK_PROGRESS: return TaskProgress.self
        case .TASK_COMPLETE: return TaskComplete.self
        case .TASK_BATCH_COMPLETE: return TaskBatchComplete.self
        case .TASK_FAILED: return TaskFailed.self
        case .WORKER_SHUTDOWN: return WorkerShutdown.self
        case .WORKER_LOST: return WorkerLost.self
        case .ASSET_ADDED: return AssetAdded.self
        case .ASSET_CHANGED: return AssetChanged.self
        case .ASSET_DELETED: return AssetDeleted.self
        }
    }
}
