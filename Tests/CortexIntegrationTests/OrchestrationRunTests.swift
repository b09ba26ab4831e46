import CortexCatalog
import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Hummingbird
import Logging
import Testing

/// Whole runs with every daemon as a separate process on a private redis-server.
@Suite(.serialized) struct OrchestrationRunTests {
    static func bus(_ suite: LocalSuite) -> MessageBus {
        MessageBus(redis: RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)), source: "test",
                   metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
    }

    @Test func fullRunWithSixMastersAndTwoWorkers() async throws {
        let target = try makeRepository()
        let work = try temporaryDirectory("cortex-fullrun")
        let output = work.appendingPathComponent("reports")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: output, binDirectory: binDirectory, environment: checkedAdvisories)
        let catalog = try await suite.startCatalog()
        try suite.startAll(workers: 2)
        let bus = Self.bus(suite)
        let client = RunClient(bus: bus)
        let events = Locked<[Envelope]>([])
        let subscription = bus.subscribe(CortexNames.Channel.allCases)
        _ = await subscription.subscriber.waitUntilSubscribed()
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, subscribedBeforeSubmit: subscription, timeout: .seconds(60)) { e in events.withLock { $0.append(e) } }

        // The workers registered what they found through catalog-api's GraphQL mutation (WORKER-TO-CATALOG).
        let catalogClient = CatalogClient(baseURL: "http://127.0.0.1:\(catalog.port)", token: nil)
        let found = try await catalogClient.graphQL("""
            { assets(first: 50) { nodes { id type name discoveredBy } }
              lineage(id: "repository:\(target.path)", direction: UPSTREAM, depth: 1) { nodes { type } edges { kind } } }
            """, variables: [:])
        let assets = found["assets"]?["nodes"]?.arrayValue ?? []
        let types = assets.compactMap { $0["type"]?.stringValue }.sorted()
        #expect(types == ["ALERT_RULE", "DOCUMENT", "MANIFEST", "MANIFEST", "PACKAGE", "REPOSITORY", "TEST_SUITE", "WORKFLOW"], "\(assets)")
        #expect(assets.contains { $0["id"] == "package:PyPI/flask@3.0.0" })
        #expect(assets.allSatisfy { ["worker-1", "worker-2"].contains($0["discoveredBy"]?.stringValue ?? "") })
        #expect(found["lineage"]?["edges"]?.arrayValue?.count == 6)
        #expect(found["lineage"]?["edges"]?.arrayValue?.allSatisfy { $0["kind"] == "DEFINED_IN" } == true)
        let worker1 = try #require(suite.supervisor.all.first { $0.name == "worker-1" })
        let registrations = try await scrape(port: try #require(await opsPort(worker1)))
        #expect((metric(registrations, #"cortex_catalog_registrations_total{outcome="ok"}"#) ?? 0) >= 1)
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        // Phases advanced in order, each announced on cortex:events:system.
        let phases = events.value.filter { $0.channel == .eventsSystem }.compactMap { $0.type.rawValue.hasPrefix("PHASE_") ? $0.int("phase") : nil }
        #expect(phases == [0, 1, 2, 3, 4, 5])
        #expect(Set(events.value.filter { $0.type == .MASTER_ACTIVATION_ACK }.compactMap { $0.string("master") }) == Set(MasterRole.allCases.map(\.rawValue)))

        // The report names every master and what it found in the fixture.
        let dir = try #require(state.reportDir)
        let summary = try String(contentsOfFile: dir + "/summary.md", encoding: .utf8)
        for role in MasterRole.allCases { #expect(summary.contains(role.processName)) }
        let json = try String(contentsOfFile: dir + "/summary.json", encoding: .utf8)
        struct Summary: Decodable { var status: String; var reports: [MasterReport] }
        let parsed = try WireJSON.decode(Summary.self, from: json)
        #expect(parsed.status == "succeeded")
        let byMaster = Dictionary(uniqueKeysWithValues: parsed.reports.map { ($0.master, $0) })
        #expect(Set(byMaster.keys) == Set(MasterRole.allCases))
        #expect(byMaster[.inventory]?.details["files"]?.intValue == 8)
        #expect(byMaster[.inventory]?.summary.contains("Swift 4 files") == true)
        #expect(byMaster[.security]?.details["manifests"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["Package.swift", "requirements.txt"])
        #expect(byMaster[.testing]?.details["cases"]?.intValue == 1)
        #expect(byMaster[.cicd]?.details["pipelines"]?.arrayValue?.first?["jobs"] == ["test"])
        #expect(byMaster[.monitoring]?.summary.hasPrefix("1 alert rules") == true, "\(byMaster[.monitoring]?.summary ?? "")")
        #expect(byMaster[.development]?.details["readme"] == true)
        // The cicd, testing and monitoring masters' sections, with what they make of the fixture.
        let cicd = try String(contentsOfFile: dir + "/masters/cicd-0.md", encoding: .utf8)
        #expect(cicd.contains("### Pipeline security") && cicd.contains("| medium | .github/workflows/ci.yml:3 | test | excessive-permissions |") && cicd.contains("### Pipeline speed")
                && cicd.contains("| low | .github/workflows/ci.yml:3 | test | gha-no-timeout |"), "\(cicd)")
        let testing = try String(contentsOfFile: dir + "/masters/testing-0.md", encoding: .utf8)
        #expect(testing.contains("### Test runs") && testing.contains("Not run: running a target's tests executes its code"), "\(testing)")
        let monitoring = try String(contentsOfFile: dir + "/masters/monitoring-0.md", encoding: .utf8)
        #expect(monitoring.contains("### Generated monitoring") && monitoring.contains("0 workload(s) from the catalog; 6 dashboards")
                && monitoring.contains("| cortex-alerts.yaml | passed: SUCCESS: 6 rules found |"), "\(monitoring)")
        // 6 tasks x 4 items, all done by the two workers; each item counted once.
        let items = parsed.reports.flatMap(\.items)
        #expect(items.count == 24)
        #expect(Set(items.map(\.itemID)).count == 24)
        #expect(Set(items.map(\.worker)).isSubset(of: ["worker-1", "worker-2"]))
        #expect(items.allSatisfy { $0.status == .succeeded })
        #expect(FileManager.default.fileExists(atPath: dir + "/masters/inventory-0.md"))

        // The report states the catalog's totals before and after the run.
        #expect(summary.contains("Catalog: 0 -> 8 assets (+8), 0 -> 7 relations (+7)"), "\(summary)")

        // No model is configured: the report says so and the ledger, opened with the design's budgets, shows zero.
        #expect(summary.contains("## Token budget"))
        #expect(summary.contains("No model configured: every LLM step was skipped"))
        #expect(summary.contains("| development | 30000 | 20000 | 50000 | 0 | 0 % | 50000 |"))
        #expect(summary.contains("| **agents** | | | 340000 | 0 | 0 % | 340000 |"))
        #expect(summary.contains("Run cap: 0 of 270000 used (0 % efficiency)"))
        #expect(summary.contains("Emergency reserve: 25000 held, 0 used."))
        struct Budget: Decodable { var budget: [BudgetLedger.Account] }
        let budget = try WireJSON.decode(Budget.self, from: json).budget
        #expect(budget.count == 16 && budget.allSatisfy { $0.used == 0 && $0.reserved == 0 })

        // Every daemon logged JSON lines only, each with its own process name.
        for child in suite.supervisor.all where !child.name.hasPrefix("redis-server") {
            let raw = child.output().split(separator: "\n")
            #expect(!raw.isEmpty)
            let expected = child.name.hasPrefix("worker") ? "worker" : child.name.replacingOccurrences(of: "-local", with: "")
            for line in raw {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object?["process"] as? String == expected, "\(child.name): \(line)")
            }
            #expect(exitStatus(child) == 0, "\(child.name) exited \(exitStatus(child).map { "\($0)" } ?? "no: still running")")
        }
        let coordinatorLines = logLines(try #require(suite.supervisor.all.first { $0.name == "coordinator" }))
        #expect(coordinatorLines.contains { $0["run_id"] as? String == runID && ($0["msg"] as? String)?.hasPrefix("phase 3") == true })
    }

    /// A run with a model (a local server speaking the Anthropic Messages API): every master's assessment is
    /// charged to the ledger; security's own budget is too small, so it asks and the coordinator grants.
    @Test func llmStepsAreMeteredAndABudgetRequestIsGranted() async throws {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        let key = "sk-ant-test-never-logged-7731"
        let target = try makeRepository()
        let work = try temporaryDirectory("cortex-llmrun")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test", "CORTEX_LLM_API_KEY": key,
            "CORTEX_LLM_MAX_TOKENS": "200", "CORTEX_BUDGETS": "security=100+15000", "CORTEX_BUDGET_REQUEST_TIMEOUT": "60",
        ].merging(checkedAdvisories) { $1 })
        try suite.startAll(workers: 2)
        let bus = Self.bus(suite)
        let client = RunClient(bus: bus)
        let decisions = Locked<[Envelope]>([])
        // A listener of its own, subscribed before the run and kept past its end: no decision goes by unheard
        // (follow() stops relaying when the run is marked finished).
        let (watcher, watched) = bus.subscribe([.mastersCoordination])
        _ = await watcher.waitUntilSubscribed()
        let listener = Task { for await e in watched where e.type == .BUDGET_DECISION { decisions.withLock { $0.append(e) } } }
        defer { listener.cancel(); watcher.stop() }
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        _ = await eventually(timeout: .seconds(30)) { !decisions.value.isEmpty }
        let coordinator = try #require(suite.supervisor.all.first { $0.name == "coordinator" })
        let coordinatorPort = try #require(await opsPort(coordinator))
        let metrics = try await scrape(port: coordinatorPort)
        let ledger = try await BudgetLedger(redis: RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)), runID: runID).accounts()
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.md", encoding: .utf8)
        #expect(summary.contains("LLM assessments: 6 done, 0 denied, 0 failed"), "\(summary)")
        #expect(summary.contains("Tokens: 900 of 270000 used (model claude-test)"))
        let security = try String(contentsOfFile: try #require(state.reportDir) + "/masters/security-0.md", encoding: .utf8)
        #expect(security.contains("### Assessment (claude-test, 150 tokens)\n\n\(FakeLLMServer.anthropicText)"))
        // Six calls, each with the key in its header and the master's findings in the prompt.
        let calls = llm.recorded.value
        #expect(calls.count == 6 && calls.allSatisfy { $0.headers["x-api-key"] == key && $0.body["max_tokens"] == 200 })
        #expect(calls.contains { ($0.body["messages"]?[0]?["content"]?.stringValue ?? "").contains("requirements.txt") })
        // Every call on the ledger: 150 tokens each, on the agent and the run; nothing left reserved.
        let byName = Dictionary(uniqueKeysWithValues: ledger.map { ($0.name, $0) })
        for role in MasterRole.allCases { #expect(byName[role.rawValue]?.used == 150, "\(role)") }
        #expect(byName["run"]?.used == 900 && ledger.allSatisfy { $0.reserved == 0 })
        // Security's 100-token budget could not hold the estimate: one request, granted from unused budget.
        let decision = try #require(decisions.value.first)
        #expect(decisions.value.count == 1 && decision.string("agent") == "security" && decision.string("decision") == "granted")
        #expect(decision.string("reason")?.hasPrefix("moved coordinator:") == true)
        #expect(metric(metrics, #"cortex_budget_requests_total{decision="granted"}"#) == 1)
        // The key is never written to any log.
        for child in suite.supervisor.all { #expect(!child.output().contains(key), "\(child.name) logged the API key") }
    }

    /// The run's cap cannot hold one call: every master asks, the coordinator denies (the reserve is for
    /// urgent work), and the run still ends with its findings and a clear status for each LLM step.
    @Test func deniedBudgetEndsTheLLMStepClearlyAndTheRunFinishes() async throws {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        let work = try temporaryDirectory("cortex-llmdeny")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_PLANNER": "rules", "CORTEX_LLM_PROVIDER": "openai", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "llama-test",
            "CORTEX_LLM_MAX_TOKENS": "200", "CORTEX_BUDGET_TOTAL": "300", "CORTEX_BUDGET_RESERVE": "100", "CORTEX_BUDGET_REQUEST_TIMEOUT": "60",
        ].merging(checkedAdvisories) { $1 })
        try suite.startAll(workers: 2)
        let client = RunClient(bus: Self.bus(suite))
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [try makeRepository().path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        let coordinator = try #require(suite.supervisor.all.first { $0.name == "coordinator" })
        let coordinatorPort = try #require(await opsPort(coordinator))
        let metrics = try await scrape(port: coordinatorPort)
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.md", encoding: .utf8)
        #expect(summary.contains("LLM assessments: 0 done, 6 denied, 0 failed"), "\(summary)")
        // Routine assessments are normal work: the reserve is not theirs.
        #expect(summary.contains("security-master denied: the run's budget has 200 of 200 tokens left; the emergency reserve is kept for high or critical work (this is normal)"), "\(summary)")
        #expect(summary.contains("Tokens: 0 of 200 used (model llama-test)"))
        #expect(llm.recorded.value.isEmpty, "no call is made without budget")
        #expect(metric(metrics, #"cortex_budget_requests_total{decision="denied"}"#) == 6)
    }

    /// A git URL target is cloned shallowly by the workers; an unreachable one fails its items with git's reason.
    @Test func gitURLTargetsAreClonedShallowly() async throws {
        let repo = try makeRepository()
        for args in [["init", "-q", "-b", "main"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "fixture"]] {
            let git = Process()
            git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            git.arguments = ["git", "-C", repo.path] + args
            try git.run()
            git.waitUntilExit()
            #expect(git.terminationStatus == 0)
        }
        let work = try temporaryDirectory("cortex-gitrun")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        try suite.startAll(workers: 2)
        let client = RunClient(bus: Self.bus(suite))
        let missing = "file://\(work.path)/no-such-repo.git"
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: ["file://\(repo.path)", missing], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "partial")
        let json = try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)
        struct Summary: Decodable { var reports: [MasterReport] }
        let reports = try WireJSON.decode(Summary.self, from: json).reports
        let cloned = try #require(reports.first { $0.target == "file://\(repo.path)" })
        #expect(cloned.status == .succeeded && cloned.details["files"]?.intValue == 8, "\(cloned.summary)")
        let failed = try #require(reports.first { $0.target == missing })
        #expect(failed.status == .failed)
        #expect(failed.items.allSatisfy { ($0.error ?? "").hasPrefix("git clone \(missing) failed:") }, "\(failed.items.map(\.error))")
        let clones = try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("coordination/repos").path)
        #expect(clones.count == 1 && !clones[0].contains("partial"), "\(clones)")
    }

    @Test func preflightFailsClearlyWhenMastersAreMissing() async throws {
        let work = try temporaryDirectory("cortex-preflight")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_PREFLIGHT_TIMEOUT": "1"])
        try suite.startCoordinator()
        let started = MasterRole.allCases.filter { $0 != .monitoring && $0 != .cicd }
        for role in started { try suite.startMaster(role) }
        // The pre-flight timeout is 1 s: a master still starting would be reported missing too.
        #expect(await waitForMasters(suite.redis.port, started))
        let client = RunClient(bus: Self.bus(suite))
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [work.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(30)) { _ in }
        await suite.stop()
        #expect(state.status == "failed")
        #expect(state.reason?.contains("pre-flight: masters not registered") == true)
        #expect(state.reason?.contains("cicd-master, monitoring-master") == true)
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.md", encoding: .utf8)
        #expect(summary.contains("FAILED"))
    }

    @Test func sigtermToAMasterMidRunHandsItsTaskBack() async throws {
        let work = try temporaryDirectory("cortex-sigterm")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories)
        // No worker serves the scan pool yet, so the security task cannot finish.
        let (_, _, follower, _) = try await RecoveryTests.runBlockedOnSecurity(suite)
        let security = try #require(suite.supervisor.all.first { $0.name == "security-master-local" })
        let stopAsked = ContinuousClock.now
        security.signal(SIGTERM)
        // Within Kubernetes' default grace period (30 s); it takes well under a second on a quiet machine.
        let status = await security.wait(timeout: .seconds(30))
        #expect(status == 0, "exit status \(String(describing: status)) within 30 s")
        #expect(ContinuousClock.now - stopAsked < .seconds(30))
        #expect(logLines(security).contains { $0["msg"] as? String == "master stopped" && $0["cortex.tasks.handed_back"] as? String == "1" })
        // The task is back on the stream, acknowledged by nobody yet: the copy only (the old entry was
        // acknowledged and deleted in the same script).
        let redis = RecoveryTests.client(suite)
        let stream = CortexNames.taskStream(.security)
        #expect(try await redis.send("XLEN", stream).int == 1)
        #expect(try await redis.xpending(stream, group: CortexNames.Group.masters).isEmpty)

        // A new instance and a scan worker: the redelivered task completes the run.
        try suite.startMaster(.security, instance: "security-master-2")
        try suite.startWorker(pools: [.scan])
        let state = try await follower.value
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let json = try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)
        struct Summary: Decodable { var reports: [MasterReport] }
        let reports = try WireJSON.decode(Summary.self, from: json).reports
        let securityReport = try #require(reports.first { $0.master == .security })
        #expect(securityReport.instance == "security-master-2")
        #expect(securityReport.items.count == 4)
        #expect(securityReport.items.allSatisfy { $0.worker == "worker-2" })
    }

    /// Findings the catalog did not take are counted per item and named in the report; the run is partial.
    /// (On the main of 2026-12-01 a catalog that refused every registration still gave a succeeded run.)
    @Test func catalogRegistrationFailuresAreCountedInTheReport() async throws {
        let target = try makeRepository()
        let work = try temporaryDirectory("cortex-catalog-down")
        // A catalog URL where nothing listens: every registration is refused at connect.
        let closed = try await startLocalServer(Router<BasicRequestContext>(), name: "closed port")
        closed.0.cancel()
        _ = await closed.0.result
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_CATALOG_URL": "http://127.0.0.1:\(closed.1)"])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: Self.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "inventory", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "partial", "\(state.reason ?? "")")
        let reason = state.reason ?? ""
        let report = try WireJSON.decode(MasterReport.self, from: String(contentsOfFile: try #require(state.reportDir) + "/masters/inventory-0.json", encoding: .utf8))
        // Every item that had assets failed to register them: "catalog: N of N items not registered (K assets): …".
        let counted = try #require(reason.firstMatch(of: /^catalog: (\d+) of (\d+) items not registered \((\d+) assets\): .+ \(inventory-master\)$/), "\(reason)")
        let (failed, total, assets) = (Int(counted.output.1) ?? 0, Int(counted.output.2) ?? 0, Int(counted.output.3) ?? 0)
        #expect(failed == total && failed > 0 && failed <= report.items.count && assets >= failed, "\(reason)")
        #expect(report.status == .partial && report.summary.contains("; catalog: \(failed) of \(total) items not registered"), "\(report.summary)")
    }

    /// A report that cannot be written makes the run partial with the reason (nobody can read what it found).
    @Test func aReportThatCannotBeWrittenMakesTheRunPartial() async throws {
        let target = try makeRepository()
        let work = try temporaryDirectory("cortex-report-blocked")
        let output = work.appendingPathComponent("reports")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let request = RunRequest(runID: "run-blocked-\(UUID().uuidString.prefix(6).lowercased())", goal: "inventory", targets: [target.path], requestedBy: "test")
        // A file where the run's report directory would go.
        try Data("not a directory".utf8).write(to: output.appendingPathComponent(request.runID))
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: output, binDirectory: binDirectory)
        try suite.startAll(workers: 1)
        let client = RunClient(bus: Self.bus(suite))
        let state = try await client.follow(runID: try await client.submit(request), timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "partial", "\(state.reason ?? "")")
        #expect((state.reason ?? "").contains("the report could not be written under \(output.path)"), "\(state.reason ?? "")")
        #expect(state.reportDir == nil)
    }
}
