import CortexCatalog
import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// The development master's implementation agent against local servers speaking the Anthropic Messages
/// and OpenAI chat-completions wire formats, each playing a scripted model that reads a file, applies a
/// diff, runs the tests and finishes.
@Suite(.serialized) struct DevelopmentAgentTests {
    static let repoFiles: [String: String] = [
        "calc.py": "def add(a, b):\n    return a - b\n",
        "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        "pytest.ini": "[pytest]\npythonpath = .\n",
    ]
    static let fix = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
    static let steps: [(name: String, input: JSONValue)] = [
        ("read_file", ["path": "calc.py"]), ("apply_diff", ["diff": .string(fix)]), ("run_tests", [:]), ("finish", ["summary": "add() adds instead of subtracting"]),
    ]

    static func anthropicReply(_ i: Int, usage: (Int, Int) = (100, 50)) -> FakeLLMServer.Reply {
        let step = steps[i]
        return .init(status: 200, body: JSONValue.object([
            "id": .string("msg_\(i)"), "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "tool_use",
            "content": [["type": "text", "text": .string("Step \(i + 1).")], ["type": "tool_use", "id": .string("toolu_\(i)"), "name": .string(step.name), "input": step.input]],
            "usage": ["input_tokens": .number(Double(usage.0)), "output_tokens": .number(Double(usage.1))],
        ]).description)
    }

    static func openAIReply(_ i: Int) -> FakeLLMServer.Reply {
        let step = steps[i]
        return .init(status: 200, body: JSONValue.object([
            "id": .string("chatcmpl-\(i)"), "object": "chat.completion", "model": "gpt-test",
            "choices": [["index": 0, "finish_reason": "tool_calls", "message": ["role": "assistant", "content": .null, "tool_calls": [
                ["id": .string("call_\(i)"), "type": "function", "function": ["name": .string(step.name), "arguments": .string(step.input.description)]],
            ]]]],
            "usage": ["prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150],
        ]).description)
    }

    static func repository() throws -> URL {
        let root = try TestRunnerTests.write(repoFiles)
        return root
    }

    struct Outcome {
        var state: RunState
        var report: String
        var llm: FakeLLMServer
        var ledger: [BudgetLedger.Account]
        var events: [Envelope]
    }

    static func run(provider: String, replies: [FakeLLMServer.Reply], environment extra: [String: String] = [:], target: URL) async throws -> Outcome {
        let llm = FakeLLMServer()
        try await llm.start()
        llm.script.withLock { $0 = replies }
        let work = try temporaryDirectory("cortex-dev")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": provider, "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": provider == "anthropic" ? "claude-test" : "gpt-test",
            "CORTEX_LLM_API_KEY": "sk-test-dev-agent", "CORTEX_LLM_MAX_TOKENS": "256", "PATH": TestRunnerTests.path, "CORTEX_TEST_TIMEOUT": "120",
            // A decision normally comes in milliseconds; a loaded CI machine must not turn a late one into a denial.
            "CORTEX_BUDGET_REQUEST_TIMEOUT": "60",
        ].merging(extra) { $1 })
        try suite.startAll(workers: 2)
        let bus = OrchestrationRunTests.bus(suite)
        let client = RunClient(bus: bus)
        let request = RunRequest(goal: "development", targets: [target.path], requestedBy: "test", implement: ["Fix add() in calc.py: it subtracts"])
        let state = try await client.follow(runID: try await client.submit(request), timeout: .seconds(120)) { _ in }
        let ledger = try await BudgetLedger(redis: bus.redis, runID: request.runID).accounts()
        // The run's messages from the history: the last ones (a denial, a late budget decision) can come
        // after `follow` stopped listening.
        let events = try await eventHistory(bus.redis)
        await suite.stop()
        llm.stop()
        let report = try String(contentsOfFile: try #require(state.reportDir) + "/masters/development-0.md", encoding: .utf8)
        return Outcome(state: state, report: report, llm: llm, ledger: ledger, events: events)
    }

    static func checkBranch(_ target: URL, runID: String) throws {
        let branch = "cortex/dev/\(runID)/impl0"
        let diff = try SecurityMasterTests.git(["diff", "main", branch], in: target)
        let changed = diff.split(separator: "\n").filter { ($0.hasPrefix("+") || $0.hasPrefix("-")) && !$0.hasPrefix("+++") && !$0.hasPrefix("---") }
        #expect(changed == ["-    return a - b", "+    return a + b"], "\(diff)")
        #expect(try SecurityMasterTests.git(["log", "-1", "--format=%an", branch], in: target) == "Cortex development-master")
        // main is untouched; the working copy of the operator too.
        #expect(try String(contentsOf: target.appendingPathComponent("calc.py"), encoding: .utf8).contains("a - b"))
    }

    @Test func anthropicScriptedModelReadsAppliesTestsAndFinishes() async throws {
        let target = try Self.repository()
        let o = try await Self.run(provider: "anthropic", replies: (0..<4).map { Self.anthropicReply($0) }, target: target)
        #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")")
        try Self.checkBranch(target, runID: o.state.runID)
        #expect(o.report.contains("**finished**: add() adds instead of subtracting"), "\(o.report)")
        #expect(o.report.contains("4 steps, 600 tokens; tests: pytest: 1 passed, 0 failed (pass)"), "\(o.report)")
        for tool in ["read_file", "apply_diff", "run_tests", "finish"] { #expect(o.report.contains("| \(tool) |"), "transcript lacks \(tool)") }
        // The model reviewed the diff (a fifth call, the server's default answer).
        #expect(o.report.contains("Model review:\n\n> \(FakeLLMServer.anthropicText)"), "\(o.report)")
        // The ledger: four agent calls and the review, 150 tokens each, on the development workers' account.
        #expect(o.ledger.first { $0.name == "development:workers" }?.used == 750, "\(o.ledger)")
        // The wire format: the second request answers the first tool call with a tool_result block holding the file.
        let agentCalls = o.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) == 6 }
        #expect(agentCalls.count == 4)
        let answer = try #require(agentCalls.dropFirst().first?.body["messages"]?.arrayValue?.last?["content"]?[0])
        #expect(answer["type"] == "tool_result" && answer["tool_use_id"] == "toolu_0" && (answer["content"]?.stringValue ?? "").contains("1: def add(a, b):"), "\(answer)")
        #expect(agentCalls.first?.body["messages"]?[0]?["content"]?.stringValue?.contains("Fix add() in calc.py") == true)
    }

    /// Retrieval before acting: with a knowledge base configured, the agent's first prompt holds the best
    /// sections of the development knowledge base under their citations, and the report names them.
    @Test func theAgentsPromptCarriesTheRetrievedSectionsAndTheirCitations() async throws {
        let target = try Self.repository()
        let knowledge = SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/knowledge").path
        let o = try await Self.run(provider: "anthropic", replies: (0..<4).map { Self.anthropicReply($0) }, environment: ["CORTEX_KNOWLEDGE_DIR": knowledge], target: target)
        #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")")
        let agentCalls = o.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) == 6 }
        let prompt = agentCalls.first?.body["messages"]?[0]?["content"]?.stringValue ?? ""
        #expect(prompt.contains("[knowledge/development/calc-conventions.md#arithmetic-functions]\n## Arithmetic functions\n\nadd() in calc.py must return the sum of its two arguments"), "\(prompt)")
        // The other agents' knowledge stays out of the development agent's prompt.
        #expect(!prompt.contains("knowledge/monitoring/") && !prompt.contains("knowledge/security/"))
        #expect(o.report.contains("Retrieved into the briefing: `knowledge/development/calc-conventions.md#arithmetic-functions`"), "\(o.report)")
        // The model's review of the diff retrieves too: the same conventions, cited in its prompt.
        let review = o.llm.recorded.value.first { ($0.body["system"]?.stringValue ?? "").hasPrefix("You review code changes") }
        let reviewPrompt = review?.body["messages"]?[0]?["content"]?.stringValue ?? ""
        #expect(reviewPrompt.contains("[knowledge/development/calc-conventions.md#arithmetic-functions]"), "\(reviewPrompt.suffix(1500))")
    }

    @Test func openAICompatibleScriptedModelDoesTheSame() async throws {
        let target = try Self.repository()
        let o = try await Self.run(provider: "openai", replies: (0..<4).map { Self.openAIReply($0) }, target: target)
        #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")")
        try Self.checkBranch(target, runID: o.state.runID)
        #expect(o.report.contains("4 steps, 600 tokens; tests: pytest: 1 passed, 0 failed (pass)"), "\(o.report)")
        let agentCalls = o.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) == 6 }
        let messages = try #require(agentCalls.dropFirst().first?.body["messages"]?.arrayValue)
        // chat-completions: the assistant's tool_calls, then a `tool` message answering call_0.
        #expect(messages.contains { $0["role"] == "assistant" && $0["tool_calls"]?[0]?["function"]?["name"] == "read_file" })
        #expect(messages.contains { $0["role"] == "tool" && $0["tool_call_id"] == "call_0" && ($0["content"]?.stringValue ?? "").contains("return a - b") })
        #expect(o.ledger.first { $0.name == "development:workers" }?.used == 750)
    }

    @Test func budgetExhaustedMidLoopEndsCleanlyAfterABudgetRequest() async throws {
        let target = try Self.repository()
        // The first call reports 1,900 tokens against a run cap of 2,000: the second cannot be reserved.
        let o = try await Self.run(provider: "anthropic", replies: [Self.anthropicReply(0, usage: (1_800, 100))],
                                   environment: ["CORTEX_BUDGET_TOTAL": "2600", "CORTEX_BUDGET_RESERVE": "600"], target: target)
        // Stopped by its budget is not succeeded: the item is denied, the report and the run partial, with why.
        #expect(o.state.status == "partial", "\(o.state.reason ?? "")")
        #expect((o.state.reason ?? "").hasPrefix("implementation stopped by its budget after 1 step:"), "\(o.state.reason ?? "")")
        #expect(o.events.contains { $0.type == .TASK_FAILED && $0.data["status"] == "denied" }, "\(o.events.map(\.type))")
        let requests = o.events.filter { $0.type == .BUDGET_REQUEST && $0.data["account"] == "development:workers" }
        let decisions = o.events.filter { $0.type == .BUDGET_DECISION }
        #expect(!requests.isEmpty && decisions.contains { $0.data["decision"] == "denied" }, "\(o.events.map(\.type))")
        #expect(o.report.contains("**budget**: stopped: no budget for step 2"), "\(o.report)")
        #expect(o.report.contains("| 2 | budget |"), "\(o.report)")
        // Nothing was changed (the model only read a file), so no branch.
        #expect((try? SecurityMasterTests.git(["rev-parse", "--verify", "cortex/dev/\(o.state.runID)/impl0"], in: target)) == nil)
    }

    /// Not knowing whether the agent changed anything is not "no change": when `git status` fails after the
    /// agent worked, the item fails with the reason and the working copy is kept for a person to look at.
    @Test func anUnreadableWorkingCopyFailsTheItemAndIsKept() async throws {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        llm.script.withLock { $0 = (0..<4).map { Self.anthropicReply($0) } }
        let work = try temporaryDirectory("cortex-dev-corrupt")
        let dev = work.appendingPathComponent("coordination/dev")
        // Once the agent's diff is in the working copy, its git index is destroyed (as a full disk or a
        // crashed git would leave it).
        let corrupted = Locked<String?>(nil)
        llm.beforeReply.withLock {
            $0 = {
                guard corrupted.value == nil, let copies = try? FileManager.default.contentsOfDirectory(atPath: dev.path) else { return }
                for copy in copies {
                    let root = dev.appendingPathComponent(copy)
                    guard let text = try? String(contentsOf: root.appendingPathComponent("calc.py"), encoding: .utf8), text.contains("a + b") else { continue }
                    try? Data("not an index".utf8).write(to: root.appendingPathComponent(".git/index"))
                    corrupted.withLock { $0 = root.path }
                }
            }
        }
        let target = try Self.repository()
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test", "CORTEX_LLM_API_KEY": "sk-test-corrupt",
            "CORTEX_LLM_MAX_TOKENS": "256", "PATH": TestRunnerTests.path, "CORTEX_TEST_TIMEOUT": "120",
        ])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "development", targets: [target.path], requestedBy: "test",
                                                                                        implement: ["Fix add() in calc.py: it subtracts"])),
                                            timeout: .seconds(120)) { _ in }
        await suite.stop()
        let copy = try #require(corrupted.value, "the agent's diff never reached a working copy")
        #expect(state.status == "partial", "\(state.reason ?? "")")
        #expect((state.reason ?? "").contains("could not read the agent's changes in \(copy) (kept for inspection)"), "\(state.reason ?? "")")
        #expect(FileManager.default.fileExists(atPath: copy + "/calc.py"), "the working copy was removed")
        // Nothing was published from a copy nobody could read.
        #expect((try? SecurityMasterTests.git(["rev-parse", "--verify", "cortex/dev/\(state.runID)/impl0"], in: target)) == nil)
    }

    /// Without a model the implementation is skipped, and that is not a success: the item is `skipped`, the
    /// development report and the run `partial` with the reason, and `cortexctl run --implement` says so in
    /// its last line and exits 3 (docs/outcomes.md).
    @Test func withoutAModelTheTaskIsSkippedAndTheRunIsPartial() async throws {
        let target = try Self.repository()
        let work = try temporaryDirectory("cortex-dev-nomodel")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        try suite.startAll(workers: 2)
        let cli = try await Subprocess.runOffloaded(binDirectory.appendingPathComponent("cortexctl").path,
                                                    ["run", "--redis", suite.redis.url, "--goal", "development", "--target", target.path,
                                                     "--implement", "Fix add() in calc.py", "--timeout", "90"], timeout: .seconds(120))
        await suite.stop()
        let lines = cli.stdoutText.split(separator: "\n").map(String.init)
        #expect(cli.status == ControlCommands.ExitStatus.partial.rawValue, "exit \(cli.status): \(cli.stdoutText) \(cli.stderrText)")
        #expect(lines.last == "partial: implementation skipped (no model configured) (development-master)", "\(cli.stdoutText)")
        #expect(cli.stdoutText.contains("Reason: implementation skipped (no model configured) (development-master)"), "\(cli.stdoutText)")
        let dir = try #require(lines.first { $0.hasPrefix("Report: ") }.map { String($0.dropFirst(8).dropLast(ReportWriter.summaryMarkdown.count + 1)) })
        let report = try String(contentsOfFile: dir + "/masters/development-0.md", encoding: .utf8)
        #expect(report.contains("#### Fix add() in calc.py") && report.contains("**skipped**: skipped: no model configured (CORTEX_LLM_PROVIDER); this task would have run"), "\(report)")
        #expect(report.contains("Task `") && report.contains("` — partial — "), "\(report)")
        #expect(report.contains("### Documentation"))
        let json = try WireJSON.decode(MasterReport.self, from: String(contentsOfFile: dir + "/masters/development-0.json", encoding: .utf8))
        #expect(json.status == .partial && json.reason == "implementation skipped (no model configured)", "\(json.status) \(json.reason ?? "")")
        #expect(json.items.contains { $0.status == .skipped } && json.items.contains { $0.status == .succeeded })
    }

    /// Documentation without a model: the service inventory and a runbook per workload, from the catalog.
    @Test func documentationFromTheCatalogWithoutAModel() async throws {
        let work = try temporaryDirectory("cortex-docs")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let (_, port) = try await suite.startCatalog()
        let catalog = CatalogClient(baseURL: "http://127.0.0.1:\(port)", token: nil)
        _ = try await catalog.upsert([
            AssetInput(id: "deployment:shop/web", type: .DEPLOYMENT, name: "web", namespace: "shop", owner: "team-storefront",
                       health: Health(status: .DEGRADED, reason: "2 of 3 replicas ready")),
            AssetInput(id: "statefulset:shop/db", type: .STATEFULSET, name: "db", namespace: "shop", owner: "team-data", health: Health(status: .OK)),
        ])
        let target = try makeRepository()
        // What an earlier security scan registered: the repository and a package it depends on.
        _ = try await catalog.upsert([AssetInput(id: "repository:\(target.path)", type: .REPOSITORY, name: target.lastPathComponent),
                                      AssetInput(id: "package:PyPI/flask@3.0.0", type: .PACKAGE, name: "flask")],
                                     relations: [RelationInput(from: "repository:\(target.path)", to: "package:PyPI/flask@3.0.0", kind: .DEPENDS_ON)])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "development", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let files = try #require(state.reportDir) + "/masters/development-0-files"
        let services = try String(contentsOfFile: files + "/SERVICES.md", encoding: .utf8)
        #expect(services.contains("| web | Deployment | shop | team-storefront | DEGRADED (2 of 3 replicas ready) | ShopWebUnavailable, ShopWebRestarting, ShopWebCPUSaturated, ShopWebMemorySaturated | runbook-shop-web.md |"), "\(services)")
        #expect(services.contains("## Dependencies of \(target.lastPathComponent)") && services.contains("- `package:PyPI/flask@3.0.0`"), "\(services)")
        let runbook = try String(contentsOfFile: files + "/runbook-shop-db.md", encoding: .utf8)
        #expect(runbook.contains("## ShopDbUnavailable (critical)") && runbook.contains("kubectl -n shop rollout undo statefulset/db") && runbook.contains("Owner: team-data"))
    }

    /// A critical CVE found by the security master reaches the development master as a task of the same run.
    @Test func aSecurityHandoffBecomesADevelopmentTask() async throws {
        let work = try temporaryDirectory("cortex-handoff")
        let target = try TestRunnerTests.write(["pom.xml": """
            <project><modelVersion>4.0.0</modelVersion><dependencies><dependency>
            <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.14.1</version>
            </dependency></dependencies></project>
            """])
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_OSV_DB": SecurityMasterTests.fixtures.path, "CORTEX_SECURITY_FIX_BRANCHES": "false"])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "security,development", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(60)) { _ in }
        await suite.stop()
        // Partial, with both reasons: the change was skipped (no model), so the test of its branch (the handoff to
        // the testing master, which is up) was not run — reported, not dropped.
        #expect(state.status == "partial", "\(state.reason ?? "")")
        let reason = state.reason ?? ""
        #expect(reason.contains("implementation skipped (no model configured) (development-master)"), "\(reason)")
        #expect(reason.contains("not run: testing.handoff2 (test-branch on \(target.lastPathComponent)): depends on development.handoff1 (development-master), which ended skipped"), "\(reason)")
        let dir = try #require(state.reportDir)
        let summary = try String(contentsOfFile: dir + "/" + ReportWriter.summaryMarkdown, encoding: .utf8)
        #expect(summary.contains("| `development.handoff1` | implement | development-master |") && summary.contains("security_0 --> s_development_handoff1"), "\(summary)")
        let report = try String(contentsOfFile: dir + "/masters/development-handoff1.md", encoding: .utf8)
        #expect(report.contains("#### Found 1 critical CVE in \(target.lastPathComponent), need dev input: org.apache.logging.log4j:log4j-core 2.14.1 (CVE-2021-44228). Advisories: GHSA-jfh8-c2jp-5v3q"), "\(report)")
        #expect(report.contains("skipped: no model configured"))
        // Only the implementation item: no documentation survey for a handoff task.
        #expect(!report.contains(".handoff1.0 |"), "\(report)")
    }

    /// The emergency reserve as designed: the handoff of a critical CVE is a critical task, its priority
    /// reaches every model call of the fix, and a call past the development workers' cap is granted from
    /// the reserve; the development master's own normal-priority call is refused the reserve.
    @Test func aCriticalFixDrawsOnTheReserveANormalCallCannot() async throws {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        let work = try temporaryDirectory("cortex-reserve")
        let target = try TestRunnerTests.write(["pom.xml": """
            <project><modelVersion>4.0.0</modelVersion><dependencies><dependency>
            <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.14.1</version>
            </dependency></dependencies></project>
            """])
        // Every agent's cap is (almost) nothing and nobody has unused budget to lend: only the reserve can pay.
        let budgets = BudgetPlan.agentOrder.map { $0 == "development" ? "development=0+50" : "\($0)=0+0" }.joined(separator: ",")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_OSV_DB": SecurityMasterTests.fixtures.path, "CORTEX_SECURITY_FIX_BRANCHES": "false",
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test", "CORTEX_LLM_API_KEY": "sk-test-reserve",
            "CORTEX_LLM_MAX_TOKENS": "256", "CORTEX_BUDGETS": budgets, "CORTEX_BUDGET_TOTAL": "60000", "CORTEX_BUDGET_RESERVE": "30000",
            "CORTEX_BUDGET_REQUEST_TIMEOUT": "60",
        ])
        try suite.startAll(workers: 2)
        let bus = OrchestrationRunTests.bus(suite)
        let client = RunClient(bus: bus)
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "security,development", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(120)) { _ in }
        let coordinatorLog = suite.supervisor.all.first { $0.name.hasPrefix("coordinator") }.map { $0.output() } ?? ""
        let seen = try await eventHistory(bus.redis)  // complete, unlike what `follow` relayed
        await suite.stop()
        // The handoff task carries the handoff's priority.
        let tasks = try WireJSON.decode(SummaryTasks.self, from: String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)).tasks
        let handoff = try #require(tasks.first { $0.id.hasSuffix(".development.handoff1") }, "\(tasks.map(\.id))")
        #expect(handoff.priority == .critical)
        // The fix's first call asked as critical work and was granted from the reserve.
        let critical = try #require(seen.first { $0.type == .BUDGET_REQUEST && $0.data["account"] == "development:workers" }, "\(seen.map(\.type))")
        #expect(critical.data["priority"] == "critical")
        let grant = try #require(seen.first { $0.type == .BUDGET_DECISION && $0.data["request_id"] == critical.data["request_id"] })
        #expect(grant.data["decision"] == "granted", "\(grant.data)")
        let sources = grant.data["sources"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(sources.contains { $0.hasPrefix("reserve:") }, "\(sources)")
        #expect((grant.string("reason") ?? "").hasSuffix("for critical work"), "\(grant.data)")
        // The development master's documentation overview is normal work: refused the reserve.
        let normal = try #require(seen.first { $0.type == .BUDGET_REQUEST && $0.data["account"] == "development" && $0.data["priority"] == "normal" },
                                  "\(seen.filter { $0.type == .BUDGET_REQUEST }.map(\.data))")
        let refusal = try #require(seen.first { $0.type == .BUDGET_DECISION && $0.data["request_id"] == normal.data["request_id"] })
        #expect(refusal.data["decision"] == "denied" && (refusal.string("reason") ?? "").contains("the emergency reserve is kept for high or critical work (this is normal)"), "\(refusal.data)")
        // The broker's log line names the priority.
        let logged = coordinatorLog.split(separator: "\n").first { $0.contains("budget request of development:workers") && $0.contains("(critical) granted") }
        #expect(logged != nil, "\(coordinatorLog.suffix(3000))")
        print("broker: \(logged ?? "")")
    }

    struct SummaryTasks: Decodable { var tasks: [TaskSpec] }

    /// A handoff the coordinator cannot queue (Redis refuses the write: here out of memory) fails that
    /// subtask with the reason at once; the run ends partial instead of waiting for a report that cannot come.
    @Test func aHandoffThatCannotBeQueuedFailsItsSubtaskInsteadOfWaiting() async throws {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        // The model holds every call until the test lets go: the run stays in phase 3 meanwhile.
        let gate = Locked(false)
        llm.beforeReply.withLock { $0 = { while !gate.value { try? await Task.sleep(for: .milliseconds(20)) } } }
        let target = try Self.repository()
        let work = try temporaryDirectory("cortex-handoff-refused")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test", "CORTEX_LLM_API_KEY": "sk-test-refused",
            "CORTEX_LLM_MAX_TOKENS": "256",
        ])
        try suite.startAll(workers: 2)
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
        defer { redis.close() }
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let request = RunRequest(goal: "development", targets: [target.path], requestedBy: "test", implement: ["Fix add() in calc.py"])
        let runID = try await client.submit(request)
        let following = Task { try await client.follow(runID: runID, timeout: .seconds(120)) { _ in } }
        #expect(await eventually(timeout: .seconds(60)) { !llm.recorded.value.isEmpty }, "no model call came")
        // A handoff recorded with the run, as a sender does; then Redis refuses writes.
        let handoff = Envelope(type: .HANDOFF_REQUEST, source: "security-master", runID: runID, data: [
            "from": "security", "to": "development", "reason": "Found 1 critical CVE, need dev input", "target": .string(target.path), "priority": "critical",
        ])
        try await redis.send("RPUSH", CortexNames.runHandoffs(runID), handoff.encodedString).orThrow()
        try await redis.send("CONFIG", "SET", "maxmemory", "1").orThrow()
        let coordinator = try #require(suite.supervisor.all.first { $0.name.hasPrefix("coordinator") })
        let refused = await eventually(timeout: .seconds(30)) { coordinator.output().contains("could not be queued as \(runID).development.handoff1") }
        try await redis.send("CONFIG", "SET", "maxmemory", "0").orThrow()
        gate.withLock { $0 = true }
        let state = try await following.value
        await suite.stop()
        #expect(refused, "\(coordinator.output().suffix(2000))")
        #expect(state.status == "partial", "\(state.reason ?? "")")
        let reason = state.reason ?? ""
        #expect(reason.contains("\(runID).development.handoff1 failed: the handoff security-master → development on \(target.lastPathComponent) could not be queued: ")
                && reason.contains("OOM"), "\(reason)")
    }
}
