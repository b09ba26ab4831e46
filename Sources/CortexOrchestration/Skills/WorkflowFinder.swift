import CortexCore
import Foundation

/// cicd: finds CI pipelines and names their jobs.
public struct WorkflowFinder: Skill {
    public init() {}

    /// The CI system a path belongs to, or nil.
    public static func system(of path: String) -> String? {
        let name = (path as NSString).lastPathComponent
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

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        files.compactMap { path in
            guard let system = Self.system(of: path) else { return nil }
            let text = readText(root, path) ?? ""
            let jobs = system == "GitHub Actions" ? Self.githubJobs(text) : []
            return ["path": .string(path), "system": .string(system), "jobs": .array(jobs.map { .string($0) }),
                    "lines": .number(Double(text.split(separator: "\n", omittingEmptySubsequences: false).count))]
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let jobs = rows.reduce(0) { $0 + ($1["jobs"]?.arrayValue?.count ?? 0) }
        let systems = Set(rows.compactMap { $0["system"]?.stringValue }).sorted()
        let headline = rows.isEmpty ? "no CI pipeline found" : "\(rows.count) pipeline files, \(jobs) jobs (\(systems.joined(separator: ", ")))"
        let md = "### CI pipelines\n\n" + table(["File", "System", "Jobs"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["system"]?.stringValue ?? "", ($0["jobs"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")]
        })
        return SkillSummary(headline: headline, markdown: md, details: .object(["pipelines": .array(rows.map { .object($0) })]))
    }
}
