import CortexCore
import Foundation

/// inventory: classifies a repository's files by language, with file and line counts.
public struct LanguageCensus: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change.
    /// 2: ownership and packaging metadata files recorded (`metadata`).
    public var version: Int { 2 }

    /// Files that say who owns a repository or how it ships, by name: what inventory reports and learns.
    static func metadataKind(of path: String) -> String? {
        switch PathText.lastComponent(path) {
        case "CODEOWNERS", "OWNERS", "MAINTAINERS", "MAINTAINERS.md": return "owners"
        case "Chart.yaml": return "helm-chart"
        case "Dockerfile", "Containerfile": return "container-image"
        default: return nil
        }
    }

    static let byExtension: [String: String] = [
        "swift": "Swift", "py": "Python", "go": "Go", "rs": "Rust", "js": "JavaScript", "mjs": "JavaScript", "cjs": "JavaScript",
        "ts": "TypeScript", "tsx": "TypeScript", "jsx": "JavaScript", "java": "Java", "kt": "Kotlin", "rb": "Ruby",
        "c": "C", "h": "C", "cc": "C++", "cpp": "C++", "hpp": "C++", "cs": "C#", "php": "PHP", "sh": "Shell", "bash": "Shell",
        "yml": "YAML", "yaml": "YAML", "json": "JSON", "toml": "TOML", "md": "Markdown", "rst": "reStructuredText",
        "html": "HTML", "css": "CSS", "scss": "CSS", "sql": "SQL", "tf": "HCL", "proto": "Protocol Buffers",
        "gradle": "Gradle", "xml": "XML", "modulemap": "Module map", "tpl": "Go template", "lua": "Lua",
    ]
    static let byName: [String: String] = ["Dockerfile": "Dockerfile", "Makefile": "Makefile", "Jenkinsfile": "Groovy", "Gemfile": "Ruby", "Rakefile": "Ruby"]

    /// The language of a path, or "Other".
    public static func language(of path: String) -> String {
        let name = PathText.lastComponent(path)
        if let l = byName[name] { return l }
        if name.hasPrefix("Dockerfile") { return "Dockerfile" }
        let ext = (name as NSString).pathExtension.lowercased()
        return byExtension[ext] ?? "Other"
    }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        var tally: [String: (files: Int, lines: Int)] = [:]
        var metadata: [SkillRecord] = []
        for (i, path) in files.enumerated() {
            if let kind = Self.metadataKind(of: path) { metadata.append(["metadata": .string(kind), "path": .string(path)]) }
            let lang = Self.language(of: path)
            let lines = readText(root, path).map { text in text.utf8.reduce(0) { $1 == 10 ? $0 + 1 : $0 } + (text.hasSuffix("\n") || text.isEmpty ? 0 : 1) } ?? 0
            tally[lang, default: (0, 0)].files += 1
            tally[lang, default: (0, 0)].lines += lines
            if i % 200 == 199 { progress(i + 1) }
        }
        return tally.map { ["language": .string($0.key), "files": .number(Double($0.value.files)), "lines": .number(Double($0.value.lines))] } + metadata
    }

    /// One record per language, however many files were examined (metadata records kept as they are).
    public func compact(_ records: [SkillRecord]) -> [SkillRecord] {
        var tally: [String: (files: Int, lines: Int)] = [:]
        var metadata: [SkillRecord] = []
        for r in records {
            guard let lang = r["language"]?.stringValue else {
                if r["metadata"] != nil { metadata.append(r) }
                continue
            }
            tally[lang, default: (0, 0)].files += r["files"]?.intValue ?? 0
            tally[lang, default: (0, 0)].lines += r["lines"]?.intValue ?? 0
        }
        return tally.sorted { $0.key < $1.key }.map { ["language": .string($0.key), "files": .number(Double($0.value.files)), "lines": .number(Double($0.value.lines))] }
            + metadata.sorted { ($0["path"]?.stringValue ?? "") < ($1["path"]?.stringValue ?? "") }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        var tally: [String: (files: Int, lines: Int)] = [:]
        for r in records {
            guard let lang = r["language"]?.stringValue else { continue }
            tally[lang, default: (0, 0)].files += r["files"]?.intValue ?? 0
            tally[lang, default: (0, 0)].lines += r["lines"]?.intValue ?? 0
        }
        let ordered = tally.sorted { $0.value.lines != $1.value.lines ? $0.value.lines > $1.value.lines : $0.key < $1.key }
        let files = ordered.reduce(0) { $0 + $1.value.files }
        let lines = ordered.reduce(0) { $0 + $1.value.lines }
        let top = ordered.prefix(3).map { "\($0.key) \($0.value.files) files" }.joined(separator: ", ")
        let headline = "\(files) files, \(lines) lines in \(ordered.count) languages" + (top.isEmpty ? "" : " (\(top))")
        let metadata = records.filter { $0["metadata"] != nil }.compactMap { r -> (kind: String, path: String)? in
            guard let kind = r["metadata"]?.stringValue, let path = r["path"]?.stringValue else { return nil }
            return (kind, path)
        }.sorted { ($0.kind, $0.path) < ($1.kind, $1.path) }
        var md = "### Languages\n\n" + table(["Language", "Files", "Lines"], ordered.map { [$0.key, "\($0.value.files)", "\($0.value.lines)"] })
        md += "\n### Ownership and packaging\n\n" + table(["Kind", "File"], metadata.prefix(200).map { [$0.kind, $0.path] })
        let details: JSONValue = .object([
            "metadata": .array(metadata.map { .object(["kind": .string($0.kind), "path": .string($0.path)]) }),
            "files": .number(Double(files)), "lines": .number(Double(lines)),
            "languages": .array(ordered.map { .object(["language": .string($0.key), "files": .number(Double($0.value.files)), "lines": .number(Double($0.value.lines))]) }),
        ])
        return SkillSummary(headline: headline, markdown: md, details: details)
    }
}
