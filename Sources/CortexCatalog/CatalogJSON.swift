import CortexCore

// The catalog's types to and from `JSONValue`, written out by hand. A batch of 1,000 assets or a page of
// 50 went through Foundation's coders once per asset, relation and event (each a text round trip:
// `JSONValue.decode` serializes and re-parses); with `perf` on catalog-api that was most of a batch
// upsert and of a page's decoding (docs/benchmarks.md). The shapes are the ones the `Codable`
// conformances define, so clients and stored records see no difference.

extension AssetInput {
    /// An input as the REST API takes it (labels as an object). `path` names it in errors ("assets[3]").
    public init(json: JSONValue, at path: String) throws {
        let o = try CatalogJSON.object(json, path)
        guard let typeText = try CatalogJSON.string(o, "type", path) else { throw CatalogError(.invalid, "missing field '\(path).type'") }
        guard let type = AssetType(rawValue: typeText) else {
            throw CatalogError(.invalid, "field '\(path).type': '\(typeText)' is not one of \(AssetType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let name = try CatalogJSON.string(o, "name", path) else { throw CatalogError(.invalid, "missing field '\(path).name'") }
        var labels: [String: String]?
        switch o["labels"] {
        case nil, .null?: labels = nil
        case .object(let l)?:
            labels = try l.mapValues { v in
                guard case .string(let s) = v else { throw CatalogError(.invalid, "field '\(path).labels' must map keys to strings") }
                return s
            }
        default: throw CatalogError(.invalid, "field '\(path).labels' has the wrong type")
        }
        var health: Health?
        switch o["health"] {
        case nil, .null?: health = nil
        case let h?: health = try Health(json: h, at: "\(path).health")
        }
        var expectedVersion: Int?
        switch o["expectedVersion"] {
        case nil, .null?: expectedVersion = nil
        case .number(let n)?:
            guard let v = Int(exactly: n) else { throw CatalogError(.invalid, "field '\(path).expectedVersion' must be a whole number") }
            expectedVersion = v
        default: throw CatalogError(.invalid, "field '\(path).expectedVersion' has the wrong type")
        }
        let properties: JSONValue? = o["properties"].flatMap { $0 == .null ? nil : $0 }
        self.init(id: try CatalogJSON.string(o, "id", path), type: type, name: name, namespace: try CatalogJSON.string(o, "namespace", path),
                  owner: try CatalogJSON.string(o, "owner", path), labels: labels, properties: properties, health: health,
                  discoveredBy: try CatalogJSON.string(o, "discoveredBy", path), expectedVersion: expectedVersion)
    }
}

extension Health {
    /// `{status, reason?, checkedAt?}`.
    public init(json: JSONValue, at path: String) throws {
        let o = try CatalogJSON.object(json, path)
        guard let text = try CatalogJSON.string(o, "status", path) else { throw CatalogError(.invalid, "missing field '\(path).status'") }
        guard let status = HealthStatus(rawValue: text) else {
            throw CatalogError(.invalid, "field '\(path).status': '\(text)' is not one of \(HealthStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.init(status: status, reason: try CatalogJSON.string(o, "reason", path), checkedAt: try CatalogJSON.string(o, "checkedAt", path))
    }

    /// As `Codable` writes it: absent fields left out.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["status": .string(status.rawValue)]
        if let reason { o["reason"] = .string(reason) }
        if let checkedAt { o["checkedAt"] = .string(checkedAt) }
        return .object(o)
    }
}

extension RelationInput {
    /// `{from, to, kind, discoveredBy?}`; `path` names it in errors ("relations[2]").
    public init(json: JSONValue, at path: String) throws {
        let o = try CatalogJSON.object(json, path)
        guard let from = try CatalogJSON.string(o, "from", path) else { throw CatalogError(.invalid, "missing field '\(path).from'") }
        guard let to = try CatalogJSON.string(o, "to", path) else { throw CatalogError(.invalid, "missing field '\(path).to'") }
        guard let kindText = try CatalogJSON.string(o, "kind", path) else { throw CatalogError(.invalid, "missing field '\(path).kind'") }
        guard let kind = RelationKind(rawValue: kindText) else {
            throw CatalogError(.invalid, "field '\(path).kind': '\(kindText)' is not one of \(RelationKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.init(from: from, to: to, kind: kind, discoveredBy: try CatalogJSON.string(o, "discoveredBy", path))
    }

    /// As `Codable` writes it (what `CatalogClient` sends).
    public var json: JSONValue {
        var o: [String: JSONValue] = ["from": .string(from), "to": .string(to), "kind": .string(kind.rawValue)]
        if let discoveredBy { o["discoveredBy"] = .string(discoveredBy) }
        return .object(o)
    }
}

extension AssetInput {
    /// As `Codable` writes it (what `CatalogClient` sends): labels as an object, absent fields left out.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["type": .string(type.rawValue), "name": .string(name)]
        if let id { o["id"] = .string(id) }
        if let namespace { o["namespace"] = .string(namespace) }
        if let owner { o["owner"] = .string(owner) }
        if let labels { o["labels"] = .object(labels.mapValues(JSONValue.string)) }
        if let properties { o["properties"] = properties }
        if let health { o["health"] = health.json }
        if let discoveredBy { o["discoveredBy"] = .string(discoveredBy) }
        if let expectedVersion { o["expectedVersion"] = .number(Double(expectedVersion)) }
        return .object(o)
    }
}

extension Asset {
    /// As `Codable` writes it: what the REST API answers and change events carry.
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(id), "type": .string(type.rawValue), "name": .string(name), "labels": .object(labels.mapValues(JSONValue.string)),
            "properties": properties, "health": health.json, "discoveredBy": .string(discoveredBy), "firstSeen": .string(firstSeen),
            "lastSeen": .string(lastSeen), "version": .number(Double(version)),
        ]
        if let namespace { o["namespace"] = .string(namespace) }
        if let owner { o["owner"] = .string(owner) }
        return .object(o)
    }
}

extension Relation {
    /// As `Codable` writes it: the stored edge and what the API answers.
    public var json: JSONValue {
        ["from": .string(from), "to": .string(to), "kind": .string(kind.rawValue), "discoveredBy": .string(discoveredBy), "observedAt": .string(observedAt)]
    }

    /// A stored edge.
    public init(json: JSONValue) throws {
        let o = try CatalogJSON.object(json, "relation")
        guard let from = try CatalogJSON.string(o, "from", "relation"), let to = try CatalogJSON.string(o, "to", "relation"),
              let kind = try CatalogJSON.string(o, "kind", "relation").flatMap(RelationKind.init(rawValue:)),
              let by = try CatalogJSON.string(o, "discoveredBy", "relation"), let at = try CatalogJSON.string(o, "observedAt", "relation") else {
            throw CatalogError(.invalid, "stored relation is incomplete: \(json)")
        }
        self.init(from: from, to: to, kind: kind, discoveredBy: by, observedAt: at)
    }
}

/// Field readers with the errors the API answers.
enum CatalogJSON {
    static func object(_ json: JSONValue, _ path: String) throws -> [String: JSONValue] {
        guard case .object(let o) = json else { throw CatalogError(.invalid, "\(path) must be a JSON object") }
        return o
    }

    /// A string field; nil when absent or null.
    static func string(_ o: [String: JSONValue], _ key: String, _ path: String) throws -> String? {
        switch o[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw CatalogError(.invalid, "field '\(path).\(key)' has the wrong type")
        }
    }
}
