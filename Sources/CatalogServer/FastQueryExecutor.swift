import CortexCatalog
import CortexCore
import GraphQL

/// catalog-api's own execution of the read queries clients send most: operations whose root fields are
/// only `asset`, `assets`, `lineage` and `__typename`.
///
/// It calls the same resolvers as the schema (`CatalogSchema.resolveAsset` and its siblings) and writes
/// the response JSON straight from the catalog's values, byte for byte what the library's execution
/// and `GraphQLService.encode` write (keys in selection order, the same escapes and numbers). What it
/// saves is the library's per-field work: a child task per field and per list item, a dictionary per
/// object as resolver source, and a `Map` per value before encoding, which under `perf` cost several
/// times the Redis round trips of a page of 50.
///
/// It steps aside (returns nil, before anything was written) for whatever it does not cover, and a
/// resolver error also sends the operation to the library, whose error reports are the reference:
/// correctness first, the fast path only for the plain success case.
struct FastQueryExecutor: Sendable {
    let roots: FastQueryPlan.RootArguments

    init(schema: GraphQLSchema) throws {
        roots = try FastQueryPlan.RootArguments(schema: schema)
    }

    /// The response text and how many values its `data` holds (counted as `resultNodes` counts the
    /// library's result), or nil when the library must run the operation.
    func execute(_ operation: OperationDefinition, in document: Document, variables: [String: Map],
                 context: CatalogContext) async -> (json: [UInt8], nodes: Int)? {
        do {
            let plan = try FastQueryPlan.plan(operation, in: document, variables: variables, roots: roots)
            // Resolve every root field first, so an error leaves nothing half written.
            var values: [RootValue] = []
            values.reserveCapacity(plan.count)
            for field in plan {
                try Task.checkCancellation()
                switch field.name {
                case "asset": values.append(.asset(try await CatalogSchema.resolveAsset(field.arguments, context)))
                case "assets": values.append(.page(try await CatalogSchema.resolveAssets(field.arguments, context)))
                case "lineage": values.append(.lineage(try await CatalogSchema.resolveLineage(field.arguments, context)))
                case "__typename": values.append(.typename)
                default: throw FastPathUnsupported("root field \(field.name)")
                }
            }
            var writer = ResponseWriter()
            writer.raw(#"{"data":"#)
            writer.beginObject()
            for (field, value) in zip(plan, values) {
                writer.key(field.key)
                switch value {
                case .asset(let asset?): try writer.asset(asset, field.fields)
                case .asset(nil), .lineage(nil): writer.null()
                case .page(let page): try writer.page(page, field.fields)
                case .lineage(let lineage?): try writer.lineage(lineage, field.fields)
                case .typename: writer.string("Query")
                }
            }
            writer.endObject()
            writer.raw("}")
            return (writer.out, writer.nodes)
        } catch {
            return nil
        }
    }

    private enum RootValue {
        case asset(Asset?)
        case page(AssetPage)
        case lineage(Lineage?)
        case typename
    }
}

/// Writes a GraphQL response as JSON bytes, counting the values it writes the way `resultNodes`
/// counts a result's `Map` (every object, list, leaf and null is one).
struct ResponseWriter {
    var out: [UInt8] = []
    var nodes = 0
    /// Whether the object or list being written needs a comma before its next member.
    private var needsComma = false

    init() { out.reserveCapacity(16 * 1024) }

    mutating func raw(_ text: String) { out += text.utf8 }

    private mutating func separate() {
        if needsComma { out.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    mutating func key(_ key: String) {
        separate()
        JSONText.writeString(key, into: &out)
        out.append(UInt8(ascii: ":"))
        // The value follows the colon without a comma.
        needsComma = false
    }

    mutating func beginObject() { nodes += 1; out.append(UInt8(ascii: "{")); needsComma = false }
    mutating func endObject() { out.append(UInt8(ascii: "}")); needsComma = true }
    mutating func beginArray() { nodes += 1; out.append(UInt8(ascii: "[")); needsComma = false }
    mutating func endArray() { out.append(UInt8(ascii: "]")); needsComma = true }
    /// Separates list items (object members are separated by `key`).
    mutating func item() { separate(); needsComma = false }

    mutating func string(_ s: String) { nodes += 1; JSONText.writeString(s, into: &out); needsComma = true }
    mutating func string(_ s: String?) { if let s { string(s) } else { null() } }
    mutating func bool(_ b: Bool) { nodes += 1; out += (b ? "true" : "false").utf8; needsComma = true }
    mutating func null() { nodes += 1; out += "null".utf8; needsComma = true }

    /// An `Int` field: the library refuses values outside 32 bits (then it is the library's to report).
    mutating func int(_ n: Int) throws {
        guard n >= Int(Int32.min), n <= Int(Int32.max) else { throw FastPathUnsupported("Int out of range") }
        nodes += 1
        out += String(n).utf8
        needsComma = true
    }

    /// A `JSON` scalar. `JSONText.write` writes what `GraphQLService.writeJSON` writes for the `Map`
    /// that `MapConversion.map` makes of it: keys sorted, whole numbers below 9e15 without a fraction.
    mutating func json(_ value: JSONValue) throws {
        // The library turns a null JSON value of a non-null field into an error: its report.
        guard value != .null else { throw FastPathUnsupported("null JSON") }
        nodes += Self.count(value)
        JSONText.write(value, into: &out)
        needsComma = true
    }

    static func count(_ value: JSONValue) -> Int {
        switch value {
        case .array(let items): return items.reduce(1) { $0 + count($1) }
        case .object(let members): return members.values.reduce(1) { $0 + count($1) }
        default: return 1
        }
    }

    // MARK: the catalog's object types (field names as in CatalogSchema+Types.swift)

    mutating func asset(_ a: Asset, _ fields: [PlannedField]) throws {
        beginObject()
        for f in fields {
            key(f.key)
            switch f.name {
            case "__typename": string("Asset")
            case "id": string(a.id)
            case "type": string(a.type.rawValue)
            case "name": string(a.name)
            case "namespace": string(a.namespace)
            case "owner": string(a.owner)
            case "labels":
                beginArray()
                // Sorted by key, as MapConversion.source gives them to the library.
                for (k, v) in a.labels.sorted(by: { $0.key < $1.key }) {
                    item()
                    beginObject()
                    for lf in f.fields {
                        key(lf.key)
                        switch lf.name {
                        case "__typename": string("Label")
                        case "key": string(k)
                        case "value": string(v)
                        default: throw FastPathUnsupported("Label.\(lf.name)")
                        }
                    }
                    endObject()
                }
                endArray()
            case "properties": try json(a.properties)
            case "health":
                beginObject()
                for hf in f.fields {
                    key(hf.key)
                    switch hf.name {
                    case "__typename": string("Health")
                    case "status": string(a.health.status.rawValue)
                    case "reason": string(a.health.reason)
                    case "checkedAt": string(a.health.checkedAt)
                    default: throw FastPathUnsupported("Health.\(hf.name)")
                    }
                }
                endObject()
            case "discoveredBy": string(a.discoveredBy)
            case "firstSeen": string(a.firstSeen)
            case "lastSeen": string(a.lastSeen)
            case "version": try int(a.version)
            default: throw FastPathUnsupported("Asset.\(f.name)")
            }
        }
        endObject()
    }

    mutating func page(_ page: AssetPage, _ fields: [PlannedField]) throws {
        beginObject()
        for f in fields {
            key(f.key)
            switch f.name {
            case "__typename": string("AssetConnection")
            case "edges":
                beginArray()
                for a in page.items {
                    item()
                    beginObject()
                    for ef in f.fields {
                        key(ef.key)
                        switch ef.name {
                        case "__typename": string("AssetEdge")
                        case "cursor": string(CatalogStore.encodeCursor(a.id))
                        case "node": try asset(a, ef.fields)
                        default: throw FastPathUnsupported("AssetEdge.\(ef.name)")
                        }
                    }
                    endObject()
                }
                endArray()
            case "nodes":
                beginArray()
                for a in page.items {
                    item()
                    try asset(a, f.fields)
                }
                endArray()
            case "pageInfo":
                beginObject()
                for pf in f.fields {
                    key(pf.key)
                    switch pf.name {
                    case "__typename": string("PageInfo")
                    case "hasNextPage": bool(page.hasNextPage)
                    case "endCursor": string(page.endCursor)
                    default: throw FastPathUnsupported("PageInfo.\(pf.name)")
                    }
                }
                endObject()
            default: throw FastPathUnsupported("AssetConnection.\(f.name)")
            }
        }
        endObject()
    }

    mutating func lineage(_ lineage: Lineage, _ fields: [PlannedField]) throws {
        beginObject()
        for f in fields {
            key(f.key)
            switch f.name {
            case "__typename": string("Lineage")
            case "root": string(lineage.root)
            case "nodes":
                beginArray()
                for a in lineage.nodes {
                    item()
                    try asset(a, f.fields)
                }
                endArray()
            case "edges":
                beginArray()
                for r in lineage.edges {
                    item()
                    try relation(r, f.fields)
                }
                endArray()
            case "truncated": bool(lineage.truncated)
            default: throw FastPathUnsupported("Lineage.\(f.name)")
            }
        }
        endObject()
    }

    mutating func relation(_ r: Relation, _ fields: [PlannedField]) throws {
        beginObject()
        for f in fields {
            key(f.key)
            switch f.name {
            case "__typename": string("Relation")
            case "from": string(r.from)
            case "to": string(r.to)
            case "kind": string(r.kind.rawValue)
            case "discoveredBy": string(r.discoveredBy)
            case "observedAt": string(r.observedAt)
            default: throw FastPathUnsupported("Relation.\(f.name)")
            }
        }
        endObject()
    }
}
