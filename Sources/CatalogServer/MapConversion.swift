import CortexCatalog
import CortexCore
import GraphQL
import OrderedCollections

/// Conversions between the GraphQL library's `Map` and Cortex's `JSONValue` / catalog values.
enum MapConversion {
    static func map(_ value: JSONValue) -> Map {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let n): return n.rounded() == n && abs(n) < 9e15 ? .int(Int(n)) : .double(n)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(map))
        case .object(let o): return .dictionary(OrderedDictionary(uniqueKeysWithValues: o.sorted { $0.key < $1.key }.map { ($0.key, map($0.value)) }))
        }
    }

    static func json(_ value: Map) -> JSONValue {
        switch value {
        case .undefined, .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let n): return .number(n.doubleValue)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(Dictionary(uniqueKeysWithValues: d.map { ($0.key, json($0.value)) }))
        }
    }

    /// An asset as a resolver source: a dictionary the default resolver reads field by field.
    static func source(_ asset: Asset) -> [String: any Sendable] {
        [
            "id": asset.id, "type": asset.type.rawValue, "name": asset.name, "namespace": asset.namespace as (any Sendable)?,
            "owner": asset.owner as (any Sendable)?,
            "labels": asset.labels.sorted { $0.key < $1.key }.map { ["key": $0.key, "value": $0.value] as [String: any Sendable] } as [any Sendable],
            "properties": map(asset.properties),
            "health": ["status": asset.health.status.rawValue, "reason": asset.health.reason as (any Sendable)?,
                       "checkedAt": asset.health.checkedAt as (any Sendable)?] as [String: any Sendable],
            "discoveredBy": asset.discoveredBy, "firstSeen": asset.firstSeen, "lastSeen": asset.lastSeen, "version": asset.version,
        ]
    }

    static func source(_ relation: Relation) -> [String: any Sendable] {
        ["from": relation.from, "to": relation.to, "kind": relation.kind.rawValue, "discoveredBy": relation.discoveredBy, "observedAt": relation.observedAt]
    }

    static func source(_ page: AssetPage) -> [String: any Sendable] {
        // Each asset's source is built once and shared by `edges` and `nodes`.
        let nodes = page.items.map { source($0) }
        let edges: [any Sendable] = zip(page.items, nodes).map { ["cursor": CatalogStore.encodeCursor($0.id), "node": $1] as [String: any Sendable] }
        return [
            "edges": edges, "nodes": nodes as [any Sendable],
            "pageInfo": ["hasNextPage": page.hasNextPage, "endCursor": page.endCursor as (any Sendable)?] as [String: any Sendable],
        ]
    }

    static func source(_ counts: [KeyCount]) -> [any Sendable] {
        counts.map { ["key": $0.key, "count": $0.count] as [String: any Sendable] }
    }
}
