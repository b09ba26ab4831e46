import CortexCore
import Foundation

/// The OSV query API (https://google.github.io/osv.dev/api/): `POST /v1/querybatch` finds which
/// advisories concern each package version (ids only, paged by `next_page_token`), then
/// `GET /v1/vulns/{id}` fetches each full record once. The records are evaluated here, the same way as
/// the offline database's.
public struct OSVAPIClient: Sendable {
    public var baseURL: String
    public var timeout: Duration
    /// The API takes at most 1,000 queries per batch.
    static let batchSize = 1_000

    public init(baseURL: String, timeout: Duration = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeout = timeout
    }

    public struct APIError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The full records of every advisory the API lists for the packages.
    public func records(for packages: [PackageOccurrence]) async throws -> [JSONValue] {
        var queries: [JSONValue] = []
        var seen: Set<String> = []
        for p in packages where Ecosystem(rawValue: p.ecosystem) != nil {
            let name = p.ecosystem == "SwiftURL" ? AdvisoryDatabase.normalizedName(p.name, ecosystem: "SwiftURL") : p.name
            guard seen.insert("\(p.ecosystem)\u{0}\(name)\u{0}\(p.version)").inserted else { continue }
            queries.append(["package": ["ecosystem": .string(p.ecosystem), "name": .string(name)], "version": .string(p.version)])
        }
        var ids: [String] = []
        var known: Set<String> = []
        var pending = queries
        while !pending.isEmpty {
            let batch = Array(pending.prefix(Self.batchSize))
            pending.removeFirst(batch.count)
            let answer = try await post("/v1/querybatch", ["queries": .array(batch)])
            guard let results = answer["results"]?.arrayValue, results.count == batch.count else {
                throw APIError(description: "OSV querybatch answered \(answer["results"]?.arrayValue?.count ?? 0) results for \(batch.count) queries")
            }
            for (query, result) in zip(batch, results) {
                for v in result["vulns"]?.arrayValue ?? [] {
                    if let id = v["id"]?.stringValue, known.insert(id).inserted { ids.append(id) }
                }
                // More pages for this query: ask again with its token.
                if let token = result["next_page_token"]?.stringValue, !token.isEmpty, case .object(var q) = query {
                    q["page_token"] = .string(token)
                    pending.append(.object(q))
                }
            }
        }
        var records: [JSONValue] = []
        for id in ids {
            let escaped = id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? id
            records.append(try await get("/v1/vulns/\(escaped)"))
        }
        return records
    }

    private func post(_ path: String, _ body: JSONValue) async throws -> JSONValue {
        try await call("POST", path, body: Array(body.description.utf8))
    }

    private func get(_ path: String) async throws -> JSONValue {
        try await call("GET", path, body: nil)
    }

    private func call(_ method: String, _ path: String, body: [UInt8]?) async throws -> JSONValue {
        let response: HTTPResponse
        do {
            response = try await HTTPClient.request(method, url: baseURL + path, headers: ["Content-Type": "application/json", "Accept": "application/json"],
                                                    body: body, timeout: timeout)
        } catch {
            throw APIError(description: "OSV API \(baseURL) unreachable: \(error)")
        }
        guard response.status == 200 else {
            throw APIError(description: "OSV API \(method) \(path): HTTP \(response.status): \(response.text.prefix(200))")
        }
        do { return try JSONText.parse(response.text) } catch {
            throw APIError(description: "OSV API \(method) \(path): the answer is not JSON: \(error)")
        }
    }
}
