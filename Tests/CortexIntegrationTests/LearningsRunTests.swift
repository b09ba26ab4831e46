import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// Learnings of the testing master with real processes: a suite run records its duration, a test that
/// fails and then passes when run again is learned flaky (counted across runs), both are mirrored to the
/// master's learnings.json, and the next assessment retrieves them into its prompt, cited.
@Suite(.serialized) struct LearningsRunTests {
    @Test func flakyTestsAndSuiteDurationsAreLearnedAndRetrievedByTheNextAssessment() async throws {
        let marker = try temporaryDirectory("cortex-flaky-marker").appendingPathComponent("seen")
        let files: [String: String] = [
            "calc.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
            // Fails the first time it runs (no marker yet), passes when run again: flaky.
            "tests/test_flaky.py": "import pathlib\n\n\ndef test_sometimes():\n    marker = pathlib.Path(\(JSONValue.string(marker.path).description))\n"
                + "    if not marker.exists():\n        marker.write_text('seen')\n        assert False, 'first attempt'\n",
            "pytest.ini": "[pytest]\npythonpath = .\n",
        ]
        let target = try TestRunnerTests.write(files)
        let s = try await PlanRunTests.start("cortex-learn-tests", masters: [.testing])
        let request = { RunRequest(goal: "testing", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]) }
        let first = try await PlanRunTests.run(s, request())
        try? FileManager.default.removeItem(at: marker)
        let second = try await PlanRunTests.run(s, request())
        let learned = try await s.bus.redis.hgetall(CortexNames.learnings("testing")).compactMapValues { try? WireJSON.decode(Learning.self, from: $0) }
        let prompts = s.llm.recorded.value.compactMap { $0.body["messages"]?[0]?["content"]?.stringValue }
        let file = try String(contentsOf: s.suite.workDirectory.appendingPathComponent("coordination/masters/testing/learnings.json"), encoding: .utf8)
        let shown = try await ControlCommands.memoryShow(bus: s.bus, master: "testing", target: target.lastPathComponent)
        await s.stop()

        #expect(first.status != "failed" && second.status != "failed", "\(first.reason ?? "") \(second.reason ?? "")")
        let suite = try #require(learned.values.first { $0.kind == "suite-duration" }, "\(learned.keys.sorted())")
        #expect(suite.key == "suite|pytest|\(RepositoryFiles.hash(target.path))" && suite.runID == second.runID && (suite.data?["seconds"]?.doubleValue ?? 0) > 0, "\(suite)")
        let flaky = try #require(learned.values.first { $0.kind == "flaky-test" }, "\(learned.keys.sorted())")
        #expect(flaky.key.hasPrefix("flaky|\(RepositoryFiles.hash(target.path))|") && flaky.key.contains("test_sometimes"), "\(flaky.key)")
        #expect(flaky.data?["runs"]?.intValue == 2 && flaky.detail.contains("flaky in 2 runs"), "\(flaky)")
        #expect(file.contains("flaky-test") && file.contains("suite-duration"), "\(file.prefix(600))")
        #expect(shown.contains("flaky-test") || shown.contains("flaky in 2 runs"), "\(shown)")
        // The second run's testing assessment had what the first run learned, cited.
        let later = try #require(prompts.last)
        #expect(later.contains("[learnings/testing#\(flaky.key)]") && later.contains("flaky in 1 run"), "\(later.suffix(1500))")
        let (summary, _) = try PlanRunTests.summary(second)
        #expect(summary.reports.first { $0.master == .testing }?.assessment?.citations?.contains("learnings/testing#\(flaky.key)") == true)
    }

    /// Inventory learns which repositories say who owns them and how they ship; the next inventory
    /// assessment of the repository retrieves it, cited.
    @Test func inventoryLearnsWhichRepositoriesHaveOwnersAndCharts() async throws {
        let owned = try TestRunnerTests.write(["CODEOWNERS": "* @team-shop\n", "charts/shop/Chart.yaml": "apiVersion: v2\nname: shop\nversion: 1.0.0\n",
                                               "Dockerfile": "FROM python:3.12-slim\n", "app.py": "print(1)\n"])
        let bare = try TestRunnerTests.write(["app.py": "print(2)\n"])
        let s = try await PlanRunTests.start("cortex-learn-metadata", masters: [.inventory])
        _ = try await PlanRunTests.run(s, RunRequest(goal: "inventory", targets: [owned.path, bare.path], requestedBy: "test"))
        let second = try await PlanRunTests.run(s, RunRequest(goal: "inventory", targets: [owned.path], requestedBy: "test"))
        let learned = try await s.bus.redis.hgetall(CortexNames.learnings("inventory")).compactMapValues { try? WireJSON.decode(Learning.self, from: $0) }
        let prompts = s.llm.recorded.value.compactMap { $0.body["messages"]?[0]?["content"]?.stringValue }
        await s.stop()

        let ownedKey = "metadata|\(RepositoryFiles.hash(owned.path))"
        let a = try #require(learned[ownedKey], "\(learned.keys.sorted())")
        #expect(a.outcome == "owned" && a.detail.contains("owners in CODEOWNERS") && a.detail.contains("charts/shop/Chart.yaml") && a.detail.contains("Dockerfiles Dockerfile"), "\(a.detail)")
        let b = try #require(learned["metadata|\(RepositoryFiles.hash(bare.path))"])
        #expect(b.outcome == "no-owners" && b.detail.contains("no owners file") && b.detail.contains("no Helm chart"), "\(b.detail)")
        #expect(prompts.last?.contains("[learnings/inventory#\(ownedKey)]") == true, "\(prompts.last?.suffix(1200) ?? "")")
        let (summary, _) = try PlanRunTests.summary(second)
        #expect(summary.reports.first?.markdown.contains("| owners | CODEOWNERS |") == true, "\(summary.reports.first?.markdown.prefix(800) ?? "")")
    }

    /// The catalog as a retrieval source: the second run's security assessment has the repository's assets
    /// and its dependencies (registered by the first run's workers) in its prompt, cited.
    @Test func theAssessmentRetrievesWhatTheCatalogHoldsAboutTheTarget() async throws {
        let s = try await PlanRunTests.start("cortex-catalog-context", masters: [.security], catalog: true)
        let target = try TestRunnerTests.write(PlanRunTests.repoFiles)
        _ = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let second = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let prompts = s.llm.recorded.value.compactMap { $0.body["messages"]?[0]?["content"]?.stringValue }
        await s.stop()
        let repo = target.lastPathComponent
        let later = try #require(prompts.last)
        #expect(later.contains("[catalog/\(repo)#assets]\nThe catalog holds") && later.contains("manifest"), "\(later.suffix(1500))")
        #expect(later.contains("[catalog/\(repo)#dependencies]") && later.contains("depends on 1 packages and images (catalog lineage): package:PyPI/PyYAML@5.3"), "\(later.suffix(1500))")
        let (summary, _) = try PlanRunTests.summary(second)
        #expect(summary.reports.first?.assessment?.citations?.contains("catalog/\(repo)#assets") == true, "\(String(describing: summary.reports.first?.assessment?.citations))")
    }
}

