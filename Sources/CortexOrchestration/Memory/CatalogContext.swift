import CortexCatalog
import CortexCore
import Foundation

/// The catalog as a retrieval source: what it holds about a target before a model call about it — the
/// repository's assets by type and health (the unhealthy ones named) and, through its lineage, what the
/// repository depends on — as chunks cited `catalog/<repository>#assets` and `#dependencies`.
/// A catalog that cannot be read is reported in the retrieval's problems; the call goes ahead without it.
public enum CatalogContext {
    /// Packages and images named in the dependencies chunk, at most (the count says how many more).
    static let listed = 40
    /// Assets read per retrieval, at most.
    static let pageSize = 500

    /// The packages and images a repository target depends on (its lineage one step down), sorted ids.
    static func dependencies(of target: String, catalog: CatalogClient) async throws -> [String] {
        let data = try await catalog.graphQL("query Dependencies($id: ID!) { lineage(id: $id, direction: DOWNSTREAM, depth: 1) { nodes { id type } } }",
                                             variables: ["id": .string("repository:\(target)")])
        return (data["lineage"]?["nodes"]?.arrayValue ?? []).filter { ["PACKAGE", "CONTAINER_IMAGE"].contains($0["type"]?.stringValue ?? "") }
            .compactMap { $0["id"]?.stringValue }.sorted()
    }

    public static func retrieve(catalog: CatalogClient?, target: String, budget: Int) async -> Retrieval {
        guard let catalog, budget > 0 else { return Retrieval() }
        let repo = RepositoryCheckout.name(of: target)
        var chunks: [Chunk] = []
        do {
            // One page (a repository can have thousands of assets; a prompt needs their shape, not all of them).
            let page = try await catalog.graphQL("""
                query RepositoryAssets($filter: AssetFilter) { assets(filter: $filter, first: \(pageSize)) { nodes { id type health { status } } pageInfo { hasNextPage } } }
                """, variables: ["filter": ["label": .string("cortex.io/repository=\(repo)")]])
            let assets = (page["assets"]?["nodes"]?.arrayValue ?? []).compactMap { n -> (id: String, type: String, health: String)? in
                guard let id = n["id"]?.stringValue, let type = n["type"]?.stringValue else { return nil }
                return (id, type, n["health"]?["status"]?.stringValue ?? "UNKNOWN")
            }
            let more = page["assets"]?["pageInfo"]?["hasNextPage"]?.boolValue == true
            if !assets.isEmpty {
                let byType = Dictionary(grouping: assets, by: \.type).map { "\($0.value.count) \($0.key.lowercased())" }.sorted()
                let unhealthy = assets.filter { $0.health == "FAILING" || $0.health == "DEGRADED" }.map { "\($0.id) (\($0.health.lowercased()))" }
                var text = "The catalog holds \(more ? "more than " : "")\(assets.count) assets of \(repo)\(more ? " (the first \(assets.count))" : ""): \(byType.joined(separator: ", "))."
                if !unhealthy.isEmpty { text += " Not healthy: \(unhealthy.prefix(10).joined(separator: ", "))\(unhealthy.count > 10 ? " and \(unhealthy.count - 10) more" : "")." }
                chunks.append(Chunk(source: "catalog/\(repo)", anchor: "assets", title: "Catalog: \(repo)", text: text))
            }
            let names = try await dependencies(of: target, catalog: catalog)
            if !names.isEmpty {
                let text = "\(repo) depends on \(names.count) packages and images (catalog lineage): \(names.prefix(listed).joined(separator: ", "))"
                    + (names.count > listed ? " and \(names.count - listed) more." : ".")
                chunks.append(Chunk(source: "catalog/\(repo)", anchor: "dependencies", title: "Catalog lineage: \(repo)", text: text))
            }
        } catch {
            return Retrieval(chunks: Retrieval.select(chunks, budget: budget), problems: ["catalog not read for \(repo): \(error)"])
        }
        return Retrieval(chunks: Retrieval.select(chunks, budget: budget), problems: [])
    }
}
