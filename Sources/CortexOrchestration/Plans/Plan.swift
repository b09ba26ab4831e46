import CortexCore
import Foundation

/// What a subtask does. Closed: a planner (the rules or a model) can only propose these, each on the
/// masters that can do it (`skill(master:target:)`).
public enum SubtaskKind: String, Codable, Sendable, CaseIterable {
    /// inventory: languages and files of a repository, or the cluster's objects.
    case discover
    /// security: dependencies, manifests and secrets of a repository.
    case scan
    /// security: the same scan, read for the advisories a goal names (the first step of "fix CVE-…").
    case analyze
    /// security: the live cluster's workloads.
    case audit
    /// cicd: the repository's CI/CD pipelines.
    case review
    /// development: the documentation survey (and the run's requested changes, when there are any).
    case document
    /// development: one change made by the implementation agent, on a branch.
    case implement
    /// testing: the repository's test suites (run when the operator allowed it).
    case test
    /// testing: the tests of a branch another subtask produced, against its base.
    case testBranch = "test-branch"
    /// monitoring: dashboards and alert rules for what the repository deploys.
    case monitor

    /// The skill a master runs for this kind on `target`; nil when that master cannot do it there.
    public func skill(master: MasterRole, target: String) -> SkillName? {
        let cluster = target == ClusterSurvey.target
        switch (self, master) {
        case (.discover, .inventory): return cluster ? .clusterDiscovery : .languageCensus
        case (.scan, .security), (.analyze, .security): return cluster ? nil : .securityScan
        case (.audit, .security): return cluster ? .clusterAudit : nil
        case (.review, .cicd): return cluster ? nil : .workflowFinder
        case (.document, .development): return cluster ? nil : .documentationSurvey
        case (.implement, .development): return cluster ? nil : .implementation
        case (.test, .testing): return cluster ? nil : .testSurvey
        case (.testBranch, .testing): return cluster ? nil : .branchTest
        case (.monitor, .monitoring): return cluster ? nil : .monitoringSurvey
        default: return nil
        }
    }

    /// The masters that can do this kind (on some target).
    public var masters: [MasterRole] {
        MasterRole.allCases.filter { skill(master: $0, target: ".") != nil || skill(master: $0, target: ClusterSurvey.target) != nil }
    }
}

/// One step of a run's plan: what (`kind`), by whom (`master`), on what (`target`), after what (`dependsOn`).
public struct Subtask: Codable, Sendable, Equatable {
    /// Unique in the plan: `<master>.<name>` (`security.0`, `development.fix0`); the task's id is `<run>.<id>`.
    public var id: String
    public var kind: SubtaskKind
    public var master: MasterRole
    /// A repository (path or git URL) of the run, or `cluster`.
    public var target: String
    /// Subtasks that must have succeeded before this one is dispatched; their outputs are its inputs.
    public var dependsOn: [String]
    public var priority: TaskPriority
    /// For `implement` (and `document` with the run's requested changes): the changes to make.
    public var instructions: [String]?
    /// For `analyze` and the `implement` after it: the advisories the goal names (CVE-…, GHSA-…).
    public var advisories: [String]?
    /// Where the subtask came from when not the planner: a handoff ("handoff from security.0").
    public var origin: String?
    /// The routing decision, once the subtask is dispatched (when its kind has alternative experts).
    public var decision: RoutingDecision?
    /// Why it was not run (a dependency did not succeed, its master is not running), once known.
    public var notRun: String?
    /// What it came to once the run ended: its report's status (`succeeded`, `partial`, …), `failed`
    /// when it could not be queued, `unfinished` when its report never came, `not run`.
    public var outcome: String?

    public init(id: String, kind: SubtaskKind, master: MasterRole, target: String, dependsOn: [String] = [], priority: TaskPriority = .normal,
                instructions: [String]? = nil, advisories: [String]? = nil, origin: String? = nil) {
        self.id = id
        self.kind = kind
        self.master = master
        self.target = target
        self.dependsOn = dependsOn
        self.priority = priority
        self.instructions = instructions
        self.advisories = advisories
        self.origin = origin
    }

    /// The task id of this subtask in `runID`.
    public func taskID(in runID: String) -> String { "\(runID).\(id)" }
}

/// A run's goal as a graph of subtasks across masters, with who planned it and how.
public struct Plan: Codable, Sendable, Equatable {
    /// `rules` (the documented rule table) or `model` (the configured LLM's proposal, validated).
    public var planner: String
    /// The rule that matched the goal (with the model planner: the rule the fallback would have used).
    public var rule: String
    /// What the report should say about how the plan was made ("the model's plan was not used: …").
    public var notes: [String]
    public var subtasks: [Subtask]
    /// 1 when made; each time a handoff adds subtasks, one more.
    public var revision: Int

    public init(planner: String, rule: String, notes: [String] = [], subtasks: [Subtask], revision: Int = 1) {
        self.planner = planner
        self.rule = rule
        self.notes = notes
        self.subtasks = subtasks
        self.revision = revision
    }

    /// The subtask with this id.
    public func subtask(_ id: String) -> Subtask? { subtasks.first { $0.id == id } }

    /// The masters of subtasks that depend on nothing: they must be up before the run starts. Masters
    /// needed only later are checked when their subtask is due (a subtask whose master is not running is
    /// not run, and the report says so).
    public var rootMasters: [MasterRole] {
        let roots = Set(subtasks.filter { $0.dependsOn.isEmpty }.map(\.master))
        return MasterRole.allCases.filter(roots.contains)
    }

    /// Every master the plan names, in the canonical order.
    public var masters: [MasterRole] {
        let all = Set(subtasks.map(\.master))
        return MasterRole.allCases.filter(all.contains)
    }

    /// Why the plan cannot run (nil when it can): unknown or duplicate ids, a kind its master cannot do on
    /// its target, a target that is not the run's, a dependency on nothing, a cycle.
    public func problem(targets: [String], cluster: Bool) -> String? {
        guard !subtasks.isEmpty else { return "the plan has no subtasks" }
        var ids: Set<String> = []
        for s in subtasks {
            guard Self.isValidID(s.id) else { return "subtask id '\(s.id.prefix(60))' is not <master>.<name> of letters, digits and '-'" }
            guard s.id.hasPrefix("\(s.master.rawValue).") else { return "subtask id '\(s.id)' does not start with its master ('\(s.master.rawValue).')" }
            guard ids.insert(s.id).inserted else { return "subtask id '\(s.id)' is used twice" }
            guard s.target == ClusterSurvey.target ? cluster : targets.contains(s.target) else {
                return "subtask \(s.id): target '\(s.target.prefix(200))' is not a target of this run\(cluster ? "" : " (and no cluster is configured)")"
            }
            guard s.kind.skill(master: s.master, target: s.target) != nil else {
                return "subtask \(s.id): the \(s.master.rawValue) master cannot \(s.kind.rawValue) \(s.target == ClusterSurvey.target ? "the cluster" : "a repository")"
                    + " (\(s.kind.rawValue) is done by \(s.kind.masters.map(\.rawValue).joined(separator: ", ")))"
            }
        }
        for s in subtasks {
            for d in s.dependsOn where !ids.contains(d) { return "subtask \(s.id) depends on '\(d.prefix(60))', which is not in the plan" }
        }
        if let cycle = cycle() { return "the plan has a cycle: \(cycle.joined(separator: " → "))" }
        return nil
    }

    /// A dependency cycle as the ids along it (first id repeated at the end), or nil when the graph is a DAG.
    public func cycle() -> [String]? {
        let edges = Dictionary(subtasks.map { ($0.id, $0.dependsOn) }, uniquingKeysWith: { a, _ in a })
        var state: [String: Int] = [:]  // 1 on the path, 2 done
        var path: [String] = []
        func visit(_ id: String) -> [String]? {
            if state[id] == 2 { return nil }
            if state[id] == 1 { return Array(path[(path.firstIndex(of: id) ?? 0)...]) + [id] }
            state[id] = 1
            path.append(id)
            for d in edges[id] ?? [] { if let c = visit(d) { return c } }
            path.removeLast()
            state[id] = 2
            return nil
        }
        for s in subtasks { if let c = visit(s.id) { return c.reversed() } }
        return nil
    }

    /// `<master>.<name>`: letters, digits and '-' in the name (it becomes part of task and item ids and file names).
    static func isValidID(_ id: String) -> Bool {
        let parts = id.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, MasterRole(rawValue: String(parts[0])) != nil, (1...40).contains(parts[1].count) else { return false }
        return parts[1].allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
    }

    /// The plan as a Mermaid flowchart: one node per subtask (kind, master, target, outcome), one edge per dependency.
    public func mermaid(outcomes: [String: String] = [:]) -> String {
        var lines = ["flowchart LR"]
        func node(_ id: String) -> String { "s_" + id.map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() }
        for s in subtasks {
            let target = s.target == ClusterSurvey.target ? "cluster" : RepositoryCheckout.name(of: s.target)
            let outcome = outcomes[s.id].map { "<br/>\($0)" } ?? ""
            let label = "\(s.id)<br/>\(s.kind.rawValue) · \(target)\(outcome)".replacingOccurrences(of: "\"", with: "'")
            lines.append("  \(node(s.id))[\"\(label)\"]")
        }
        for s in subtasks { for d in s.dependsOn { lines.append("  \(node(d)) --> \(node(s.id))") } }
        return lines.joined(separator: "\n")
    }
}

/// How the router chose among a subtask's experts: each candidate's weight and record, the pick, and why.
public struct RoutingDecision: Codable, Sendable, Equatable {
    /// The expert dimension (`advisories`).
    public var dimension: String
    public var chosen: String
    /// The target feature whose weights were used (`repo:<name>`), or `*` when the target had no history yet.
    public var feature: String
    public var candidates: [Candidate]
    /// `best weight`, `explored (least tried)`.
    public var why: String

    public struct Candidate: Codable, Sendable, Equatable {
        public var expert: String
        public var weight: Double
        public var trials: Double
        public var successes: Double
    }
}
