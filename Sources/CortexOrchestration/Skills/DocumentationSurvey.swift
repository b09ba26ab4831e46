import CortexCore
import Foundation

/// development: surveys a repository's documentation (titles, size, whether a README exists).
public struct DocumentationSurvey: Skill {
    public init() {}

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        files.compactMap { path in
            let ext = (path as NSString).pathExtension.lowercased()
            guard ["md", "markdown", "rst", "adoc", "txt"].contains(ext) || (path as NSString).lastPathComponent.uppercased().hasPrefix("README") else { return nil }
            if ext == "txt" && !(path as NSString).lastPathComponent.uppercased().hasPrefix("README") { return nil }
            guard let text = readText(root, path) else { return nil }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            let headings = lines.filter { $0.hasPrefix("#") }
            let title = headings.first.map { $0.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces) } ?? ""
            return ["path": .string(path), "title": .string(title), "lines": .number(Double(lines.count)), "headings": .number(Double(headings.count))]
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let hasReadme = rows.contains { (($0["path"]?.stringValue ?? "") as NSString).lastPathComponent.uppercased().hasPrefix("README") && !($0["path"]?.stringValue ?? "").contains("/") }
        let lines = rows.reduce(0) { $0 + ($1["lines"]?.intValue ?? 0) }
        let headline = "\(rows.count) documents, \(lines) lines; top-level README \(hasReadme ? "present" : "missing")"
        let md = "### Documentation\n\n" + table(["File", "Title", "Lines", "Headings"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["title"]?.stringValue ?? "", "\($0["lines"]?.intValue ?? 0)", "\($0["headings"]?.intValue ?? 0)"]
        }) + (hasReadme ? "" : "\nThere is no top-level README: a newcomer has nowhere to start.\n")
        return SkillSummary(headline: headline, markdown: md, details: .object(["readme": .bool(hasReadme), "documents": .array(rows.map { .object($0) })]))
    }
}
