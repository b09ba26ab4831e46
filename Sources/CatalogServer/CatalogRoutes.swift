import CortexCatalog
import CortexCore
import Foundation
import GraphQL
import Hummingbird
import Logging
import NIOCore

/// The HTTP routes: GraphQL over HTTP, REST under /api/v1, Server-Sent Events, the OpenAPI document
/// and the ops endpoints.
struct CatalogRoutes: Sendable {
    typealias Context = CatalogHTTPServer.Context
    let store: CatalogStore
    let relay: EventRelay
    let auth: CatalogAuth
    let graphql: GraphQLService
    let metrics: CortexMetrics
    let logger: Logger
    let maxBody: Int
    let maxPage: Int

    func register(on router: Router<Context>, readiness: @escaping @Sendable () async -> Readiness) {
        // Asset counts come from Redis at scrape time, so every replica reports the shared catalog.
        OpsServer.addRoutes(to: router, metrics: metrics, readiness: readiness, beforeScrape: { [store, metrics] in
            guard let stats = try? await store.stats() else { return }
            let counts = Dictionary(stats.byType.map { ($0.key, $0.count) }, uniquingKeysWith: +)
            for t in AssetType.allCases { metrics.catalogAssets(type: t.rawValue, count: counts[t.rawValue] ?? 0) }
        })
        router.get("/openapi.json") { _, _ in jsonResponse(.ok, text: OpenAPIDocument.text) }

        router.post("/graphql") { request, _ in try await graphQL(request, body: try await jsonBody(request)) }

        let api = router.group("/api/v1")
        registerAssets(on: api)
        registerLineageAndSearch(on: api)
        api.get("/stats") { request, _ in
            _ = try authorize(request, .read)
            return try encoded(.ok, try await store.stats())
        }
        api.get("/events") { request, _ in try events(request) }
    }

    /// Asset CRUD: list and filter, create, read, replace (optimistic concurrency with If-Match), delete.
    private func registerAssets(on api: RouterGroup<Context>) {
        api.get("/assets") { request, _ in
            _ = try authorize(request, .read)
            let q = request.uri.queryParameters
            var filter = AssetFilter()
            if let t = q.get("type") { filter.type = try enumValue(AssetType.self, String(t), "type") }
            if let h = q.get("health") { filter.health = try enumValue(HealthStatus.self, String(h), "health") }
            filter.namespace = string(q.get("namespace"))
            filter.owner = string(q.get("owner"))
            filter.label = string(q.get("label"))
            filter.text = string(q.get("text"))
            let page = try await store.list(filter: filter, first: try limit(request), after: string(q.get("after")))
            return try pageResponse(page)
        }
        api.post("/assets") { request, _ in
            let principal = try authorize(request, .write)
            let input = try decode(AssetInput.self, try await jsonBody(request))
            let asset = try await store.write([input], mode: .create, by: principal.name).assets[0]
            return try encoded(.created, asset)
        }
        api.get("/assets/{id}") { request, context in
            _ = try authorize(request, .read)
            let id = try pathID(context)
            guard let asset = try await store.get(id) else { throw CatalogError(.notFound, "asset \(id) does not exist") }
            return try encoded(.ok, asset)
        }
        api.put("/assets/{id}") { request, context in
            let principal = try authorize(request, .write)
            let id = try pathID(context)
            var input = try decode(AssetInput.self, try await jsonBody(request))
            if let given = input.id, !given.isEmpty, given != id { throw CatalogError(.invalid, "body id \(given) differs from the path's \(id)") }
            input.id = id
            var mode = CatalogStore.WriteMode.upsert
            if let ifMatch = request.headers[.ifMatch]?.trimmingCharacters(in: .whitespaces) {
                if ifMatch.isEmpty {
                    throw CatalogError(.invalid, "If-Match is empty: give the asset's version or *, or leave the header out")
                } else if ifMatch == "*" {
                    mode = .update  // any version, but the asset must exist
                } else {
                    // Exactly what /openapi.json documents: a version (1 or more), quoted or not.
                    guard ifMatch.range(of: #"^"?[1-9][0-9]{0,14}"?$"#, options: .regularExpression) != nil,
                          let v = Int(ifMatch.trimmingCharacters(in: CharacterSet(charactersIn: "\""))) else {
                        throw CatalogError(.invalid, "If-Match must be the asset's version (1 or more) or *, got '\(ifMatch)'")
                    }
                    input.expectedVersion = v
                }
            }
            let (summary, assets) = try await store.write([input], mode: mode, by: principal.name)
            return try encoded(summary.created == 1 ? .created : .ok, assets[0])
        }
        api.delete("/assets/{id}") { request, context in
            _ = try authorize(request, .write)
            let id = try pathID(context)
            guard try await store.delete(id) != nil else { throw CatalogError(.notFound, "asset \(id) does not exist") }
            return Response(status: .noContent)
        }
    }

    /// Lineage, search, batches and relations.
    private func registerLineageAndSearch(on api: RouterGroup<Context>) {
        api.get("/assets/{id}/lineage") { request, context in
            _ = try authorize(request, .read)
            let id = try pathID(context)
            let q = request.uri.queryParameters
            var direction = LineageDirection.BOTH
            if let d = q.get("direction") { direction = try enumValue(LineageDirection.self, String(d), "direction") }
            let depth = try intParameter(request, "depth") ?? 3
            guard let lineage = try await store.lineage(of: id, direction: direction, depth: depth) else {
                throw CatalogError(.notFound, "asset \(id) does not exist")
            }
            return jsonResponse(.ok, ["root": .string(lineage.root), "nodes": .array(lineage.nodes.map(\.json)),
                                      "edges": .array(lineage.edges.map(\.json)), "truncated": .bool(lineage.truncated)])
        }
        api.get("/search") { request, _ in
            _ = try authorize(request, .read)
            guard let text = string(request.uri.queryParameters.get("text")), !text.isEmpty else {
                throw CatalogError(.invalid, "text is required")
            }
            let first = try limit(request)
            guard !CatalogValidation.words(text).isEmpty else { return try pageResponse(AssetPage(items: [], hasNextPage: false, endCursor: nil)) }
            let page = try await store.list(filter: AssetFilter(text: text), first: first, after: string(request.uri.queryParameters.get("after")))
            return try pageResponse(page)
        }
        api.post("/batch") { request, _ in
            let principal = try authorize(request, .write)
            let batch = try BatchBody(json: try await jsonBody(request))
            let summary = try await store.write(batch.assets, relations: batch.relations, mode: .upsert, by: principal.name,
                                                reloadUnchanged: false).summary
            return try encoded(.ok, summary)
        }
        api.post("/relations") { request, _ in
            let principal = try authorize(request, .write)
            let input = try decode(RelationInput.self, try await jsonBody(request))
            return try encoded(.created, try await store.addRelation(input, by: principal.name))
        }
        api.delete("/relations") { request, _ in
            _ = try authorize(request, .write)
            let q = request.uri.queryParameters
            guard let from = string(q.get("from")), let to = string(q.get("to")), let kindText = q.get("kind") else {
                throw CatalogError(.invalid, "from, to and kind are required")
            }
            let kind = try enumValue(RelationKind.self, String(kindText), "kind")
            guard try await store.removeRelation(from: from, to: to, kind: kind) else {
                throw CatalogError(.notFound, "no relation \(from) \(kind.rawValue) \(to)")
            }
            return Response(status: .noContent)
        }
    }

    /// `{assets, relations?}`, read field by field: this is the route workers register through, and
    /// a `Decodable` pass per asset was most of the cost of a batch (docs/benchmarks.md).
    struct BatchBody {
        var assets: [AssetInput]
        var relations: [RelationInput]

        init(json: JSONValue) throws {
            guard case .object(let o) = json else { throw CatalogError(.invalid, "the body must be a JSON object {assets, relations}") }
            guard case .array(let assets)? = o["assets"] else { throw CatalogError(.invalid, "missing field 'assets' (an array)") }
            // Refused before anything is read per asset: more items than the schema's maxItems is a bad
            // request (400); 413 is for a body over CORTEX_CATALOG_MAX_BODY.
            guard assets.count <= CatalogLimits.maxBatch else {
                throw CatalogError(.invalid, "at most \(CatalogLimits.maxBatch) assets per batch, got \(assets.count)")
            }
            self.assets = try assets.enumerated().map { try AssetInput(json: $1, at: "assets[\($0)]") }
            switch o["relations"] {
            case nil, .null?: relations = []
            case .array(let r)?:
                guard r.count <= CatalogLimits.maxBatch else {
                    throw CatalogError(.invalid, "at most \(CatalogLimits.maxBatch) relations per batch, got \(r.count)")
                }
                relations = try r.enumerated().map { try RelationInput(json: $1, at: "relations[\($0)]") }
            default: throw CatalogError(.invalid, "field 'relations' must be an array")
            }
        }
    }

    // MARK: GraphQL over HTTP

    func graphQL(_ request: Request, body: JSONValue) async throws -> Response {
        let gqlRequest: GraphQLRequestBody
        do { gqlRequest = try GraphQLRequestBody(json: body) } catch let e as CatalogError {
            return jsonResponse(.badRequest, text: GraphQLService.encode(GraphQLService.Refusal(e).result))
        }
        do {
            let prepared = try graphql.prepare(gqlRequest) { scope in try authorize(request, scope) }
            if prepared.operation == .subscription {
                throw GraphQLService.Refusal(CatalogError(.invalid, "subscriptions need a WebSocket (graphql-transport-ws) at /graphql"))
            }
            return jsonResponse(.ok, text: try await graphql.executeJSON(prepared))
        } catch let refusal as GraphQLService.Refusal {
            var headers: HTTPFields = [:]
            if let seconds = refusal.retryAfter { headers[.retryAfter] = String(seconds) }
            return jsonResponse(HTTPResponse.Status(code: refusal.status), text: GraphQLService.encode(refusal.result), headers: headers)
        }
    }

    // MARK: Server-Sent Events

    static let defaultEventTypes: [MessageType] = [.ASSET_ADDED, .ASSET_CHANGED, .ASSET_DELETED, .TASK_STARTED, .TASK_PROGRESS, .TASK_COMPLETE, .TASK_BATCH_COMPLETE, .TASK_FAILED]

    func events(_ request: Request) throws -> Response {
        _ = try authorize(request, .read)
        var types = Set(Self.defaultEventTypes)
        if let list = request.uri.queryParameters.get("types") {
            types = Set(try list.split(separator: ",").map { name in
                guard let t = MessageType(rawValue: String(name)), Self.defaultEventTypes.contains(t) else {
                    throw CatalogError(.invalid, "types: '\(name)' is not one of \(Self.defaultEventTypes.map(\.rawValue).joined(separator: ", "))")
                }
                return t
            })
        }
        let stream = relay.stream(types: types)
        let metrics = self.metrics
        let body = ResponseBody { writer in
            metrics.catalogSubscribers(transport: "sse", delta: 1)
            defer { metrics.catalogSubscribers(transport: "sse", delta: -1) }
            try await writer.write(ByteBuffer(string: ": connected\nretry: 3000\n\n"))
            // Merge events with a keep-alive comment every 15 s, so proxies keep an idle stream open.
            let (merged, feed) = AsyncStream.makeStream(of: String.self)
            let pump = Task {
                for await e in stream { feed.yield("id: \(e.id)\nevent: \(e.type.rawValue)\ndata: \(e.encodedString)\n\n") }
                feed.finish()
            }
            let ticker = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    feed.yield(": keep-alive\n\n")
                }
            }
            defer { pump.cancel(); ticker.cancel() }
            for await chunk in merged {
                try await writer.write(ByteBuffer(string: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    // MARK: helpers

    func string<S: StringProtocol>(_ s: S?) -> String? { s.map { String($0) } }

    func authorize(_ request: Request, _ scope: Scope) throws -> Principal {
        try auth.authorize(request.headers[.authorization], requires: scope)
    }

    func jsonBody(_ request: Request) async throws -> JSONValue {
        let buffer = try await request.body.collect(upTo: maxBody)
        guard buffer.readableBytes > 0 else { throw CatalogError(.invalid, "the request needs a JSON body") }
        do {
            return try JSONText.parse(Array(buffer: buffer))
        } catch {
            throw CatalogError(.invalid, "the body is not valid JSON: \(error)")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ json: JSONValue) throws -> T {
        do {
            return try json.decode(T.self)
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw CatalogError(.invalid, "missing field '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'")
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            throw CatalogError(.invalid, "field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type")
        } catch let DecodingError.dataCorrupted(ctx) {
            throw CatalogError(.invalid, "field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))': \(ctx.debugDescription)")
        } catch {
            throw CatalogError(.invalid, "invalid body: \(error)")
        }
    }

    func encoded<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) throws -> Response {
        jsonResponse(status, try JSONValue(encoding: value))
    }

    func pageResponse(_ page: AssetPage) throws -> Response {
        jsonResponse(.ok, [
            "items": .array(page.items.map(\.json)),
            "pageInfo": ["hasNextPage": .bool(page.hasNextPage), "endCursor": page.endCursor.map(JSONValue.string) ?? .null],
        ])
    }

    func pathID(_ context: Context) throws -> String {
        // Ids hold ':' and '/', so clients percent-encode them in the path.
        let raw = try context.parameters.require("id")
        guard let id = raw.removingPercentEncoding, !id.isEmpty else { throw CatalogError(.invalid, "bad id in the path") }
        return id
    }

    func limit(_ request: Request) throws -> Int {
        let n = try intParameter(request, "limit") ?? 50
        guard (1...10_000).contains(n) else { throw CatalogError(.invalid, "limit must be 1...10000, got \(n)") }
        return min(n, maxPage)
    }

    func intParameter(_ request: Request, _ name: String) throws -> Int? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        guard let n = Int(text) else { throw CatalogError(.invalid, "\(name) must be a whole number, got '\(text)'") }
        return n
    }

    func enumValue<E: RawRepresentable & CaseIterable>(_ type: E.Type, _ text: String, _ name: String) throws -> E where E.RawValue == String {
        guard let v = E(rawValue: text) else {
            throw CatalogError(.invalid, "\(name) must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
        }
        return v
    }
}
