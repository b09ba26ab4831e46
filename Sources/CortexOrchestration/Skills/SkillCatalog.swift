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
        let repoName = URL(fileURLWithPath: target).lastPathComponent
        let repoID = "repository:\(target)"
        let repo = AssetInput(
            id: repoID, type: .REPOSITORY, name: repoName, labels: ["cortex.io/source": "local"],
            properties: ["path": .string(target)], health: Health(status: .UNKNOWN), discoveredBy: worker
        )
        var assets = [repo]
        var relations: [RelationInput] = []
        for record in records {
            guard let path = record["path"]?.stringValue, let type = assetType(skill: skill, record: record) else { continue }
            var properties = record
            properties["path"] = nil
            assets.append(AssetInput(
                id: "\(type.rawValue.lowercased()):\(target)/\(path)", type: type, name: path,
                labels: ["cortex.io/repository": repoName], properties: .object(properties), discoveredBy: worker
            ))
            relations.append(RelationInput(from: assets.last!.resolvedID, to: repoID, kind: .DEFINED_IN, discoveredBy: worker))
        }
        return (assets, relations)
    }

    static func assetType(skill: SkillName, record: SkillRecord) -> AssetType? {
        switch skill {
        case .languageCensus: return nil  // tallies per language, not per file
        case .manifestFinder: return .MANIFEST
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
