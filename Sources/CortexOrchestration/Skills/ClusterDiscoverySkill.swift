import CortexCatalog
import CortexCore
import CortexKubernetes
import Foundation

/// inventory: the cluster, one work item per namespace (plus one for cluster-scoped kinds; `ClusterSurvey`
/// names their targets), each read through `ClusterDiscovery` and registered in the catalog. Records: per
/// scope and asset type, how many were found, by which worker on which node; what changed since the last
/// inventory; and the resources the service account may not list.
public struct ClusterDiscoverySkill: WorkSkill {
    public init() {}

    /// One scope of the cluster through the Kubernetes API, registered in the catalog in batches (an item
    /// redone after a crash registers the same assets again, which changes nothing). Records: per asset
    /// type how many were found here, and what could not be listed.
    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        let log = context.logger
        guard let access = try KubeAccess.configured(context.settings.string(.kubernetes) == "off" ? "off" : "on") else {
            throw ConfigurationError("cluster discovery was asked for but CORTEX_KUBERNETES is off on this worker")
        }
        let started = ContinuousClock.now
        let scope: ClusterDiscovery.Scope
        if let ns = ClusterSurvey.namespace(of: item.target) { scope = .namespace(ns) } else { scope = item.target == ClusterSurvey.target ? .clusterScoped : .all }
        let result = try await ClusterDiscovery(client: KubernetesClient(access: access), discoveredBy: context.workerID).discover(scope)
        var changes: [SkillRecord] = []
        if let catalog = context.catalog {
            // What the catalog held for this scope before: the difference is what changed since the last run.
            let before = try await previousInventory(scope, catalog: catalog)
            let now = Dictionary(result.assets.filter { before.types.contains($0.type) }.map { ($0.resolvedID, $0.health?.status ?? .UNKNOWN) }) { a, _ in a }
            for (id, status) in now.sorted(by: { $0.key < $1.key }) {
                if let old = before.health[id] {
                    if old != status { changes.append(["change": "health", "id": .string(id), "from": .string(old.rawValue), "to": .string(status.rawValue)]) }
                } else if !before.health.isEmpty {
                    changes.append(["change": "appeared", "id": .string(id)])
                }
            }
            for id in before.health.keys.sorted() where now[id] == nil {
                try await catalog.delete(id)
                changes.append(["change": "disappeared", "id": .string(id)])
            }
            // Assets first, then edges, each in batches the catalog accepts; a batch is all or nothing.
            for chunk in stride(from: 0, to: result.assets.count, by: 1000) {
                _ = try await catalog.upsert(Array(result.assets[chunk..<min(chunk + 1000, result.assets.count)]))
            }
            for chunk in stride(from: 0, to: result.relations.count, by: 2000) {
                _ = try await catalog.upsert([], relations: Array(result.relations[chunk..<min(chunk + 2000, result.relations.count)]))
            }
            context.process.metrics.catalogRegistration(outcome: "ok")
        }
        let ms = Int((ContinuousClock.now - started) / .milliseconds(1))
        let scopeName: String
        switch scope {
        case .all: scopeName = "(all)"
        case .clusterScoped: scopeName = "(cluster)"
        case .namespace(let ns): scopeName = ns
        }
        var records: [SkillRecord] = Dictionary(grouping: result.assets, by: { $0.type.rawValue }).map { type, assets in
            ["scope": .string(scopeName), "type": .string(type), "count": .number(Double(assets.count)), "worker": .string(context.workerID),
             "node": .string(context.process.nodeName), "duration_ms": .number(Double(ms))]
        }
        records += changes
        for s in result.skipped {
            records.append(["skipped": .string(s.resource), "reason": .string(s.reason)])
            log.warning("not listable, skipped: \(s.resource): \(s.reason)")
        }
        log.info("discovered \(result.assets.count) assets and \(result.relations.count) edges in \(scopeName)")
        return .succeeded(records, examined: result.assets.count)
    }

    /// The catalog's assets of the kinds a scope owns (a namespace's objects; the cluster-scoped nodes and
    /// namespaces), with their health. Empty on the first inventory of the scope.
    private func previousInventory(_ scope: ClusterDiscovery.Scope, catalog: CatalogClient) async throws -> (types: Set<AssetType>, health: [String: HealthStatus]) {
        let namespaced: Set<AssetType> = [.DEPLOYMENT, .STATEFULSET, .DAEMONSET, .REPLICASET, .JOB, .CRONJOB, .POD, .SERVICE, .INGRESS, .PERSISTENT_VOLUME_CLAIM, .HELM_RELEASE]
        var found: [(id: String, type: AssetType, health: HealthStatus)] = []
        let types: Set<AssetType>
        switch scope {
        case .all: return ([], [:])
        case .clusterScoped:
            types = [.NODE, .NAMESPACE]
            for t in types { found += try await catalog.assets(filter: AssetFilter(type: t)) }
        case .namespace(let ns):
            types = namespaced
            found = try await catalog.assets(filter: AssetFilter(namespace: ns)).filter { namespaced.contains($0.type) }
        }
        return (types, Dictionary(found.map { ($0.id, $0.health) }) { a, _ in a })
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
