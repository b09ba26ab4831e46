import CortexCatalog
import CortexCore
import GraphQL

// The root types: what a client may query, change, and subscribe to.
extension CatalogSchema {
    // MARK: queries

    static func queryType(_ objects: Objects, _ inputs: Inputs, _ enums: Enums) throws -> GraphQLObjectType {
        let pageArgs: GraphQLArgumentConfigMap = [
            "first": GraphQLArgument(type: GraphQLInt, description: "Page size (capped by CORTEX_CATALOG_MAX_PAGE).", defaultValue: .int(50)),
            "after": GraphQLArgument(type: GraphQLString, description: "endCursor of the previous page."),
        ]
        var listArgs = pageArgs
        listArgs["filter"] = GraphQLArgument(type: inputs.filter)
        var searchArgs = pageArgs
        searchArgs["text"] = GraphQLArgument(type: GraphQLNonNull(GraphQLString))

        return try GraphQLObjectType(name: "Query", fields: [
            "asset": GraphQLField(type: objects.asset, args: ["id": GraphQLArgument(type: GraphQLNonNull(GraphQLID))]) { _, args, context, _ in
                try await resolveAsset(args, live(context)).map(MapConversion.source)
            },
            "assets": GraphQLField(type: GraphQLNonNull(objects.connection), args: listArgs) { _, args, context, _ in
                MapConversion.source(try await resolveAssets(args, live(context)))
            },
            "search": GraphQLField(type: GraphQLNonNull(objects.connection), args: searchArgs) { _, args, context, _ in
                let c = try live(context)
                let text = args["text"].string ?? ""
                let first = try page(args, c)
                guard !CatalogValidation.words(text).isEmpty else { return MapConversion.source(AssetPage(items: [], hasNextPage: false, endCursor: nil)) }
                return MapConversion.source(try await c.store.list(filter: AssetFilter(text: text), first: first, after: args["after"].string))
            },
            "lineage": GraphQLField(type: objects.lineage, args: [
                "id": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "direction": GraphQLArgument(type: enums.direction, defaultValue: .string("BOTH")),
                "depth": GraphQLArgument(type: GraphQLInt, description: "1...10", defaultValue: .int(3)),
            ]) { _, args, context, _ in
                guard let l = try await resolveLineage(args, live(context)) else { return nil }
                return ["root": l.root, "nodes": l.nodes.map { MapConversion.source($0) } as [any Sendable],
                        "edges": l.edges.map { MapConversion.source($0) } as [any Sendable], "truncated": l.truncated] as [String: any Sendable]
            },
            "stats": GraphQLField(type: GraphQLNonNull(objects.stats)) { _, _, context, _ in
                let s = try await live(context).store.stats()
                return ["total": s.total, "relations": s.relations, "byType": MapConversion.source(s.byType),
                        "byNamespace": MapConversion.source(s.byNamespace), "byHealth": MapConversion.source(s.byHealth),
                        "discoveriesPerHour": s.discoveriesPerHour.map { ["hour": $0.hour, "count": $0.count] as [String: any Sendable] } as [any Sendable],
                ] as [String: any Sendable]
            },
        ])
    }

    // MARK: query resolvers
    //
    // The bodies of the root query fields that catalog-api's fast path (FastQueryExecutor) also runs:
    // one implementation, so the library's execution and the fast path read the same arguments the
    // same way. They take the arguments as the library coerces them (a dictionary Map).

    /// `asset(id:)`: the asset, or nil when there is none.
    static func resolveAsset(_ args: Map, _ c: CatalogContext) async throws -> Asset? {
        try await c.store.get(args["id"].string ?? "")
    }

    /// `assets(filter:, first:, after:)`: one page.
    static func resolveAssets(_ args: Map, _ c: CatalogContext) async throws -> AssetPage {
        let filter = try decodeInput(args["filter"], as: AssetFilter.self) ?? AssetFilter()
        return try await c.store.list(filter: filter, first: try page(args, c), after: args["after"].string)
    }

    /// `lineage(id:, direction:, depth:)`: the walk, or nil when the asset does not exist.
    static func resolveLineage(_ args: Map, _ c: CatalogContext) async throws -> Lineage? {
        let dir = LineageDirection(rawValue: args["direction"].string ?? "BOTH") ?? .BOTH
        return try await c.store.lineage(of: args["id"].string ?? "", direction: dir, depth: args["depth"].int ?? 3)
    }

    // MARK: mutations

    static func mutationType(_ objects: Objects, _ inputs: Inputs, _ enums: Enums) throws -> GraphQLObjectType {
        try GraphQLObjectType(name: "Mutation", fields: [
            "addAsset": GraphQLField(type: GraphQLNonNull(objects.asset), args: ["input": GraphQLArgument(type: GraphQLNonNull(inputs.asset))]) { _, args, context, _ in
                let c = try live(context)
                let input = try parseAssetInput(args["input"])
                return MapConversion.source(try await c.store.write([input], mode: .create, by: c.principal.name).assets[0])
            },
            "updateAsset": GraphQLField(type: GraphQLNonNull(objects.asset), args: [
                "id": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "expectedVersion": GraphQLArgument(type: GraphQLNonNull(GraphQLInt), description: "The version you read; another is a CONFLICT."),
                "input": GraphQLArgument(type: GraphQLNonNull(inputs.asset)),
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
                type: GraphQLNonNull(objects.upsertResult), description: "Idempotent batch: all or nothing.",
                args: [
                    "assets": GraphQLArgument(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(inputs.asset)))),
                    "relations": GraphQLArgument(type: GraphQLList(GraphQLNonNull(inputs.relation))),
                ]
            ) { _, args, context, _ in
                let c = try live(context)
                let inputs = try (args["assets"].array ?? []).map(parseAssetInput)
                let relations = try (args["relations"].array ?? []).map(parseRelationInput)
                let s = try await c.store.write(inputs, relations: relations, mode: .upsert, by: c.principal.name, reloadUnchanged: false).summary
                return ["created": s.created, "updated": s.updated, "unchanged": s.unchanged, "relations": s.relations] as [String: any Sendable]
            },
            "addRelation": GraphQLField(type: GraphQLNonNull(objects.relation), args: ["input": GraphQLArgument(type: GraphQLNonNull(inputs.relation))]) { _, args, context, _ in
                let c = try live(context)
                let input = try parseRelationInput(args["input"])
                return MapConversion.source(try await c.store.addRelation(input, by: c.principal.name))
            },
            "removeRelation": GraphQLField(type: GraphQLNonNull(GraphQLBoolean), args: [
                "from": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "to": GraphQLArgument(type: GraphQLNonNull(GraphQLID)),
                "kind": GraphQLArgument(type: GraphQLNonNull(enums.relationKind)),
            ]) { _, args, context, _ in
                try await live(context).store.removeRelation(from: args["from"].string ?? "", to: args["to"].string ?? "",
                                                            kind: RelationKind(rawValue: args["kind"].string ?? "") ?? .DEPENDS_ON)
            },
        ])
    }

    // MARK: subscriptions

    static func subscriptionType(_ objects: Objects, _ enums: Enums) throws -> GraphQLObjectType {
        let typeArg: GraphQLArgumentConfigMap = ["type": GraphQLArgument(type: enums.assetType, description: "Only assets of this type.")]
        return try GraphQLObjectType(name: "Subscription", fields: [
            "assetAdded": GraphQLField(
                type: GraphQLNonNull(objects.asset), args: typeArg,
                resolve: { source, _, _, _ in try eventAsset(source) },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_ADDED, type: args["type"].string) }
            ),
            "assetChanged": GraphQLField(
                type: GraphQLNonNull(objects.asset), args: typeArg,
                resolve: { source, _, _, _ in try eventAsset(source) },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_CHANGED, type: args["type"].string) }
            ),
            "assetDeleted": GraphQLField(
                type: GraphQLNonNull(objects.deleted), args: typeArg,
                resolve: { source, _, _, _ in
                    let deleted = try? (source as! Envelope).payload(AssetDeleted.self)
                    return ["id": deleted?.id ?? "", "type": deleted?.type ?? "UNKNOWN"] as [String: any Sendable]
                },
                subscribe: { _, args, context, _ in assetEvents(ctx(context), .ASSET_DELETED, type: args["type"].string) }
            ),
            "workerProgress": GraphQLField(
                type: GraphQLNonNull(objects.progress), args: ["worker": GraphQLArgument(type: GraphQLString, description: "Only this worker.")],
                resolve: { source, _, _, _ in workerProgress(source as! Envelope) },
                subscribe: { _, args, context, _ in
                    let worker = args["worker"].string
                    let stream = ctx(context).relay.stream(types: [.TASK_STARTED, .TASK_PROGRESS, .TASK_COMPLETE, .TASK_BATCH_COMPLETE, .TASK_FAILED])
                    return AnySendableStream(stream.filter { worker == nil || (workerProgress($0)["worker"] as? String) == worker })
                }
            ),
        ])
    }
}
