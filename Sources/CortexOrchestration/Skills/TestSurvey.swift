import CortexCore
import Foundation

/// testing: finds test files and counts their test cases per framework (running suites comes later).
public struct TestSurvey: Skill {
    public init() {}

    /// (framework, regular expression for one test case) by file kind.
    static func frameworks(for path: String) -> [(String, String)] {
        let name = (path as NSString).lastPathComponent
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
        let rows = sorted(records)
        var byFramework: [String: Int] = [:]
        for r in rows { byFramework[r["framework"]?.stringValue ?? "?", default: 0] += r["cases"]?.intValue ?? 0 }
        let total = byFramework.values.reduce(0, +)
        let files = Set(rows.compactMap { $0["path"]?.stringValue }).count
        let parts = byFramework.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let headline = total == 0 ? "no tests found" : "\(total) test cases in \(files) files (\(parts))"
        let md = "### Tests\n\n" + table(["File", "Framework", "Cases"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["framework"]?.stringValue ?? "", "\($0["cases"]?.intValue ?? 0)"]
        })
        return SkillSummary(headline: headline, markdown: md, details: .object([
            "cases": .number(Double(total)), "files": .array(rows.map { .object($0) }),
            "frameworks": .object(byFramework.mapValues { .number(Double($0)) }),
        ]))
    }
}
