import CortexCatalog
import CortexCore
import Foundation

/// What a skill's records register in the catalog: the target repository, and each file-level finding
/// as an asset DEFINED_IN it (manifests, workflows, dashboards, alert rules, test suites, documents).
public enum SkillCatalog {
    /// The assets and relations for one work item's records.
    public static func entries(skill: SkillName, target: String, records: [SkillRecord], worker: String)
        -> (assets: [AssetInput], relations: [RelationInput])
    {
        // Cluster discovery registers its own assets and edges (see WorkerService); a target here is a repository.
        guard !skill.isClusterWide else { return ([], []) }
        let repoName = RepositoryCheckout.name(of: target)
        let repoID = "repository:\(target)"
        let repo = AssetInput(
            id: repoID, type: .REPOSITORY, name: repoName, labels: ["cortex.io/source": RepositoryCheckout.isRemote(target) ? "git" : "local"],
            properties: [RepositoryCheckout.isRemote(target) ? "url" : "path": .string(target)], health: Health(status: .UNKNOWN), discoveredBy: worker
        )
        var assets = [repo]
        var relations: [RelationInput] = []
        var seen: Set<String> = []
        for record in records {
            guard let path = record["path"]?.stringValue, let type = assetType(skill: skill, record: record) else { continue }
            var properties = record
            properties["path"] = nil
            assets.append(AssetInput(
                id: "\(type.rawValue.lowercased()):\(target)/\(path)", type: type, name: path,
                labels: ["cortex.io/repository": repoName], properties: .object(properties), discoveredBy: worker
            ))
            relations.append(RelationInput(from: assets.last!.resolvedID, to: repoID, kind: .DEFINED_IN, discoveredBy: worker))
            // What the repository depends on: each pinned package, and the base images its Dockerfiles build on.
            let ecosystem = record["ecosystem"]?.stringValue ?? "?"
            for p in record["packages"]?.arrayValue ?? [] {
                guard let name = p["name"]?.stringValue, let version = p["version"]?.stringValue else { continue }
                let package = AssetInput(id: "package:\(ecosystem)/\(name)@\(version)", type: .PACKAGE, name: name,
                                         properties: ["ecosystem": .string(ecosystem), "version": .string(version)], discoveredBy: worker)
                if !seen.contains(package.resolvedID) { seen.insert(package.resolvedID); assets.append(package) }
                relations.append(RelationInput(from: repoID, to: package.resolvedID, kind: .DEPENDS_ON, discoveredBy: worker))
            }
            for image in record["base_images"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                let asset = AssetInput(type: .CONTAINER_IMAGE, name: image, discoveredBy: worker)
                if !seen.contains(asset.resolvedID) { seen.insert(asset.resolvedID); assets.append(asset) }
                relations.append(RelationInput(from: repoID, to: asset.resolvedID, kind: .DEPENDS_ON, discoveredBy: worker))
            }
        }
        return (assets, relations)
    }

    static func assetType(skill: SkillName, record: SkillRecord) -> AssetType? {
        switch skill {
        case .languageCensus, .clusterDiscovery, .clusterAudit, .testRun, .implementation, .branchTest: return nil  // tallies and runs, not files
        case .securityScan where record["kind"]?.stringValue == "secrets": return nil  // findings, not assets
        case .manifestFinder, .securityScan: return record["kind"]?.stringValue == "chart" ? .HELM_CHART : .MANIFEST  // Dockerfiles and Kubernetes manifests too
        case .documentationSurvey: return .DOCUMENT
        case .workflowFinder: return .WORKFLOW
        case .testSurvey: return .TEST_SUITE
        case .monitoringSurvey:
            switch record["kind"]?.stringValue {
            case "grafana-dashboard": return .DASHBOARD
            case "alert-rules", "PrometheusRule": return .ALERT_RULE
            default: return .MANIFEST
            }
        }
    }
}
