import CortexCore
import Foundation

/// The built-in skills; a work item names the one its worker runs.
public enum SkillName: String, Codable, Sendable, CaseIterable {
    case languageCensus = "language-census"
    case manifestFinder = "manifest-finder"
    case documentationSurvey = "documentation-survey"
    case workflowFinder = "workflow-finder"
    case testSurvey = "test-survey"
    case monitoringSurvey = "monitoring-survey"
    /// inventory: the cluster's objects through the Kubernetes API (not file-based: one item per namespace).
    case clusterDiscovery = "cluster-discovery"
    /// security: dependency inventory, manifest audit and secret scan of a repository shard.
    case securityScan = "security-scan"
    /// security: the live cluster's workloads audited through the Kubernetes API (one item per namespace).
    case clusterAudit = "cluster-audit"
    /// testing: the target's test suites run in a subprocess (one item per target, opt-in).
    case testRun = "test-run"
    /// development: the implementation agent makes one requested change on a branch (one item per task).
    case implementation
    /// testing: the tests of a branch another subtask produced, run in a copy of the branch and of its base,
    /// with the difference between the two (one item per branch, opt-in like `testRun`).
    case branchTest = "branch-test"

    /// The skill each master runs on a target.
    public static func builtIn(for master: MasterRole) -> SkillName {
        switch master {
        case .inventory: return .languageCensus
        case .security: return .securityScan
        case .development: return .documentationSurvey
        case .cicd: return .workflowFinder
        case .testing: return .testSurvey
        case .monitoring: return .monitoringSurvey
        }
    }

    /// Whether the skill reads the cluster through the Kubernetes API (one item per namespace) rather than files.
    public var isClusterWide: Bool { self == .clusterDiscovery || self == .clusterAudit }

    /// The skill a worker runs for an item of this name, and that summarizes a task's records.
    public var skill: any WorkSkill {
        switch self {
        case .languageCensus: return FileShardedSkill(LanguageCensus(), name: .languageCensus)
        case .manifestFinder: return FileShardedSkill(ManifestFinder(), name: .manifestFinder)
        case .documentationSurvey: return FileShardedSkill(DocumentationSurvey(), name: .documentationSurvey)
        case .workflowFinder: return FileShardedSkill(WorkflowFinder(), name: .workflowFinder)
        case .testSurvey: return FileShardedSkill(TestSurvey(), name: .testSurvey)
        case .monitoringSurvey: return FileShardedSkill(MonitoringSurvey(), name: .monitoringSurvey)
        case .clusterDiscovery: return ClusterDiscoverySkill()
        case .securityScan: return FileShardedSkill(SecurityScan(), name: .securityScan)
        case .clusterAudit: return ClusterAuditSkill()
        case .testRun: return TestRunSkill()
        case .implementation: return ImplementationSkill()
        case .branchTest: return BranchTestSkill()
        }
    }

    /// The file-based skill behind a file-sharded name (nil for the others), which examines files directly.
    public var fileSkill: (any Skill)? { (skill as? FileShardedSkill)?.base }
}

/// One finding or tally a skill reports, as a flat JSON object.
public typealias SkillRecord = [String: JSONValue]

/// What a master makes of its workers' records.
public struct SkillSummary: Sendable {
    /// One line for the executive summary.
    public var headline: String
    /// The master's report section (Markdown).
    public var markdown: String
    /// Machine-readable details for the JSON report.
    public var details: JSONValue
}

/// A deterministic piece of work a worker runs on a shard of a target's files; the master merges the shards.
/// `FileShardedSkill` runs it as a `WorkSkill` (file by file, with checkpoints).
public protocol Skill: Sendable {
    /// The version of what the skill makes of one file. Results cached by an earlier version are never
    /// used (the cache keys by it): raise it whenever a change alters the records any file yields
    /// (`SkillVersionTests` fails when the records of its corpus change and the version did not).
    var version: Int { get }
    /// Whether the skill looks at a path at all (default: every path). A path it does not consider yields
    /// no records whatever its content, so it is neither read, hashed nor cached (`SkillVersionTests`
    /// holds every skill to that over its corpus).
    func considers(_ path: String) -> Bool
    /// Examines the given files (paths relative to `root`) and returns records.
    func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord]
    /// Merges the records of every shard into the master's summary.
    func summarize(_ records: [SkillRecord]) -> SkillSummary
    /// Folds records that can be added up into fewer (checkpoints and results stay small); default: as is.
    func compact(_ records: [SkillRecord]) -> [SkillRecord]
}

extension Skill {
    public func compact(_ records: [SkillRecord]) -> [SkillRecord] { records }
    public func considers(_ path: String) -> Bool { true }

    /// Reads a text file, skipping large and binary files (nil), so one odd file cannot stall a shard.
    /// The size is `lstat`'s, as `FileManager.attributesOfItem` gave it, without the owner and group names
    /// that call also looks up for every file (a third of this function's time in `perf` of scripts/bench-scan).
    func readText(_ root: URL, _ path: String, limit: Int = 2 * 1024 * 1024) -> String? {
        guard let bytes = FileContents.read(root.appendingPathComponent(path).path, limit: limit) else { return nil }
        if bytes.prefix(8000).contains(0) { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Records sorted by their `path` (or first string field) so reports are stable across runs.
    func sorted(_ records: [SkillRecord], by key: String = "path") -> [SkillRecord] {
        records.sorted { ($0[key]?.stringValue ?? "") < ($1[key]?.stringValue ?? "") }
    }

    /// A Markdown table.
    func table(_ header: [String], _ rows: [[String]]) -> String { markdownTable(header, rows) }
}

extension WorkSkill {
    /// A Markdown table.
    func table(_ header: [String], _ rows: [[String]]) -> String { markdownTable(header, rows) }
}

/// A Markdown table ("_none found_" without rows), cells' `|` escaped.
func markdownTable(_ header: [String], _ rows: [[String]]) -> String {
    guard !rows.isEmpty else { return "_none found_\n" }
    var out = "| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
    for r in rows { out += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
    return out
}
