import CortexCatalog
import CortexCore
import Foundation
import Logging

/// The LLM planner: the configured model proposes the run's plan as JSON, metered on the coordinator's
/// budget account; the proposal is validated against the closed sets of masters and kinds, the run's
/// targets and for cycles (`Plan.problem`). Anything else — a refusal, a provider error, text that is not
/// the plan, an invalid plan — falls back to the rules, and the plan's notes say why.
public struct ModelPlanner: Sendable {
    let llm: MeteredLLM
    let maxTokens: Int
    let model: String
    /// The coordinator's knowledge base, retrieved from before the call (nil: none configured).
    let knowledge: KnowledgeBase?
    let embeddings: EmbeddingsClient?

    /// catalog-api, when configured: what it holds about each target goes into the prompt, cited.
    let catalog: CatalogClient?

    public init(llm: MeteredLLM, maxTokens: Int, model: String, knowledge: KnowledgeBase? = nil, embeddings: EmbeddingsClient? = nil, catalog: CatalogClient? = nil) {
        self.catalog = catalog
        self.llm = llm
        self.maxTokens = maxTokens
        self.model = model
        self.knowledge = knowledge
        self.embeddings = embeddings
    }

    /// The plan for `request`: the model's when it is valid, else `rules` with a note saying why not.
    public func plan(_ request: RunRequest, rules: Plan, cluster: Bool, log: Logger) async -> Plan {
        // The coordinator's knowledge base (how this team runs things), cited in the prompt and the plan's notes.
        var retrieved = await knowledge?.retrieve(request.goal, budget: 600, embeddings: embeddings, redis: llm.bus.redis) ?? Retrieval()
        // What earlier runs found on these targets (which masters had findings, what failed) and what the
        // catalog holds about them, cited.
        let share = 400 / max(1, min(request.targets.count, 8))
        for target in request.targets.prefix(8) {
            let history = await ExecutionHistory.retrieve(target: target, excluding: request.runID, query: request.goal, budget: share, redis: llm.bus.redis)
            let known = await CatalogContext.retrieve(catalog: catalog, target: target, budget: share)
            retrieved = retrieved.merged(with: history, budget: 1400).merged(with: known, budget: 1400)
        }
        for problem in retrieved.problems { log.warning("\(problem)") }
        let call = LLMRequest(system: Self.system, messages: [.init(.user, Self.prompt(request, rules: rules, cluster: cluster) + (retrieved.prompt.isEmpty ? "" : "\n" + retrieved.prompt))],
                              maxTokens: max(512, maxTokens))
        var fallback = rules
        switch await llm.complete(call, runID: request.runID, account: "coordinator", priority: .normal, purpose: "plan of \(request.runID)") {
        case .done(let response, _):
            switch Self.parse(response.text, request: request, rules: rules, cluster: cluster) {
            case .success(var plan):
                log.info("the model's plan (\(plan.subtasks.count) subtasks) is used")
                if !retrieved.chunks.isEmpty { plan.notes.append("retrieved into the planner's prompt: \(retrieved.citations.joined(separator: ", "))") }
                if !retrieved.problems.isEmpty { plan.notes.append("not retrieved for the planner: \(retrieved.problems.joined(separator: "; "))") }
                return plan
            case .failure(let problem):
                log.warning("the model's plan was not used: \(problem.message)")
                fallback.notes.append("the model's plan was not used: \(problem.message); planned by the rules instead")
            }
        case .denied(let reason):
            fallback.notes.append("the model was not asked for a plan: budget denied (\(reason)); planned by the rules instead")
        case .failed(let reason):
            fallback.notes.append("the model's plan was not used: the call failed (\(reason)); planned by the rules instead")
        }
        return fallback
    }

    static let system = """
        You plan runs of Cortex, which orchestrates six domain masters over repositories and a Kubernetes cluster.
        Reply with one JSON object and nothing else:
        {"subtasks": [{"id": "<master>.<name>", "kind": "<kind>", "master": "<master>", "target": "<target>", "depends_on": ["<id>", ...], "priority": "low|normal|high|critical", "instructions": ["..."]}]}
        A subtask runs only after every subtask it depends on succeeded, and gets their outputs (a branch, advisories).
        Kinds and the master that does each: discover (inventory; a repository or the cluster), scan (security; a repository),
        analyze (security; a repository, read for the advisories the goal names), audit (security; the cluster), review (cicd; CI pipelines),
        document (development), implement (development; instructions say the change), test (testing; the test suites),
        test-branch (testing; the tests of the branch an implement subtask produced, depends on it), monitor (monitoring; reads the catalog, so after discover).
        Targets: only the run's targets as given, or "cluster" when a cluster is configured. Ids: <master>.<letters, digits, ->.
        """

    static func prompt(_ request: RunRequest, rules: Plan, cluster: Bool) -> String {
        let rulePlan = rules.subtasks.map { s in
            "- \(s.id): \(s.kind.rawValue) by \(s.master.rawValue) on \(s.target)" + (s.dependsOn.isEmpty ? "" : " after \(s.dependsOn.joined(separator: ", "))")
        }.joined(separator: "\n")
        return """
            Goal: \(request.goal)
            Targets: \(request.targets.map { "\"\($0)\"" }.joined(separator: ", "))\(cluster ? ", \"cluster\"" : "")
            \(request.implement.map { "Requested changes: \($0.joined(separator: "; "))\n" } ?? "")The rule-based plan for this goal, to improve on or keep:
            \(rulePlan)
            """
    }

    /// The model's answer as a valid plan, or why it is not one. Beyond `Plan.problem`: a model may not
    /// write where the rules would not (an `implement` subtask only when the rule plan has one), asks for one
    /// change per `implement` (one branch to test), tests only branches an `implement` it depends on makes,
    /// never marks work `critical` (that priority, which may draw on the emergency reserve, comes only from a
    /// critical finding's handoff), and leaves the `handoff` names to handoffs.
    public static func parse(_ text: String, request: RunRequest, rules: Plan, cluster: Bool) -> Result<Plan, CortexError> {
        // The object may come inside a code fence or after a sentence: from the first '{' to the last '}'.
        guard let open = text.firstIndex(of: "{"), let close = text.lastIndex(of: "}"), open < close else {
            return .failure(CortexError(.invalidInput, "the answer holds no JSON object (\(text.prefix(80)))"))
        }
        let json: JSONValue
        do { json = try JSONText.parse(Array(text[open...close].utf8)) } catch {
            return .failure(CortexError(.invalidInput, "the answer is not valid JSON: \(error)"))
        }
        guard let items = json["subtasks"]?.arrayValue else { return .failure(CortexError(.invalidInput, "the answer has no \"subtasks\" array")) }
        let advisories = RulePlanner.advisoryIDs(in: request.goal)
        var subtasks: [Subtask] = []
        for (i, item) in items.enumerated() {
            guard let id = item["id"]?.stringValue else { return .failure(CortexError(.invalidInput, "subtask \(i + 1) has no id")) }
            guard let masterName = item["master"]?.stringValue, let master = MasterRole(rawValue: masterName) else {
                return .failure(CortexError(.invalidInput, "subtask \(id.prefix(60)) names an unknown master '\((item["master"]?.stringValue ?? "none").prefix(60))' (masters: \(MasterRole.allCases.map(\.rawValue).joined(separator: ", ")))"))
            }
            guard let kindName = item["kind"]?.stringValue, let kind = SubtaskKind(rawValue: kindName) else {
                return .failure(CortexError(.invalidInput, "subtask \(id.prefix(60)) has an unknown kind '\((item["kind"]?.stringValue ?? "none").prefix(60))' (kinds: \(SubtaskKind.allCases.map(\.rawValue).joined(separator: ", ")))"))
            }
            guard let target = item["target"]?.stringValue else { return .failure(CortexError(.invalidInput, "subtask \(id.prefix(60)) has no target")) }
            let priorityName = item["priority"]?.stringValue ?? "normal"
            guard let asked = TaskPriority(rawValue: priorityName) else {
                return .failure(CortexError(.invalidInput, "subtask \(id.prefix(60)) has an unknown priority '\(priorityName.prefix(20))'"))
            }
            let priority: TaskPriority = asked == .critical ? .high : asked
            guard !(id.split(separator: ".").last ?? "").hasPrefix("handoff") else {
                return .failure(CortexError(.invalidInput, "subtask \(id.prefix(60)): names starting with 'handoff' are kept for handoffs"))
            }
            let dependsOn = (item["depends_on"]?.arrayValue ?? []).compactMap(\.stringValue)
            let instructions = (item["instructions"]?.arrayValue ?? []).compactMap(\.stringValue).map { String($0.prefix(4000)) }
            // A document subtask makes the changes the operator asked for, and only those.
            subtasks.append(Subtask(id: id, kind: kind, master: master, target: target, dependsOn: dependsOn, priority: priority,
                                    instructions: kind == .document ? request.implement : (instructions.isEmpty ? nil : instructions),
                                    advisories: (kind == .analyze || kind == .implement) && !advisories.isEmpty ? advisories : nil))
        }
        guard subtasks.count <= 200 else { return .failure(CortexError(.invalidInput, "the plan has \(subtasks.count) subtasks (at most 200)")) }
        let plan = Plan(planner: "model", rule: rules.rule, subtasks: subtasks)
        if let problem = plan.problem(targets: request.targets, cluster: cluster) { return .failure(CortexError(.invalidInput, problem)) }
        let mayImplement = rules.subtasks.contains { $0.kind == .implement }
        for s in subtasks {
            let deps = s.dependsOn.compactMap { plan.subtask($0) }
            switch s.kind {
            case .implement:
                guard mayImplement else {
                    return .failure(CortexError(.invalidInput, "subtask \(s.id) implements a change, but the goal '\(request.goal.prefix(80))' asks for none (the rule \(rules.rule) plans no implement)"))
                }
                let fromAnalysis = !(s.advisories ?? []).isEmpty && deps.contains { $0.master == .security && ($0.kind == .analyze || $0.kind == .scan) }
                guard (s.instructions ?? []).count == 1 || ((s.instructions ?? []).isEmpty && fromAnalysis) else {
                    return .failure(CortexError(.invalidInput, "subtask \(s.id) must make one change: one instruction, or none after a security analysis of the goal's advisories"))
                }
            case .testBranch:
                guard deps.contains(where: { $0.kind == .implement }) else {
                    return .failure(CortexError(.invalidInput, "subtask \(s.id) tests a branch, but depends on no implement subtask that makes one"))
                }
            default: break
            }
        }
        return .success(plan)
    }
}
