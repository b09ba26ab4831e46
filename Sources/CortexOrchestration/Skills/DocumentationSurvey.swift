import CortexCore
import Foundation

/// development: surveys a repository's documentation (titles, size, whether a README exists).
public struct DocumentationSurvey: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change.
    public var version: Int { 1 }

    /// Only documents: Markdown, reStructuredText, AsciiDoc and READMEs.
    public func considers(_ path: String) -> Bool {
        let ext = (path as NSString).pathExtension.lowercased()
        let readme = PathText.lastComponent(path).uppercased().hasPrefix("README")
        return readme || (["md", "markdown", "rst", "adoc"].contains(ext))
    }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        files.compactMap { path in
            guard considers(path), let text = readText(root, path) else { return nil }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let headings = lines.filter { $0.hasPrefix("#") }
            let title = headings.first.map { $0.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces) } ?? ""
            return ["path": .string(path), "title": .string(title), "lines": .number(Double(lines.count)), "headings": .number(Double(headings.count))]
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let implementations = records.filter { $0["kind"]?.stringValue == "implementation" }.sorted { ($0["item"]?.stringValue ?? "") < ($1["item"]?.stringValue ?? "") }
        var summary = documentation(records.filter { $0["kind"] == nil })
        guard !implementations.isEmpty else { return summary }
        var md = "\n### Implementation tasks\n\n"
        var done = 0, skipped = 0
        for r in implementations {
            let status = r["status"]?.stringValue ?? "?"
            if status == "finished" { done += 1 } else if status == "skipped" { skipped += 1 }
            md += "#### \(r["instruction"]?.stringValue ?? "")\n\n**\(status)**: \(r["summary"]?.stringValue ?? "")\n\n"
            if let result = r["result"]?.decoded(as: AgentResult.self) {
                md += "\(result.steps) steps, \(result.tokens) tokens" + (result.reason.map { "; \($0)" } ?? "")
                    + "; tests: " + (result.testSummary.map { "\($0) (\(result.testsPassed == true ? "pass" : "fail"))" } ?? "not run") + ".\n\n"
                if let cited = r["citations"]?.arrayValue?.compactMap(\.stringValue), !cited.isEmpty {
                    md += "Retrieved into the briefing: " + cited.map { "`\($0)`" }.joined(separator: ", ") + ".\n\n"
                }
                if let branch = r["branch"]?.stringValue {
                    md += "Branch `\(branch)` in \(r["location"]?.stringValue ?? "?")" + (r["pull_request"]?.stringValue.map { "; pull request: \($0)" } ?? "") + ".\n\n"
                }
                let review = (r["review"]?.arrayValue ?? []).compactMap { $0.decoded(as: ChangeReview.Comment.self) }
                if r["patch"] != nil {
                    md += "Review: " + (review.isEmpty ? "no comment.\n\n" : "\n\n" + review.map { "- \($0.file)\($0.line.map { ":\($0)" } ?? ""): \($0.rule): \($0.message)" }.joined(separator: "\n") + "\n\n")
                }
                if let modelReview = r["model_review"]?.stringValue { md += "Model review:\n\n" + modelReview.split(separator: "\n").map { "> \($0)" }.joined(separator: "\n") + "\n\n" }
                for note in r["notes"]?.arrayValue?.compactMap(\.stringValue) ?? [] { md += "> \(note)\n\n" }
                if let patch = r["patch"]?.stringValue { md += "```diff\n\(patch)```\n\n" }
                md += "Transcript:\n\n" + table(["Step", "Kind", "Tool", "Input", "Output"], result.transcript.map {
                    ["\($0.step)", $0.kind, $0.name ?? "", String(($0.input ?? "").prefix(160)).replacingOccurrences(of: "\n", with: "⏎"),
                     String($0.output.prefix(200)).replacingOccurrences(of: "\n", with: "⏎")]
                }) + "\n"
            }
        }
        summary.markdown += md
        summary.headline += "; \(implementations.count) implementation task(s): \(done) finished" + (skipped > 0 ? ", \(skipped) skipped (no model configured)" : "")
        var details = summary.details.objectValue ?? [:]
        details["implementations"] = .array(implementations.map { .object($0) })
        summary.details = .object(details)
        return summary
    }

    func documentation(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let hasReadme = rows.contains { PathText.lastComponent($0["path"]?.stringValue ?? "").uppercased().hasPrefix("README") && !($0["path"]?.stringValue ?? "").contains("/") }
        let lines = rows.reduce(0) { $0 + ($1["lines"]?.intValue ?? 0) }
        let headline = "\(rows.count) documents, \(lines) lines; top-level README \(hasReadme ? "present" : "missing")"
        let md = "### Documentation\n\n" + table(["File", "Title", "Lines", "Headings"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["title"]?.stringValue ?? "", "\($0["lines"]?.intValue ?? 0)", "\($0["headings"]?.intValue ?? 0)"]
        }) + (hasReadme ? "" : "\nThere is no top-level README: a newcomer has nowhere to start.\n")
        return SkillSummary(headline: headline, markdown: md, details: .object(["readme": .bool(hasReadme), "documents": .array(rows.map { .object($0) })]))
    }
}
