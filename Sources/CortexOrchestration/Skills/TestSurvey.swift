import CortexCore
import CortexTestRunner
import Foundation

/// testing: finds test files and counts their test cases per framework; when the run allows it for the
/// target, the records of the suites' runs (`TestRunner`, one work item) are summarized with them.
public struct TestSurvey: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change.
    public var version: Int { 1 }

    /// (framework, regular expression for one test case) by file kind.
    static func frameworks(for path: String) -> [(String, String)] {
        let name = PathText.lastComponent(path)
        let ext = (name as NSString).pathExtension
        let isJS = ["js", "ts", "mjs", "tsx", "jsx"].contains(ext)
        let isJVM = ["java", "kt"].contains(ext)
        if ext == "swift" && (path.hasPrefix("Tests/") || path.contains("/Tests/")) {
            return [("swift-testing", #"@Test\b"#), ("xctest", #"func\s+test\w*\s*\("#)]
        }
        if ext == "py" && (name.hasPrefix("test_") || name.hasSuffix("_test.py")) {
            return [("pytest", #"^\s*(async\s+)?def\s+test\w*\s*\("#)]
        }
        if ext == "go" && name.hasSuffix("_test.go") {
            return [("go test", #"^func\s+Test\w*\s*\(\s*\w+\s+\*testing\.T"#)]
        }
        if ext == "rs" { return [("cargo test", #"#\[(tokio::)?test\]"#)] }
        if isJS && (name.contains(".test.") || name.contains(".spec.") || path.contains("__tests__/")) {
            return [("js test", #"^\s*(it|test)\s*\("#)]
        }
        if isJVM && path.contains("src/test/") { return [("junit", #"@Test\b"#)] }
        return []
    }

    /// Compiled once per pattern: the worker calls `examine` file by file.
    private static let compiled = Locked<[String: NSRegularExpression]>([:])
    static func regex(_ pattern: String) throws -> NSRegularExpression {
        if let r = compiled.withLock({ $0[pattern] }) { return r }
        let r = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
        compiled.withLock { $0[pattern] = r }
        return r
    }

    /// Only files of a test framework's naming.
    public func considers(_ path: String) -> Bool { !Self.frameworks(for: path).isEmpty }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        var out: [SkillRecord] = []
        for path in files {
            let kinds = Self.frameworks(for: path)
            guard !kinds.isEmpty, let text = readText(root, path) else { continue }
            for (framework, pattern) in kinds {
                let regex = try Self.regex(pattern)
                let cases = regex.numberOfMatches(in: text, range: NSRange(text.startIndex..., in: text))
                if cases > 0 {
                    out.append(["path": .string(path), "framework": .string(framework), "cases": .number(Double(cases))])
                }
            }
        }
        return out
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records.filter { $0["kind"] == nil })
        var byFramework: [String: Int] = [:]
        for r in rows { byFramework[r["framework"]?.stringValue ?? "?", default: 0] += r["cases"]?.intValue ?? 0 }
        let total = byFramework.values.reduce(0, +)
        let files = Set(rows.compactMap { $0["path"]?.stringValue }).count
        let parts = byFramework.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        var headline = total == 0 ? "no tests found" : "\(total) test cases in \(files) files (\(parts))"
        var md = "### Tests\n\n" + table(["File", "Framework", "Cases"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["framework"]?.stringValue ?? "", "\($0["cases"]?.intValue ?? 0)"]
        })
        let runRecords = records.filter { $0["kind"]?.stringValue == "test-run" }
        let runs = runRecords.compactMap { $0["run"]?.decoded(as: FrameworkRun.self) }
        md += "\n### Test runs\n\n"
        if runRecords.isEmpty {
            md += "Not run: running a target's tests executes its code, so it is opt-in per target (`cortexctl run --allow-test-execution`).\n"
            headline += "; suites NOT RUN, results not checked (test execution not allowed for this target)"
        } else if runs.isEmpty {
            md += "No test framework detected (swift test, pytest, go test, cargo test, npm test, Maven, Gradle).\n"
        } else {
            md += table(["Framework", "Command", "Passed", "Failed", "Skipped", "Flaky", "Time", "Line coverage"], runs.map { r in
                let covered = r.coverage.reduce(0) { $0 + $1.covered }, lines = r.coverage.reduce(0) { $0 + $1.total }
                if r.notRun != nil { return [r.framework.rawValue, "`\(r.command.joined(separator: " "))`", "NOT RUN", "-", "-", "-", String(format: "%.1f s", r.seconds), "-"] }
                return [r.framework.rawValue, "`\(r.command.joined(separator: " "))`", "\(r.passed)", "\(r.failed)", "\(r.skipped)", "\(r.flaky.count)",
                        String(format: "%.1f s", r.seconds) + (r.timedOut ? " (timed out)" : ""),
                        lines == 0 ? "-" : String(format: "%.1f %% of %d lines (%@)", 100 * Double(covered) / Double(lines), lines, r.coverageSource ?? "")]
            })
            let all = runs.flatMap(\.tests)
            let slowest = all.filter { $0.seconds != nil }.sorted { ($0.seconds ?? 0) > ($1.seconds ?? 0) }.prefix(5)
            if !slowest.isEmpty { md += "\nSlowest tests:\n\n" + table(["Test", "Seconds"], slowest.map { [$0.name, String(format: "%.3f", $0.seconds ?? 0)] }) }
            let failing = all.filter { $0.outcome == .failed }
            let flaky = Set(runs.flatMap(\.flaky))
            if !failing.isEmpty {
                md += "\nFailing tests (each run once more):\n\n" + table(["Test", "Flaky", "Message"], failing.map { [$0.name, flaky.contains($0.name) ? "yes: passed on the rerun" : "no", String(($0.message ?? "").prefix(160))] })
            }
            for (record, run) in zip(runRecords, runs) {
                let least = record["least_covered"]?.arrayValue ?? []
                if !least.isEmpty {
                    md += "\nLeast-covered files (\(run.framework.rawValue)):\n\n" + table(["File", "Coverage", "Lines", "Last changed"], least.map { e in
                        let covered = e["covered"]?.intValue ?? 0, totalLines = e["total"]?.intValue ?? 0
                        return [e["file"]?.stringValue ?? "", String(format: "%.0f %%", totalLines == 0 ? 100 : 100 * Double(covered) / Double(totalLines)), "\(totalLines)",
                                e["changed"]?.stringValue.map { Self.age($0) } ?? "not in git"]
                    })
                }
                let notes = (run.notRun.map { ["NOT RUN: \($0)"] } ?? []) + run.notes
                if !notes.isEmpty { md += "\n" + notes.map { "- \(run.framework.rawValue): \($0)" }.joined(separator: "\n") + "\n" }
            }
            let covered = runs.flatMap(\.coverage).reduce(0) { $0 + $1.covered }, lines = runs.flatMap(\.coverage).reduce(0) { $0 + $1.total }
            headline += "; run: \(runs.reduce(0) { $0 + $1.passed }) passed, \(runs.reduce(0) { $0 + $1.failed }) failed"
                + (flaky.isEmpty ? "" : " (\(flaky.count) flaky)") + (lines == 0 ? "" : String(format: ", line coverage %.1f %%", 100 * Double(covered) / Double(lines)))
            let notRun = runs.filter { $0.notRun != nil }.map(\.framework.rawValue)
            if !notRun.isEmpty { headline += "; \(notRun.joined(separator: ", ")) NOT RUN (see the notes)" }
        }
        return SkillSummary(headline: headline, markdown: md, details: .object([
            "cases": .number(Double(total)), "files": .array(rows.map { .object($0) }),
            "frameworks": .object(byFramework.mapValues { .number(Double($0)) }),
            "runs": .array(runs.map(JSONValue.of)),
        ]))
    }

    /// "changed 3 days ago (2026-11-25)" from an ISO timestamp.
    static func age(_ iso: String) -> String {
        guard let date = Timestamp.parse(iso) else { return iso }
        let days = Int(Date().timeIntervalSince(date) / 86_400)
        return (days <= 0 ? "changed today" : "changed \(days) day\(days == 1 ? "" : "s") ago") + " (\(iso.prefix(10)))"
    }
}
