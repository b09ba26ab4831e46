import CortexCatalog
import CortexCore
import CortexSecurity
import Foundation

/// development: one requested change made by the implementation agent (one item per task). Its records
/// are summarized with the documentation survey's, in the survey's report section "Implementation tasks"
/// (a development task's report has both).
public struct ImplementationSkill: WorkSkill {
    public init() {}

    /// One implementation task: the agent works in a clone on branch `cortex/dev/<run>/<item>`; a
    /// change is committed (tests run if the agent did not), reviewed, and published like a fix branch
    /// (fetched into a local target; pushed with a pull request when GitHub is configured). Without a
    /// model the task is skipped and says so.
    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        let log = context.logger
        let instruction = item.instruction ?? ""
        var record: SkillRecord = ["kind": "implementation", "instruction": .string(instruction), "item": .string(item.id)]
        guard let llm = context.llm else {
            record["status"] = "skipped"
            record["summary"] = "skipped: no model configured (CORTEX_LLM_PROVIDER); this task would have run"
            return .endedShort(.skipped, reason: "implementation skipped (no model configured)", records: [record], examined: 0)
        }
        let source = try await context.checkout(item)
        let branch = try await AgentBranch.clone(source, for: item, under: context.process.coordinationDirectory)
        let workspace = AgentWorkspace(root: branch.work, testRunner: try context.testRunner())
        let taskHash = RepositoryFiles.hash(instruction + "|" + item.target)
        let (briefing, citations, problems) = await Self.briefing(instruction: instruction, workspace: workspace, taskHash: taskHash, target: item.target, runID: item.runID, context: context)
        if !citations.isEmpty { record["citations"] = .array(citations.map(JSONValue.string)) }
        if !problems.isEmpty { record["retrieval_problems"] = .array(problems.map(JSONValue.string)) }
        let agent = ImplementationAgent(llm: llm, runID: item.runID, account: "development:workers", priority: item.priority ?? .normal,
                                        maxTokens: max(256, context.llmMaxTokens))
        var result = await agent.run(task: instruction, context: briefing, workspace: workspace, log: log)
        // A ledger this worker's Redis user may not write (NOPERM) is a deployment error, not a failed attempt.
        if let reason = result.reason, RedisError.mentionsPermissionDenial(reason) { throw RedisError.server(reason) }

        let changed = try await branch.changes()
        var notPublished: String?
        if !changed.isEmpty {
            if !result.testsRan {
                let r = try await BlockingExecutor.offload("cortex-test-run") { workspace.runTests() }
                (result.testsRan, result.testsPassed, result.testSummary) = (true, r.passed, r.summary)
            }
            let subject = String((result.summary.split(separator: "\n").first.map(String.init) ?? instruction).prefix(72))
            let (commit, patch) = try await branch.commit(message:
                "\(subject)\n\nTask: \(instruction)\n\n\(result.summary)\n\nTests: \(result.testSummary ?? "not run")\nMade by Cortex development-master in run \(item.runID).")
            record["commit"] = .string(commit)
            record["branch"] = .string(branch.name)
            record["patch"] = .string(patch)
            record["review"] = .array(ChangeReview.review(patch).map(JSONValue.of))
            // The model's review of the same diff, when there is budget for it (metered like every call), with
            // the team's conventions and what earlier runs found retrieved first, cited.
            let changedFiles = patch.split(separator: "\n").filter { $0.hasPrefix("+++ b/") }.map { String($0.dropFirst(6)) }
            let reviewContext = await Self.retrieve("\(instruction)\n\(changedFiles.joined(separator: " "))", target: item.target, runID: item.runID,
                                                    budget: 800, context: context)
            if !reviewContext.chunks.isEmpty { record["review_citations"] = .array(reviewContext.citations.map(JSONValue.string)) }
            if !reviewContext.problems.isEmpty { record["review_retrieval_problems"] = .array(reviewContext.problems.map(JSONValue.string)) }
            let reviewRequest = LLMRequest(system: "You review code changes. Be specific: file, line, problem, fix. At most five comments; say LGTM if there is nothing.",
                                           messages: [.init(.user, "Task: \(instruction)\n\nDiff:\n\(patch.prefix(12_000))"
                                                            + (reviewContext.chunks.isEmpty ? "" : "\n\n" + reviewContext.prompt))], maxTokens: max(256, context.llmMaxTokens))
            switch await llm.complete(reviewRequest, runID: item.runID, account: "development:workers", priority: item.priority ?? .normal, purpose: "review of \(item.id)") {
            case .done(let response, _): record["model_review"] = .string(response.text)
            case .denied(let reason): record["model_review"] = .string("not reviewed by the model: budget denied (\(reason))")
            case .failed(let reason): record["model_review"] = .string("not reviewed by the model: \(reason)")
            }
            do {
                let published = try await branch.publish(with: context.publisher, target: item.target, title: "cortex: \(subject)",
                                                         body: "Task: \(instruction)\n\n\(result.summary)\n\nTests: \(result.testSummary ?? "not run")")
                record["location"] = .string(published.location)
                if let pr = published.pullRequest { record["pull_request"] = .string(pr) }
                if !published.notes.isEmpty { record["notes"] = .array(published.notes.map(JSONValue.string)) }
            } catch {
                record["notes"] = .array([.string("not published: \(error)")])
                notPublished = "\(error)"
            }
        } else {
            branch.discard()
        }
        record["status"] = .string(result.status)
        record["summary"] = .string(result.summary)
        record["result"] = JSONValue.of(result)
        await Self.recordAttempt(result, runID: item.runID, taskHash: taskHash, context: context)
        log.info("implementation \(item.id): \(result.status) in \(result.steps) steps, \(result.tokens) tokens")
        // Only a change the agent finished, whose tests (when run) passed, is a succeeded implementation.
        switch result.status {
        case "finished" where notPublished != nil:
            // The change exists only in this worker's copy (kept): nobody downstream can see it.
            return .endedShort(.partial, reason: "implementation made, but not published: \(notPublished ?? "")", records: [record], examined: 1)
        case "finished" where result.testsPassed == false:
            return .endedShort(.partial, reason: "implementation made, but its tests failed: \(result.testSummary ?? "")", records: [record], examined: 1)
        case "finished": return .succeeded([record], examined: 1)
        case "budget":
            return .endedShort(.denied, reason: "implementation stopped by its budget after \(result.steps) step\(result.steps == 1 ? "" : "s"): \(result.reason ?? "denied")",
                               records: [record], examined: 1)
        case "step-limit":
            return .endedShort(.failed, reason: "implementation hit its step limit (\(result.steps) steps) without finishing", records: [record], examined: 1)
        case "ended":
            return .endedShort(.failed, reason: "implementation ended without the agent calling finish", records: [record], examined: 1)
        default:
            return .endedShort(.failed, reason: "implementation failed: \(result.reason ?? result.summary)", records: [record], examined: 1)
        }
    }

    /// The documentation survey's summary, which reports the implementation records after the documentation.
    public func summarize(_ records: [SkillRecord]) -> SkillSummary { DocumentationSurvey().summarize(records) }

    /// What the agent gets before acting: the files the task names, the repository's catalog assets,
    /// earlier attempts at the same task, and the development knowledge base's best sections (cited);
    /// with the citations and what retrieval could not use, for the record.
    static func briefing(instruction: String, workspace: AgentWorkspace, taskHash: String, target: String, runID: String, context: SkillContext) async -> (text: String, citations: [String], problems: [String]) {
        var parts: [String] = []
        let files = (try? Git.lsFiles(in: workspace.root)) ?? []
        let named = files.filter { f in instruction.contains(f) || instruction.contains(PathText.lastComponent(f)) && PathText.lastComponent(f).count > 3 }
        for f in named.prefix(5) {
            if let text = try? workspace.readFile(f, start: nil, end: 200) { parts.append("File \(f) (first 200 lines):\n\(text)") }
        }
        parts.append("Repository files (\(files.count)):\n" + files.prefix(200).joined(separator: "\n"))
        if let catalog = context.catalog {
            let repo = RepositoryCheckout.name(of: target)
            if let assets = try? await catalog.assets(filter: AssetFilter(label: "cortex.io/repository=\(repo)")), !assets.isEmpty {
                parts.append("Catalog assets of this repository:\n" + assets.prefix(30).map { "\($0.type.rawValue) \($0.id) (\($0.health.rawValue))" }.joined(separator: "\n"))
            }
        }
        if let earlier = try? await context.process.redis.lrange(CortexNames.developmentAttempts(taskHash), start: 0, stop: 4), !earlier.isEmpty {
            parts.append("Earlier attempts at this task (newest first):\n" + earlier.joined(separator: "\n"))
        }
        // The development knowledge base (conventions, runbooks) and earlier runs on the target, cited.
        let retrieved = await retrieve(instruction, target: target, runID: runID, budget: 1200, context: context)
        if !retrieved.chunks.isEmpty { parts.append(retrieved.prompt) }
        return (parts.joined(separator: "\n\n"), retrieved.citations, retrieved.problems)
    }

    /// The development knowledge base's best sections for `query` and what earlier runs found on the
    /// target (history: a quarter of the budget at most), for the agent's briefing and the model review.
    static func retrieve(_ query: String, target: String, runID: String, budget: Int, context: SkillContext) async -> Retrieval {
        let history = await ExecutionHistory.retrieve(target: target, excluding: runID, query: query, budget: budget / 4, redis: context.process.redis)
        let embeddings: EmbeddingsClient?
        do { embeddings = try EmbeddingsClient.configured(context.settings) } catch {
            context.logger.warning("embeddings not configured properly (BM25 alone ranks): \(error)")
            embeddings = nil
        }
        let retrieved = await KnowledgeBase.configured(context.settings, agent: MasterRole.development.rawValue)
            .retrieve(query, budget: budget - budget / 4, embeddings: embeddings, redis: context.process.redis).merged(with: history, budget: budget)
        for problem in retrieved.problems { context.logger.warning("\(problem)") }
        return retrieved
    }

    /// The attempt, kept (the last five per task) for the next attempt at the same task.
    static func recordAttempt(_ result: AgentResult, runID: String, taskHash: String, context: SkillContext) async {
        let attempt: JSONValue = ["run": .string(runID), "status": .string(result.status), "summary": .string(String(result.summary.prefix(500))),
                                  "tests": .string(result.testSummary ?? "not run")]
        _ = try? await context.process.redis.pipeline([
            .lpush(CortexNames.developmentAttempts(taskHash), attempt.description), .ltrim(CortexNames.developmentAttempts(taskHash), start: 0, stop: 4),
            .expire(CortexNames.developmentAttempts(taskHash), seconds: context.process.retentionSeconds),
        ])
    }
}
