import CortexCore
import CortexOrchestration
import CortexTestRunner
import Foundation
import Testing

/// The branch-test skill's core on a real repository: a pytest suite whose `main` is broken and a
/// development branch with the fix, both really run (the local target and a clone of a remote one).
@Suite(.serialized) struct BranchTestSkillTests {
    static let branch = "cortex/dev/run-x/impl0"

    /// A repository on `main` with `add` subtracting (its test fails) and the branch that fixes it; HEAD on main.
    static func repository() throws -> (root: URL, main: String, fixed: String) {
        let root = try TestRunnerTests.write(DevelopmentAgentTests.repoFiles)
        _ = try SecurityMasterTests.git(["checkout", "-q", "-b", branch], in: root)
        try Data("def add(a, b):\n    return a + b\n".utf8).write(to: root.appendingPathComponent("calc.py"))
        _ = try SecurityMasterTests.git(["commit", "-q", "-am", "add() adds"], in: root)
        let fixed = try SecurityMasterTests.git(["rev-parse", "HEAD"], in: root)
        _ = try SecurityMasterTests.git(["checkout", "-q", "main"], in: root)
        return (root, try SecurityMasterTests.git(["rev-parse", "HEAD"], in: root), fixed)
    }

    static func expectFixed(_ result: BranchTestSkill.Result, main: String, fixed: String) throws {
        #expect(result.commit == fixed && result.base == main && !result.sameAsBase)
        let branchRun = try #require(result.branchRuns.first), baseRun = try #require(result.baseRuns.first)
        #expect(branchRun.framework == .pytest && branchRun.passed == 1 && branchRun.failed == 0, "\(branchRun.tests) \(branchRun.outputTail)")
        #expect(baseRun.passed == 0 && baseRun.failed == 1, "\(baseRun.tests) \(baseRun.outputTail)")
        let c = result.comparison
        #expect(c.frameworks.first?.fixed.names == ["tests.test_calc.test_add"], "\(c)")
        #expect(c.fixed == 1 && c.broken == 0 && c.branchSucceeded)
        let record = BranchTestSkill.record(result, target: "calc")
        let outcome = BranchTestSkill.outcome(result, record: record)
        #expect(outcome.outcome == .succeeded && outcome.examined == 1)
        let summary = BranchTestSkill().summarize(outcome.records)
        #expect(summary.headline.hasPrefix("branch \(branch): pytest 1 passed, 0 failed (base: 0 passed, 1 failed); fixed: test_add"), "\(summary.headline)")
    }

    @Test func aLocalTargetsBranchIsTestedAgainstItsBase() async throws {
        let (root, main, fixed) = try Self.repository()
        let work = try temporaryDirectory("branch-tests").appendingPathComponent("run-x.t3.0")
        let runner = TestRunner(timeout: 120, path: TestRunnerTests.path, workDirectory: try temporaryDirectory("branch-test-runs"))
        let result = try await BranchTestSkill.test(branch: Self.branch, source: root, fetchFromOrigin: false, runner: runner, workDirectory: work)
        try Self.expectFixed(result, main: main, fixed: fixed)
        // The clones and the runner's copies are gone; the operator's checkout is as it was.
        #expect(!FileManager.default.fileExists(atPath: work.path))
        let left = (try? FileManager.default.contentsOfDirectory(atPath: runner.workDirectory.path)) ?? []
        #expect(!left.contains { $0.hasPrefix("tests-") }, "\(left)")  // the runner's copies (its HOME and logs are its own)
        #expect(try SecurityMasterTests.git(["rev-parse", "--abbrev-ref", "HEAD"], in: root) == "main")
        #expect(try SecurityMasterTests.git(["status", "--porcelain"], in: root).isEmpty)

        // A branch the target does not have is a clear not-found error.
        await #expect(throws: CortexError(.notFound, "branch cortex/dev/run-x/missing not found in \(root.path)")) {
            try await BranchTestSkill.test(branch: "cortex/dev/run-x/missing", source: root, fetchFromOrigin: false, runner: runner, workDirectory: work)
        }
        await #expect(throws: CortexError(.invalidInput, "--upload-pack=x is not a branch name")) {
            try await BranchTestSkill.test(branch: "--upload-pack=x", source: root, fetchFromOrigin: false, runner: runner, workDirectory: work)
        }
    }

    @Test func aRemoteTargetsBranchIsFetchedIntoItsShallowClone() async throws {
        let (root, main, fixed) = try Self.repository()
        let url = "file://" + root.path
        // What a worker's checkout of a git URL is: a shallow clone of the default branch only.
        let clone = try RepositoryCheckout.localPath(for: url, task: "run-x.t3", workDirectory: try temporaryDirectory("checkout"))
        #expect(try SecurityMasterTests.git(["rev-parse", "--is-shallow-repository"], in: clone) == "true")
        let runner = TestRunner(timeout: 120, path: TestRunnerTests.path, workDirectory: try temporaryDirectory("branch-test-runs"))
        let result = try await BranchTestSkill.test(branch: Self.branch, source: clone, target: url, fetchFromOrigin: true, runner: runner,
                                                    workDirectory: try temporaryDirectory("branch-tests").appendingPathComponent("run-x.t3.0"))
        try Self.expectFixed(result, main: main, fixed: fixed)
    }
}
