import CortexCatalog
import CortexCore
import Logging

/// Registers a work item's findings in the catalog (one idempotent GraphQL batch). A catalog that is down
/// costs the catalog entries, not the item's findings: the result is committed either way, says how many
/// assets were not registered and why (the master's report counts them), and the next run registers them again.
struct CatalogRegistrar: Sendable {
    let catalog: CatalogClient
    let metrics: CortexMetrics
    let workerID: String

    /// The registration of `records`; nil when the item had nothing for the catalog.
    func register(_ records: [SkillRecord], item: WorkItem, log: Logger) async -> WorkResult.CatalogRegistration? {
        let (assets, relations) = SkillCatalog.entries(skill: item.skill, target: item.target, records: records, worker: workerID)
        guard !assets.isEmpty || !relations.isEmpty else { return nil }
        do {
            let summary = try await catalog.upsert(assets, relations: relations)
            metrics.catalogRegistration(outcome: "ok")
            log.debug("registered in the catalog", metadata: [LogKey.catalogCreated: "\(summary.created)", LogKey.catalogUpdated: "\(summary.updated)"])
            return .init(assets: assets.count, registered: assets.count)
        } catch {
            metrics.catalogRegistration(outcome: "failed")
            log.warning("could not register \(assets.count) assets in the catalog: \(error)")
            return .init(assets: assets.count, registered: 0, error: String("\(error)".prefix(300)))
        }
    }
}
