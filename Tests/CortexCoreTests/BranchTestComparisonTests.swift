import CortexCore
import CortexOrchestration
// FrameworkRun has no public initializer: the runner makes them; here they are made by hand.
@testable import CortexTestRunner
import Foundation
import Testing

/// The branch-test skill's pure parts: the comparison of a branch's runs with its base's, the record,
/// the outcome rules and the master's summary (the real runs are in TestRunnerTests).
@Suite struct BranchTestComparisonTests {
    /// A run that exited with `exit` (0 unless given), its tests by name and outcome, and coverage as (covered, total) per file.
    static func run(_ tests: [String: TestCaseResult.Outcome], framework: TestFramework = .pytest, coverage: [(Int, Int)] = [], exit: Int32 = 0,
                    flaky: [String] = []) -> FrameworkRun {
        var run = FrameworkRun(framework: framework, command: ["python3", "-m", "pytest", "-q"])
        run.exitCode = exit
        run.tests = tests.sorted { $0.key < $1.key }.map { TestCaseResult(name: $0.key, outcome: $0.value, message: $0.value == .failed ? "assert 1 == 5" : nil) }
        run.coverage = coverage.enumerated().map { FileCoverage(file: "f\($0.offset).py", covered: $0.element.0, total: $0.element.1) }
        run.flaky = flaky
        return run
    }

    static func result(_ branch: [FrameworkRun], base: [FrameworkRun], name: String = "cortex/dev/run-x/impl0", same: Bool = false) -> BranchTestSkill.Result {
        BranchTestSkill.Result(branch: name, commit: "1111111111111111", base: same ? "1111111111111111" : "2222222222222222",
                               branchRuns: branch, baseRuns: base, comparison: BranchTestSkill.compare(branch: branch, base: base))
    }

    static func item(branch: String?, allowed: Bool?) -> WorkItem {
        WorkItem(id: "run-x.t3.0", taskID: "run-x.t3", runID: "run-x", master: .testing, pool: .test, skill: .branchTest, target: "/repos/calc",
                 shard: 0, shards: 1, branch: branch, allowTestExecution: allowed)
    }

    @Test func fixedBrokenAddedRemovedAndStillFailing() {
        let base = Self.run(["t.a": .passed, "t.b": .failed, "t.c": .passed, "t.d": .failed, "t.e": .passed, "t.f": .skipped], coverage: [(2, 4), (1, 0)])
        let branch = Self.run(["t.a": .passed, "t.b": .passed, "t.c": .failed, "t.d": .failed, "t.f": .passed, "t.g": .passed, "t.h": .failed],
                              coverage: [(3, 4), (1, 1)], exit: 1)
        let c = BranchTestSkill.compare(branch: [branch], base: [base])
        let f = try! #require(c.frameworks.first)
        #expect(c.frameworks.count == 1 && f.framework == "pytest" && f.ranOnBranch && f.ranOnBase && f.perTest)
        #expect(f.fixed.names == ["t.b"])  // t.f was skipped on the base: passing now is not a fix
        #expect(f.broken.names == ["t.c"])
        #expect(f.added.names == ["t.g", "t.h"] && f.addedFailing.names == ["t.h"])
        #expect(f.removed.names == ["t.e"])
        #expect(f.stillFailing.names == ["t.d"])
        #expect((c.branchPassed, c.branchFailed, c.basePassed, c.baseFailed) == (4, 3, 3, 2))
        #expect((c.fixed, c.broken, c.added, c.removed, c.stillFailing) == (1, 1, 2, 1, 1))
        #expect(c.branchCoverage == 0.8 && c.baseCoverage == 0.75)  // (3+1)/(4+1) and 2/4 (a file with no lines adds nothing)
        #expect(!f.branchSucceeded && f.baseSucceeded == false && !c.branchSucceeded)
    }

    @Test func aSuiteOnOneSideOnlyAndOneWithoutPerTestResults() {
        // go only on the branch (its tests are all added); npm reports counts only: no names to compare.
        var npmBranch = FrameworkRun(framework: .npm, command: ["npm", "test"]), npmBase = npmBranch
        npmBranch.exitCode = 0
        npmBranch.summaryCounts = ["passed": 3, "failed": 0]
        npmBase.exitCode = 1
        npmBase.summaryCounts = ["passed": 2, "failed": 1]
        let c = BranchTestSkill.compare(branch: [Self.run(["calc.TestAdd": .passed], framework: .go), npmBranch], base: [npmBase])
        #expect(c.frameworks.map(\.framework) == ["go", "npm"])
        let go = c.frameworks[0], npm = c.frameworks[1]
        #expect(go.ranOnBranch && !go.ranOnBase && go.added.names == ["calc.TestAdd"] && go.basePassed == 0)
        #expect(!npm.perTest && npm.fixed.count == 0 && npm.added.count == 0 && npm.branchPassed == 3 && npm.baseFailed == 1)
        #expect(npm.branchSucceeded && !npm.baseSucceeded && c.branchSucceeded)
        #expect(c.branchCoverage == nil && c.baseCoverage == nil)
        // A suite that did not build: no failed test, a non-zero exit; not a pass.
        let broken = BranchTestSkill.compare(branch: [Self.run([:], framework: .swift, exit: 1)], base: [Self.run(["A.b": .passed], framework: .swift)])
        #expect(!broken.branchSucceeded && broken.branchFailed == 0 && !broken.frameworks[0].perTest && broken.frameworks[0].removed.count == 0)
        // Nothing ran: not a success either.
        #expect(!BranchTestSkill.compare(branch: [], base: []).branchSucceeded)
    }

    @Test func nameListsAreBoundedButCountsAreNot() {
        let tests = Dictionary(uniqueKeysWithValues: (0..<250).map { ("t.test_\($0)", TestCaseResult.Outcome.passed) })
        let c = BranchTestSkill.compare(branch: [Self.run(tests)], base: [], limit: 100)  // a suite the branch adds
        #expect(c.added == 250 && c.frameworks[0].added.count == 250 && c.frameworks[0].added.names.count == 100)
        // The record keeps runs small: no output of a run that passed, at most 20 failing tests.
        let failing = Dictionary(uniqueKeysWithValues: (0..<50).map { ("t.fail_\($0)", TestCaseResult.Outcome.failed) })
        var run = Self.run(failing, exit: 1)
        run.outputTail = String(repeating: "x", count: 4000)
        let summary = BranchTestSkill.RunSummary(run)
        #expect(summary.failing.count == 20 && summary.failed == 50 && summary.outputTail?.count == 1000)
        #expect(BranchTestSkill.RunSummary(Self.run(["t.a": .passed])).outputTail == nil)
    }

    @Test func aFixingBranchSucceedsWithItsHeadline() throws {
        let result = Self.result([Self.run(["tests.test_calc.test_add": .passed], coverage: [(4, 5)])],
                                 base: [Self.run(["tests.test_calc.test_add": .failed], coverage: [(3, 4)], exit: 1)])
        let record = BranchTestSkill.record(result, target: "https://user:secret@example.com/calc.git")
        #expect(record["kind"] == "branch-test" && record["status"] == "passed" && record["branch"] == "cortex/dev/run-x/impl0")
        #expect(record["commit"] == "1111111111111111" && record["base"] == "2222222222222222" && record["target"] == "https://example.com/calc.git")
        #expect(record["branch_runs"]?[0]?["passed"] == 1 && record["base_runs"]?[0]?["failed"] == 1)
        #expect(record["comparison"]?["fixed"] == 1)
        let outcome = BranchTestSkill.outcome(result, record: record)
        #expect(outcome.outcome == .succeeded && outcome.examined == 1 && outcome.reason == nil)

        let summary = BranchTestSkill().summarize(outcome.records)
        #expect(summary.headline == "branch cortex/dev/run-x/impl0: pytest 1 passed, 0 failed (base: 0 passed, 1 failed); fixed: test_add; coverage 80% (base 75%)")
        #expect(summary.markdown.hasPrefix("### Branch tests\n"))
        #expect(summary.markdown.contains("#### Branch `cortex/dev/run-x/impl0`"))
        #expect(summary.markdown.contains("| pytest | 1 | 0 | 0 | 1 | 1 | 0 | 0 / 0 | 80% vs 75% |"), "\(summary.markdown)")
        #expect(summary.markdown.contains("Fixed (failed on the base, pass on the branch):\n\n- `tests.test_calc.test_add`"))
        let entry = try #require(summary.details["branch_tests"]?[0])
        #expect(entry["passed"] == 1 && entry["failed"] == 0 && entry["fixed"] == 1 && entry["broken"] == 0 && entry["tests_ran"] == true)
        #expect(entry["fixed_tests"] == ["tests.test_calc.test_add"] && entry["coverage"] == 0.8 && entry["base_coverage"] == 0.75)
        #expect(summary.details["all_passed"] == true && summary.details["fixed"] == 1 && summary.details["failed"] == 0)
    }

    /// Deleting the failing test is not fixing it: the branch passes, but the run says a test is gone.
    @Test func aBranchThatPassesByRemovingATestIsPartial() {
        let result = Self.result([Self.run(["t.test_add": .passed])], base: [Self.run(["t.test_add": .passed, "t.test_div": .failed], exit: 1)])
        let outcome = BranchTestSkill.outcome(result, record: BranchTestSkill.record(result, target: "/repos/calc"))
        #expect(outcome.outcome == .partial && outcome.reason == "tests of branch cortex/dev/run-x/impl0 pass, but 1 test of its base is gone on it", "\(String(describing: outcome.reason))")
    }

    @Test func aBreakingBranchIsPartialAndSaysWhatBroke() {
        let result = Self.result([Self.run(["t.test_add": .passed, "t.test_div": .failed], exit: 1)],
                                 base: [Self.run(["t.test_add": .passed, "t.test_div": .passed])])
        let outcome = BranchTestSkill.outcome(result, record: BranchTestSkill.record(result, target: "/repos/calc"))
        #expect(outcome.outcome == .partial && outcome.reason == "tests of branch cortex/dev/run-x/impl0 failed: 1 failed (1 newly broken)")
        let summary = BranchTestSkill().summarize(outcome.records)
        #expect(summary.headline == "branch cortex/dev/run-x/impl0: pytest 1 passed, 1 failed (base: 2 passed, 0 failed); NEWLY BROKEN: test_div")
        #expect(summary.markdown.contains("Newly broken (passed on the base, fail on the branch):\n\n- `t.test_div`"))
        #expect(summary.markdown.contains("| t.test_div | assert 1 == 5 |"))
        #expect(summary.details["all_passed"] == false && summary.details["broken"] == 1 && summary.details["branch_tests"]?[0]?["status"] == "failed")

        // A suite that exits non-zero without a failed test is named in the reason: "0 failed" alone would read as a pass.
        let unbuilt = Self.result([Self.run([:], framework: .swift, exit: 1)], base: [Self.run(["A.b": .passed], framework: .swift)])
        let o = BranchTestSkill.outcome(unbuilt, record: BranchTestSkill.record(unbuilt, target: "/repos/calc"))
        #expect(o.outcome == .partial && o.reason == "tests of branch cortex/dev/run-x/impl0 failed: 0 failed (0 newly broken); swift exited 1")
        #expect(BranchTestSkill().summarize(o.records).headline.contains("swift 0 passed, 0 failed, exited 1"))
    }

    @Test func notAllowedNoBranchAndNoSuites() throws {
        // Not allowed to run the target's code: skipped, and the summary says the tests were not run and why.
        let skipped = try #require(BranchTestSkill.precheck(Self.item(branch: "cortex/dev/run-x/impl0", allowed: nil)))
        #expect(skipped.outcome == .skipped && skipped.examined == 0)
        #expect(skipped.reason == "tests of branch cortex/dev/run-x/impl0 not run: test execution is not allowed for this target (--allow-test-execution)")
        #expect(skipped.records.first?["status"] == "skipped")
        let summary = BranchTestSkill().summarize(skipped.records)
        #expect(summary.headline.hasPrefix("branch cortex/dev/run-x/impl0: NOT TESTED (") && summary.headline.contains("test execution is not allowed"))
        #expect(summary.markdown.contains("Not run: tests of branch") && summary.markdown.contains("--allow-test-execution"))
        #expect(summary.details["branch_tests"]?[0]?["tests_ran"] == false && summary.details["all_passed"] == false)
        #expect(BranchTestSkill.precheck(Self.item(branch: "b", allowed: false))?.outcome == .skipped)

        let none = try #require(BranchTestSkill.precheck(Self.item(branch: " ", allowed: true)))
        #expect(none.outcome == .failed && none.reason == "no branch to test: the subtask it depends on published none")
        #expect(BranchTestSkill.precheck(Self.item(branch: "cortex/dev/run-x/impl0", allowed: true)) == nil)

        let empty = Self.result([], base: [])
        let o = BranchTestSkill.outcome(empty, record: BranchTestSkill.record(empty, target: "/repos/calc"))
        #expect(o.outcome == .skipped && o.reason == "tests of branch cortex/dev/run-x/impl0 not run: no test suites found")
        #expect(o.records.first?["status"] == "no-suites")
        #expect(BranchTestSkill().summarize(o.records).headline == "branch cortex/dev/run-x/impl0: no test suites found, nothing run")

        // A branch with no commits of its own says so.
        let same = Self.result([Self.run(["t.a": .passed])], base: [Self.run(["t.a": .passed])], same: true)
        let s = BranchTestSkill().summarize([BranchTestSkill.record(same, target: "/repos/calc")])
        #expect(s.headline == "branch cortex/dev/run-x/impl0: pytest 1 passed, 0 failed; no commits beyond its base")
        #expect(BranchTestSkill().summarize([]).headline == "no branch tested")
    }
}
