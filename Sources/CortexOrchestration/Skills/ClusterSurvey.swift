import CortexCore
import Foundation

/// inventory: the cluster, one work item per namespace (plus one for cluster-scoped kinds), each run by
/// `WorkerService` through `ClusterDiscovery`. Records: per scope and asset type, how many were found,
/// by which worker on which node; and the resources the service account may not list.
public struct ClusterSurvey: Skill {
    public init() {}

    /// The task target that means "the Kubernetes cluster" rather than a repository path.
    public static let target = "kubernetes"
    /// An item's target: the cluster-scoped kinds, or one namespace's.
    public static func itemTarget(namespace: String?) -> String { namespace.map { "\(target)/namespace/\($0)" } ?? target }
    public static func namespace(of itemTarget: String) -> String? {
        let prefix = "\(target)/namespace/"
        return itemTarget.hasPrefix(prefix) ? String(itemTarget.dropFirst(prefix.count)) : nil
    }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        throw ConfigurationError("cluster discovery is not file-based; the worker runs it through the Kubernetes API")
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        var byType: [String: Int] = [:]
        var scopes: [String: (worker: String, node: String, ms: Int, counts: [String: Int])] = [:]
        var skipped: [String] = []
        var changes: [String] = []
        for r in records {
            if let change = r["change"]?.stringValue, let id = r["id"]?.stringValue {
                changes.append(change == "health" ? "health of \(id): \(r["from"]?.stringValue ?? "?") -> \(r["to"]?.stringValue ?? "?")" : "\(change): \(id)")
                continue
            }
            if let path = r["skipped"]?.stringValue {
                let line = "\(path): \(r["reason"]?.stringValue ?? "")"
                if !skipped.contains(line) { skipped.append(line) }
                continue
            }
            guard let type = r["type"]?.stringValue, let count = r["count"]?.intValue, let scope = r["scope"]?.stringValue else { continue }
            // Nodes are listed with every namespace (for the RUNS_ON edges); count them from the cluster scope only.
            if type != "NODE" || scope.hasPrefix("(") { byType[type, default: 0] += count }
            var s = scopes[scope] ?? (r["worker"]?.stringValue ?? "?", r["node"]?.stringValue ?? "?", r["duration_ms"]?.intValue ?? 0, [:])
            s.counts[type] = count
            scopes[scope] = s
        }
        let types = byType.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
        let headline = "cluster: " + (types.isEmpty ? "nothing discovered" : types.map { "\($0.value) \($0.key.lowercased())" }.joined(separator: ", "))
            + (skipped.isEmpty ? "" : "; \(skipped.count) resources not listable")
        var md = "### Cluster inventory by type\n\n" + table(["Type", "Assets"], types.map { [$0.key, "\($0.value)"] })
        md += "\n### Who discovered what\n\n" + table(["Scope", "Worker", "Node", "Time", "Assets"], scopes.sorted { $0.key < $1.key }.map { scope, s in
            [scope, s.worker, s.node, "\(s.ms) ms", s.counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key.lowercased())" }.joined(separator: ", ")]
        })
        if !skipped.isEmpty { md += "\n### Not listable (reported and skipped)\n\n" + skipped.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        let appeared = changes.filter { $0.hasPrefix("appeared") }.count, gone = changes.filter { $0.hasPrefix("disappeared") }.count
        let health = changes.count - appeared - gone
        md += "\n### Since the last inventory\n\n" + (changes.isEmpty ? "No change (or the first inventory of these scopes).\n"
            : "\(appeared) appeared, \(gone) disappeared, \(health) changed health.\n\n" + changes.sorted().prefix(200).map { "- \($0)" }.joined(separator: "\n") + "\n")
        return SkillSummary(headline: headline, markdown: md, details: .object([
            "byType": .object(byType.mapValues { .number(Double($0)) }), "skipped": .array(skipped.map(JSONValue.string)),
            "changes": .array(changes.sorted().map(JSONValue.string)),
        ]))
    }
}
