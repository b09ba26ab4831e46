import CortexCore
import CortexSecurity
import CortexTestRunner
import Foundation

/// testing: the tests of a branch another subtask produced (the development agent's
/// `cortex/dev/<run>/<item>`), run in a copy of the branch and in a copy of its base, with what the
/// branch changed: the tests it fixed, the ones it broke, and coverage on both sides. One item per
/// branch, only run when the run request allowed test execution for the target (the tests run the
/// target's code).
public struct BranchTestSkill: WorkSkill {
    public init() {}

    /// What testing a branch against its base came to (`test(branch:source:fetchFromOrigin:runner:workDirectory:)`).
    public struct Result: Sendable {
        /// The branch's name, its commit, and the commit it was made from (`git merge-base` with HEAD).
        public var branch: String
        public var commit: String
        public var base: String
        /// The runs of each framework on the branch, and on the base (the same runs when `commit == base`:
        /// a branch with no commits of its own is not tested twice).
        public var branchRuns: [FrameworkRun]
        public var baseRuns: [FrameworkRun]
        public var comparison: BranchTestComparison
        /// The branch has no commits beyond its base.
        public var sameAsBase: Bool { commit == base }

        public init(branch: String, commit: String, base: String, branchRuns: [FrameworkRun], baseRuns: [FrameworkRun], comparison: BranchTestComparison) {
            self.branch = branch
            self.commit = commit
            self.base = base
            self.branchRuns = branchRuns
            self.baseRuns = baseRuns
            self.comparison = comparison
        }
    }

    /// One framework's run as the record keeps it: counts, the failing tests with their messages (at most
    /// 20), coverage totals, notes, and the end of the output only when the run failed. The full
    /// `FrameworkRun` (every test, 4,000 characters of output) for two sides would make the result large.
    public struct RunSummary: Codable, Sendable, Equatable {
        public struct Failing: Codable, Sendable, Equatable {
            public var name: String
            public var message: String?
        }
        public var framework: String
        public var command: String
        public var exitCode: Int32?
        public var timedOut: Bool
        public var seconds: Double
        public var passed: Int
        public var failed: Int
        public var skipped: Int
        public var flaky: Int
        public var failing: [Failing]
        public var coveredLines: Int
        public var measuredLines: Int
        public var coverageSource: String?
        public var notes: [String]
        /// The last 1,000 characters of output, when the run did not succeed (why a suite did not build).
        public var outputTail: String?

        public init(_ run: FrameworkRun) {
            framework = run.framework.rawValue
            command = run.command.joined(separator: " ")
            exitCode = run.exitCode
            timedOut = run.timedOut
            seconds = run.seconds
            passed = run.passed
            failed = run.failed
            skipped = run.skipped
            flaky = run.flaky.count
            failing = run.tests.filter { $0.outcome == .failed }.prefix(20).map { Failing(name: $0.name, message: $0.message.map { String($0.prefix(300)) }) }
            coveredLines = run.coverage.reduce(0) { $0 + $1.covered }
            measuredLines = run.coverage.reduce(0) { $0 + $1.total }
            coverageSource = run.coverageSource
            notes = (run.notRun.map { ["NOT RUN: \($0)"] } ?? []) + Array(run.notes.prefix(10))
            outputTail = BranchTestSkill.succeeded(run) ? nil : String(run.outputTail.suffix(1000))
        }
    }

    /// Tests the item's branch against its base (see `test`). Outcomes: not allowed to run the target's
    /// code → `skipped`; no branch, or one the target does not have → `failed`; no test suite →
    /// `skipped`; a failing branch test (or a suite that did not run through) → `partial`; every branch
    /// suite passing → `succeeded`. Each with one `branch-test` record.
    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        if let early = Self.precheck(item) { return early }
        let log = context.logger
        let branch = (item.branch ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        var record: SkillRecord = ["kind": "branch-test", "branch": .string(branch), "target": .string(Self.shown(item.target))]
        let source = try await context.checkout(item)
        let runner = try context.testRunner()
        let work = context.process.coordinationDirectory.appendingPathComponent("branch-tests").appendingPathComponent(Self.directoryName(item.id))
        let result: Result
        do {
            result = try await Self.test(branch: branch, source: source, target: Self.shown(item.target), fetchFromOrigin: RepositoryCheckout.isRemote(item.target),
                                         runner: runner, workDirectory: work)
        } catch let error as CortexError where error.code == .notFound || error.code == .invalidInput {
            // A branch the target does not have is this item's answer, not a fault of the worker: a failed
            // outcome with a record says so in the report (a thrown error would leave no record behind).
            record["status"] = "failed"
            record["reason"] = .string(error.message)
            return .endedShort(.failed, reason: error.message, records: [record], examined: 0)
        }
        record = Self.record(result, target: item.target)
        let c = result.comparison
        log.info("branch \(branch) at \(result.commit.prefix(12)) (base \(result.base.prefix(12))): \(c.branchPassed) passed, \(c.branchFailed) failed; base \(c.basePassed) passed, \(c.baseFailed) failed; \(c.fixed) fixed, \(c.broken) newly broken; coverage \(Self.percent(c.branchCoverage)) (base \(Self.percent(c.baseCoverage)))")
        return Self.outcome(result, record: record)
    }

    /// The outcome of an item that is not to be run, before anything is checked out (nil: run it).
    /// Running tests executes the target's code: without the operator's opt-in for the target the item is
    /// `skipped`; without a branch (the subtask it depends on published none) it is `failed`.
    public static func precheck(_ item: WorkItem) -> SkillOutcome? {
        let branch = (item.branch ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        var record: SkillRecord = ["kind": "branch-test", "branch": .string(branch), "target": .string(shown(item.target))]
        let outcome: Outcome, reason: String
        if item.allowTestExecution != true {
            (outcome, reason) = (.skipped, "tests of branch \(branch.isEmpty ? "(none)" : branch) not run: test execution is not allowed for this target (--allow-test-execution)")
        } else if branch.isEmpty {
            (outcome, reason) = (.failed, "no branch to test: the subtask it depends on published none")
        } else {
            return nil
        }
        record["status"] = .string(outcome == .skipped ? "skipped" : "failed")
        record["reason"] = .string(reason)
        return .endedShort(outcome, reason: reason, records: [record], examined: 0)
    }

    /// Resolves `branch` in `source` (a repository: the target itself, or the task's clone of a remote
    /// target), finds its base (`git merge-base <branch> HEAD`), and runs every test suite in a fresh clone
    /// at each of the two commits under `workDirectory` (removed afterwards), then compares them. The core
    /// of `perform`, callable without a worker.
    ///
    /// - Parameters:
    ///   - target: how errors name the repository (default: `source`'s path).
    ///   - fetchFromOrigin: `source` is a clone (shallow, default branch only): its history and the branch
    ///     are fetched from its `origin` first.
    /// - Throws: `CortexError(.notFound)` for a branch `source` does not have or one with no history in
    ///   common with HEAD, `CortexError(.invalidInput)` for a name that is not a branch name or a source
    ///   that is not a git repository; git and clone failures as they come.
    public static func test(branch: String, source: URL, target: String? = nil, fetchFromOrigin: Bool, runner: TestRunner, workDirectory: URL) async throws -> Result {
        let (commit, base) = try await resolve(branch, in: source, target: target ?? source.path, fetchFromOrigin: fetchFromOrigin)
        // A fresh directory: an earlier attempt at the item may have left its clones behind.
        try? FileManager.default.removeItem(at: workDirectory)
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: workDirectory) }
        let branchRuns = try await runSuites(at: commit, of: source, in: workDirectory.appendingPathComponent("branch"), runner: runner)
        let baseRuns = commit == base ? branchRuns : try await runSuites(at: base, of: source, in: workDirectory.appendingPathComponent("base"), runner: runner)
        return Result(branch: branch, commit: commit, base: base, branchRuns: branchRuns, baseRuns: baseRuns,
                      comparison: compare(branch: branchRuns, base: baseRuns))
    }

    /// The branch's commit and its base in `source`.
    static func resolve(_ branch: String, in source: URL, target: String, fetchFromOrigin: Bool) async throws -> (commit: String, base: String) {
        // The name goes into refs and git's arguments: only a well-formed branch name, and never one git
        // could read as an option.
        let wellFormed = (try? await Git.runAsync(["check-ref-format", "refs/heads/\(branch)"], in: source)) != nil
        guard !branch.hasPrefix("-"), wellFormed else { throw CortexError(.invalidInput, "\(branch) is not a branch name") }
        guard (try? await Git.runAsync(["rev-parse", "--git-dir"], in: source)) != nil else {
            throw CortexError(.invalidInput, "\(target) is not a git repository: no branch \(branch) to test")
        }
        func commit(of ref: String) async -> String? {
            (try? await Git.runAsync(["rev-parse", "--verify", "--quiet", "\(ref)^{commit}"], in: source)).flatMap { $0.isEmpty ? nil : $0 }
        }
        var fetchProblem = ""
        if fetchFromOrigin {
            // The task's clone is shallow and has the default branch only: the history the merge base needs
            // (a failure here is a network or server problem, thrown as it is), then the branch itself.
            if (try? await Git.runAsync(["rev-parse", "--is-shallow-repository"], in: source)) == "true" {
                try await Git.runAsync(["fetch", "--quiet", "--unshallow", "origin"], in: source, timeout: 900)
            }
            do {
                try await Git.runAsync(["fetch", "--quiet", "origin", "+refs/heads/\(branch):refs/remotes/origin/\(branch)"], in: source, timeout: 900)
            } catch {
                fetchProblem = " (fetch: \(error))"
            }
        }
        var found = await commit(of: "refs/heads/\(branch)")
        if fetchFromOrigin, let fetched = await commit(of: "refs/remotes/origin/\(branch)") { found = fetched }  // the remote's is the one published
        // git's message may quote the URL, credentials and all: the reason goes into reports.
        guard let found else { throw CortexError(.notFound, shown("branch \(branch) not found in \(target)\(fetchProblem)")) }
        guard let base = try? await Git.runAsync(["merge-base", found, "HEAD"], in: source), !base.isEmpty else {
            throw CortexError(.notFound, "branch \(branch) (\(found.prefix(12))) has no history in common with HEAD of \(target): no base to compare it with")
        }
        return (found, base)
    }

    /// Clones `source` into `dir` at `commit` and runs its suites there (`TestRunner` copies it once more
    /// and the copy is removed here); on a thread of its own, since the suites take minutes.
    static func runSuites(at commit: String, of source: URL, in dir: URL, runner: TestRunner) async throws -> [FrameworkRun] {
        try await BlockingExecutor.offload("cortex-branch-test") {
            try Git.run(["clone", "--quiet", "--no-hardlinks", "--", source.path, dir.path], in: dir.deletingLastPathComponent())
            try Git.run(["checkout", "--quiet", "--detach", commit], in: dir)
            let result = try runner.run(repository: dir)
            defer { try? FileManager.default.removeItem(at: result.copy) }
            return result.runs
        }
    }

    /// The item's id as one directory name.
    static func directoryName(_ id: String) -> String {
        String(id.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
    }

    /// The record of a tested branch: `kind` branch-test, `status` passed | failed | no-suites, the branch,
    /// its commit and base, the bounded runs of both sides and the comparison.
    public static func record(_ result: Result, target: String) -> SkillRecord {
        let status = result.branchRuns.isEmpty ? "no-suites" : result.comparison.branchSucceeded ? "passed" : "failed"
        return ["kind": "branch-test", "status": .string(status), "branch": .string(result.branch), "target": .string(shown(target)),
                "commit": .string(result.commit), "base": .string(result.base), "same_as_base": .bool(result.sameAsBase),
                "branch_runs": JSONValue.of(result.branchRuns.map(RunSummary.init)), "base_runs": JSONValue.of(result.baseRuns.map(RunSummary.init)),
                "comparison": JSONValue.of(result.comparison)]
    }

    /// The item's outcome: never better than what happened. Succeeded only when a suite ran and every
    /// branch suite went through; a failing test, a suite that timed out or exited non-zero is partial.
    public static func outcome(_ result: Result, record: SkillRecord) -> SkillOutcome {
        let c = result.comparison, runs = result.branchRuns.count
        guard !result.branchRuns.isEmpty else {
            let base = result.baseRuns.isEmpty || result.sameAsBase ? "" : " (its base has \(result.baseRuns.count))"
            return .endedShort(.skipped, reason: "tests of branch \(result.branch) not run: no test suites found\(base)", records: [record], examined: 0)
        }
        guard c.branchSucceeded else {
            // Runs that failed without a failed test (did not build, timed out) are named: "0 failed" alone would read as a pass.
            let other = result.branchRuns.filter { !succeeded($0) && $0.failed == 0 }
                .map { $0.notRun != nil ? "\($0.framework.rawValue) NOT RUN" : $0.timedOut ? "\($0.framework.rawValue) timed out" : "\($0.framework.rawValue) exited \($0.exitCode.map(String.init) ?? "without starting")" }
            return .endedShort(.partial, reason: "tests of branch \(result.branch) failed: \(c.branchFailed) failed (\(c.broken) newly broken)"
                               + (other.isEmpty ? "" : "; " + other.joined(separator: ", ")), records: [record], examined: runs)
        }
        // A branch that passes by deleting tests has not shown it works: said, and not a clean result.
        if c.removed > 0 {
            return .endedShort(.partial, reason: "tests of branch \(result.branch) pass, but \(c.removed) test\(c.removed == 1 ? "" : "s") of its base \(c.removed == 1 ? "is" : "are") gone on it",
                               records: [record], examined: runs)
        }
        return .succeeded([record], examined: runs)
    }

    /// A target as reports show it: a URL without the credentials it may carry (`https://user:token@host/...`).
    static func shown(_ target: String) -> String {
        target.replacingOccurrences(of: #"//[^/@]+@"#, with: "//", options: .regularExpression)
    }

    /// "80%" (nil: "no coverage").
    static func percent(_ ratio: Double?) -> String {
        guard let ratio else { return "no coverage" }
        return String(format: "%.0f%%", 100 * ratio)
    }
}
