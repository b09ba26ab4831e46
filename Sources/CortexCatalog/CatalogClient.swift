import CortexCore
import Foundation

/// A client of catalog-api, for workers (register what they found, through the REST batch route) and
/// the coordinator (catalog totals before and after a run, through GraphQL). Uses Cortex's libcurl client.
public struct CatalogClient: Sendable {
    public let baseURL: String
    private let token: String?
    public let timeout: Duration

    public init(baseURL: String, token: String?, timeout: Duration = .seconds(10)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.timeout = timeout
    }

    /// The client configured by CORTEX_CATALOG_URL / CORTEX_CATALOG_TOKEN(_FILE), or nil when no catalog is configured.
    public init?(settings: SettingValues) throws {
        guard let url = settings.raw(.catalogURL), !url.isEmpty else { return nil }
        self.init(baseURL: url, token: try settings.secret(.catalogToken, file: .catalogTokenFile))
    }

    /// Registers assets and relations in one idempotent batch (the design's WORKER-TO-CATALOG pattern)
    /// through `POST /api/v1/batch`: the same store call as GraphQL's `upsertAssets`, without the
    /// GraphQL library's coercion of a 1,000-asset variable (most of a batch's time; docs/benchmarks.md).
    public func upsert(_ assets: [AssetInput], relations: [RelationInput] = []) async throws -> UpsertSummary {
        let body: JSONValue = ["assets": .array(assets.map(\.json)), "relations": .array(relations.map(\.json))]
        let response = try await post("/api/v1/batch", body: body)
        let json = try? JSONText.parse(response.body)
        guard response.status == 200, let json, let created = json["created"]?.intValue, let updated = json["updated"]?.intValue,
              let unchanged = json["unchanged"]?.intValue, let added = json["relations"]?.intValue else {
            let message = json?["error"]?["message"]?.stringValue ?? "no summary in the answer"
            throw CatalogClientError("catalog-api (\(response.status)): \(message)")
        }
        return UpsertSummary(created: created, updated: updated, unchanged: unchanged, relations: added)
    }

    /// Every asset matching `filter` as (id, type, health status), page by page.
    public func assets(filter: AssetFilter) async throws -> [(id: String, type: AssetType, health: HealthStatus)] {
        var out: [(id: String, type: AssetType, health: HealthStatus)] = []
        var after: String?
        let query = """
        query Page($filter: AssetFilter, $after: String) {
          assets(filter: $filter, first: 500, after: $after) { nodes { id type health { status } } pageInfo { hasNextPage endCursor } }
        }
        """
        repeat {
            var variables: [String: JSONValue] = ["filter": try JSONValue(encoding: filter)]
            if let after { variables["after"] = .string(after) }
            let data = try await graphQL(query, variables: .object(variables))
            for node in data["assets"]?["nodes"]?.arrayValue ?? [] {
                guard let id = node["id"]?.stringValue, let type = node["type"]?.stringValue.flatMap(AssetType.init(rawValue:)) else { continue }
                out.append((id, type, node["health"]?["status"]?.stringValue.flatMap(HealthStatus.init(rawValue:)) ?? .UNKNOWN))
            }
            after = data["assets"]?["pageInfo"]?["hasNextPage"] == true ? data["assets"]?["pageInfo"]?["endCursor"]?.stringValue : nil
        } while after != nil
        return out
    }

    /// Deletes an asset (and its edges); false when it was not there.
    @discardableResult
    public func delete(_ id: String) async throws -> Bool {
        try await graphQL("mutation Delete($id: ID!) { deleteAsset(id: $id) }", variables: ["id": .string(id)])["deleteAsset"] == true
    }

    /// The catalog's asset and relation totals.
    public func totals() async throws -> CatalogTotals {
        let data = try await graphQL("{ stats { total relations } }", variables: [:])
        guard let total = data["stats"]?["total"]?.intValue, let relations = data["stats"]?["relations"]?.intValue else {
            throw CatalogClientError("no stats in the answer")
        }
        return CatalogTotals(assets: total, relations: relations)
    }

    /// Runs a GraphQL operation; GraphQL errors and HTTP failures are thrown with their message.
    public func graphQL(_ query: String, variables: JSONValue) async throws -> JSONValue {
        let response = try await post("/graphql", body: ["query": .string(query), "variables": variables])
        guard let json = try? JSONText.parse(response.body) else {
            throw CatalogClientError("catalog-api answered \(response.status) without JSON")
        }
        if let errors = json["errors"]?.arrayValue, !errors.isEmpty {
            let messages = errors.compactMap { $0["message"]?.stringValue }.joined(separator: "; ")
            throw CatalogClientError("catalog-api (\(response.status)): \(messages)")
        }
        guard response.status == 200, let data = json["data"] else { throw CatalogClientError("catalog-api answered \(response.status)") }
        return data
    }

    /// POSTs JSON with the token. catalog-api limits concurrent GraphQL operations per token (429 with
    /// Retry-After); workers share a token, so a busy moment is waited out a few times rather than failing
    /// the registration.
    private func post(_ path: String, body: JSONValue) async throws -> HTTPResponse {
        var headers = ["Content-Type": "application/json"]
        if let token, !token.isEmpty { headers["Authorization"] = "Bearer \(token)" }
        let bytes = Array(body.description.utf8)
        var response = try await HTTPClient.request("POST", url: baseURL + path, headers: headers, body: bytes, timeout: timeout)
        var attempt = 0
        while response.status == 429, attempt < 5 {
            attempt += 1
            let wait = response.headers["retry-after"].flatMap(Double.init).flatMap { $0.isFinite ? min(max($0, 0.05), 5) : nil } ?? 0.2 * Double(attempt)
            try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            response = try await HTTPClient.request("POST", url: baseURL + path, headers: headers, body: bytes, timeout: timeout)
        }
        return response
    }
}

public struct CatalogClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
