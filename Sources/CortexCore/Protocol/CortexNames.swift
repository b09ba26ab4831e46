import Foundation

/// Every Redis name Cortex uses: channels, streams, consumer groups and keys (and, below, every message type).
///
/// This is the protocol's single source of truth; no other file spells a key. docs/protocol.md
/// is generated from here (`cortexctl docs protocol`) and a test keeps the two in step.
public enum CortexNames {
    /// The pub/sub channels: the design's three, plus the catalog's change feed.
    public enum Channel: String, CaseIterable, Sendable, Codable {
        /// master <-> master and coordinator <-> master messages.
        case mastersCoordination = "cortex:masters:coordination"
        /// worker progress, heartbeats and result notifications.
        case workersStatus = "cortex:workers:status"
        /// coordinator broadcasts: phase changes, run lifecycle.
        case eventsSystem = "cortex:events:system"
        /// catalog-api change notifications (assets added, changed, deleted); every replica relays them
        /// to its GraphQL subscriptions and Server-Sent Events clients.
        case catalogEvents = "cortex:catalog:events"

        /// The design's three orchestration channels (what the coordinator and `cortexctl run` follow).
        public static let orchestration: [Channel] = [.mastersCoordination, .workersStatus, .eventsSystem]

        /// The short name accepted on the command line (`coordination`, `workers`, `system`).
        public var shortName: String {
            switch self {
            case .mastersCoordination: return "coordination"
            case .workersStatus: return "workers"
            case .eventsSystem: return "system"
            case .catalogEvents: return "catalog"
            }
        }

        /// Accepts the full channel name or its short name.
        public init?(name: String) {
            if let c = Channel(rawValue: name) { self = c; return }
            guard let c = Channel.allCases.first(where: { $0.shortName == name }) else { return nil }
            self = c
        }
    }

    /// Consumer groups on the durable streams.
    public enum Group {
        public static let coordinators = "coordinators"
        public static let masters = "masters"
        /// The consumer that holds a dead master's tasks until an instance of that master is back.
        public static let heldByCoordinator = "coordinator-held"
        public static let workers = "workers"
    }

    /// Run requests (durable): `cortexctl run` appends, the coordinator consumes.
    public static let runRequests = "cortex:runs:requests"
    /// Sorted set of run ids by start time, newest last.
    public static let runIndex = "cortex:runs:index"
    /// Capped history of every message published on a channel.
    public static let eventHistory = "cortex:events:history"
    /// Set of master names that ever registered.
    public static let masterSet = "cortex:masters"
    /// Entries that could not be processed, with the reason (kept for the operator, never retried).
    public static let deadLetters = "cortex:work:dead-letters"
    /// Set of worker ids that ever registered.
    public static let workerSet = "cortex:workers"

    /// Hash with a run's state: status, phase, goal, targets, timestamps, report directory.
    public static func run(_ runID: String) -> String { "cortex:run:\(runID)" }
    /// Hash master -> instance that acknowledged activation for the run.
    public static func runActivation(_ runID: String) -> String { "cortex:run:\(runID):activation" }
    /// Hash task id -> task JSON for every task the run distributed.
    public static func runTasks(_ runID: String) -> String { "cortex:run:\(runID):tasks" }
    /// Hash master -> master report JSON.
    public static func runResults(_ runID: String) -> String { "cortex:run:\(runID):results" }
    /// HANDOFF_REQUESTs seen during a run, oldest first (each is placed in the run's plan or reported as not handed off).
    public static func runHandoffs(_ runID: String) -> String { "cortex:run:\(runID):handoffs" }
    /// String: the run's plan (Plan JSON: subtasks, dependencies, routing decisions, why a subtask was not run).
    public static func runPlan(_ runID: String) -> String { "cortex:run:\(runID):plan" }
    /// Hash task id -> 1 for every report whose outcome the router has learned from (each counts once).
    public static func runRouted(_ runID: String) -> String { "cortex:run:\(runID):routed" }
    /// Hash `<kind>|<dimension>|<expert>|<feature>|<stat>` -> number: what the router learned from every
    /// routed subtask (trials, successes, milliseconds, findings, tokens). Kept across runs, no TTL.
    public static let routingWeights = "cortex:routing:weights"
    /// Hash key -> Learning JSON: what a master learned from outcomes (e.g. a fix that needs a person), kept
    /// across runs (no TTL), mirrored to `masters/<master>/learnings.json` in the coordination directory.
    public static func learnings(_ master: String) -> String { "cortex:learnings:\(master)" }
    /// List of what earlier runs found on one target (ExecutionHistory entries, newest first, 50 kept), by
    /// the target's hash: read before a model call about the target.
    public static func targetHistory(_ targetHash: String) -> String { "cortex:history:\(targetHash)" }
    /// Hash chunk-text hash -> vector (base64 float32): knowledge-base chunks embedded by one model, kept
    /// so each text is embedded once (no TTL; a changed text has a new hash).
    public static func embeddings(_ model: String) -> String { "cortex:embeddings:\(model)" }
    /// Hash path -> `{"blob", "records"}`: the per-file results of one skill version (`<skill>@<version>`) on
    /// one target (by its hash), reused by the next run for files whose git blob id is unchanged; the field
    /// `/target` names the target. Expires 30 days after its last use; bounded by CORTEX_FILE_CACHE_MAX_MB.
    public static func fileCache(_ skillVersion: String, _ targetHash: String) -> String { "cortex:filecache:\(skillVersion):\(targetHash)" }
    /// Sorted set of file-cache keys by last use (unix seconds): the eviction order.
    public static let fileCacheIndex = "cortex:filecache-index"
    /// Hash file-cache key -> bytes of its entries, and `/total`: what the bound is checked against.
    public static let fileCacheBytes = "cortex:filecache-bytes"
    /// Stream of tasks for one master (durable).
    public static func taskStream(_ master: MasterRole) -> String { "cortex:tasks:\(master.rawValue)" }
    /// Stream of work items for one worker pool (durable).
    public static func workStream(_ pool: WorkerPool) -> String { "cortex:work:\(pool.rawValue)" }
    /// Hash item id -> result JSON for one task; written once per item (HSETNX), so a redelivered item counts once.
    public static func taskResults(_ taskID: String) -> String { "cortex:task:\(taskID):results" }
    /// Stream that wakes the master waiting for a task's results.
    public static func taskResultEvents(_ taskID: String) -> String { "cortex:task:\(taskID):done" }
    /// Registry hash of a master: status, tasks_active, workers_spawned, last_heartbeat, instance.
    public static func masterRegistry(_ master: MasterRole) -> String { "cortex:master:\(master.rawValue)" }
    /// Set of instance ids that registered for a master (their heartbeat keys say which are alive).
    public static func masterInstances(_ master: MasterRole) -> String { "cortex:master:\(master.rawValue):instances" }
    /// Liveness key of one master instance; expires when heartbeats stop.
    public static func masterHeartbeat(_ master: MasterRole, instance: String) -> String {
        "cortex:heartbeat:master:\(master.rawValue):\(instance)"
    }
    /// Hash Job name -> WorkerJobRecord JSON: the worker Jobs one master spawned (spawn mode), for status and respawns.
    public static func workerJobs(_ master: MasterRole) -> String { "cortex:jobs:\(master.rawValue)" }
    /// Hash work item id -> how many worker pods were OOMKilled holding it (spawn mode; dead-lettered at the limit).
    public static func workerJobOOMs(_ master: MasterRole) -> String { "cortex:jobs:\(master.rawValue):ooms" }
    /// Registry hash of a worker: pools, node, status, items_done, last_heartbeat.
    public static func workerRegistry(_ workerID: String) -> String { "cortex:worker:\(workerID)" }
    /// Marker that a journal record was applied (replay is exactly-once per record).
    public static func journalMarker(_ recordID: String) -> String { "cortex:journal:applied:\(recordID)" }
    /// A work item's checkpoint (skill progress), with a TTL.
    public static func checkpoint(_ itemID: String) -> String { "cortex:checkpoint:\(itemID)" }
    /// The latest attempts at one implementation task (by the task text's hash), newest first, for the
    /// next attempt's context.
    public static func developmentAttempts(_ taskHash: String) -> String { "cortex:dev:attempts:\(taskHash)" }
    /// The target's file list as the task's first worker saw it (JSON array, TTL): every item of the task
    /// shards this one listing, so items agree even if the tree changes, and no worker walks it twice.
    public static func taskFiles(_ taskID: String) -> String { "cortex:task:\(taskID):files" }
    /// The learned shard plan a task's items follow (JSON: costly files -> shard, estimates, the run it was
    /// learned in; TTL), written once by the master (SET NX) so a redelivered task dispatches the same plan.
    public static func taskShardPlan(_ taskID: String) -> String { "cortex:task:\(taskID):shard-plan" }
    /// Count of results committed again for a task's items (redone after a redelivery, ignored).
    public static func taskDuplicates(_ taskID: String) -> String { "cortex:task:\(taskID):duplicates" }
    /// A budget account of a run: hash limit, reserved, used (tokens).
    public static func budgetAccount(_ runID: String, _ account: String) -> String { "cortex:budget:\(runID):account:\(account)" }
    /// Set of a run's budget account names.
    public static func budgetAccounts(_ runID: String) -> String { "cortex:budget:\(runID):accounts" }
    /// A held estimate: hash amount, account1..n (keys), with a TTL.
    public static func budgetReservation(_ runID: String, _ id: String) -> String { "cortex:budget:\(runID):reservation:\(id)" }
    /// The catalog's key layout (catalog-api keeps no state of its own: everything is here).
    ///
    /// The Lua scripts of the catalog store receive these prefixes as an argument rather than spelling them.
    public enum Catalog {
        /// Hash per asset: `doc` (the asset's JSON content), `version`, `first_seen`, `last_seen`, `fp`
        /// (content fingerprint) and the indexed fields (`type`, `ns`, `owner`, `health`, `labels`, `words`).
        public static let assetPrefix = "cortex:catalog:asset:"
        /// Sorted set (all scores 0, ordered by id) of every asset id: the unfiltered listing and cursor order.
        public static let allAssets = "cortex:catalog:ids"
        /// Prefix of the index sorted sets: `idx:type:<TYPE>`, `idx:ns:<namespace>`, `idx:owner:<owner>`,
        /// `idx:health:<STATUS>`, `idx:label:<key>=<value>`, `idx:word:<token>` (ids, scores 0).
        public static let indexPrefix = "cortex:catalog:idx:"
        /// Hash per asset of its outgoing lineage edges: field `<KIND>\t<to>`, value the relation JSON.
        public static let outEdgesPrefix = "cortex:catalog:rel:out:"
        /// Hash per asset of its incoming lineage edges: field `<KIND>\t<from>`, value the relation JSON.
        public static let inEdgesPrefix = "cortex:catalog:rel:in:"
        /// Prefix of the counter hashes `count:type`, `count:ns`, `count:health`, `count:meta` (field `relations`).
        public static let countPrefix = "cortex:catalog:count:"
        /// Hash hour (epoch hours) -> assets first seen in that hour.
        public static let discoveries = "cortex:catalog:discoveries"

        public static func asset(_ id: String) -> String { assetPrefix + id }
        public static func index(_ field: String, _ value: String) -> String { "\(indexPrefix)\(field):\(value)" }
        public static func outEdges(_ id: String) -> String { outEdgesPrefix + id }
        public static func inEdges(_ id: String) -> String { inEdgesPrefix + id }
        public static func counts(_ dimension: String) -> String { countPrefix + dimension }
    }

    /// Liveness key of a worker; expires when heartbeats stop.
    public static func workerHeartbeat(_ workerID: String) -> String { "cortex:heartbeat:worker:\(workerID)" }

    /// How long and how much Redis keeps: nothing Cortex writes grows without bound.
    public enum Retention {
        /// Entries kept in the dead-letter stream (approximately: `XADD ... MAXLEN ~`).
        public static let deadLetterLength = 10_000
        /// Entries kept in the channel history stream (approximately).
        public static let eventHistoryLength = 10_000
        /// The default for `CORTEX_RETENTION`: how long a run's keys, task results, budget accounts and
        /// development attempts live, and the age past which unread work-stream entries are trimmed.
        public static let defaultSeconds = 7 * 24 * 3600

        /// The `MINID` bound for `XADD <stream> MINID ~ <id> * ...`: entries older than `seconds` are trimmed
        /// (work, task and run-request streams; processed entries are deleted when acknowledged anyway).
        public static func minID(olderThan seconds: Int, now: Date = Date()) -> String {
            "\(max(0, Int(now.timeIntervalSince1970 * 1000) - seconds * 1000))-0"
        }
    }
}

/// The six domain masters.
public enum MasterRole: String, CaseIterable, Sendable, Codable {
    case security, development, inventory, cicd, testing, monitoring

    /// The executable, container and process name, e.g. `security-master`.
    public var processName: String { "\(rawValue)-master" }

    /// The pool whose workers run this master's built-in skill.
    public var pool: WorkerPool {
        switch self {
        case .inventory: return .catalog
        case .security: return .scan
        case .development: return .documentation
        case .cicd: return .analysis
        case .testing: return .test
        case .monitoring: return .analysis
        }
    }

    /// Accepts `security` or `security-master`.
    public init?(name: String) {
        let bare = name.hasSuffix("-master") ? String(name.dropLast(7)) : name
        self.init(rawValue: bare)
    }
}

/// Named worker pools; a worker serves one or more, and replicas share a pool through its consumer group.
public enum WorkerPool: String, CaseIterable, Sendable, Codable {
    case catalog, scan, implementation, documentation, analysis, test
}

/// The closed list of message types, each bound to one channel with a documented payload.
public enum MessageType: String, CaseIterable, Sendable, Codable {
    // cortex:events:system — coordinator broadcasts
    case RUN_REQUESTED, PHASE_0_START, PHASE_1_START, PHASE_2_START, PHASE_3_START, PHASE_4_START, PHASE_5_START
    case MASTER_ACTIVATION_START, RUN_PLAN, RUN_COMPLETE, RUN_FAILED, MASTER_DOWN
    // cortex:masters:coordination
    case MASTER_REGISTERED, MASTER_HEARTBEAT, MASTER_ACTIVATION_ACK, TASK_ASSIGNED, WORKER_SPAWN, WORKER_TERMINATE
    case MASTER_REPORT, ESCALATION, HANDOFF_REQUEST, MASTER_SHUTDOWN, BUDGET_REQUEST, BUDGET_DECISION
    // cortex:workers:status
    case WORKER_REGISTERED, WORKER_HEARTBEAT, TASK_STARTED, TASK_PROGRESS, TASK_COMPLETE, TASK_BATCH_COMPLETE, TASK_FAILED, WORKER_SHUTDOWN, WORKER_LOST
    // cortex:catalog:events
    case ASSET_ADDED, ASSET_CHANGED, ASSET_DELETED

    /// The phase-start type for phase `n` (0...5).
    public static func phaseStart(_ n: Int) -> MessageType {
        [.PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START][n]
    }

    /// The one channel this type travels on.
    public var channel: CortexNames.Channel {
        switch self {
        case .RUN_REQUESTED, .PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START,
            .PHASE_5_START, .MASTER_ACTIVATION_START, .RUN_PLAN, .RUN_COMPLETE, .RUN_FAILED, .MASTER_DOWN:
            return .eventsSystem
        case .MASTER_REGISTERED, .MASTER_HEARTBEAT, .MASTER_ACTIVATION_ACK, .TASK_ASSIGNED, .WORKER_SPAWN, .WORKER_TERMINATE,
            .MASTER_REPORT, .ESCALATION, .HANDOFF_REQUEST, .MASTER_SHUTDOWN, .BUDGET_REQUEST, .BUDGET_DECISION:
            return .mastersCoordination
        case .WORKER_REGISTERED, .WORKER_HEARTBEAT, .TASK_STARTED, .TASK_PROGRESS, .TASK_COMPLETE, .TASK_BATCH_COMPLETE, .TASK_FAILED,
            .WORKER_SHUTDOWN, .WORKER_LOST:
            return .workersStatus
        case .ASSET_ADDED, .ASSET_CHANGED, .ASSET_DELETED:
            return .catalogEvents
        }
    }
}

/// Glob patterns over the key families above, for Redis ACL rules (`RedisACL`). Each is built by calling
/// the name function with `*` for the id it embeds, so a renamed key keeps its ACL; a new key family
/// gets its pattern here and its grants in `RedisACL.grants(for:)` (a test fails when a family is granted
/// to no role). Redis globs let `*` match `:` too: `run` (`cortex:run:*`) also covers the run's
/// sub-hashes, `masterRegistry` its `:instances` set — noted where a role gets one and not the other.
extension CortexNames {
    public enum KeyPattern: String, CaseIterable, Sendable {
        case runRequests, runIndex, run, runActivation, runTasks, runResults, runHandoffs, runPlan, runRouted, routingWeights, learnings, targetHistory, embeddings
        case fileCache, fileCacheIndex, fileCacheBytes
        case taskResults, taskResultEvents, taskFiles, taskShardPlan, taskDuplicates
        case workerRegistry, workerHeartbeat, workerSet, masterSet
        case deadLetters, eventHistory, journalMarker, checkpoint, developmentAttempts
        case workerJobs
        case budgetAccount, budgetAccounts, budgetReservation
        case catalog

        /// The Redis glob for the family.
        public var pattern: String {
            switch self {
            case .runRequests: return CortexNames.runRequests
            case .runIndex: return CortexNames.runIndex
            case .run: return CortexNames.run("*")
            case .runActivation: return CortexNames.runActivation("*")
            case .runTasks: return CortexNames.runTasks("*")
            case .runResults: return CortexNames.runResults("*")
            case .runHandoffs: return CortexNames.runHandoffs("*")
            case .runPlan: return CortexNames.runPlan("*")
            case .runRouted: return CortexNames.runRouted("*")
            case .routingWeights: return CortexNames.routingWeights
            case .learnings: return CortexNames.learnings("*")
            case .targetHistory: return CortexNames.targetHistory("*")
            case .embeddings: return CortexNames.embeddings("*")
            case .fileCache: return CortexNames.fileCache("*", "*")
            case .fileCacheIndex: return CortexNames.fileCacheIndex
            case .fileCacheBytes: return CortexNames.fileCacheBytes
            case .taskResults: return CortexNames.taskResults("*")
            case .taskResultEvents: return CortexNames.taskResultEvents("*")
            case .taskFiles: return CortexNames.taskFiles("*")
            case .taskShardPlan: return CortexNames.taskShardPlan("*")
            case .taskDuplicates: return CortexNames.taskDuplicates("*")
            case .workerRegistry: return CortexNames.workerRegistry("*")
            case .workerHeartbeat: return CortexNames.workerHeartbeat("*")
            case .workerSet: return CortexNames.workerSet
            case .masterSet: return CortexNames.masterSet
            case .deadLetters: return CortexNames.deadLetters
            case .eventHistory: return CortexNames.eventHistory
            case .journalMarker: return CortexNames.journalMarker("*")
            case .checkpoint: return CortexNames.checkpoint("*")
            case .developmentAttempts: return CortexNames.developmentAttempts("*")
            case .workerJobs: return "cortex:jobs:*"  // workerJobs and workerJobOOMs of every master
            case .budgetAccount: return CortexNames.budgetAccount("*", "*")
            case .budgetAccounts: return CortexNames.budgetAccounts("*")
            case .budgetReservation: return CortexNames.budgetReservation("*", "*")
            case .catalog: return CortexNames.Catalog.allKeys
            }
        }
    }

    /// The budget account an agent's workers draw from (`development:workers`), as BudgetPlan names it.
    public static func workersBudgetAccount(_ agent: String) -> String { "\(agent):workers" }
    /// One budget account of every run (`cortex:budget:*:account:<account>`): an agent may touch its own.
    public static func budgetAccountPattern(_ account: String) -> String { budgetAccount("*", account) }
    /// Every instance's liveness key of one master (`cortex:heartbeat:master:<master>:*`).
    public static func masterHeartbeatPattern(_ master: MasterRole) -> String { masterHeartbeat(master, instance: "*") }
}

extension CortexNames.Catalog {
    /// Every catalog key (asset hashes, ids, indexes, edges, counters, discoveries) share this prefix.
    public static let allKeys = "cortex:catalog:*"
}

/// The `status` of a master's or a worker's registry hash (also WORKER_HEARTBEAT's): what `cortexctl
/// status` shows and the liveness checks read. The run hash's status is `RunStatus` until the run ends.
public enum ProcessStatus: String, Codable, Sendable, CaseIterable {
    /// A master with no task in hand.
    case ready
    /// A master working on at least one task.
    case busy
    /// A worker registered and waiting for items.
    case idle
    /// A worker's heartbeat.
    case alive
    /// Stopped cleanly (SIGTERM).
    case stopped
    /// A master without a live instance (set by the coordinator's liveness check).
    case down
    /// A worker whose heartbeat lapsed (set by the liveness script; the Lua names it too).
    case lost
}

/// The `status` of a run's hash while it has not ended (then it is the run's outcome).
public enum RunStatus: String, Sendable {
    case queued, running
}
