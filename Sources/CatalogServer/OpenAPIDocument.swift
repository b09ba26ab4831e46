import CortexCatalog
import CortexCore

/// The OpenAPI 3 description of the REST API, built from the same enums the server uses, so the
/// document cannot name a type or status the server does not know. Served at /openapi.json.
enum OpenAPIDocument {
    static let text: String = document.description

    /// Path templates and their methods, as documented: a known path asked with another method is a 405.
    static let routes: [(segments: [Substring], methods: [String])] = (document["paths"]?.objectValue ?? [:]).map { path, item in
        (path.split(separator: "/"), (item.objectValue ?? [:]).keys.filter { $0 != "parameters" }.map { $0.uppercased() }.sorted())
    }

    /// The documented methods of the path, or nil when the API has no such path.
    static func allowedMethods(path: String) -> [String]? {
        let parts = path.split(separator: "/")
        for route in routes where route.segments.count == parts.count {
            if zip(route.segments, parts).allSatisfy({ $0.hasPrefix("{") || $0 == $1 }) { return route.methods }
        }
        return nil
    }

    /// No control character (what `CatalogValidation` refuses).
    static let noControl = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    static let labelKeyPattern = "^[^=\\u0000-\\u001F\\u007F-\\u009F]+$"
    /// base64url without padding, as `CatalogStore.encodeCursor` writes it.
    static let cursorPattern = "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$"

    static var document: JSONValue {
        [
            "openapi": "3.1.0",
            "info": ["title": "Cortex catalog-api", "version": "1",
                     "description": "The asset registry with lineage. GraphQL (queries, mutations, graphql-transport-ws subscriptions) is at /graphql."],
            "servers": [["url": "/"]],
            "security": [["bearer": []]],
            "components": ["securitySchemes": ["bearer": ["type": "http", "scheme": "bearer"]], "schemas": schemas],
            "paths": .object(probePaths.merging(assetPaths) { $1 }.merging(catalogPaths) { $1 }),
        ]
    }
}

// MARK: building blocks

extension OpenAPIDocument {
    private static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    private static func enumSchema<E: RawRepresentable & CaseIterable>(_ e: E.Type) -> JSONValue where E.RawValue == String {
        ["type": "string", "enum": .array(E.allCases.map { .string($0.rawValue) })]
    }

    private static func json(_ schema: JSONValue, _ description: String) -> JSONValue {
        ["description": .string(description), "content": ["application/json": ["schema": schema]]]
    }

    private static func errors(_ codes: [Int]) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        let texts = [400: "invalid request", 401: "missing or unknown bearer token", 403: "token lacks the scope",
                     404: "not found", 409: "conflict (exists, or version mismatch)", 413: "body too large", 503: "storage unavailable"]
        for c in codes + [401, 503] { out[String(c)] = json(ref("Error"), texts[c] ?? "error") }
        return out
    }

    private static func responses(_ ok: [String: JSONValue], _ codes: [Int]) -> JSONValue {
        .object(errors(codes).merging(ok) { $1 })
    }

    private static func query(_ name: String, _ schema: JSONValue, _ description: String, required: Bool = false) -> JSONValue {
        ["name": .string(name), "in": "query", "required": .bool(required), "schema": schema, "description": .string(description)]
    }

    private static func body(_ schema: JSONValue) -> JSONValue { ["required": true, "content": ["application/json": ["schema": schema]]] }

    private static let string: JSONValue = ["type": "string"]
    private static let nullableString: JSONValue = ["type": ["string", "null"]]
    private static let integer: JSONValue = ["type": "integer"]

    // What CatalogValidation accepts: no control characters, bounded length.
    private static func boundedText(_ max: Int, min: Int = 1) -> JSONValue {
        ["type": "string", "minLength": .number(Double(min)), "maxLength": .number(Double(max)), "pattern": .string(noControl)]
    }

    private static var name: JSONValue { boundedText(CatalogLimits.maxNameLength) }
    private static var id: JSONValue { boundedText(CatalogLimits.maxIDLength) }

    // Optional fields may also be null, which means absent.
    private static func optional(_ schema: JSONValue) -> JSONValue { ["anyOf": [schema, ["type": "null"]]] }

    private static var idParameter: JSONValue {
        [
            "name": "id", "in": "path", "required": true, "schema": id,
            "description": "The asset id, percent-encoded (ids contain ':' and '/').",
        ]
    }

    private static var pageParameters: [JSONValue] {
        [
            query("limit", ["type": "integer", "minimum": 1, "maximum": 10000], "Page size (default 50, capped by CORTEX_CATALOG_MAX_PAGE, default 500)."),
            query("after", ["type": "string", "pattern": .string(cursorPattern)], "pageInfo.endCursor of the previous page."),
        ]
    }

    private static var filterParameters: [JSONValue] {
        [
            query("type", ref("AssetType"), "Only assets of this type."),
            query("namespace", string, "Only assets in this namespace."),
            query("owner", string, "Only assets with this owner."),
            query("label", ["type": "string", "pattern": "^[^=]+=.*$"], "key=value"),
            query("health", ref("HealthStatus"), "Only assets with this health."),
            query("text", string, "Words that must all occur in the id, name or namespace."),
        ]
    }
}

// MARK: components/schemas

extension OpenAPIDocument {
    /// What an asset's body may hold (AssetInput adds the id).
    private static var assetBodyProperties: [String: JSONValue] {
        [
            "type": ref("AssetType"), "name": name, "namespace": optional(boundedText(CatalogLimits.maxNameLength, min: 0)),
            "owner": optional(boundedText(CatalogLimits.maxNameLength, min: 0)), "labels": optional(ref("Labels")),
            "properties": optional(["type": "object"]), "health": optional(ref("HealthInput")), "discoveredBy": optional(name),
            "expectedVersion": optional(["type": "integer", "minimum": 1, "maximum": 9_007_199_254_740_991,
                                         "description": "Refuse with 409 unless the asset is at this version (404 if it does not exist)."]),
        ]
    }

    private static var schemas: JSONValue {
        .object(assetSchemas.merging(resultSchemas) { $1 })
    }

    /// Errors, the enums, and assets and relations as read and as written.
    private static var assetSchemas: [String: JSONValue] {
        [
            "Error": ["type": "object", "required": ["error"], "properties": [
                "error": ["type": "object", "required": ["code", "message"], "properties": ["code": string, "message": string]],
            ]],
            "AssetType": enumSchema(AssetType.self),
            "HealthStatus": enumSchema(HealthStatus.self),
            "RelationKind": enumSchema(RelationKind.self),
            "Health": ["type": "object", "required": ["status"], "properties": [
                "status": ref("HealthStatus"), "reason": string, "checkedAt": ["type": "string", "description": "ISO 8601"],
            ]],
            "HealthInput": ["type": "object", "required": ["status"], "properties": [
                "status": ref("HealthStatus"), "reason": optional(boundedText(CatalogLimits.maxReasonLength, min: 0)),
            ], "description": "checkedAt is set by the server when the asset is written (it also accepts an ISO 8601 checkedAt)."],
            "Labels": ["type": "object", "additionalProperties": boundedText(CatalogLimits.maxLabelLength, min: 0),
                       "propertyNames": ["minLength": 1, "maxLength": .number(Double(CatalogLimits.maxLabelLength)), "pattern": .string(labelKeyPattern)],
                       "maxProperties": .number(Double(CatalogLimits.maxLabels))],
            "Asset": ["type": "object",
                      "required": ["id", "type", "name", "labels", "properties", "health", "discoveredBy", "firstSeen", "lastSeen", "version"],
                      "properties": [
                          "id": string, "type": ref("AssetType"), "name": string, "namespace": string, "owner": string,
                          "labels": ref("Labels"), "properties": ["type": "object"], "health": ref("Health"),
                          "discoveredBy": string, "firstSeen": string, "lastSeen": string, "version": ["type": "integer", "minimum": 1],
                      ]],
            "AssetInput": ["type": "object", "required": ["type", "name"], "properties": .object(assetBodyProperties.merging([
                "id": optional(.object(id.objectValue!.merging(["description": "Default: <type>:<namespace>/<name> with the type in lower case."]) { $1 })),
            ]) { $1 })],
            "AssetBody": ["type": "object", "required": ["type", "name"], "properties": .object(assetBodyProperties),
                          "description": "An asset's content; the id is the path's."],
            "Relation": ["type": "object", "required": ["from", "to", "kind", "discoveredBy", "observedAt"], "properties": [
                "from": string, "to": string, "kind": ref("RelationKind"), "discoveredBy": string, "observedAt": string,
            ]],
            "RelationInput": ["type": "object", "required": ["from", "to", "kind"], "properties": [
                "from": id, "to": id, "kind": ref("RelationKind"), "discoveredBy": optional(name),
            ]],
        ]
    }

    /// Pages, lineage, counts, batches and readiness: what the endpoints answer with.
    private static var resultSchemas: [String: JSONValue] {
        [
            "AssetPage": ["type": "object", "required": ["items", "pageInfo"], "properties": [
                "items": ["type": "array", "items": ref("Asset")],
                "pageInfo": ["type": "object", "required": ["hasNextPage", "endCursor"],
                             "properties": ["hasNextPage": ["type": "boolean"], "endCursor": nullableString]],
            ]],
            "Lineage": ["type": "object", "required": ["root", "nodes", "edges", "truncated"], "properties": [
                "root": string, "nodes": ["type": "array", "items": ref("Asset")], "edges": ["type": "array", "items": ref("Relation")],
                "truncated": ["type": "boolean"],
            ]],
            "KeyCount": ["type": "object", "required": ["key", "count"], "properties": ["key": string, "count": integer]],
            "Stats": ["type": "object", "required": ["total", "relations", "byType", "byNamespace", "byHealth", "discoveriesPerHour"], "properties": [
                "total": integer, "relations": integer,
                "byType": ["type": "array", "items": ref("KeyCount")], "byNamespace": ["type": "array", "items": ref("KeyCount")],
                "byHealth": ["type": "array", "items": ref("KeyCount")],
                "discoveriesPerHour": ["type": "array", "items": ["type": "object", "required": ["hour", "count"], "properties": ["hour": string, "count": integer]]],
            ]],
            "Batch": ["type": "object", "required": ["assets"], "properties": [
                "assets": ["type": "array", "items": ref("AssetInput"), "maxItems": .number(Double(CatalogLimits.maxBatch))],
                "relations": optional(["type": "array", "items": ref("RelationInput"), "maxItems": .number(Double(CatalogLimits.maxBatch))]),
            ]],
            "UpsertSummary": ["type": "object", "required": ["created", "updated", "unchanged", "relations"], "properties": [
                "created": integer, "updated": integer, "unchanged": integer, "relations": integer,
            ]],
            "Readiness": ["type": "object", "required": ["ready", "reasons"], "properties": [
                "ready": ["type": "boolean"], "reasons": ["type": "array", "items": string],
            ]],
        ]
    }
}

// MARK: paths

extension OpenAPIDocument {
    /// Liveness and readiness (no token needed).
    private static var probePaths: [String: JSONValue] {
        [
            "/healthz": ["get": ["operationId": "healthz", "summary": "The process is alive.", "security": [],
                                 "responses": ["200": json(["type": "object"], "alive")]]],
            "/readyz": ["get": ["operationId": "readyz", "summary": "Redis reachable and the event relay subscribed.", "security": [],
                                "responses": ["200": json(ref("Readiness"), "ready"), "503": json(ref("Readiness"), "not ready")]]],
        ]
    }

    /// Assets: list, create, read, write, delete, lineage and search.
    private static var assetPaths: [String: JSONValue] {
        [
            "/api/v1/assets": [
                "get": ["operationId": "listAssets", "summary": "A page of assets matching every filter given, in id order.",
                        "parameters": .array(filterParameters + pageParameters),
                        "responses": responses(["200": json(ref("AssetPage"), "a page")], [400, 403])],
                "post": ["operationId": "createAsset", "summary": "Register a new asset (409 if the id exists).",
                         "requestBody": body(ref("AssetInput")),
                         "responses": responses(["201": json(ref("Asset"), "created")], [400, 403, 404, 409, 413])],
            ],
            "/api/v1/assets/{id}": [
                "parameters": [idParameter],
                "get": ["operationId": "getAsset", "summary": "One asset.",
                        "responses": responses(["200": json(ref("Asset"), "the asset")], [400, 403, 404])],
                "put": ["operationId": "putAsset", "summary": "Create or update the asset at this id; If-Match (or expectedVersion) makes it conditional.",
                        "parameters": [["name": "If-Match", "in": "header", "required": false,
                                        "schema": ["type": "string", "pattern": "^(\\*|\"?[1-9][0-9]{0,14}\"?)$"],
                                        "description": "The version the client read (409 if it moved on), or * (404 unless the asset exists)."]],
                        "requestBody": body(ref("AssetBody")),
                        "responses": responses(["200": json(ref("Asset"), "updated or unchanged"), "201": json(ref("Asset"), "created")],
                                               [400, 403, 404, 409, 413])],
                "delete": ["operationId": "deleteAsset", "summary": "Delete the asset and every edge touching it.",
                           "responses": responses(["204": ["description": "deleted"]], [400, 403, 404])],
            ],
            "/api/v1/assets/{id}/lineage": [
                "parameters": [idParameter],
                "get": ["operationId": "lineage", "summary": "Assets and edges within depth steps.",
                        "parameters": [
                            query("direction", enumSchema(LineageDirection.self), "DOWNSTREAM follows edges from -> to, UPSTREAM against them (default BOTH)."),
                            query("depth", ["type": "integer", "minimum": 1, "maximum": .number(Double(CatalogLimits.maxLineageDepth))], "Default 3."),
                        ],
                        "responses": responses(["200": json(ref("Lineage"), "the neighbourhood")], [400, 403, 404])],
            ],
            "/api/v1/search": ["get": ["operationId": "search", "summary": "Assets whose id, name or namespace hold every word of text.",
                                       "parameters": .array([query("text", ["type": "string", "minLength": 1], "Words to find.", required: true)] + pageParameters),
                                       "responses": responses(["200": json(ref("AssetPage"), "a page")], [400, 403])]],
        ]
    }

    /// Batches, relations, stats and the event stream.
    private static var catalogPaths: [String: JSONValue] {
        [
            "/api/v1/batch": ["post": ["operationId": "batchUpsert", "summary": "Idempotent batch upsert of assets and relations: all or nothing.",
                                       "requestBody": body(ref("Batch")),
                                       "responses": responses(["200": json(ref("UpsertSummary"), "what changed")], [400, 403, 404, 409, 413])]],
            "/api/v1/relations": [
                "post": ["operationId": "addRelation", "summary": "Add (or refresh) a lineage edge; both assets must exist.",
                         "requestBody": body(ref("RelationInput")),
                         "responses": responses(["201": json(ref("Relation"), "the edge")], [400, 403, 404, 413])],
                "delete": ["operationId": "removeRelation", "summary": "Remove a lineage edge.",
                           "parameters": [query("from", id, "Source asset id.", required: true), query("to", id, "Target asset id.", required: true),
                                          query("kind", ref("RelationKind"), "Edge kind.", required: true)],
                           "responses": responses(["204": ["description": "removed"]], [400, 403, 404])],
            ],
            "/api/v1/stats": ["get": ["operationId": "stats", "summary": "Counts by type, namespace and health; discoveries per hour.",
                                      "responses": responses(["200": json(ref("Stats"), "the counts")], [403])]],
            "/api/v1/events": ["get": ["operationId": "events", "summary": "Server-Sent Events: catalog changes and worker progress, each `data:` a Cortex envelope.",
                                       "parameters": [query("types", string, "Comma-separated message types (default: ASSET_ADDED, ASSET_CHANGED, ASSET_DELETED, TASK_STARTED, TASK_PROGRESS, TASK_COMPLETE, TASK_BATCH_COMPLETE, TASK_FAILED).")],
                                       "responses": responses(["200": ["description": "an endless event stream",
                                                                       "content": ["text/event-stream": ["schema": string]]]], [400, 403])]],
        ]
    }
}
