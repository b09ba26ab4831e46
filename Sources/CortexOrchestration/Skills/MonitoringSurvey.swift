import CortexCore
import Foundation

/// monitoring: finds alert rules, dashboards and scrape configuration already in a repository.
public struct MonitoringSurvey: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change.
    public var version: Int { 1 }

    /// Only YAML and JSON files.
    public func considers(_ path: String) -> Bool { ["yml", "yaml", "json"].contains((path as NSString).pathExtension.lowercased()) }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        var out: [SkillRecord] = []
        for path in files {
            let ext = (path as NSString).pathExtension.lowercased()
            guard ["yml", "yaml", "json"].contains(ext), let text = readText(root, path) else { continue }
            func record(_ kind: String, _ count: Int) { out.append(["path": .string(path), "kind": .string(kind), "count": .number(Double(count))]) }
            if ext == "json" {
                if text.contains("\"panels\"") {
                    record("grafana-dashboard", text.components(separatedBy: "\"gridPos\"").count - 1)
                }
                continue
            }
            let alerts = text.components(separatedBy: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("- alert:") || $0.trimmingCharacters(in: .whitespaces).hasPrefix("alert:") }.count
            if alerts > 0 { record("alert-rules", alerts) }
            for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] where text.contains("kind: \(kind)") {
                record(kind, text.components(separatedBy: "kind: \(kind)").count - 1)
            }
            if text.contains("scrape_configs:") { record("prometheus-config", 1) }
        }
        return out
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        func count(_ kind: String) -> Int { rows.filter { $0["kind"]?.stringValue == kind }.reduce(0) { $0 + ($1["count"]?.intValue ?? 0) } }
        let dashboards = rows.filter { $0["kind"]?.stringValue == "grafana-dashboard" }.count
        let headline = rows.isEmpty ? "no monitoring configuration found" : "\(count("alert-rules")) alert rules, \(dashboards) dashboards, \(rows.count) monitoring files"
        let md = "### Monitoring configuration\n\n" + table(["File", "Kind", "Count"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["kind"]?.stringValue ?? "", "\($0["count"]?.intValue ?? 0)"]
        })
        return SkillSummary(headline: headline, markdown: md, details: .object(["files": .array(rows.map { .object($0) })]))
    }
}
