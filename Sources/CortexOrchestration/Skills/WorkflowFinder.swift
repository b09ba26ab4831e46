import CortexCICD
import CortexCore
import Foundation

/// cicd: finds CI pipelines, names their jobs, and reviews GitHub Actions and GitLab CI files for
/// security and speed (`PipelineAnalyzer`), each finding with file, line, job/step and a patch where
/// the fix is mechanical. A file that is not valid YAML is reported with its line; the others are still analysed.
public struct WorkflowFinder: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change.
    public var version: Int { 3 }

    /// The CI system a path belongs to, or nil.
    public static func system(of path: String) -> String? {
        let name = PathText.lastComponent(path)
        if path.hasPrefix(".github/workflows/") && (name.hasSuffix(".yml") || name.hasSuffix(".yaml")) { return "GitHub Actions" }
        if name == ".gitlab-ci.yml" { return "GitLab CI" }
        if name == "Jenkinsfile" { return "Jenkins" }
        if path == ".circleci/config.yml" { return "CircleCI" }
        if name == "azure-pipelines.yml" { return "Azure Pipelines" }
        if path.hasPrefix(".ci/") { return "script (.ci)" }
        return nil
    }

    /// Job names of a GitHub Actions workflow: the keys indented one level under the top-level `jobs:`.
    static func githubJobs(_ text: String) -> [String] {
        var jobs: [String] = []
        var inJobs = false
        var indent: Int?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.trimmingCharacters(in: .whitespaces).hasPrefix("#") || line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let lead = line.prefix { $0 == " " }.count
            if lead == 0 { inJobs = line.hasPrefix("jobs:"); indent = nil; continue }
            guard inJobs else { continue }
            if indent == nil { indent = lead }
            if lead == indent, let colon = line.firstIndex(of: ":") {
                jobs.append(line[line.startIndex..<colon].trimmingCharacters(in: .whitespaces))
            }
        }
        return jobs
    }

    /// Only pipeline files.
    public func considers(_ path: String) -> Bool { Self.system(of: path) != nil }

    /// Dependency lockfiles under `root` (four directories deep at most; vendored and build trees
    /// skipped): a cache suggestion needs one to key on.
    static func lockfiles(root: URL) -> Set<String> {
        var out = Set<String>()
        let skip: Set<String> = ["node_modules", ".build", "vendor", "target", "build", "dist", ".venv", "venv"]
        guard let walk = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey], options: [.skipsHiddenFiles]) else { return out }
        let base = root.path.count + 1
        for case let url as URL in walk {
            if skip.contains(url.lastPathComponent) || walk.level > 4 { walk.skipDescendants(); continue }
            if PipelineAnalyzer.isLockfile(url.lastPathComponent) { out.insert(String(url.path.dropFirst(base))) }
        }
        return out
    }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        let lockfiles = files.contains { Self.system(of: $0) == "GitHub Actions" } ? Self.lockfiles(root: root) : []
        return files.compactMap { path in
            guard let system = Self.system(of: path) else { return nil }
            let text = readText(root, path) ?? ""
            let jobs = system == "GitHub Actions" ? Self.githubJobs(text) : []
            var record: SkillRecord = ["path": .string(path), "system": .string(system), "jobs": .array(jobs.map { .string($0) }),
                                       "lines": .number(Double(text.split(separator: "\n", omittingEmptySubsequences: false).count))]
            do {
                if let findings = try PipelineAnalyzer.analyze(file: path, text: text, lockfiles: lockfiles) {
                    record["findings"] = .array(findings.map(JSONValue.of))
                }
            } catch {
                record["error"] = .string("\(error)")
            }
            return record
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let jobs = rows.reduce(0) { $0 + ($1["jobs"]?.arrayValue?.count ?? 0) }
        let systems = Set(rows.compactMap { $0["system"]?.stringValue }).sorted()
        var md = "### CI pipelines\n\n" + table(["File", "System", "Jobs"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["system"]?.stringValue ?? "", ($0["jobs"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")]
        })
        let findings = rows.flatMap { ($0["findings"]?.arrayValue ?? []).compactMap { $0.decoded(as: PipelineFinding.self) } }
        let errors = rows.compactMap { $0["error"]?.stringValue }
        let order = ["critical", "high", "medium", "low", "info"]
        func rank(_ f: PipelineFinding) -> Int { order.firstIndex(of: f.severity) ?? 5 }
        // zizmor's personas: the tables list what everyone should act on; pedantic and auditor-level
        // findings are counted by audit and kept in full in the details.
        let acknowledged = findings.filter { $0.ignoredBy != nil }
        let shown = findings.filter { ($0.persona ?? "regular") == "regular" && $0.ignoredBy == nil }
        let quieter = findings.filter { ($0.persona ?? "regular") != "regular" && $0.ignoredBy == nil }
        for category in ["security", "speed"] {
            let list = shown.filter { $0.category == category }.sorted { (rank($0), $0.file, $0.line ?? 0) < (rank($1), $1.file, $1.line ?? 0) }
            md += "\n### Pipeline \(category)\n\n" + table(["Severity", "Where", "Job / step", "Rule", "Finding"] + (category == "speed" ? ["Estimated saving", "Risk"] : ["Confidence"]), list.map { f in
                ["\(f.severity)", "\(f.file)\(f.line.map { ":\($0)" } ?? "")", [f.job, f.step].compactMap { $0 }.joined(separator: " / "), f.rule, f.message]
                    + (category == "speed" ? [f.saving ?? "", f.risk ?? ""] : [f.confidence ?? ""])
            })
            let fixes = list.filter { $0.patch != nil || $0.suggestion != nil }
            if !fixes.isEmpty {
                md += "\n" + fixes.map { f in
                    "**\(f.rule)** at \(f.file)\(f.line.map { ":\($0)" } ?? "")" + (f.job.map { " (\($0))" } ?? "") + ":\n\n"
                        + (f.patch.map { "```diff\n\($0)```\n" } ?? "") + (f.suggestion.map { "```\n\($0)\n```\n" } ?? "")
                }.joined(separator: "\n")
            }
        }
        if !quieter.isEmpty {
            let byAudit = Dictionary(grouping: quieter) { "\($0.rule) (\($0.persona ?? ""))" }.map { [$0.key, "\($0.value.count)"] }.sorted { $0[0] < $1[0] }
            md += "\n### Pedantic and auditor-level findings\n\nNot in the tables above (zizmor shows them with `--persona pedantic` or `auditor`); each is in this report's JSON details.\n\n"
                + table(["Audit (persona)", "Findings"], byAudit)
        }
        if !acknowledged.isEmpty {
            md += "\n### Acknowledged in the workflows\n\nFindings a `# zizmor: ignore[…]` comment acknowledges (not counted above):\n\n"
                + table(["Where", "Rule", "Severity", "Acknowledged by"], acknowledged.map { ["\($0.file)\($0.line.map { ":\($0)" } ?? "")", $0.rule, $0.severity, $0.ignoredBy ?? ""] })
        }
        if !errors.isEmpty { md += "\n### Pipelines that could not be read (the others were analysed)\n\n" + errors.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        let security = shown.filter { $0.category == "security" }, speed = shown.filter { $0.category == "speed" }
        let severe = security.filter { ["critical", "high"].contains($0.severity) }.count
        let headline = (rows.isEmpty ? "no CI pipeline found" : "\(rows.count) pipeline files, \(jobs) jobs (\(systems.joined(separator: ", ")))")
            + (findings.isEmpty && errors.isEmpty ? "" : "; \(security.count) security findings (\(severe) critical/high), \(speed.count) speed findings")
            + (quieter.isEmpty ? "" : " (+\(quieter.count) pedantic/auditor-level)") + (acknowledged.isEmpty ? "" : "; \(acknowledged.count) acknowledged by ignore comments")
            + (errors.isEmpty ? "" : "; \(errors.count) unreadable")
        return SkillSummary(headline: headline, markdown: md, details: .object(["pipelines": .array(rows.map { .object($0) }),
                                                                               "findings": .array(findings.map(JSONValue.of))]))
    }
}
