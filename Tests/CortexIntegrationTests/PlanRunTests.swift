import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

/// Plans with real processes: a "fix CVE" goal as analyze → implement → test-branch across three masters,
/// what is not run when a master is missing or a dependency fails, the model planner and its fallbacks,
/// and routing that learns from outcomes and keeps what it learned across a coordinator restart.
@Suite(.serialized) struct PlanRunTests {
    /// A Python repository pinning a PyYAML with a critical advisory (CVE-2020-1747, fixed in 5.3.1), with tests.
    static let repoFiles: [String: String] = [
        "requirements.txt": "PyYAML==5.3\n",
        "calc.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        "pytest.ini": "[pytest]\npythonpath = .\n",
    ]
    static let bump = "--- a/requirements.txt\n+++ b/requirements.txt\n@@ -1 +1 @@\n-PyYAML==5.3\n+PyYAML==5.3.1\n"
    static let steps: [(name: String, input: JSONValue)] = [
        ("read_file", ["path": "requirements.txt"]), ("apply_diff", ["diff": .string(bump)]), ("run_tests", [:]),
        ("finish", ["summary": "PyYAML 5.3 -> 5.3.1 (CVE-2020-1747)"]),
    ]
    static var advisories: String { SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/osv-critical").path }

    static func toolCall(_ i: Int) -> FakeLLMServer.Reply {
        let step = steps[i]
        return .init(status: 200, body: JSONValue.object([
            "id": .string("msg_\(i)"), "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "tool_use",
            "content": [["type": "tool_use", "id": .string("toolu_\(i)"), "name": .string(step.name), "input": step.input]],
            "usage": ["input_tokens": 100, "output_tokens": 50],
        ]).description)
    }

    static func text(_ text: String) -> FakeLLMServer.Reply {
        .init(status: 200, body: JSONValue.object([
            "id": "msg_plan", "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "end_turn",
            "content": [["type": "text", "text": .string(text)]], "usage": ["input_tokens": 300, "output_tokens": 120],
        ]).description)
    }

    struct Suite {
        var suite: LocalSuite
        var llm: FakeLLMServer
        var client: RunClient
        var bus: MessageBus
        func coordinatorLog() -> String { suite.supervisor.all.filter { $0.name.hasPrefix("coordinator") }.map { $0.output() }.joined(separator: "\n") }
        func stop() async { await suite.stop(); llm.stop() }
    }

    /// A suite with a scripted model; `masters` nil starts all six.
    static func start(_ name: String, masters: [MasterRole]? = nil, environment extra: [String: String] = [:], catalog: Bool = false) async throws -> Suite {
        let llm = FakeLLMServer()
        try await llm.start()
        let work = try temporaryDirectory(name)
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_OSV_DB": advisories, "CORTEX_SECURITY_FIX_BRANCHES": "false", "CORTEX_PLANNER": "rules",
            "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test", "CORTEX_LLM_API_KEY": "sk-test-plans",
            "CORTEX_LLM_MAX_TOKENS": "256", "PATH": TestRunnerTests.path, "CORTEX_TEST_TIMEOUT": "120",
        ].merging(extra) { $1 })
        if catalog { _ = try await suite.startCatalog() }  // every daemon started after it reads and writes it
        if let masters {
            try suite.startCoordinator()
            for m in masters { try suite.startMaster(m) }
            for _ in 0..<2 { _ = try suite.startWorker() }
            // Tests with a subset of masters set a short pre-flight timeout: the ones started must be up first.
            #expect(await waitForMasters(suite.redis.port, masters))
        } else {
            try suite.startAll(workers: 2)
        }
        let bus = OrchestrationRunTests.bus(suite)
        return Suite(suite: suite, llm: llm, client: RunClient(bus: bus), bus: bus)
    }

    static func run(_ s: Suite, _ request: RunRequest, events: Locked<[Envelope]>? = nil) async throws -> RunState {
        try await s.client.follow(runID: try await s.client.submit(request), timeout: .seconds(180)) { e in events?.withLock { $0.append(e) } }
    }

    struct Summary: Decodable { var tasks: [TaskSpec]; var plan: Plan?; var reports: [MasterReport] }

    static func summary(_ state: RunState) throws -> (Summary, String) {
        let dir = try #require(state.reportDir)
        return (try WireJSON.decode(Summary.self, from: String(contentsOfFile: dir + "/summary.json", encoding: .utf8)),
                try String(contentsOfFile: dir + "/summary.md", encoding: .utf8))
    }

    /// The issue's first example: "fix CVE-…" is analyze (security) → implement (development) → test-branch
    /// (testing), run in that order; the testing master runs the tests of the branch the development master
    /// produced, against its base.
    @Test func aFixCVERunAnalyzesImplementsAndTestsTheBranch() async throws {
        let s = try await Self.start("cortex-plan-fix")
        // Only the agent's calls (they carry tools) are scripted; assessments get the server's prose.
        s.llm.scriptFor.withLock { $0 = { body in (body["tools"]?.arrayValue?.count ?? 0) > 0 } }
        s.llm.script.withLock { $0 = (0..<4).map { Self.toolCall($0) } }
        let target = try TestRunnerTests.write(Self.repoFiles)
        let events = Locked<[Envelope]>([])
        let state = try await Self.run(s, RunRequest(goal: "fix CVE-2020-1747", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]), events: events)
        // RUN_PLAN goes out before a follower may have subscribed: read it from the event history.
        let history = try await s.bus.redis.xrange(CortexNames.eventHistory)
        let log = s.coordinatorLog()
        let agentCalls = s.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) > 0 }
        await s.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let (summary, markdown) = try Self.summary(state)
        let plan = try #require(summary.plan)
        #expect(plan.rule == "fix-advisory" && plan.subtasks.map(\.id) == ["security.0", "development.fix0", "testing.branch0"])
        #expect(plan.subtasks.map { $0.outcome ?? "" } == ["succeeded", "succeeded", "succeeded"], "\(plan.subtasks.map(\.outcome))")
        // In order: each queued only after the one before it reported.
        #expect(summary.tasks.map(\.id) == plan.subtasks.map { $0.taskID(in: state.runID) })
        let reports = Dictionary(uniqueKeysWithValues: summary.reports.map { ($0.taskID, $0) })
        let analyzed = try #require(reports["\(state.runID).security.0"]), implemented = try #require(reports["\(state.runID).development.fix0"])
        let tested = try #require(reports["\(state.runID).testing.branch0"])
        #expect(analyzed.finishedAt <= implemented.startedAt && implemented.finishedAt <= tested.startedAt)
        // The security master's critical-CVE handoffs were folded into the planned subtasks, not added twice.
        #expect(log.contains("folded into development.fix0") && log.contains("folded into testing.branch0"), "\(log.suffix(3000))")
        // The implementation was told what the analysis found.
        let firstPrompt = agentCalls.first?.body["messages"]?[0]?["content"]?.stringValue ?? ""
        #expect(firstPrompt.contains("Fix GHSA-6757-jp84-gxfx / CVE-2020-1747 in \(target.lastPathComponent): upgrade the PyPI package PyYAML from 5.3 to 5.3.1"), "\(firstPrompt.prefix(800))")
        // The testing master ran the tests of the development branch, and of its base.
        let task = try #require(summary.tasks.last)
        #expect(task.inputs?.branch == "cortex/dev/\(state.runID)/impl0" && task.inputs?.from == ["development.fix0"], "\(String(describing: task.inputs))")
        let branchTests = try #require(tested.details["branch_tests"]?.arrayValue?.first, "\(tested.details)")
        #expect(branchTests["branch"]?.stringValue == "cortex/dev/\(state.runID)/impl0", "\(branchTests)")
        #expect(tested.summary.contains("pytest 1 passed, 0 failed"), "\(tested.summary)")
        #expect(try SecurityMasterTests.git(["show", "cortex/dev/\(state.runID)/impl0:requirements.txt"], in: target) == "PyYAML==5.3.1")
        // The report: the plan as a table in dispatch order and as a Mermaid graph, and the test outcome.
        #expect(markdown.contains("| 1 | `security.0` | analyze | security-master |") && markdown.contains("| 2 | `development.fix0` | implement | development-master |")
                && markdown.contains("| 3 | `testing.branch0` | test-branch | testing-master |"), "\(markdown)")
        #expect(markdown.contains("```mermaid\nflowchart LR") && markdown.contains("s_security_0 --> s_development_fix0") && markdown.contains("s_development_fix0 --> s_testing_branch0"))
        // Announced as RUN_PLAN.
        let announced = try #require(history.compactMap { entry in entry.fields["message"].flatMap { try? EnvelopeDecoder().decode(Array($0.utf8), channel: .eventsSystem).get() } }
            .first { $0.type == .RUN_PLAN && $0.runID == state.runID }, "\(history.count) history entries")
        let published = try announced.payload(RunPlanPublished.self)
        #expect(published.rule == "fix-advisory" && published.subtasks.last == "testing.branch0 test-branch testing \(target.path) after development.fix0", "\(published)")
        print("plan of \(state.runID):\n" + markdown.components(separatedBy: "## Phases")[0].components(separatedBy: "## Plan")[1])
    }

    /// With the development master stopped, the analysis runs and the run says exactly which subtasks did not.
    @Test func withoutTheDevelopmentMasterTheRunSaysWhichSubtasksWereNotRun() async throws {
        let s = try await Self.start("cortex-plan-nodev", masters: [.security, .testing], environment: ["CORTEX_PREFLIGHT_TIMEOUT": "2"])
        let target = try TestRunnerTests.write(Self.repoFiles)
        let state = try await Self.run(s, RunRequest(goal: "fix CVE-2020-1747", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]))
        let status = try await ControlCommands.status(bus: s.bus, runID: state.runID)
        // The same in a security-only run: the critical finding's handoffs cannot be taken.
        let securityOnly = try await Self.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        await s.stop()

        #expect(state.status == "partial", "\(state.reason ?? "")")
        let reason = state.reason ?? ""
        #expect(reason.contains("not run: development.fix0 (implement on \(target.lastPathComponent)): development-master not running"), "\(reason)")
        #expect(reason.contains("not run: testing.branch0 (test-branch on \(target.lastPathComponent)): depends on development.fix0, which was not run"), "\(reason)")
        let (summary, _) = try Self.summary(state)
        #expect(summary.tasks.map(\.id) == ["\(state.runID).security.0"])
        #expect(summary.reports.first?.status == .succeeded)
        // `cortexctl status <run>` shows the plan and what became of each subtask.
        #expect(status.contains("plan: 3 subtasks by the rules (fix-advisory)") && status.contains("— not run: development-master not running"), "\(status)")
        print(status)
        let other = securityOnly.reason ?? ""
        #expect(other.contains("not handed off: security-master → development on \(target.lastPathComponent): development-master not running")
                && other.contains("not handed off: security-master → testing on \(target.lastPathComponent): there is no branch to test (the handoff to development was not taken)"), "\(other)")
    }

    /// A dependency that fails skips its dependents; the run is partial and says why.
    @Test func aDependencyFailureSkipsItsDependents() async throws {
        let s = try await Self.start("cortex-plan-depfail")
        // The agent's model only talks: it never calls finish, so the implementation fails.
        s.llm.scriptFor.withLock { $0 = { body in (body["tools"]?.arrayValue?.count ?? 0) > 0 } }
        s.llm.script.withLock { $0 = [Self.text("I would rather not change dependencies.")] }
        let target = try TestRunnerTests.write(Self.repoFiles)
        let state = try await Self.run(s, RunRequest(goal: "fix CVE-2020-1747", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]))
        await s.stop()
        #expect(state.status == "partial", "\(state.reason ?? "")")
        #expect((state.reason ?? "").contains("not run: testing.branch0 (test-branch on \(target.lastPathComponent)): depends on development.fix0 (development-master), which ended failed: "
                                                + "1 of 1 items failed: implementation ended without the agent calling finish"), "\(state.reason ?? "")")
        let (summary, _) = try Self.summary(state)
        #expect(summary.tasks.count == 2 && summary.plan?.subtasks.last?.outcome == "not run")
    }

    /// The model planner: a valid plan is used; one with a cycle and one naming an unknown master fall back to
    /// the rules, and the report says why. The planner's call is metered on the coordinator's account.
    @Test func theModelPlansAndAnInvalidPlanFallsBackToTheRules() async throws {
        let s = try await Self.start("cortex-plan-model", environment: ["CORTEX_PLANNER": "model"])
        s.llm.scriptFor.withLock { $0 = { body in (body["system"]?.stringValue ?? "").hasPrefix("You plan runs of Cortex") } }
        let target = try TestRunnerTests.write(["README.md": "# shop\n", "app.py": "print('hi')\n"])
        func subtask(_ id: String, _ kind: String, _ master: String, after: [String] = []) -> String {
            #"{"id": "\#(id)", "kind": "\#(kind)", "master": "\#(master)", "target": "\#(target.path)", "depends_on": [\#(after.map { "\"\($0)\"" }.joined(separator: ", "))]}"#
        }
        let answers = [
            "The plan:\n{\"subtasks\": [\(subtask("inventory.survey", "discover", "inventory")), \(subtask("monitoring.watch", "monitor", "monitoring", after: ["inventory.survey"]))]}",
            "{\"subtasks\": [\(subtask("inventory.a", "discover", "inventory", after: ["monitoring.b"])), \(subtask("monitoring.b", "monitor", "monitoring", after: ["inventory.a"]))]}",
            "{\"subtasks\": [\(subtask("finance.a", "discover", "finance"))]}",
        ]
        var states: [RunState] = []
        for answer in answers {
            s.llm.script.withLock { $0 = [Self.text(answer)] }
            states.append(try await Self.run(s, RunRequest(goal: "inventory, monitoring", targets: [target.path], requestedBy: "test")))
        }
        // A provider that refuses the call: no plan from it, the rules plan instead.
        s.llm.script.withLock { $0 = [.init(status: 400, body: #"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}"#)] }
        let refusedRun = try await Self.run(s, RunRequest(goal: "inventory, monitoring", targets: [target.path], requestedBy: "test"))
        let ledger = try await BudgetLedger(redis: s.bus.redis, runID: states[0].runID).accounts()
        await s.stop()

        let (valid, validMarkdown) = try Self.summary(states[0])
        #expect(states[0].status == "succeeded", "\(states[0].reason ?? "")")
        #expect(valid.plan?.planner == "model" && valid.plan?.subtasks.map(\.id) == ["inventory.survey", "monitoring.watch"], "\(String(describing: valid.plan))")
        #expect(valid.tasks.map(\.id) == ["\(states[0].runID).inventory.survey", "\(states[0].runID).monitoring.watch"])
        #expect(validMarkdown.contains("Planned by the model (claude-test)"), "\(validMarkdown)")
        #expect(ledger.first { $0.name == "coordinator" }?.used == 420, "\(ledger)")

        let (cycle, cycleMarkdown) = try Self.summary(states[1])
        #expect(cycle.plan?.planner == "rules" && cycle.plan?.subtasks.map(\.id) == ["inventory.0", "monitoring.0"])
        #expect(cycle.plan?.notes == ["the model's plan was not used: the plan has a cycle: inventory.a → monitoring.b → inventory.a; planned by the rules instead"], "\(String(describing: cycle.plan?.notes))")
        #expect(cycleMarkdown.contains("- the model's plan was not used: the plan has a cycle"), "\(cycleMarkdown)")

        let (unknown, _) = try Self.summary(states[2])
        #expect(unknown.plan?.planner == "rules")
        #expect(unknown.plan?.notes.first?.hasPrefix("the model's plan was not used: subtask finance.a names an unknown master 'finance'") == true, "\(String(describing: unknown.plan?.notes))")
        let (refused, _) = try Self.summary(refusedRun)
        #expect(refused.plan?.planner == "rules" && refused.plan?.notes.first?.hasPrefix("the model's plan was not used: the call failed (") == true
                && refused.plan?.notes.first?.contains("prompt is too long") == true, "\(String(describing: refused.plan?.notes))")
        // Falling back is not a failure of the work: the rules' plan ran.
        #expect(states[1].status == "succeeded" && states[2].status == "succeeded", "\(states[1].reason ?? "") \(states[2].reason ?? "")")
    }

    /// Routing learns: the OSV API (the preferred advisory source) fails on this target for three runs, so
    /// from the fourth the router takes the offline database; the weights are in Redis, and survive a
    /// restart of the coordinator.
    @Test func theRouterLearnsFromOutcomesAndKeepsItAcrossARestart() async throws {
        let router = Router()
        router.post("/v1/querybatch") { _, _ -> Response in
            Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: #"{"code":14,"message":"unavailable"}"#)))
        }
        let (osv, port) = try await startLocalServer(router, name: "failing OSV API")
        defer { osv.cancel() }
        let s = try await Self.start("cortex-plan-routing", masters: [.security], environment: [
            "CORTEX_OSV_DB": SecurityMasterTests.fixtures.path, "CORTEX_OSV_API_URL": "http://127.0.0.1:\(port)", "CORTEX_ROUTING_EXPLORATION": "0",
        ])
        let target = try TestRunnerTests.write(["requirements.txt": "requests==2.30.0\n"])
        var chosen: [String] = []
        var states: [RunState] = []
        for _ in 0..<4 {
            let state = try await Self.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
            states.append(state)
            chosen.append(try Self.summary(state).0.plan?.subtasks.first?.decision?.chosen ?? "none")
        }
        let learned = try await ControlCommands.routing(bus: s.bus)
        // The coordinator restarts: what it learned is in Redis, not in its memory.
        let coordinator = try #require(s.suite.supervisor.all.first { $0.name.hasPrefix("coordinator") })
        coordinator.signal(SIGTERM)
        _ = await coordinator.wait(timeout: .seconds(20))
        try s.suite.startCoordinator()
        let afterRestart = try await Self.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let (last, lastMarkdown) = try Self.summary(afterRestart)
        await s.stop()

        print("routing weights after four runs:\n\(learned)")
        #expect(chosen == ["osv-api", "osv-api", "osv-api", "offline-db"], "\(chosen)")
        #expect(states.prefix(3).allSatisfy { $0.status == "partial" && ($0.reason ?? "").contains("the advisory source the router chose (osv-api) could not be read") },
                "\(states.map { $0.reason ?? "" })")
        #expect(states[3].status == "succeeded", "\(states[3].reason ?? "")")
        let decision = try #require(try Self.summary(states[3]).0.plan?.subtasks.first?.decision)
        #expect(decision.candidates.map(\.expert) == ["osv-api", "offline-db"] && decision.candidates.map(\.weight) == [0.429, 0.5], "\(decision)")
        let repo = "repo:\(target.lastPathComponent)"
        #expect(learned.split(separator: "\n").contains { $0.contains(repo) && $0.contains("osv-api") && $0.contains("      3         0   0.429") }, "\(learned)")
        #expect(learned.split(separator: "\n").contains { $0.contains(repo) && $0.contains("offline-db") && $0.contains("      1         1   0.667") }, "\(learned)")
        #expect(last.plan?.subtasks.first?.decision?.chosen == "offline-db" && afterRestart.status == "succeeded", "\(afterRestart.reason ?? "")")
        #expect(lastMarkdown.contains("### Routing decisions") && lastMarkdown.contains("| `security.0` | advisories | \(repo) | offline-db | best weight | osv-api 0.429 (3, 0); offline-db 0.667 (1, 1) |"),
                "\(lastMarkdown)")
    }
}

extension PlanRunTests {
    /// The coordinator killed while the plan's second subtask is in progress: a new one resumes the run from
    /// the stored plan and its recorded tasks — nothing planned, queued or done twice — and finishes it.
    @Test func aCoordinatorKilledMidPlanIsResumedFromTheStoredPlan() async throws {
        let s = try await Self.start("cortex-plan-resume")
        s.llm.scriptFor.withLock { $0 = { body in (body["tools"]?.arrayValue?.count ?? 0) > 0 } }
        s.llm.script.withLock { $0 = (0..<4).map { Self.toolCall($0) } }
        // The agent's calls wait until the test lets go: the run stays in development.fix0 meanwhile.
        let gate = Locked(false)
        s.llm.beforeReply.withLock { $0 = { while !gate.value { try? await Task.sleep(for: .milliseconds(20)) } } }
        let target = try TestRunnerTests.write(Self.repoFiles)
        let runID = try await s.client.submit(RunRequest(goal: "fix CVE-2020-1747", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]))
        #expect(await eventually(timeout: .seconds(60)) { !s.llm.recorded.value.isEmpty }, "the implementation never called the model")
        let first = try #require(s.suite.supervisor.all.first { $0.name.hasPrefix("coordinator") })
        first.signal(SIGKILL)
        _ = await first.wait(timeout: .seconds(10))
        // The new coordinator claims the killed one's run request once it has been idle this long.
        try s.suite.startCoordinator(environment: ["CORTEX_CLAIM_IDLE": "2"])
        gate.withLock { $0 = true }
        let state = try await s.client.follow(runID: runID, timeout: .seconds(180)) { _ in }
        let log = s.coordinatorLog()
        await s.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        #expect(log.contains("resuming with the stored plan (revision 1, 3 subtasks)"), "\(log.suffix(3000))")
        let (summary, _) = try Self.summary(state)
        #expect(summary.tasks.map(\.id).sorted() == ["security.0", "development.fix0", "testing.branch0"].map { "\(runID).\($0)" }.sorted(), "\(summary.tasks.map(\.id))")
        #expect(summary.plan?.subtasks.map { $0.outcome ?? "" } == ["succeeded", "succeeded", "succeeded"])
        // The agent ran once: four scripted calls, nothing redone.
        #expect(s.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) > 0 }.count == 4)
    }
}

extension PlanRunTests {
    /// Memory between runs: a fix whose change fails its tests in run 1 is "needs human review" in run 2,
    /// with no new attempt (the model receives no implementation call); learnings.json holds the outcome;
    /// learnings Redis loses come back from the file when the coordinator restarts; a corrupt file is
    /// reported and rebuilt; `cortexctl memory forget` lets the next run try again.
    @Test func aFixThatFailedItsTestsIsNotTriedAgainAndTheFileRemembers() async throws {
        let s = try await Self.start("cortex-plan-memory")
        s.llm.scriptFor.withLock { $0 = { body in (body["tools"]?.arrayValue?.count ?? 0) > 0 } }
        // The agent bumps PyYAML and finishes without running the tests; the repository's tests pin 5.3.
        s.llm.script.withLock { $0 = [0, 1, 3].map { Self.toolCall($0) } }
        var files = Self.repoFiles
        files["tests/test_pins.py"] = "import pathlib\n\n\ndef test_pyyaml_stays_pinned():\n    text = (pathlib.Path(__file__).parent.parent / 'requirements.txt').read_text()\n    assert text.strip() == 'PyYAML==5.3'\n"
        let target = try TestRunnerTests.write(files)
        let request = { RunRequest(goal: "fix CVE-2020-1747", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]) }
        let first = try await Self.run(s, request())
        let callsAfterFirst = s.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) > 0 }.count
        let second = try await Self.run(s, request())
        let callsAfterSecond = s.llm.recorded.value.filter { ($0.body["tools"]?.arrayValue?.count ?? 0) > 0 }.count
        let file = s.suite.workDirectory.appendingPathComponent("coordination/masters/security/learnings.json")
        let written = try String(contentsOf: file, encoding: .utf8)
        let shown = try await ControlCommands.memoryShow(bus: s.bus, master: "security", target: target.lastPathComponent)

        // Redis loses the learnings; the restarted coordinator restores them from the file.
        _ = try await s.bus.redis.send(.del(CortexNames.learnings("security"))).orThrow()
        #expect(try await s.bus.redis.hkeys(CortexNames.learnings("security")).isEmpty)
        func restartCoordinator() async throws {
            let coordinator = try #require(s.suite.supervisor.all.last { $0.name.hasPrefix("coordinator") })
            coordinator.signal(SIGTERM)
            _ = await coordinator.wait(timeout: .seconds(20))
            try s.suite.startCoordinator()
        }
        try await restartCoordinator()
        let third = try await Self.run(s, request())
        // (A restarted process's output replaces its predecessor's: read it before the next restart.)
        let restoredLog = s.coordinatorLog()
        // A corrupt file: reported, rebuilt from Redis, never a crash.
        try Data("{ not json".utf8).write(to: file)
        try await restartCoordinator()
        let fourth = try await Self.run(s, request())
        let rebuilt = try String(contentsOf: file, encoding: .utf8)
        let forgotten = try await ControlCommands.memoryForget(bus: s.bus, master: "security", target: nil)
        let log = s.coordinatorLog()
        await s.stop()

        #expect(first.status == "partial" && (first.reason ?? "").contains("implementation made, but its tests failed"), "\(first.reason ?? "")")
        #expect(callsAfterFirst == 3, "\(callsAfterFirst)")
        #expect(second.status == "partial", "\(second.reason ?? "")")
        #expect((second.reason ?? "").contains("not run: development.fix0 (implement on \(target.lastPathComponent)): needs human review: the automatic change in \(first.runID) failed its tests"),
                "\(second.reason ?? "")")
        #expect(callsAfterSecond == callsAfterFirst, "run 2 called the model for an implementation")
        #expect(written.contains("\"key\" : \"fix|PyPI|pyyaml|GHSA-6757-jp84-gxfx\"") && written.contains("\"outcome\" : \"needs-human-review\"") && written.contains("\"version\" : 1"), "\(written)")
        #expect(shown.contains("needs-human-review  fix|PyPI|pyyaml|GHSA-6757-jp84-gxfx"), "\(shown)")
        print("learnings.json after run 1:\n\(written)\ncortexctl memory show:\n\(shown)")
        // Two learnings of security: the fix's outcome and what the scan's files cost (the shard plan's).
        #expect(restoredLog.contains("restored 2 learnings of security from \(file.path) (Redis had none)"), "\(restoredLog.suffix(2000))")
        #expect((third.reason ?? "").contains("needs human review"), "\(third.reason ?? "")")
        #expect(log.contains("learnings file \(file.path) is corrupt"), "\(log.suffix(2000))")
        #expect(fourth.status == "partial" && (fourth.reason ?? "").contains("needs human review") && rebuilt.contains("GHSA-6757-jp84-gxfx"), "\(fourth.reason ?? "") \(rebuilt)")
        #expect(forgotten.hasPrefix("forgot 2 learnings (the coordinator rewrites learnings.json at its next change)"), "\(forgotten)")
    }
}

extension PlanRunTests {
    /// Execution history before a model call: the second run's assessment prompt holds what the first run
    /// found on the same target, cited `history/<run>#<master>`, and its report names the citation.
    @Test func theNextRunsAssessmentRetrievesWhatTheLastRunFound() async throws {
        let s = try await Self.start("cortex-plan-history", masters: [.security])
        let target = try TestRunnerTests.write(Self.repoFiles)
        let first = try await Self.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let second = try await Self.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let prompts = s.llm.recorded.value.compactMap { $0.body["messages"]?[0]?["content"]?.stringValue }
        await s.stop()
        let citation = "history/\(first.runID)#security"
        #expect(!prompts.isEmpty && !prompts[0].contains("[history/"), "the first run has no history: \(prompts.first ?? "")")
        let later = try #require(prompts.last)
        #expect(later.contains("[\(citation)]\nsecurity-master on \(target.lastPathComponent) in \(first.runID)") && later.contains("1 vulnerabilities (1 critical)"), "\(later)")
        let (summary, _) = try Self.summary(second)
        #expect(summary.reports.first?.assessment?.citations?.contains(citation) == true, "\(String(describing: summary.reports.first?.assessment))")
    }
}
