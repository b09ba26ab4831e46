import CortexTestRunner
import Foundation

/// How a branch's test results differ from its base's: per framework, which tests the branch fixed,
/// which it broke, which it added or removed and which fail on both; the pass/fail counts of each side
/// and their line coverage. Made by `BranchTestSkill.compare(branch:base:limit:)`; stored in the
/// branch-test record as `comparison`.
public struct BranchTestComparison: Codable, Sendable, Equatable {
    /// Test names of one kind: how many there are and the first of them in name order (a branch that
    /// renames a thousand tests must not make a result of megabytes).
    public struct TestNames: Codable, Sendable, Equatable {
        /// How many tests there are (`names` may hold fewer).
        public var count: Int
        /// Sorted; at most the comparison's limit.
        public var names: [String]

        public init(count: Int, names: [String]) {
            self.count = count
            self.names = names
        }

        /// The names, sorted and cut to `limit`, with their full count.
        init(_ all: some Sequence<String>, limit: Int) {
            let sorted = Set(all).sorted()
            self.init(count: sorted.count, names: Array(sorted.prefix(max(0, limit))))
        }
    }

    /// One test framework on both sides.
    public struct Framework: Codable, Sendable, Equatable {
        /// `TestFramework` raw value (pytest, swift, go, ...).
        public var framework: String
        /// Whether the framework ran on the branch, and on the base (a branch may add or drop a suite).
        public var ranOnBranch: Bool
        public var ranOnBase: Bool
        public var branchPassed: Int
        public var branchFailed: Int
        public var basePassed: Int
        public var baseFailed: Int
        /// The run exited 0 within its time and no test failed (false when it did not run).
        public var branchSucceeded: Bool
        public var baseSucceeded: Bool
        /// Whether both sides reported test by test; without that (a runner with only a summary line, a
        /// build that failed) the name lists below are empty and only the counts compare.
        public var perTest: Bool
        /// Failed on the base, passes on the branch.
        public var fixed: TestNames
        /// Passed on the base, fails on the branch.
        public var broken: TestNames
        /// Only on the branch (with how many of them fail in `addedFailing`).
        public var added: TestNames
        public var addedFailing: TestNames
        /// Only on the base.
        public var removed: TestNames
        /// Failed on both.
        public var stillFailing: TestNames
        /// Failed on the branch, then passed when run again.
        public var branchFlaky: TestNames
        /// Lines covered / lines measured over every file of the run (nil: no coverage report).
        public var branchCoverage: Double?
        public var baseCoverage: Double?
    }

    public var frameworks: [Framework]
    /// Totals over the frameworks.
    public var branchPassed: Int
    public var branchFailed: Int
    public var basePassed: Int
    public var baseFailed: Int
    public var fixed: Int
    public var broken: Int
    public var added: Int
    public var removed: Int
    public var stillFailing: Int
    /// Over every framework's files: sum of covered lines / sum of measured lines (nil: no coverage).
    public var branchCoverage: Double?
    public var baseCoverage: Double?
    /// Whether any framework ran on the branch.
    public var branchRan: Bool { frameworks.contains { $0.ranOnBranch } }
    /// Every framework that ran on the branch succeeded, and at least one ran.
    public var branchSucceeded: Bool { branchRan && frameworks.allSatisfy { !$0.ranOnBranch || $0.branchSucceeded } }
}

extension BranchTestSkill {
    /// Compares a branch's runs with its base's, per framework and per test name (a pure function:
    /// what `perform` records, and what the unit tests check). A test counts by its outcome on each side:
    /// skipped is neither passed nor failed, so a test skipped on the base and passing on the branch is
    /// not "fixed". A name reported twice (parametrized duplicates) counts as failed if either failed.
    /// Name lists keep at most `limit` names each, with their full counts.
    public static func compare(branch: [FrameworkRun], base: [FrameworkRun], limit: Int = 100) -> BranchTestComparison {
        let frameworks = TestFramework.allCases.filter { f in branch.contains { $0.framework == f } || base.contains { $0.framework == f } }
        var out: [BranchTestComparison.Framework] = []
        for f in frameworks {
            let b = branch.filter { $0.framework == f }, a = base.filter { $0.framework == f }
            let onBranch = outcomes(b), onBase = outcomes(a)
            // A side that did not run has no tests: everything on the other side is added (or removed).
            // A side that ran without a per-test report (a summary line only, a build that failed) says
            // nothing about names: listing the other side's tests as added or removed would be made up.
            let perTest = (b.isEmpty || b.allSatisfy { !$0.tests.isEmpty }) && (a.isEmpty || a.allSatisfy { !$0.tests.isEmpty })
            /// The tests whose (base, branch) outcomes `keep` selects.
            func names(_ keep: (TestCaseResult.Outcome?, TestCaseResult.Outcome?) -> Bool) -> BranchTestComparison.TestNames {
                guard perTest else { return .init(count: 0, names: []) }
                return .init(Set(onBranch.keys).union(onBase.keys).filter { keep(onBase[$0], onBranch[$0]) }, limit: limit)
            }
            out.append(.init(
                framework: f.rawValue, ranOnBranch: !b.isEmpty, ranOnBase: !a.isEmpty,
                branchPassed: b.reduce(0) { $0 + $1.passed }, branchFailed: b.reduce(0) { $0 + $1.failed },
                basePassed: a.reduce(0) { $0 + $1.passed }, baseFailed: a.reduce(0) { $0 + $1.failed },
                branchSucceeded: !b.isEmpty && b.allSatisfy(succeeded), baseSucceeded: !a.isEmpty && a.allSatisfy(succeeded),
                perTest: perTest,
                fixed: names { $0 == .failed && $1 == .passed },
                broken: names { $0 == .passed && $1 == .failed },
                added: names { $0 == nil && $1 != nil },
                addedFailing: names { $0 == nil && $1 == .failed },
                removed: names { $0 != nil && $1 == nil },
                stillFailing: names { $0 == .failed && $1 == .failed },
                branchFlaky: .init(b.flatMap(\.flaky), limit: limit),
                branchCoverage: coverage(b), baseCoverage: coverage(a)))
        }
        return BranchTestComparison(
            frameworks: out,
            branchPassed: out.reduce(0) { $0 + $1.branchPassed }, branchFailed: out.reduce(0) { $0 + $1.branchFailed },
            basePassed: out.reduce(0) { $0 + $1.basePassed }, baseFailed: out.reduce(0) { $0 + $1.baseFailed },
            fixed: out.reduce(0) { $0 + $1.fixed.count }, broken: out.reduce(0) { $0 + $1.broken.count },
            added: out.reduce(0) { $0 + $1.added.count }, removed: out.reduce(0) { $0 + $1.removed.count },
            stillFailing: out.reduce(0) { $0 + $1.stillFailing.count },
            branchCoverage: coverage(branch), baseCoverage: coverage(base))
    }

    /// Whether a run went through: it exited 0 within its time and no test failed. The exit code counts
    /// too: a suite that did not build reports no failed test, and is not a pass.
    static func succeeded(_ run: FrameworkRun) -> Bool {
        !run.timedOut && run.exitCode == 0 && run.failed == 0 && run.notRun == nil
    }

    /// Each test's outcome by name; failed wins over passed, passed over skipped.
    static func outcomes(_ runs: [FrameworkRun]) -> [String: TestCaseResult.Outcome] {
        func rank(_ o: TestCaseResult.Outcome) -> Int { o == .failed ? 2 : o == .passed ? 1 : 0 }
        var out: [String: TestCaseResult.Outcome] = [:]
        for test in runs.flatMap(\.tests) where rank(test.outcome) >= rank(out[test.name] ?? .skipped) { out[test.name] = test.outcome }
        return out
    }

    /// Lines covered / lines measured over every file of the runs; nil when none measured any.
    static func coverage(_ runs: [FrameworkRun]) -> Double? {
        let files = runs.flatMap(\.coverage)
        let total = files.reduce(0) { $0 + $1.total }
        return total == 0 ? nil : Double(files.reduce(0) { $0 + $1.covered }) / Double(total)
    }
}
