import CortexCatalog
import CortexCore
import Foundation
import GraphQL
import OrderedCollections

/// What every resolver gets: the store, who is asking, and where live events come from.
public struct CatalogContext: Sendable {
    public let store: CatalogStore
    public let principal: Principal
    public let relay: EventRelay
    public let maxPage: Int
}

/// The GraphQL schema of the catalog, built once per process.
public enum CatalogSchema {
    public static func build() throws -> GraphQLSchema {
        func enumType<E: RawRepresentable & CaseIterable>(_ name: String, _ e: E.Type, _ description: String) throws -> GraphQLEnumType where E.RawValue == String {
            var values = GraphQLEnumValueMap()
            for c in E.allCases { values[c.rawValue] = GraphQLEnumValue(value: .string(c.rawValue)) }
            return try GraphQLEnumType(name: name, description: description, values: values)
        }
        let json = try GraphQLScalarType(
            name: "JSON", description: "Any JSON value.",
            serialize: { value in
                if let m = value as? Map { return m }
                if let j = value as? JSONValue { return MapConversion.map(j) }
                return try map(from: value)
            },
            parseValue: { $0 },
            parseLiteral: { try valueFromASTUntyped(valueAST: $0) }
        )
        let assetType = try enumType("AssetType", AssetType.self, "What kind of thing an asset is.")
        let healthStatus = try enumType("HealthStatus", HealthStatus.self, "An asset's judged health.")
        let relationKind = try enumType("RelationKind", RelationKind.self, "A lineage edge from -> to reads 'from KIND to'.")
        let direction = try enumType("LineageDirection", LineageDirection.self, "DOWNSTREAM follows edges from -> to, UPSTREAM against them.")

        let label = try GraphQLObjectType(name: "Label", fields: [
            "key": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "value": GraphQLField(type: GraphQLNonNull(GraphQLString)),
        ])
        let health = try GraphQLObjectType(name: "Health", fields: [
            "status": GraphQLField(type: GraphQLNonNull(healthStatus)),
            "reason": GraphQLField(type: GraphQLString),
            "checkedAt": GraphQLField(type: GraphQLString, description: "ISO 8601."),
        ])
        let asset = try GraphQLObjectType(name: "Asset", description: "A registered asset.", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "type": GraphQLField(type: GraphQLNonNull(assetType)),
            "name": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "namespace": GraphQLField(type: GraphQLString),
            "owner": GraphQLField(type: GraphQLString),
            "labels": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(label)))),
            "properties": GraphQLField(type: GraphQLNonNull(json)),
            "health": GraphQLField(type: GraphQLNonNull(health)),
            "discoveredBy": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "firstSeen": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "lastSeen": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "version": GraphQLField(type: GraphQLNonNull(GraphQLInt), description: "Increases with every content change."),
        ])
        let edge = try GraphQLObjectType(name: "AssetEdge", fields: [
            "cursor": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "node": GraphQLField(type: GraphQLNonNull(asset)),
        ])
        let pageInfo = try GraphQLObjectType(name: "PageInfo", fields: [
            "hasNextPage": GraphQLField(type: GraphQLNonNull(GraphQLBoolean)),
            "endCursor": GraphQLField(type: GraphQLString),
        ])
        let connection = try GraphQLObjectType(name: "AssetConnection", fields: [
            "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(edge)))),
            "nodes": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(asset)))),
            "pageInfo": GraphQLField(type: GraphQLNonNull(pageInfo)),
        ])
        let relation = try GraphQLObjectType(name: "Relation", fields: [
            "from": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "to": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "kind": GraphQLField(type: GraphQLNonNull(relationKind)),
            "discoveredBy": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "observedAt": GraphQLField(type: GraphQLNonNull(GraphQLString)),
        ])
        let lineage = try GraphQLObjectType(name: "Lineage", fields: [
            "root": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "nodes": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(asset)))),
            "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(relation)))),
            "truncated": GraphQLField(type: GraphQLNonNull(GraphQLBoolean), description: "The walk stopped at the node cap."),
        ])
        let keyCount = try GraphQLObjectType(name: "KeyCount", fields: [
            "key": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "count": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
        ])
        let hourCount = try GraphQLObjectType(name: "HourCount", fields: [
            "hour": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "count": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
        ])
        let counts = GraphQLNonNull(GraphQLList(GraphQLNonNull(keyCount)))
        let stats = try GraphQLObjectType(name: "Stats", fields: [
            "total": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            "relations": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            "byType": GraphQLField(type: counts),
            "byNamespace": GraphQLField(type: counts),
            "byHealth": GraphQLField(type: counts),
            "discoveriesPerHour": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(hourCount)))),
        ])
        let upsertResult = try GraphQLObjectType(name: "UpsertResult", fields: [
            "created": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            "updated": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            "unchanged": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            "relations": GraphQLField(type: GraphQLNonNull(GraphQLInt), description: "Relations newly added."),
        ])
        let deleted = try GraphQLObjectType(name: "AssetDeleted", fields: [
            "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
            "type": GraphQLField(type: GraphQLNonNull(assetType)),
        ])
        let progress = try GraphQLObjectType(name: "WorkerProgress", description: "A worker status message relayed from cortex:workers:status.", fields: [
            "event": GraphQLField(type: GraphQLNonNull(GraphQLString), description: "TASK_STARTED, TASK_PROGRESS, TASK_COMPLETE or TASK_FAILED."),
            "worker": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            "node": GraphQLField(type: GraphQLString),
            "runId": GraphQLField(type: GraphQLString),
            "taskId": GraphQLField(type: GraphQLString),
            "itemId": GraphQLField(type: GraphQLString),
            "pool": GraphQLField(type: GraphQLString),
            "done": GraphQLField(type: GraphQLInt),
            "total": GraphQLField(type: GraphQLInt),
            "durationMs": GraphQLField(type: GraphQLInt),
            "reason": GraphQLField(type: GraphQLString),
            "at": GraphQLField(type: GraphQLNonNull(GraphQLString)),
        ])

        let labelInput = try GraphQLInputObjectType(name: "LabelInput", fields: [
            "key": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "value": InputObjectField(type: GraphQLNonNull(GraphQLString)),
        ])
        let healthInput = try GraphQLInputObjectType(name: "HealthInput", fields: [
            "status": InputObjectField(type: GraphQLNonNull(healthStatus)),
            "reason": InputObjectField(type: GraphQLString),
            "checkedAt": InputObjectField(type: GraphQLString, description: "ISO 8601; default: now."),
        ])
        let assetInputType = try GraphQLInputObjectType(name: "AssetInput", fields: [
            "id": InputObjectField(type: GraphQLID, description: "Default: <type>:<namespace>/<name> in lower-case type."),
            "type": InputObjectField(type: GraphQLNonNull(assetType)),
            "name": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            "namespace": InputObjectField(type: GraphQLString),
            "owner": InputObjectField(type: GraphQLString),
            "labels": InputObjectField(type: GraphQLList(GraphQLNonNull(labelInput))),
            "properties": InputObjectField(type: json, description: "A JSON object."),
            "health": InputObjectField(type: healthInput),
            "discoveredBy": InputObjectField(type: GraphQLString, description: "Default: the token's name."),
        ])
        let filterInput = try GraphQLInputObjectType(name: "AssetFilter", fields: [
            "type": InputObjectField(type: assetType),
            "namespace": InputObjectField(type: GraphQLString),
            "owner": InputObjectField(type: GraphQLString),
            "label": InputObjectField(type: GraphQLString, description: "key=value"),
            "health": InputObjectField(type: healthStatus),
            "text": InputObjectField(type: GraphQLString, description: "Words that must all occur in the id, name or namespace."),
        ])
        let relationInput = try GraphQLInputObjectType(name: "RelationInput", fields: [
            "from": InputObjectField(type: GraphQLNonNull(GraphQLID)),
            "to": InputObjectField(type: GraphQLNonNull(GraphQLID)),
            "kind": InputObjectField(type: GraphQLNonNull(relationKind)),
            "discoveredBy": InputObjectField(type: GraphQLString),
        ])

        let pageArgs: GraphQLArgumentConfigMap = [
            "first": GraphQLArgument(type: GraphQLInt, description: "Page size (capped by CORTEX_CATALOG_MAX_PAGE).", defaultValue: .int(50)),
            "after": GraphQLArgument(type: GraphQLString, description: "endCursor of the previous page."),
        ]
        var listArgs = pageArgs
        listArgs["filter"] = GraphQLArgument(type: filterInput)
        var searchArgs = pageArgs
        searchArgs["text"] = GraphQLArgument(type: GraphQLNonNull(GraphQLString))

        let query = try GraphQLObjectType(name: "Query", fields: [
            "asset": GraphQLField(type: asset, args: ["id": GraphQLArgument(type: GraphQLNonNull(GraphQLID))]) { _, args, context, _ in
                try await live(context).store.get(args["id"].string ?? "").map(MapConversion.source)
            },
            "assets": GraphQLField(type: GraphQLNonNull(connection), args: listArgs) { _, args, context, _ in
                let c = try live(context)
                let filter = try decodeInput(args["filter"], as: AssetFilter.self) ?? AssetFilter()
                return MapConversion.source(try await c.store.list(filter: filter, first: try page(args, c), after: args["after"].string))
            },
            "search": GraphQLField(type: GraphQLNonNull(connection), args: searchArgs) { _, args, context, _ in
                let c = try live(context)
                let text = args["text"].string ?? ""
                let first = try page(args, c)
                guard !CatalogValidation.words(text).isEmpty else { return MapConversion.source(AssetPage(items: [], hasNextPage: false, endCursor: nil)) }
                return MapConversion.source(try await c.store.list(filter: AssetFilter(text: text), first: first, after: args["after"].string))
            },
            "lineage": GraphQLField(type: lineage, args: [
                "id": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "direction": GraphQLArgument(type: direction, defaultValue: .string("BOTH")),
                "depth": GraphQLArgument(type: GraphQLInt, description: "1...10", defaultValue: .int(3)),
            ]) { _, args, context, _ in
                let dir = LineageDirection(rawValue: args["direction"].string ?? "BOTH") ?? .BOTH
                guard let l = try await live(context).store.lineage(of: args["id"].string ?? "", direction: dir, depth: args["depth"].int ?? 3) else { return nil }
                return ["root": l.root, "nodes": l.nodes.map { MapConversion.source($0) } as [any Sendable],
                        "edges": l.edges.map { MapConversion.source($0) } as [any Sendable], "truncated": l.truncated] as [String: any Sendable]
            },
            "stats": GraphQLField(type: GraphQLNonNull(stats)) { _, _, context, _ in
                let s = try await live(context).store.stats()
                return ["total": s.total, "relations": s.relations, "byType": MapConversion.source(s.byType),
                        "byNamespace": MapConversion.source(s.byNamespace), "byHealth": MapConversion.source(s.byHealth),
                        "discoveriesPerHour": s.discoveriesPerHour.map { ["hour": $0.hour, "count": $0.count] as [String: any Sendable] } as [any Sendable],
                ] as [String: any Sendable]
            },
        ])

        let mutation = try GraphQLObjectType(name: "Mutation", fields: [
            "addAsset": GraphQLField(type: GraphQLNonNull(asset), args: ["input": GraphQLArgument(type: GraphQLNonNull(assetInputType))]) { _, args, context, _ in
                let c = try live(context)
                let input = try parseAssetInput(args["input"])
                return MapConversion.source(try await c.store.write([input], mode: .create, by: c.principal.name).assets[0])
            },
            "updateAsset": GraphQLField(type: GraphQLNonNull(asset), args: [
                "id": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "expectedVersion": GraphQLArgument(type: GraphQLNonNull(GraphQLInt), description: "The version you read; another is a CONFLICT."),
                "input": GraphQLArgument(type: GraphQLNonNull(assetInputType)),
            ]) { _, args, context, _ in
                let c = try live(context)
                var input = try parseAssetInput(args["input"])
                let id = args["id"].string ?? ""
                if let given = input.id, given != id { throw CatalogError(.invalid, "input.id \(given) differs from id \(id)") }
                input.id = id
                input.expectedVersion = args["expectedVersion"].int
                return MapConversion.source(try await c.store.write([input], mode: .update, by: c.principal.name).assets[0])
            },
            "deleteAsset": GraphQLField(type: GraphQLNonNull(GraphQLBoolean), args: ["id": GraphQLArgument(type: GraphQLNonNull(GraphQLID))]) { _, args, context, _ in
                try await live(context).store.delete(args["id"].string ?? "") != nil
            },
            "upsertAssets": GraphQLField(
                type: GraphQLNonNull(upsertResult), description: "Idempotent batch: all or nothing.",
                args: [
                    "assets": GraphQLArgument(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(assetInputType)))),
                    "relations": GraphQLArgument(type: GraphQLList(GraphQLNonNull(relationInput))),
                ]
            ) { _, args, context, _ in
                let c = try live(context)
                let inputs = try (args["assets"].array ?? []).map(parseAssetInput)
                let relations = try (args["relations"].array ?? []).map { try decodeInput($0, as: RelationInput.self)! }
                let s = try await c.store.write(inputs, relations: relations, mode: .upsert, by: c.principal.name, reloadUnchanged: false).summary
                return ["created": s.created, "updated": s.updated, "unchanged": s.unchanged, "relations": s.relations] as [String: any Sendable]
            },
            "addRelation": GraphQLField(type: GraphQLNonNull(relation), args: ["input": GraphQLArgument(type: GraphQLNonNull(relationInput))]) { _, args, context, _ in
                let c = try live(context)
                let input = try decodeInput(args["input"], as: RelationInput.self)!
                return MapConversion.source(try await c.store.addRelation(input, by: c.principal.name))
            },
            "removeRelation": GraphQLField(type: GraphQLNonNull(GraphQLBoolean), args: [
                "from": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "to": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "kind": GraphQLArgument(type: GraphQLNonNull(relationKind)),
            ]) { _, args, context, _ in
                try await live(context).store.removeRelation(from: args["from"].string ?? "", to: args["to"].string ?? "",
                                                            kind: RelationKind(rawValue: args["kind"].string ?? "") ?? .DEPENDS_ON)
            },
        ])

        let typeArg: GraphQLArgumentConfigMap = ["type": GraphQLArgument(type: assetType, description: "Only assets of this type.")]
        let subscription = try GraphQLObjectType(name: "Subscription", fields: [
            "assetAdded": GraphQLField(
                type: GraphQLNonNull(asset), args: typeArg,
                resolve: { source, _, _, _ in try eventAsset(source) },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_ADDED, type: args["type"].string) }
            ),
            "assetChanged": GraphQLField(
                type: GraphQLNonNull(asset), args: typeArg,
                resolve: { source, _, _, _ in try eventAsset(source) },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_CHANGED, type: args["type"].string) }
            ),
            "assetDeleted": GraphQLField(
                type: GraphQLNonNull(deleted), args: typeArg,
                resolve: { source, _, _, _ in
                    let e = source as! Envelope
                    return ["id": e.data["id"]?.stringValue ?? "", "type": e.data["type"]?.stringValue ?? "UNKNOWN"] as [String: any Sendable]
                },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_DELETED, type: args["type"].string) }
            ),
            "workerProgress": GraphQLField(
                type: GraphQLNonNull(progress), args: ["worker": GraphQLArgument(type: GraphQLString, description: "Only this worker.")],
                resolve: { source, _, _, _ in workerProgress(source as! Envelope) },
                subscribe: { _, args, context, _ in
                    let worker = args["worker"].string
                    let stream = ctx(context).relay.stream(types: [.TASK_STARTED, .TASK_PROGRESS, .TASK_COMPLETE, .TASK_FAILED])
                    return AnySendableStream(stream.filter { worker == nil || $0.data["worker"]?.stringValue == worker })
                }
            ),
        ])
        return try GraphQLSchema(query: query, mutation: mutation, subscription: subscription)
    }

    static func ctx(_ context: any Sendable) -> CatalogContext { context as! CatalogContext }

    /// The context for a query or mutation resolver, or `CancellationError` when the operation was
    /// cancelled (past its deadline): an abandoned execution stops at its next store call.
    static func live(_ context: any Sendable) throws -> CatalogContext {
        try Task.checkCancellation()
        return ctx(context)
    }

    static func page(_ args: Map, _ c: CatalogContext) throws -> Int {
        let first = args["first"].int ?? 50
        guard first >= 1 else { throw CatalogError(.invalid, "first must be 1 or more, got \(first)") }
        return min(first, c.maxPage)
    }

    /// Decodes a GraphQL input object (a Map) into a catalog input type; nil for null or absent.
    static func decodeInput<T: Decodable>(_ value: Map, as type: T.Type) throws -> T? {
        if value.isNull || value.isUndefined { return nil }
        do {
            return try MapConversion.json(value).decode(T.self)
        } catch {
            throw CatalogError(.invalid, "invalid \(T.self): \(error)")
        }
    }

    /// An `AssetInput` from GraphQL, whose labels are a list of {key, value}.
    static func parseAssetInput(_ value: Map) throws -> AssetInput {
        guard case .dictionary(var fields) = value else { throw CatalogError(.invalid, "input must be an object") }
        if let labels = fields["labels"]?.array {
            var object = OrderedDictionary<String, Map>()
            for l in labels {
                guard let k = l["key"].string, let v = l["value"].string else { continue }
                guard object[k] == nil else { throw CatalogError(.invalid, "label '\(k)' is given twice") }
                object[k] = .string(v)
            }
            fields["labels"] = .dictionary(object)
        }
        return try decodeInput(.dictionary(fields), as: AssetInput.self)!
    }

    static func assetEvents(_ c: CatalogContext, _ type: MessageType, type assetType: String?) -> AnySendableStream {
        let stream = c.relay.stream(types: [type])
        return AnySendableStream(stream.filter { e in
            guard let wanted = assetType else { return true }
            return (e.data["asset"]?["type"] ?? e.data["type"])?.stringValue == wanted
        })
    }

    static func eventAsset(_ source: any Sendable) throws -> [String: any Sendable] {
        let e = source as! Envelope
        guard let json = e.data["asset"] else { throw CatalogError(.invalid, "event without an asset") }
        return MapConversion.source(try json.decode(Asset.self))
    }

    static func workerProgress(_ e: Envelope) -> [String: any Sendable] {
        [
            "event": e.type.rawValue, "worker": e.data["worker"]?.stringValue ?? "", "node": e.data["node"]?.stringValue as (any Sendable)?,
            "runId": e.runID as (any Sendable)?, "taskId": e.data["task_id"]?.stringValue as (any Sendable)?,
            "itemId": e.data["item_id"]?.stringValue as (any Sendable)?, "pool": e.data["pool"]?.stringValue as (any Sendable)?,
            "done": e.data["done"]?.intValue as (any Sendable)?, "total": e.data["total"]?.intValue as (any Sendable)?,
            "durationMs": e.data["duration_ms"]?.intValue as (any Sendable)?, "reason": e.data["reason"]?.stringValue as (any Sendable)?,
            "at": Timestamp.format(e.timestamp),
        ]
    }
}

/// A type-erased, Sendable async sequence of events (what a subscription resolver returns).
public struct AnySendableStream: AsyncSequence, Sendable {
    public typealias Element = any Sendable
    private let stream: AsyncStream<any Sendable>

    init<S: AsyncSequence & Sendable>(_ base: S) where S.Element: Sendable {
        stream = AsyncStream { continuation in
            let task = Task {
                do { for try await e in base { continuation.yield(e) } } catch {}
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func makeAsyncIterator() -> AsyncStream<any Sendable>.Iterator { stream.makeAsyncIterator() }
}
