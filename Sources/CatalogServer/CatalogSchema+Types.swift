import CortexCatalog
import CortexCore
import GraphQL

// The named types of the catalog schema. Each is built once and shared by every field that uses it:
// a schema may hold only one type of a given name.
extension CatalogSchema {
    /// The `JSON` scalar (asset properties).
    static func jsonScalar() throws -> GraphQLScalarType {
        try GraphQLScalarType(
            name: "JSON", description: "Any JSON value.",
            serialize: { value in
                if let m = value as? Map { return m }
                if let j = value as? JSONValue { return MapConversion.map(j) }
                return try map(from: value)
            },
            parseValue: { $0 },
            parseLiteral: { try valueFromASTUntyped(valueAST: $0) }
        )
    }

    // MARK: enums

    /// The enums, each from the catalog's own Swift enum, so the schema cannot name a case the catalog does not know.
    struct Enums {
        let assetType: GraphQLEnumType
        let healthStatus: GraphQLEnumType
        let relationKind: GraphQLEnumType
        let direction: GraphQLEnumType

        init() throws {
            assetType = try Self.enumType("AssetType", AssetType.self, "What kind of thing an asset is.")
            healthStatus = try Self.enumType("HealthStatus", HealthStatus.self, "An asset's judged health.")
            relationKind = try Self.enumType("RelationKind", RelationKind.self, "A lineage edge from -> to reads 'from KIND to'.")
            direction = try Self.enumType("LineageDirection", LineageDirection.self, "DOWNSTREAM follows edges from -> to, UPSTREAM against them.")
        }

        static func enumType<E: RawRepresentable & CaseIterable>(_ name: String, _ e: E.Type, _ description: String) throws -> GraphQLEnumType where E.RawValue == String {
            var values = GraphQLEnumValueMap()
            for c in E.allCases { values[c.rawValue] = GraphQLEnumValue(value: .string(c.rawValue)) }
            return try GraphQLEnumType(name: name, description: description, values: values)
        }
    }

    // MARK: object (output) types

    /// The object types the root fields return.
    struct Objects {
        let asset: GraphQLObjectType
        let connection: GraphQLObjectType
        let relation: GraphQLObjectType
        let lineage: GraphQLObjectType
        let stats: GraphQLObjectType
        let upsertResult: GraphQLObjectType
        let deleted: GraphQLObjectType
        let progress: GraphQLObjectType

        init(_ enums: Enums, json: GraphQLScalarType) throws {
            asset = try Self.asset(enums, json: json)
            connection = try Self.connection(of: asset)
            relation = try Self.relation(enums)
            lineage = try Self.lineage(asset: asset, relation: relation)
            stats = try Self.stats()
            upsertResult = try GraphQLObjectType(name: "UpsertResult", fields: [
                "created": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
                "updated": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
                "unchanged": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
                "relations": GraphQLField(type: GraphQLNonNull(GraphQLInt), description: "Relations newly added."),
            ])
            deleted = try GraphQLObjectType(name: "AssetDeleted", fields: [
                "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
                "type": GraphQLField(type: GraphQLNonNull(enums.assetType)),
            ])
            progress = try Self.workerProgress()
        }

        static func asset(_ enums: Enums, json: GraphQLScalarType) throws -> GraphQLObjectType {
            let label = try GraphQLObjectType(name: "Label", fields: [
                "key": GraphQLField(type: GraphQLNonNull(GraphQLString)),
                "value": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            ])
            let health = try GraphQLObjectType(name: "Health", fields: [
                "status": GraphQLField(type: GraphQLNonNull(enums.healthStatus)),
                "reason": GraphQLField(type: GraphQLString),
                "checkedAt": GraphQLField(type: GraphQLString, description: "ISO 8601."),
            ])
            return try GraphQLObjectType(name: "Asset", description: "A registered asset.", fields: [
                "id": GraphQLField(type: GraphQLNonNull(GraphQLID)),
                "type": GraphQLField(type: GraphQLNonNull(enums.assetType)),
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
        }

        /// A page of assets (`assets`, `search`): edges with cursors, the bare nodes, and where the next page starts.
        static func connection(of asset: GraphQLObjectType) throws -> GraphQLObjectType {
            let edge = try GraphQLObjectType(name: "AssetEdge", fields: [
                "cursor": GraphQLField(type: GraphQLNonNull(GraphQLString)),
                "node": GraphQLField(type: GraphQLNonNull(asset)),
            ])
            let pageInfo = try GraphQLObjectType(name: "PageInfo", fields: [
                "hasNextPage": GraphQLField(type: GraphQLNonNull(GraphQLBoolean)),
                "endCursor": GraphQLField(type: GraphQLString),
            ])
            return try GraphQLObjectType(name: "AssetConnection", fields: [
                "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(edge)))),
                "nodes": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(asset)))),
                "pageInfo": GraphQLField(type: GraphQLNonNull(pageInfo)),
            ])
        }

        static func relation(_ enums: Enums) throws -> GraphQLObjectType {
            try GraphQLObjectType(name: "Relation", fields: [
                "from": GraphQLField(type: GraphQLNonNull(GraphQLID)),
                "to": GraphQLField(type: GraphQLNonNull(GraphQLID)),
                "kind": GraphQLField(type: GraphQLNonNull(enums.relationKind)),
                "discoveredBy": GraphQLField(type: GraphQLNonNull(GraphQLString)),
                "observedAt": GraphQLField(type: GraphQLNonNull(GraphQLString)),
            ])
        }

        static func lineage(asset: GraphQLObjectType, relation: GraphQLObjectType) throws -> GraphQLObjectType {
            try GraphQLObjectType(name: "Lineage", fields: [
                "root": GraphQLField(type: GraphQLNonNull(GraphQLID)),
                "nodes": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(asset)))),
                "edges": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(relation)))),
                "truncated": GraphQLField(type: GraphQLNonNull(GraphQLBoolean), description: "The walk stopped at the node cap."),
            ])
        }

        static func stats() throws -> GraphQLObjectType {
            let keyCount = try GraphQLObjectType(name: "KeyCount", fields: [
                "key": GraphQLField(type: GraphQLNonNull(GraphQLString)),
                "count": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            ])
            let hourCount = try GraphQLObjectType(name: "HourCount", fields: [
                "hour": GraphQLField(type: GraphQLNonNull(GraphQLString)),
                "count": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
            ])
            let counts = GraphQLNonNull(GraphQLList(GraphQLNonNull(keyCount)))
            return try GraphQLObjectType(name: "Stats", fields: [
                "total": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
                "relations": GraphQLField(type: GraphQLNonNull(GraphQLInt)),
                "byType": GraphQLField(type: counts),
                "byNamespace": GraphQLField(type: counts),
                "byHealth": GraphQLField(type: counts),
                "discoveriesPerHour": GraphQLField(type: GraphQLNonNull(GraphQLList(GraphQLNonNull(hourCount)))),
            ])
        }

        static func workerProgress() throws -> GraphQLObjectType {
            try GraphQLObjectType(name: "WorkerProgress", description: "A worker status message relayed from cortex:workers:status.", fields: [
                "event": GraphQLField(type: GraphQLNonNull(GraphQLString), description: "TASK_STARTED, TASK_PROGRESS, TASK_COMPLETE, TASK_BATCH_COMPLETE (several short items of `taskId`; `itemId` null) or TASK_FAILED."),
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
        }
    }

    // MARK: input types

    /// The input object types of the arguments.
    struct Inputs {
        let asset: GraphQLInputObjectType
        let filter: GraphQLInputObjectType
        let relation: GraphQLInputObjectType

        init(_ enums: Enums, json: GraphQLScalarType) throws {
            let labelInput = try GraphQLInputObjectType(name: "LabelInput", fields: [
                "key": InputObjectField(type: GraphQLNonNull(GraphQLString)),
                "value": InputObjectField(type: GraphQLNonNull(GraphQLString)),
            ])
            let healthInput = try GraphQLInputObjectType(name: "HealthInput", fields: [
                "status": InputObjectField(type: GraphQLNonNull(enums.healthStatus)),
                "reason": InputObjectField(type: GraphQLString),
                "checkedAt": InputObjectField(type: GraphQLString, description: "ISO 8601; default: now."),
            ])
            asset = try GraphQLInputObjectType(name: "AssetInput", fields: [
                "id": InputObjectField(type: GraphQLID, description: "Default: <type>:<namespace>/<name> in lower-case type."),
                "type": InputObjectField(type: GraphQLNonNull(enums.assetType)),
                "name": InputObjectField(type: GraphQLNonNull(GraphQLString)),
                "namespace": InputObjectField(type: GraphQLString),
                "owner": InputObjectField(type: GraphQLString),
                "labels": InputObjectField(type: GraphQLList(GraphQLNonNull(labelInput))),
                "properties": InputObjectField(type: json, description: "A JSON object."),
                "health": InputObjectField(type: healthInput),
                "discoveredBy": InputObjectField(type: GraphQLString, description: "Default: the token's name."),
            ])
            filter = try GraphQLInputObjectType(name: "AssetFilter", fields: [
                "type": InputObjectField(type: enums.assetType),
                "namespace": InputObjectField(type: GraphQLString),
                "owner": InputObjectField(type: GraphQLString),
                "label": InputObjectField(type: GraphQLString, description: "key=value"),
                "health": InputObjectField(type: enums.healthStatus),
                "text": InputObjectField(type: GraphQLString, description: "Words that must all occur in the id, name or namespace."),
            ])
            relation = try GraphQLInputObjectType(name: "RelationInput", fields: [
                "from": InputObjectField(type: GraphQLNonNull(GraphQLID)),
                "to": InputObjectField(type: GraphQLNonNull(GraphQLID)),
                "kind": InputObjectField(type: GraphQLNonNull(enums.relationKind)),
                "discoveredBy": InputObjectField(type: GraphQLString),
            ])
        }
    }
}
