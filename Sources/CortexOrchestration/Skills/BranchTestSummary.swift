import CortexCore
import Foundation

/// The testing master's account of its branch tests: one headline part per branch, the report section
/// "Branch tests" (a table per branch and the tests it fixed and broke), and details a coordinator reads
/// pass or fail from.
extension BranchTestSkill {
    /// Merges the `branch-test` records. Headline per branch, e.g.
    /// `branch cortex/dev/run-x/impl0: pytest 1 passed, 0 failed (base: 0 passed, 1 failed); fixed: test_add; coverage 80% (base 75%)`;
    /// a branch that was not tested says so and why. Details: `branch_tests` (one object per branch:
    /// `branch`, `status`, `tests_ran`, `reason`, `commit`, `base`, `same_as_base`, `passed`, `failed`,
    /// `base_passed`, `base_failed`, `fixed`, `broken`, `added`, `removed`, `still_failing`, `fixed_tests`,
    /// `broken_tests`, `coverage`, `base_coverage`, `frameworks`) and the totals `passed`, `failed`,
    /// `fixed`, `broken`, `all_passed` (every branch tested, and every one of its suites passed).
    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = records.filter { $0["kind"]?.stringValue == "branch-test" }
            .sorted { ($0["branch"]?.stringValue ?? "") < ($1["branch"]?.stringValue ?? "") }
        var md = "### Branch tests\n\n"
        guard !rows.isEmpty else {
            md += "_No branch was tested._\n"
            return SkillSummary(headline: "no branch tested", markdown: md, details: ["branch_tests": [], "passed": 0, "failed": 0, "fixed": 0, "broken": 0, "all_passed": false])
        }
        var headlines: [String] = [], entries: [JSONValue] = []
        var totals = (passed: 0, failed: 0, fixed: 0, broken: 0), allPassed = true
        for r in rows {
            let branch = r["branch"]?.stringValue ?? ""
            let status = r["status"]?.stringValue ?? "?"
            let shown = branch.isEmpty ? "(none)" : branch
            md += "#### Branch `\(shown)`\n\n"
            var entry: [String: JSONValue] = ["branch": .string(branch), "status": .string(status)]
            guard let c = r["comparison"]?.decoded(as: BranchTestComparison.self) else {
                // Not tested: test execution not allowed, no branch, or a branch the target does not have.
                let reason = r["reason"]?.stringValue ?? "not tested"
                headlines.append("branch \(shown): NOT TESTED (\(reason))")
                md += (status == "skipped" ? "Not run: " : "Not tested: ") + reason + "\n\n"
                if status == "skipped" { md += "Running a target's tests executes its code, so it is opt-in per target (`cortexctl run --allow-test-execution`).\n\n" }
                entry["tests_ran"] = false
                entry["reason"] = .string(reason)
                entries.append(.object(entry))
                allPassed = false
                continue
            }
            let branchRuns = r["branch_runs"]?.decoded(as: [RunSummary].self) ?? []
            let commit = r["commit"]?.stringValue ?? "?", base = r["base"]?.stringValue ?? "?"
            let same = r["same_as_base"]?.boolValue ?? (commit == base)
            headlines.append(Self.headline(shown, c, branchRuns: branchRuns, sameAsBase: same))
            md += "Commit `\(commit.prefix(12))` from base `\(base.prefix(12))`" + (r["target"]?.stringValue.map { " in \($0)" } ?? "") + ".\n"
            if same { md += "The branch has no commits beyond its base: the base's results are the branch's.\n" }
            md += "\n"
            if c.frameworks.isEmpty {
                md += "No test suites found (swift test, pytest, go test, cargo test, npm test, Maven, Gradle): nothing was run.\n\n"
            } else {
                md += table(["Framework", "Branch passed", "Branch failed", "Base passed", "Base failed", "Fixed", "Newly broken", "Added / removed", "Coverage (branch vs base)"],
                            c.frameworks.map { f in
                    [f.framework, f.ranOnBranch ? "\(f.branchPassed)" : "not run", f.ranOnBranch ? "\(f.branchFailed)" : "-",
                     f.ranOnBase ? "\(f.basePassed)" : "not run", f.ranOnBase ? "\(f.baseFailed)" : "-",
                     f.perTest ? "\(f.fixed.count)" : "?", f.perTest ? "\(f.broken.count)" : "?", f.perTest ? "\(f.added.count) / \(f.removed.count)" : "?",
                     "\(Self.percent(f.branchCoverage)) vs \(Self.percent(f.baseCoverage))"]
                })
                let all = c.frameworks
                md += Self.list("Fixed (failed on the base, pass on the branch)", all.map(\.fixed))
                md += Self.list("Newly broken (passed on the base, fail on the branch)", all.map(\.broken))
                md += Self.list("New tests failing on the branch", all.map(\.addedFailing))
                md += Self.list("Failing on the base and on the branch", all.map(\.stillFailing))
                md += Self.list("Flaky on the branch (failed, then passed when run again)", all.map(\.branchFlaky))
                if all.contains(where: { !$0.perTest }) {
                    md += "\nSome suites wrote no per-test report on one side (marked `?`): only their counts compare.\n"
                }
                let failing = branchRuns.flatMap { run in run.failing.map { [$0.name, String(($0.message ?? "").prefix(160))] } }
                if !failing.isEmpty { md += "\nFailing on the branch:\n\n" + table(["Test", "Message"], failing) }
                for run in branchRuns where run.timedOut || run.exitCode != 0 {
                    if run.failed == 0 {
                        md += "\n`\(run.command)` " + (run.timedOut ? "timed out" : "exited \(run.exitCode.map(String.init) ?? "without starting")") + " with no failed test reported"
                            + (run.outputTail.map { "; the end of its output:\n\n```\n\(String($0.suffix(600)))\n```\n" } ?? ".\n")
                    }
                }
                md += "\n"
            }
            totals.passed += c.branchPassed
            totals.failed += c.branchFailed
            totals.fixed += c.fixed
            totals.broken += c.broken
            allPassed = allPassed && c.branchSucceeded
            entry["tests_ran"] = .bool(c.branchRan)
            if c.frameworks.isEmpty { entry["reason"] = "no test suites found" }
            entry["commit"] = .string(commit)
            entry["base"] = .string(base)
            entry["same_as_base"] = .bool(same)
            for (key, value) in [("passed", c.branchPassed), ("failed", c.branchFailed), ("base_passed", c.basePassed), ("base_failed", c.baseFailed),
                                 ("fixed", c.fixed), ("broken", c.broken), ("added", c.added), ("removed", c.removed), ("still_failing", c.stillFailing)] {
                entry[key] = .number(Double(value))
            }
            entry["fixed_tests"] = .array(c.frameworks.flatMap(\.fixed.names).map(JSONValue.string))
            entry["broken_tests"] = .array(c.frameworks.flatMap(\.broken.names).map(JSONValue.string))
            entry["coverage"] = c.branchCoverage.map(JSONValue.number) ?? .null
            entry["base_coverage"] = c.baseCoverage.map(JSONValue.number) ?? .null
            entry["frameworks"] = .array(c.frameworks.map { f in
                ["framework": .string(f.framework), "ran": .bool(f.ranOnBranch), "succeeded": .bool(f.branchSucceeded),
                 "passed": .number(Double(f.branchPassed)), "failed": .number(Double(f.branchFailed)),
                 "base_passed": .number(Double(f.basePassed)), "base_failed": .number(Double(f.baseFailed))]
            })
            entries.append(.object(entry))
        }
        return SkillSummary(headline: headlines.joined(separator: " | "), markdown: md, details: .object([
            "branch_tests": .array(entries), "passed": .number(Double(totals.passed)), "failed": .number(Double(totals.failed)),
            "fixed": .number(Double(totals.fixed)), "broken": .number(Double(totals.broken)), "all_passed": .bool(allPassed),
        ]))
    }

    /// `branch b: pytest 1 passed, 0 failed (base: 0 passed, 1 failed); fixed: test_add; coverage 80% (base 75%)`.
    static func headline(_ branch: String, _ c: BranchTestComparison, branchRuns: [RunSummary], sameAsBase: Bool) -> String {
        guard !c.frameworks.isEmpty else { return "branch \(branch): no test suites found, nothing run" }
        var parts = [c.frameworks.map { f -> String in
            let base = sameAsBase ? "" : f.ranOnBase ? " (base: \(f.basePassed) passed, \(f.baseFailed) failed)" : " (not on the base)"
            guard f.ranOnBranch else { return "\(f.framework) not on the branch" + base }
            // A run that failed without a failed test (a build error, a timeout) must not read as "0 failed".
            let run = branchRuns.first { $0.framework == f.framework }
            let broke = run.map { $0.timedOut ? ", timed out" : $0.exitCode != 0 && $0.failed == 0 ? ", exited \($0.exitCode.map(String.init) ?? "without starting")" : "" } ?? ""
            return "\(f.framework) \(f.branchPassed) passed, \(f.branchFailed) failed\(broke)" + base
        }.joined(separator: ", ")]
        if sameAsBase { parts.append("no commits beyond its base") }
        func names(_ lists: [BranchTestComparison.TestNames]) -> String {
            let names = lists.flatMap(\.names), count = lists.reduce(0) { $0 + $1.count }
            return names.prefix(3).map(shortName).joined(separator: ", ") + (count > 3 ? " and \(count - 3) more" : "")
        }
        if c.fixed > 0 { parts.append("fixed: " + names(c.frameworks.map(\.fixed))) }
        if c.broken > 0 { parts.append("NEWLY BROKEN: " + names(c.frameworks.map(\.broken))) }
        if c.branchCoverage != nil || c.baseCoverage != nil {
            parts.append("coverage \(percent(c.branchCoverage))" + (sameAsBase ? "" : " (base \(percent(c.baseCoverage)))"))
        }
        return "branch \(branch): " + parts.joined(separator: "; ")
    }

    /// A test's name without its module path (`tests.test_calc.test_add` → `test_add`), parameters kept.
    static func shortName(_ name: String) -> String {
        let bracket = name.firstIndex(of: "[") ?? name.endIndex
        let head = name[..<bracket]
        guard let dot = head.lastIndex(of: ".") else { return name }
        return String(name[name.index(after: dot)...])
    }

    /// A Markdown list of test names under a title (nothing when there are none).
    static func list(_ title: String, _ lists: [BranchTestComparison.TestNames]) -> String {
        let names = lists.flatMap(\.names), count = lists.reduce(0) { $0 + $1.count }
        guard count > 0 else { return "" }
        return "\n\(title):\n\n" + names.map { "- `\($0)`\n" }.joined() + (count > names.count ? "- … and \(count - names.count) more\n" : "")
    }
}
