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
            "CORTEX_LLM_PROVIDER": provider, "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": provider == "anthropic" ? "claude-test" : "gpt-test",
            "CORTEX_LLM_API_KEY": "sk-test-dev-agent", "CORTEX_LLM_MAX_TOKENS": "256", "PATH": TestRunnerTests.path, "CORTEX_TEST_TIMEOUT": "120",
        ].merging(extra) { $1 })
        try suite.startAll(workers: 2)
        let bus = OrchestrationRunTests.bus(suite)
        let client = RunClient(bus: bus)
        let events = Locked<[Envelope]>([])
        let request = RunRequest(goal: "development", targets: [target.path], requestedBy: "test", implement: ["Fix add() in calc.py: it subtracts"])
        let state = try await client.follow(runID: try await client.submit(request), timeout: .seconds(120)) { e in events.withLock { $0.append(e) } }
        let ledger = try await BudgetLedger(redis: RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)), runID: request.runID).accounts()
        await suite.stop()
        llm.stop()
        let report = try String(contentsOfFile: try #require(state.reportDir) + "/masters/development-0.md", encoding: .utf8)
        return Outcome(state: state, report: report, llm: llm, ledger: ledger, events: events.value)
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
                                   environment: ["CORTEX_BUDGET_TOTAL": "2600", "CORTEX_BUDGET_RESERVE": "600", "CORTEX_BUDGET_REQUEST_TIMEOUT": "5"], target: target)
        #expect(o.state.status == "succeeded", "\(o.state.reason ?? "")")
        let requests = o.events.filter { $0.type == .BUDGET_REQUEST && $0.data["account"] == "development:workers" }
        let decisions = o.events.filter { $0.type == .BUDGET_DECISION }
        #expect(!requests.isEmpty && decisions.contains { $0.data["decision"] == "denied" }, "\(o.events.map(\.type))")
        #expect(o.report.contains("**budget**: stopped: no budget for step 2"), "\(o.report)")
        #expect(o.report.contains("| 2 | budget |"), "\(o.report)")
        // Nothing was changed (the model only read a file), so no branch.
        #expect((try? SecurityMasterTests.git(["rev-parse", "--verify", "cortex/dev/\(o.state.runID)/impl0"], in: target)) == nil)
    }

    @Test func withoutAModelTheTaskIsSkippedAndSaysSo() async throws {
        let target = try Self.repository()
        let work = try temporaryDirectory("cortex-dev-nomodel")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "development", targets: [target.path], requestedBy: "test",
                                                                                        implement: ["Fix add() in calc.py"])), timeout: .seconds(60)) { _ in }
        await suite.stop()
        let report = try String(contentsOfFile: try #require(state.reportDir) + "/masters/development-0.md", encoding: .utf8)
        #expect(report.contains("#### Fix add() in calc.py") && report.contains("**skipped**: skipped: no model configured (CORTEX_LLM_PROVIDER); this task would have run"), "\(report)")
        #expect(report.contains("### Documentation"))
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
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let report = try String(contentsOfFile: dir + "/masters/development-handoff1.md", encoding: .utf8)
        #expect(report.contains("#### Found 1 critical CVE in \(target.lastPathComponent), need dev input: org.apache.logging.log4j:log4j-core 2.14.1 (CVE-2021-44228). Advisories: GHSA-jfh8-c2jp-5v3q"), "\(report)")
        #expect(report.contains("skipped: no model configured"))
        // Only the implementation item: no documentation survey for a handoff task.
        #expect(!report.contains(".handoff1.0 |"), "\(report)")
    }
}
