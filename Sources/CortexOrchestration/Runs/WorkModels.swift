import CortexCore
import Foundation

/// A request to run one orchestration, as queued on the durable run stream.
public struct RunRequest: Codable, Sendable, Equatable {
    public var runID: String
    public var goal: String
    /// Target repositories (local paths).
    public var targets: [String]
    public var requestedBy: String
    public var requestedAt: Date
    /// Targets whose test suites the testing master may run (their code runs on the workers): opt-in.
    public var allowTestExecution: [String]?
    /// Changes for the development master's implementation agent to make in every target.
    public var implement: [String]?

    public init(runID: String = RunRequest.newRunID(), goal: String, targets: [String], requestedBy: String, requestedAt: Date = Date(),
                allowTestExecution: [String]? = nil, implement: [String]? = nil) {
        self.runID = runID
        self.goal = goal
        self.targets = targets
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        self.allowTestExecution = allowTestExecution
        self.implement = implement
    }

    /// A run id is 1-100 letters, digits, `-` and `_`, starting with a letter or digit: it names Redis
    /// keys and the report directory, and task ids append `.master.N` to it, so no `/`, `.` or space.
    public static func isValidRunID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard (1...100).contains(bytes.count) else { return false }
        func allowed(_ b: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
        }
        return allowed(bytes[0]) && bytes.allSatisfy { allowed($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }

    /// Why this request cannot run, or nil when it can: checked by `RunClient.submit` before queueing and
    /// by the coordinator again (a request can be XADDed by hand).
    public func problem(cluster: Bool = false) -> String? {
        guard Self.isValidRunID(runID) else {
            return "run id '\(runID.prefix(120))' is not valid: use 1-100 letters, digits, '-' or '_', starting with a letter or digit"
        }
        guard !goal.trimmingCharacters(in: .whitespaces).isEmpty, goal.utf8.count <= 2000 else {
            return "the goal must be non-empty text of at most 2000 bytes"
        }
        guard TaskRouter.isKnownGoal(goal) else { return Self.unknownGoal(goal) }
        guard targets.count <= 1000, targets.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 4096 }) else {
            return "targets must be at most 1000 non-empty paths or URLs"
        }
        if targets.isEmpty && !cluster {
            return "no targets: name at least one repository (path or git URL), or configure a cluster (CORTEX_KUBERNETES)"
        }
        return nil
    }

    /// Why a goal no rule of the planner matches is refused, with what would match.
    public static func unknownGoal(_ goal: String) -> String {
        "unknown goal '\(goal.prefix(200))': say 'fix CVE-…', 'implement <change>', 'document …', 'audit the cluster', "
            + "name one or more masters (\(MasterRole.allCases.map(\.rawValue).joined(separator: ", "))) or say \(TaskRouter.fullGoals.map { "'\($0)'" }.joined(separator: ", "))"
    }

    /// `run-20261128-031500-ab12`: sortable by time, unique enough for one cluster.
    public static func newRunID(now: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return "run-\(f.string(from: now))-\(UUID().uuidString.prefix(4).lowercased())"
    }
}

/// One task the coordinator routed to a master.
public struct TaskSpec: Codable, Sendable, Equatable {
    public var id: String
    public var runID: String
    public var master: MasterRole
    public var skill: SkillName
    public var target: String
    /// Flows into every model call the task's items make (a critical fix may draw on the reserve).
    public var priority: TaskPriority
    /// 1 on first delivery; a handed-back task comes again with the next number.
    public var attempt: Int
    /// Whether the target's test suites may be run (the run request allowed it for this target).
    public var allowTestExecution: Bool?
    /// Implementation tasks for the development master on this target.
    public var instructions: [String]?
    /// What the subtasks this one depends on produced (a branch to test, the advisories to fix).
    public var inputs: TaskInputs?
    /// The expert the router chose for this task among the master's alternatives (`osv-api`, `offline-db`);
    /// nil: the master's default.
    public var expert: String?
}

/// The outputs of a task's dependencies, handed to it when it is dispatched.
public struct TaskInputs: Codable, Sendable, Equatable {
    /// A branch a development subtask published (for a branch test).
    public var branch: String?
    /// Advisory ids a security subtask found (for an implementation that fixes them).
    public var advisories: [String]?
    /// Catalog asset ids the dependency registered.
    public var assets: [String]?
    /// For a fix: the learning keys of what it fixes (`fix|<ecosystem>|<package>|<advisory>`), so its
    /// outcome can be learned.
    public var fixes: [String]?
    /// The subtasks the inputs came from.
    public var from: [String]

    public init(branch: String? = nil, advisories: [String]? = nil, assets: [String]? = nil, from: [String]) {
        self.branch = branch
        self.advisories = advisories
        self.assets = assets
        self.from = from
    }
}

/// One shard of a task for a worker pool.
public struct WorkItem: Codable, Sendable, Equatable {
    public var id: String
    public var taskID: String
    public var runID: String
    public var master: MasterRole
    public var pool: WorkerPool
    public var skill: SkillName
    public var target: String
    /// This item covers the target's files whose path hash modulo `shards` equals `shard`.
    public var shard: Int
    public var shards: Int
    /// For an implementation item: the change to make.
    public var instruction: String?
    /// The task's priority, for the item's model calls (nil: normal).
    public var priority: TaskPriority?
    /// For a branch test: the branch to test (another subtask's output).
    public var branch: String?
    /// For a branch test: whether the target's code may run (the run request allowed it for this target).
    public var allowTestExecution: Bool?
    /// Files a learned shard plan placed (path -> shard), the same in every item of the task; every other
    /// file is where its path hash puts it (`ShardPlan`).
    public var pinned: [String: Int]?

    public init(id: String, taskID: String, runID: String, master: MasterRole, pool: WorkerPool, skill: SkillName, target: String, shard: Int, shards: Int,
                instruction: String? = nil, priority: TaskPriority? = nil, branch: String? = nil, allowTestExecution: Bool? = nil, pinned: [String: Int]? = nil) {
        self.pinned = pinned
        self.id = id
        self.taskID = taskID
        self.runID = runID
        self.master = master
        self.pool = pool
        self.skill = skill
        self.target = target
        self.shard = shard
        self.shards = shards
        self.instruction = instruction
        self.priority = priority
        self.branch = branch
        self.allowTestExecution = allowTestExecution
    }
}

/// How a file-sharded work item used the file cache (`FileResultCache`): of its `files`, how many had
/// results from an earlier run for the same content and skill version (`reused`: not read again), how
/// many cache entries could not be read (examined again and rewritten), and why the cache could not be
/// used at all, when it could not (then every file was examined).
public struct FileCacheUse: Codable, Sendable, Equatable {
    public var files: Int
    public var reused: Int
    public var unreadable: Int
    public var error: String?

    public init(files: Int, reused: Int = 0, unreadable: Int = 0, error: String? = nil) {
        self.files = files
        self.reused = reused
        self.unreadable = unreadable
        self.error = error
    }
}

/// What a worker committed for one work item.
public struct WorkResult: Codable, Sendable, Equatable {
    /// An item's outcome: `succeeded`, `skipped` (e.g. an implementation without a model), `denied` (its
    /// budget was refused), `partial` or `failed`; `error` says why for anything but `succeeded`.
    public typealias Status = Outcome
    public var itemID: String
    public var taskID: String
    public var worker: String
    public var node: String
    public var status: Status
    public var error: String?
    public var durationMs: Int
    public var filesExamined: Int
    public var output: JSONValue
    /// When the worker finished (ms since the epoch); with the stream entry id, the item's latency.
    public var finishedAtMs: Int?
    /// The file index a checkpoint let this attempt start from.
    public var resumedFrom: Int?
    /// What became of the item's catalog entries, when a catalog is configured and the item had any.
    public var catalog: CatalogRegistration?
    /// How the item used the per-file results of earlier runs (file-sharded skills with the cache on).
    public var fileCache: FileCacheUse?
    /// What the files this item examined cost (file-sharded skills), for the next run's shard plan.
    public var costs: FileCosts?

    /// How many of an item's assets reached the catalog (one batch: all or none), and why not.
    public struct CatalogRegistration: Codable, Sendable, Equatable {
        public var assets: Int
        public var registered: Int
        public var error: String?
        public init(assets: Int, registered: Int, error: String? = nil) {
            self.assets = assets
            self.registered = registered
            self.error = error
        }
    }

    public init(itemID: String, taskID: String, worker: String, node: String, status: Status, error: String?, durationMs: Int,
                filesExamined: Int, output: JSONValue, finishedAtMs: Int? = nil, resumedFrom: Int? = nil) {
        self.itemID = itemID
        self.taskID = taskID
        self.worker = worker
        self.node = node
        self.status = status
        self.error = error
        self.durationMs = durationMs
        self.filesExamined = filesExamined
        self.output = output
        self.finishedAtMs = finishedAtMs
        self.resumedFrom = resumedFrom
    }
}

/// A master's report on one task: what its workers found, merged.
public struct MasterReport: Codable, Sendable, Equatable {
    public var taskID: String
    public var runID: String
    public var master: MasterRole
    public var instance: String
    public var target: String
    /// The items' outcomes rolled up (`Outcome.rollUp`), made `partial` by anything the master could not
    /// do or check itself (`notChecked`, catalog entries not registered).
    public var status: Outcome
    /// Why the status is not `succeeded`, in one line (nil when it is).
    public var reason: String?
    /// Checks that did not run, each with why ("vulnerabilities: no advisory database …"): never a clean result.
    public var notChecked: [String]?
    /// One line for the executive summary.
    public var summary: String
    /// Sections for the per-master Markdown report.
    public var markdown: String
    public var details: JSONValue
    public var items: [ItemSummary]
    public var startedAt: Date
    public var finishedAt: Date
    /// The master's LLM assessment, when a model is configured.
    public var assessment: Assessment?
    /// How the task's items used the per-file results of earlier runs (nil when no item had the cache on).
    public var fileCache: FileCacheSummary?
    /// What the files the items examined cost, merged (file-sharded tasks): learned for the next run's shard plan.
    public var costs: FileCosts?
    /// The shard plan the items followed, when one was learned ("3 costly files placed from run-…; estimated ms per item …").
    public var shardPlan: String?

    /// The file cache over a task's items: of `files`, `unchanged` were not read again (their results came
    /// from an earlier run), `reexamined` were; `unreadable` cache entries were of the wrong shape (their
    /// files examined again); `errors` say why the cache could not be read or written, when it could not.
    public struct FileCacheSummary: Codable, Sendable, Equatable {
        public var files: Int
        public var unchanged: Int
        public var reexamined: Int
        public var unreadable: Int
        public var errors: [String]?

        /// The items' uses added up.
        public init(_ uses: [FileCacheUse]) {
            files = uses.reduce(0) { $0 + $1.files }
            unchanged = uses.reduce(0) { $0 + $1.reused }
            reexamined = files - unchanged
            unreadable = uses.reduce(0) { $0 + $1.unreadable }
            let distinct = Array(Set(uses.compactMap(\.error))).sorted()
            errors = distinct.isEmpty ? nil : distinct
        }

        /// Items of the task whose cache use this counts, when not all of them (failed items, workers
        /// with the cache off): "(3 of 4 items)" in the line.
        public var items: String?

        /// "12,034 of 12,040 files unchanged; 6 re-examined".
        public var line: String {
            "\(Self.grouped(unchanged)) of \(Self.grouped(files)) files unchanged; \(Self.grouped(reexamined)) re-examined" + (items.map { " (\($0))" } ?? "")
        }

        /// What went wrong with the cache, in one line (nil when nothing did).
        public var problems: String? {
            var out: [String] = []
            if unreadable > 0 { out.append("\(unreadable) file cache entr\(unreadable == 1 ? "y" : "ies") unreadable (not of the entry's shape): examined again and rewritten") }
            out += errors ?? []
            return out.isEmpty ? nil : out.joined(separator: "; ")
        }

        /// A count with thousands separators (12,034), the same in every locale.
        static func grouped(_ n: Int) -> String {
            let digits = String(n.magnitude)
            var out = ""
            for (i, c) in digits.enumerated() {
                if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
                out.append(c)
            }
            return (n < 0 ? "-" : "") + out
        }
    }

    /// Lowers the status for a problem beyond the items (a check that did not run, catalog entries not
    /// registered): a succeeded report becomes partial, and the reason names it.
    public mutating func degrade(_ problem: String) {
        if status == .succeeded { status = .partial }
        reason = [reason, problem].compactMap { $0 }.joined(separator: "; ")
    }

    /// Records a check that did not run: listed in `notChecked` (the summary's first lines show it) and, unless
    /// the operator chose not to have it (`degrading: false`, an opt-in left off), the report is not a clean result.
    public mutating func notChecked(_ check: String, degrading: Bool = true) {
        notChecked = (notChecked ?? []) + [check]
        if degrading { degrade("not checked: \(check)") }
    }

    /// What the LLM step came to: `done` (with the text), `denied` (no budget, with the coordinator's
    /// reason) or `failed` (the provider's error).
    public struct Assessment: Codable, Sendable, Equatable {
        public var status: String
        public var model: String
        public var text: String?
        public var tokens: Int
        public var reason: String?
        /// The knowledge-base sections retrieved into the prompt (`source#section`), in order.
        public var citations: [String]?
        /// What retrieval could not use (an embeddings endpoint down, an unreadable knowledge file): the
        /// call went ahead with the rest, and the report says what was missing.
        public var retrievalProblems: [String]?
    }

    /// Who did one item, where, and how long it took.
    public struct ItemSummary: Codable, Sendable, Equatable {
        public var itemID: String
        public var pool: WorkerPool
        public var worker: String
        public var node: String
        public var status: WorkResult.Status
        public var durationMs: Int
        public var filesExamined: Int
        public var error: String?
        /// Files whose results came from the file cache (not examined again), when any did.
        public var filesReused: Int?
    }
}

/// JSON coding shared by everything stored in Redis (ISO 8601 dates, sorted keys).
public enum WireJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return try d.decode(T.self, from: Data(text.utf8))
    }
}
