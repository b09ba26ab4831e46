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
        case .RUN_PLAN: return "The run's plan: its subtasks (`<id> <kind> <master> <target>[ after <ids>]`), who planned it (`rules` or `model`, with the matched `rule`) and why a model's plan was not used (`notes`); published again with the next `revision` when a handoff adds subtasks. The whole plan (priorities, routing decisions, why a subtask was not run) is `\(CortexNames.runPlan("<run>"))`."
        case .RUN_COMPLETE: return "The run finished; `status` is `succeeded` or `partial` (then `reason` says what was not done or not checked), reports are in `report_dir`."
        case .RUN_FAILED: return "The run stopped with the given reason."
        case .MASTER_REGISTERED: return "A master instance started and wrote its registry hash."
        case .MASTER_HEARTBEAT: return "A master instance is alive (also kept as a key with a TTL)."
        case .MASTER_ACTIVATION_ACK: return "A master acknowledges MASTER_ACTIVATION_START for the run."
        case .TASK_ASSIGNED: return "The coordinator queued a task on a master's task stream."
        case .WORKER_SPAWN: return "A master queued work items for a worker pool; in spawn mode (CORTEX_WORKER_MODE jobs or both) also each time it created a worker Job: `job` names it, `memory_mib` is its memory limit, `respawn_of` the Job whose OOMKilled, evicted or node-lost pod it replaces."
        case .WORKER_TERMINATE: return "A worker Job a master spawned ended: `outcome` is `succeeded` (its pool stayed empty and it exited), `failed`, `oom_killed`, `evicted`, `node_lost`, `deadline_exceeded` or `deleted`; `node` is where its pod ran."
        case .MASTER_REPORT: return "A master finished a task; `status` is an outcome (`succeeded`, `partial`, `skipped`, `denied`, `failed`) and `reason` says why when it is not `succeeded`; its full report (MasterReport JSON) is in the run's results hash `\(CortexNames.runResults("<run>"))` under the task id."
        case .ESCALATION: return "Something needs the human operator."
        case .HANDOFF_REQUEST: return "One master asks another to take over follow-up work; `priority` (low, normal, high, critical; default high) becomes the new task's, and so the priority of its model calls. The sender records it with the run (`\(CortexNames.runHandoffs("<run>"))`) in the same transaction as its report; the coordinator turns it into a task or reports it as not handed off."
        case .MASTER_SHUTDOWN: return "A master instance is stopping; `handed_back` tasks were returned to its stream."
        case .WORKER_REGISTERED: return "A worker started and serves the listed pools."
        case .WORKER_HEARTBEAT: return "A worker is alive (also kept as a key with a TTL)."
        case .TASK_STARTED: return "A worker has been working on a work item for longer than its event threshold (`CORTEX_ITEM_EVENT_THRESHOLD`, default 0.25 s): sent then, so items that finish sooner are never announced one by one (see TASK_BATCH_COMPLETE)."
        case .TASK_PROGRESS: return "A worker's progress through a work item."
        case .TASK_COMPLETE: return "A worker committed the result of a work item it had announced with TASK_STARTED (one that ran longer than the event threshold)."
        case .TASK_BATCH_COMPLETE: return "A worker committed the results of `item_ids`, work items of one task that each finished within the worker's event threshold (`CORTEX_ITEM_EVENT_THRESHOLD`): one message for the items committed together in one transaction, instead of a TASK_STARTED and a TASK_COMPLETE for each. `duration_ms` is the longest item's time. An item that did not succeed is always reported on its own (TASK_FAILED)."
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

    /// The payload's fields, read from its payload type (`payloadType`, MessagePayloads.swift); extra
    /// fields are allowed so that the protocol can grow.
    public var fields: [FieldSpec] { Self.fieldTable[self] ?? [] }

    /// Read once: decoding checks every message against it.
    private static let fieldTable: [MessageType: [FieldSpec]] = Dictionary(uniqueKeysWithValues: allCases.map { ($0, fields(of: $0.payloadType)) })
    private static func fields<P: MessagePayload>(of type: P.Type) -> [FieldSpec] { MessageFields.of(type) }

    /// A valid payload, used for the `redis-cli PUBLISH` example in docs/protocol.md: the payload type's
    /// example (each phase announcement with its own phase).
    public var exampleData: JSONValue {
        if let phase = (0...5).first(where: { MessageType.phaseStart($0) == self }) { return PhaseStart(phase: phase).data }
        return Self.example(of: payloadType)
    }
    private static func example<P: MessagePayload>(of type: P.Type) -> JSONValue { type.example.data }
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
