import CortexCore
import CortexTestRunner
import Foundation

/// testing: the target's test suites run in a subprocess (one item per target, only dispatched when the
/// run request allowed test execution for it). Its records are summarized with the test survey's, in the
/// survey's report section "Test runs" (the testing task's skill is the survey).
public struct TestRunSkill: WorkSkill {
    public init() {}

    /// The target's test suites, run by `TestRunner` in a copy of the repository (only dispatched when the
    /// run request allowed it for this target). Records: one per framework, with the least-covered files
    /// and when each last changed.
    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        try await BlockingExecutor.offload("cortex-test-run") { try run(item, context: context) }
    }

    /// The run itself, on a thread of its own (it waits for the suites' processes).
    private func run(_ item: WorkItem, context: SkillContext) throws -> SkillOutcome {
        let log = context.logger
        let root = try context.checkoutBlocking(item)
        let runner = try context.testRunner()
        let result = try runner.run(repository: root)
        defer { try? FileManager.default.removeItem(at: result.copy) }
        var records: [SkillRecord] = []
        for run in result.runs {
            // The least-covered files, with when they last changed: untested code that moves is the risk.
            let least = run.coverage.filter { $0.total > 0 }.sorted { ($0.ratio, $0.file) < ($1.ratio, $1.file) }.prefix(10).map { c -> JSONValue in
                var entry: [String: JSONValue] = ["file": .string(c.file), "covered": .number(Double(c.covered)), "total": .number(Double(c.total))]
                if let changed = runner.lastChange(of: c.file, in: result.copy) { entry["changed"] = .string(Timestamp.format(changed)) }
                return .object(entry)
            }
            records.append(["kind": "test-run", "run": JSONValue.of(run), "least_covered": .array(Array(least))])
            log.info("\(run.framework.rawValue): \(run.passed) passed, \(run.failed) failed, \(run.flaky.count) flaky in \(Int(run.seconds)) s")
        }
        if result.frameworks.isEmpty { records.append(["kind": "test-run", "none": true]) }
        return .succeeded(records, examined: result.runs.count)
    }

    /// The test survey's summary, which reports the runs' records with the survey's.
    public func summarize(_ records: [SkillRecord]) -> SkillSummary { TestSurvey().summarize(records) }
}
