// What each message type carries: its fields, meaning and a valid example.
extension MessageType {
    /// Heartbeats are worth nothing late, so they are never journaled.
    public var isHeartbeat: Bool { self == .MASTER_HEARTBEAT || self == .WORKER_HEARTBEAT }

    /// What the message means, for docs/protocol.md.
    public var summary: String {
        switch self {
        case .RUN_REQUESTED: return "A run was queued on the durable run stream (notification; the stream entry is what counts)."
        case .PHASE_0_START: return "Phase 0, pre-flight: Redis reachable, the six masters registered."
        case .PHASE_1_START: return "Phase 1, master activation."
        case .PHASE_2_START: return "Phase 2, work distribution: the goal decomposed into tasks, one stream per master."
        case .PHASE_3_START: return "Phase 3, parallel execution: masters fan work out to worker pools."
        case .PHASE_4_START: return "Phase 4, aggregation of each master's result summary."
        case .PHASE_5_START: return "Phase 5, reports written and run state saved."
        case .MASTER_ACTIVATION_START: return "The coordinator asks every master to activate for the run; each answers MASTER_ACTIVATION_ACK."
        case .RUN_COMPLETE: return "The run finished; `status` is `succeeded` or `partial` (then `reason` says what was not done or not checked), reports are in `report_dir`."
        case .RUN_FAILED: return "The run stopped with the given reason."
        case .MASTER_REGISTERED: return "A master instance started and wrote its registry hash."
        case .MASTER_HEARTBEAT: return "A master instance is alive (also kept as a key with a TTL)."
        case .MASTER_ACTIVATION_ACK: return "A master acknowledges MASTER_ACTIVATION_START for the run."
        case .TASK_ASSIGNED: return "The coordinator queued a task on a master's task stream."
        case .WORKER_SPAWN: return "A master queued work items for a worker pool."
        case .MASTER_REPORT: return "A master finished a task; `status` is an outcome (`succeeded`, `partial`, `skipped`, `denied`, `failed`) and `reason` says why when it is not `succeeded`; its full report (MasterReport JSON) is in the run's results hash `\(CortexNames.runResults("<run>"))` under the task id."
        case .ESCALATION: return "Something needs the human operator."
        case .HANDOFF_REQUEST: return "One master asks another to take over follow-up work; `priority` (low, normal, high, critical; default high) becomes the new task's, and so the priority of its model calls. The sender records it with the run (`\(CortexNames.runHandoffs("<run>"))`) in the same transaction as its report; the coordinator turns it into a task or reports it as not handed off."
        case .MASTER_SHUTDOWN: return "A master instance is stopping; `handed_back` tasks were returned to its stream."
        case .WORKER_REGISTERED: return "A worker started and serves the listed pools."
        case .WORKER_HEARTBEAT: return "A worker is alive (also kept as a key with a TTL)."
        case .TASK_STARTED: return "A worker took a work item."
        case .TASK_PROGRESS: return "A worker's progress through a work item."
        case .TASK_COMPLETE: return "A worker committed a work item's result."
        case .TASK_FAILED: return "A work item ended without succeeding; `status` is `failed` (the default), `skipped`, `denied` or `partial`, and the reason says why."
        case .WORKER_SHUTDOWN: return "A worker is stopping."
        case .WORKER_LOST: return "The coordinator marked a worker lost: its heartbeat key expired without a WORKER_SHUTDOWN. Its pending items are claimed by other workers after the visibility timeout."
        case .BUDGET_REQUEST: return "An agent's LLM call was refused by the ledger: it asks the coordinator for `amount` more tokens on `account` (priority low, normal, high or critical)."
        case .BUDGET_DECISION: return "The coordinator's answer to BUDGET_REQUEST `request_id`: `granted` (with the `sources` budget was moved from) or `denied`, with the reason."
        case .ASSET_ADDED: return "catalog-api registered a new asset; `asset` is the asset as the API returns it."
        case .ASSET_CHANGED: return "An asset's content changed (new `version`); `previous_health` is its health status before."
        case .ASSET_DELETED: return "An asset and its lineage edges were deleted."
        case .MASTER_DOWN: return "No instance of a master is alive (heartbeat timeout or stopped). Its pending tasks are held by the coordinator and handed back when an instance registers; an ESCALATION follows."
        }
    }

    /// The payload's fields; extra fields are allowed so that the protocol can grow.
    public var fields: [FieldSpec] {
        switch self {
        case .RUN_REQUESTED:
            return [.init("goal", .string), .init("targets", .array)]
        case .PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START:
            return [.init("phase", .integer), .init("name", .string)]
        case .MASTER_ACTIVATION_START:
            return [.init("masters", .array)]
        case .RUN_COMPLETE:
            return [.init("status", .string), .init("report_dir", .string), .init("duration_ms", .integer), .init("reason", .string, required: false)]
        case .RUN_FAILED:
            return [.init("reason", .string)]
        case .MASTER_REGISTERED, .MASTER_ACTIVATION_ACK:
            return [.init("master", .string), .init("instance", .string)]
        case .MASTER_HEARTBEAT:
            return [.init("master", .string), .init("instance", .string), .init("tasks_active", .integer)]
        case .TASK_ASSIGNED:
            return [.init("task_id", .string), .init("master", .string), .init("target", .string)]
        case .WORKER_SPAWN:
            return [.init("task_id", .string), .init("master", .string), .init("pool", .string), .init("items", .integer)]
        case .MASTER_REPORT:
            return [.init("task_id", .string), .init("master", .string), .init("status", .string), .init("summary", .string), .init("reason", .string, required: false)]
        case .ESCALATION:
            return [.init("severity", .string), .init("reason", .string), .init("subject", .string, required: false)]
        case .HANDOFF_REQUEST:
            return [.init("from", .string), .init("to", .string), .init("reason", .string), .init("task_id", .string, required: false),
                    .init("target", .string, required: false), .init("advisories", .array, required: false), .init("branch", .string, required: false),
                    .init("priority", .string, required: false)]
        case .MASTER_SHUTDOWN:
            return [.init("master", .string), .init("instance", .string), .init("handed_back", .integer)]
        case .WORKER_REGISTERED:
            return [.init("worker", .string), .init("node", .string), .init("pools", .array)]
        case .WORKER_HEARTBEAT:
            return [.init("worker", .string), .init("node", .string), .init("status", .string)]
        case .TASK_STARTED:
            return [.init("item_id", .string), .init("task_id", .string), .init("worker", .string), .init("node", .string), .init("pool", .string)]
        case .TASK_PROGRESS:
            return [.init("item_id", .string), .init("worker", .string), .init("done", .integer), .init("total", .integer)]
        case .TASK_COMPLETE:
            return [.init("item_id", .string), .init("task_id", .string), .init("worker", .string), .init("node", .string), .init("duration_ms", .integer)]
        case .TASK_FAILED:
            return [.init("item_id", .string), .init("task_id", .string), .init("worker", .string), .init("reason", .string), .init("status", .string, required: false)]
        case .WORKER_SHUTDOWN:
            return [.init("worker", .string), .init("node", .string)]
        case .WORKER_LOST:
            return [.init("worker", .string), .init("node", .string), .init("last_heartbeat", .integer)]
        case .MASTER_DOWN:
            return [.init("master", .string), .init("last_heartbeat", .integer), .init("held_tasks", .integer)]
        case .BUDGET_REQUEST:
            return [.init("request_id", .string), .init("agent", .string), .init("account", .string), .init("amount", .integer),
                    .init("priority", .string), .init("reason", .string)]
        case .BUDGET_DECISION:
            return [.init("request_id", .string), .init("agent", .string), .init("decision", .string), .init("amount", .integer),
                    .init("reason", .string), .init("sources", .array, required: false)]
        case .ASSET_ADDED:
            return [.init("asset", .object)]
        case .ASSET_CHANGED:
            return [.init("asset", .object), .init("previous_health", .string)]
        case .ASSET_DELETED:
            return [.init("id", .string), .init("type", .string)]
        }
    }

    /// A valid payload, used for the `redis-cli PUBLISH` example in docs/protocol.md.
    public var exampleData: JSONValue {
        switch self {
        case .RUN_REQUESTED: return ["goal": "full-orchestration", "targets": ["/srv/repos/shop"]]
        case .PHASE_0_START: return ["phase": 0, "name": "pre-flight"]
        case .PHASE_1_START: return ["phase": 1, "name": "master-activation"]
        case .PHASE_2_START: return ["phase": 2, "name": "work-distribution"]
        case .PHASE_3_START: return ["phase": 3, "name": "parallel-execution"]
        case .PHASE_4_START: return ["phase": 4, "name": "aggregation"]
        case .PHASE_5_START: return ["phase": 5, "name": "reporting"]
        case .MASTER_ACTIVATION_START: return ["masters": ["security", "development", "inventory", "cicd", "testing", "monitoring"]]
        case .RUN_COMPLETE: return ["status": "succeeded", "report_dir": "/coordination/reports/run-debug", "duration_ms": 1200]
        case .RUN_FAILED: return ["reason": "pre-flight: masters not registered after 30s: monitoring"]
        case .MASTER_REGISTERED: return ["master": "security", "instance": "security-master-7d9f"]
        case .MASTER_HEARTBEAT: return ["master": "security", "instance": "security-master-7d9f", "tasks_active": 0]
        case .MASTER_ACTIVATION_ACK: return ["master": "security", "instance": "security-master-7d9f"]
        case .TASK_ASSIGNED: return ["task_id": "run-debug.security.0", "master": "security", "target": "/srv/repos/shop"]
        case .WORKER_SPAWN: return ["task_id": "run-debug.security.0", "master": "security", "pool": "scan", "items": 4]
        case .MASTER_REPORT: return ["task_id": "run-debug.security.0", "master": "security", "status": "succeeded", "summary": "3 manifests"]
        case .ESCALATION: return ["severity": "high", "reason": "inventory-master missed its heartbeat", "subject": "inventory-master"]
        case .HANDOFF_REQUEST: return ["from": "security", "to": "development", "reason": "Found 3 critical CVEs, need dev input"]
        case .MASTER_SHUTDOWN: return ["master": "security", "instance": "security-master-7d9f", "handed_back": 0]
        case .WORKER_REGISTERED: return ["worker": "worker-k3s01-1", "node": "k3s-worker01", "pools": ["scan", "catalog"]]
        case .WORKER_HEARTBEAT: return ["worker": "worker-k3s01-1", "node": "k3s-worker01", "status": "idle"]
        case .TASK_STARTED: return ["item_id": "run-debug.security.0.1", "task_id": "run-debug.security.0", "worker": "worker-k3s01-1", "node": "k3s-worker01", "pool": "scan"]
        case .TASK_PROGRESS: return ["item_id": "run-debug.security.0.1", "worker": "worker-k3s01-1", "done": 10, "total": 40]
        case .TASK_COMPLETE: return ["item_id": "run-debug.security.0.1", "task_id": "run-debug.security.0", "worker": "worker-k3s01-1", "node": "k3s-worker01", "duration_ms": 35]
        case .TASK_FAILED: return ["item_id": "run-debug.security.0.1", "task_id": "run-debug.security.0", "worker": "worker-k3s01-1", "reason": "target not found"]
        case .WORKER_SHUTDOWN: return ["worker": "worker-k3s01-1", "node": "k3s-worker01"]
        case .WORKER_LOST: return ["worker": "worker-k3s01-1", "node": "k3s-worker01", "last_heartbeat": 1795000000000]
        case .MASTER_DOWN: return ["master": "inventory", "last_heartbeat": 1795000000000, "held_tasks": 1]
        case .BUDGET_REQUEST:
            return ["request_id": "5f0c", "agent": "security", "account": "security", "amount": 1400, "priority": "high",
                    "reason": "security-master assessment of run-debug.security.0: budget security has 200 tokens available, 1400 requested"]
        case .BUDGET_DECISION:
            return ["request_id": "5f0c", "agent": "security", "account": "security", "decision": "granted", "amount": 1400,
                    "reason": "moved coordinator:1200", "sources": ["coordinator:1200"]]
        case .ASSET_ADDED: return ["asset": Self.exampleAsset]
        case .ASSET_CHANGED: return ["asset": Self.exampleAsset, "previous_health": "OK"]
        case .ASSET_DELETED: return ["id": "pod:shop/web-7d9f", "type": "POD"]
        }
    }

    private static var exampleAsset: JSONValue {
        [
            "id": "pod:shop/web-7d9f", "type": "POD", "name": "web-7d9f", "namespace": "shop", "owner": "team-shop",
            "labels": ["app": "web"], "properties": ["restarts": 4],
            "health": ["status": "DEGRADED", "reason": "4 restarts", "checkedAt": "2026-11-28T03:00:00Z"],
            "discoveredBy": "worker-k3s01-1", "firstSeen": "2026-11-28T02:00:00Z", "lastSeen": "2026-11-28T03:00:00Z", "version": 2,
        ]
    }
}

/// One payload field: its name, JSON kind and whether it must be present.
public struct FieldSpec: Sendable {
    public enum Kind: String, Sendable { case string, integer, number, boolean, array, object }
    public var name: String
    public var kind: Kind
    public var required: Bool
    public init(_ name: String, _ kind: Kind, required: Bool = true) {
        self.name = name
        self.kind = kind
        self.required = required
    }

    func accepts(_ value: JSONValue) -> Bool {
        switch (kind, value) {
        case (.string, .string), (.boolean, .bool), (.array, .array), (.object, .object), (.number, .number): return true
        // Whole and within Int's range: a number such as 1e300 is refused here, with a reason, instead of
        // trapping in whatever reads the field as an Int later.
        case (.integer, .number(let n)): return Int(exactly: n) != nil
        default: return false
        }
    }
}
