import CortexCore
import Foundation

/// A change the store made, published on `cortex:catalog:events` for every replica's subscribers.
public enum AssetChange: Sendable, Equatable {
    case added(Asset)
    case changed(Asset, previousHealth: HealthStatus)
    case deleted(id: String, type: AssetType)

    /// The change as the envelope catalog-api publishes. The data is written out by hand (the payloads'
    /// field names; `CatalogUnitTests` compares it with the `Codable` payloads): a batch publishes one
    /// envelope per asset, and two JSONEncoder passes each were a large part of a batch's cost.
    public func envelope(source: String) -> Envelope {
        switch self {
        case .added(let asset):
            return Envelope(type: .ASSET_ADDED, source: source, data: ["asset": asset.json])
        case .changed(let asset, let previous):
            return Envelope(type: .ASSET_CHANGED, source: source, data: ["asset": asset.json, "previous_health": .string(previous.rawValue)])
        case .deleted(let id, let type):
            return Envelope(AssetDeleted(id: id, type: type.rawValue), source: source)
        }
    }
}

/// The asset registry in Redis: records, indexes, lineage edges and counters, all changed by Lua scripts.
///
/// It holds no state of its own, so any number of catalog-api replicas can share one Redis.
public struct CatalogStore: Sendable {
    /// Clients used round-robin: a hiredis connection serves one command at a time, and the API
    /// answers many requests at once.
    private let clients: [RedisClient]
    private let next = Locked(0)
    /// The `source` of published change envelopes.
    public let source: String
    public let metrics: CortexMetrics?

    public init(clients: [RedisClient], source: String, metrics: CortexMetrics? = nil) {
        precondition(!clients.isEmpty)
        self.clients = clients
        self.source = source
        self.metrics = metrics
    }

    var redis: RedisClient {
        let i = next.withLock { n -> Int in
            n = (n + 1) % clients.count
            return n
        }
        return clients[i]
    }

    // MARK: reads

    /// The asset with `id`, or nil.
    public func get(_ id: String) async throws -> Asset? {
        try await load([id]).first ?? nil
    }

    /// A page of assets matching every filter given, in id order after the cursor.
    public func list(filter: AssetFilter, first: Int, after: String?) async throws -> AssetPage {
        var keys: [String] = []
        if let t = filter.type { keys.append(CortexNames.Catalog.index("type", t.rawValue)) }
        if let ns = filter.namespace { keys.append(CortexNames.Catalog.index("ns", ns)) }
        if let owner = filter.owner { keys.append(CortexNames.Catalog.index("owner", owner)) }
        if let h = filter.health { keys.append(CortexNames.Catalog.index("health", h.rawValue)) }
        if let label = filter.label {
            let (k, v) = try CatalogValidation.labelPair(label)
            keys.append(CortexNames.Catalog.index("label", "\(k)=\(v)"))
        }
        if let text = filter.text {
            // Text without a letter or digit constrains nothing.
            keys += Set(CatalogValidation.words(text)).sorted().map { CortexNames.Catalog.index("word", $0) }
        }
        let afterID = try after.flatMap { $0.isEmpty ? nil : try Self.decodeCursor($0) } ?? ""
        // One script call: the ids and their records, read in the same atomic step.
        let reply = try await CatalogScripts.list.run(redis, keys: keys, args: [CatalogScripts.names, afterID, first]).orThrow()
        guard let parts = reply.array, parts.count == 3, let ids = parts[1].array?.compactMap(\.string), let records = parts[2].array else {
            throw RedisError.server("unexpected listing reply \(reply)")
        }
        let assets = try records.compactMap { try Self.assemble($0.array ?? []) }
        return AssetPage(items: assets, hasNextPage: parts[0].int == 1, endCursor: ids.last.map(Self.encodeCursor))
    }

    /// The assets and edges within `depth` steps of `id`; nil when `id` does not exist.
    public func lineage(of id: String, direction: LineageDirection, depth: Int) async throws -> Lineage? {
        guard (1...CatalogLimits.maxLineageDepth).contains(depth) else {
            throw CatalogError(.invalid, "depth must be 1...\(CatalogLimits.maxLineageDepth), got \(depth)")
        }
        // One script call: the walk, its edges and the nodes' records.
        let reply = try await CatalogScripts.lineage.run(redis, args: [CatalogScripts.names, id, direction.rawValue, depth, CatalogLimits.maxLineageNodes]).orThrow()
        guard let parts = reply.array, parts.count == 4 else { return nil }
        let edges = try (parts[1].array ?? []).map { edge -> Relation in
            guard case .bulk(let bytes) = edge else { throw RedisError.server("unexpected lineage edge \(edge)") }
            return try Relation(json: try JSONText.parse(bytes))
        }
        let nodes = try (parts[3].array ?? []).compactMap { try Self.assemble($0.array ?? []) }
        return Lineage(root: id, nodes: nodes, edges: edges, truncated: parts[2].int == 1)
    }

    /// Counts by type, namespace and health, relations, and discoveries per hour over the last day.
    public func stats(now: Date = Date()) async throws -> CatalogStats {
        let replies = try await redis.pipeline([
            .zcard(CortexNames.Catalog.allAssets),
            .hgetall(CortexNames.Catalog.counts("type")),
            .hgetall(CortexNames.Catalog.counts("ns")),
            .hgetall(CortexNames.Catalog.counts("health")),
            .hget(CortexNames.Catalog.counts("meta"), "relations"),
            .hgetall(CortexNames.Catalog.discoveries),
        ])
        for r in replies { try r.orThrow() }
        func counts(_ r: RedisReply) -> [KeyCount] {
            r.fieldMap.compactMap { k, v in Int(v).map { KeyCount(key: k, count: $0) } }.sorted { ($0.count, $1.key) > ($1.count, $0.key) }
        }
        let currentHour = epochMilliseconds(now) / 3_600_000
        let hours = replies[5].fieldMap.compactMap { k, v -> (Int, Int)? in
            guard let h = Int(k), let n = Int(v), h > currentHour - 24 else { return nil }
            return (h, n)
        }.sorted { $0.0 < $1.0 }
        return CatalogStats(
            total: replies[0].int ?? 0, relations: replies[4].int ?? 0,
            byType: counts(replies[1]), byNamespace: counts(replies[2]), byHealth: counts(replies[3]),
            discoveriesPerHour: hours.map { HourCount(hour: Timestamp.format(milliseconds: $0.0 * 3_600_000), count: $0.1) }
        )
    }

    // MARK: writes

    public enum WriteMode: String, Sendable { case create, update, upsert }

    /// Creates, updates or upserts assets and adds relations in one atomic step: if any asset or relation
    /// is refused (conflict, missing endpoint), nothing is written. Publishes one event per change.
    /// `reloadUnchanged: false` skips re-reading unchanged assets (batch callers only want the counts).
    public func write(_ inputs: [AssetInput], relations: [RelationInput] = [], mode: WriteMode, by principal: String,
                      now: Date = Date(), reloadUnchanged: Bool = true) async throws -> (summary: UpsertSummary, assets: [Asset]) {
        guard inputs.count <= CatalogLimits.maxBatch, relations.count <= CatalogLimits.maxBatch else {
            throw CatalogError(.tooLarge, "at most \(CatalogLimits.maxBatch) assets and \(CatalogLimits.maxBatch) relations per batch")
        }
        var prepared: [JSONValue] = []
        var contents: [Asset] = []
        var position: [String: Int] = [:]
        prepared.reserveCapacity(inputs.count)
        contents.reserveCapacity(inputs.count)
        let nowMs = epochMilliseconds(now)
        let nowText = Timestamp.format(milliseconds: nowMs)
        for (i, input) in inputs.enumerated() {
            try CatalogValidation.check(input, at: inputs.count == 1 ? "asset" : "assets[\(i)]")
            let id = input.resolvedID
            let (record, asset) = try Self.prepare(input, id: id, by: principal, nowMs: nowMs, nowText: nowText)
            // An asset named twice in one batch: the later entry wins, as if the two were sent in order.
            if let earlier = position[id] {
                prepared[earlier] = record
                contents[earlier] = asset
            } else {
                position[id] = prepared.count
                prepared.append(record)
                contents.append(asset)
            }
        }
        var edges: [JSONValue] = []
        edges.reserveCapacity(relations.count)
        let observedAt = Timestamp.format(milliseconds: nowMs)
        for (i, r) in relations.enumerated() {
            try CatalogValidation.check(r, at: relations.count == 1 ? "relation" : "relations[\(i)]")
            let relation = Relation(from: r.from, to: r.to, kind: r.kind, discoveredBy: r.discoveredBy ?? principal, observedAt: observedAt)
            edges.append(["from": .string(r.from), "to": .string(r.to), "kind": .string(r.kind.rawValue), "json": .string(relation.json.description)])
        }
        let reply = try await CatalogScripts.upsert.run(redis, args: [
            CatalogScripts.names, nowMs, mode.rawValue, JSONValue.array(prepared).description, JSONValue.array(edges).description,
        ]).orThrow()
        guard let parts = reply.array, let ok = parts.first?.int else { throw RedisError.server("unexpected upsert reply \(reply)") }
        if ok == 0 {
            let code = CatalogError.Code(rawValue: parts.count > 1 ? parts[1].string ?? "" : "") ?? .invalid
            throw CatalogError(code, parts.count > 2 ? parts[2].string ?? "refused" : "refused")
        }
        var summary = UpsertSummary(created: 0, updated: 0, unchanged: 0, relations: parts.count > 1 ? parts[1].int ?? 0 : 0)
        var changes: [AssetChange] = []
        var results: [Asset] = []
        changes.reserveCapacity(contents.count)
        results.reserveCapacity(contents.count)
        var index = 2
        for var asset in contents {
            guard index + 4 < parts.count, let outcome = parts[index + 1].string, let version = parts[index + 2].int,
                  let firstSeen = parts[index + 3].int else { throw RedisError.server("short upsert reply") }
            let previous = HealthStatus(rawValue: parts[index + 4].string ?? "") ?? .UNKNOWN
            index += 5
            asset.version = version
            // Created now: the time is the one already written (most of a batch of new assets).
            asset.firstSeen = firstSeen == nowMs ? nowText : Timestamp.format(milliseconds: firstSeen)
            switch outcome {
            case "created":
                summary.created += 1
                changes.append(.added(asset))
            case "updated":
                summary.updated += 1
                changes.append(.changed(asset, previousHealth: previous))
            default:
                summary.unchanged += 1
            }
            results.append(asset)
        }
        await publish(changes)
        metrics?.catalogWrites(created: summary.created, updated: summary.updated, unchanged: summary.unchanged, relations: summary.relations)
        return (summary, reloadUnchanged && summary.unchanged > 0 ? try await reload(results) : results)
    }

    /// Unchanged assets keep their stored content (e.g. the discoverer that first saw them): return that.
    private func reload(_ assets: [Asset]) async throws -> [Asset] {
        let stored = try await load(assets.map(\.id))
        return zip(assets, stored).map { $1 ?? $0 }
    }

    /// Deletes an asset and every edge touching it; returns what was deleted, or nil when absent.
    public func delete(_ id: String) async throws -> Asset? {
        let reply = try await CatalogScripts.delete.run(redis, args: [CatalogScripts.names, id]).orThrow()
        guard let parts = reply.array, parts.count == 5 else { return nil }
        guard let asset = try Self.assemble(parts) else { return nil }
        await publish([.deleted(id: asset.id, type: asset.type)])
        return asset
    }

    /// Adds (or refreshes) one lineage edge; both assets must exist.
    public func addRelation(_ input: RelationInput, by principal: String, now: Date = Date()) async throws -> Relation {
        _ = try await write([], relations: [input], mode: .upsert, by: principal, now: now, reloadUnchanged: false)
        return Relation(from: input.from, to: input.to, kind: input.kind, discoveredBy: input.discoveredBy ?? principal,
                        observedAt: Timestamp.format(milliseconds: epochMilliseconds(now)))
    }

    /// Removes one lineage edge; false when it did not exist.
    public func removeRelation(from: String, to: String, kind: RelationKind) async throws -> Bool {
        try await CatalogScripts.removeRelation.run(redis, args: [CatalogScripts.names, from, to, kind.rawValue]).orThrow().int == 1
    }

    // MARK: plumbing

    /// The record the upsert script stores, and the asset it stands for (version and firstSeen filled in later).
    static func prepare(_ input: AssetInput, id: String, by principal: String, nowMs: Int,
                        nowText: String? = nil) throws -> (JSONValue, Asset) {
        let health = input.health ?? Health(status: .UNKNOWN)
        let checkedAtMs = health.checkedAt.flatMap(Timestamp.parse).map { epochMilliseconds($0) }
        if health.checkedAt != nil && checkedAtMs == nil {
            throw CatalogError(.invalid, "health.checkedAt must be an ISO 8601 time, got '\(health.checkedAt!)'")
        }
        let content = JSONValue.object([
            "id": .string(id), "type": .string(input.type.rawValue), "name": .string(input.name),
            "namespace": input.namespace.map(JSONValue.string) ?? .null, "owner": input.owner.map(JSONValue.string) ?? .null,
            "labels": .object((input.labels ?? [:]).mapValues(JSONValue.string)), "properties": input.properties ?? .object([:]),
            "health": ["status": .string(health.status.rawValue), "reason": health.reason.map(JSONValue.string) ?? .null],
        ])
        // The fingerprint leaves out who saw it and when: a rediscovery of the same thing is no change.
        let fingerprint = content.description
        // The stored document is the content with `discoveredBy`, which sorts before every content key:
        // spliced in front rather than serialized a second time.
        let docText = #"{"discoveredBy":"# + JSONValue.string(input.discoveredBy ?? principal).description + "," + fingerprint.dropFirst()
        var record: [String: JSONValue] = [
            "id": .string(id), "doc": .string(docText), "fp": .string(fingerprint), "type": .string(input.type.rawValue),
            "ns": .string(input.namespace ?? ""), "owner": .string(input.owner ?? ""), "health": .string(health.status.rawValue),
            "labels": .array((input.labels ?? [:]).sorted { $0.key < $1.key }.map { .string("\($0.key)=\($0.value)") }),
            "words": .array(CatalogValidation.indexWords(id: id, input: input).map(JSONValue.string)),
        ]
        if let v = input.expectedVersion { record["expectedVersion"] = .number(Double(v)) }
        if let c = checkedAtMs { record["checkedAt"] = .number(Double(c)) }
        let nowText = nowText ?? Timestamp.format(milliseconds: nowMs)
        let asset = Asset(
            id: id, type: input.type, name: input.name, namespace: input.namespace, owner: input.owner, labels: input.labels ?? [:],
            properties: input.properties ?? .object([:]),
            health: Health(status: health.status, reason: health.reason, checkedAt: checkedAtMs.map { Timestamp.format(milliseconds: $0) } ?? nowText),
            discoveredBy: input.discoveredBy ?? principal, firstSeen: nowText, lastSeen: nowText, version: 1
        )
        return (.object(record), asset)
    }

    /// Loads assets by id in one round trip; nil where an id does not exist.
    func load(_ ids: [String]) async throws -> [Asset?] {
        guard !ids.isEmpty else { return [] }
        let replies = try await redis.pipeline(ids.map {
            .hmget(CortexNames.Catalog.asset($0), ["doc", "version", "first_seen", "last_seen", "checked_at"])
        })
        return try replies.map { reply in try Self.assemble(try reply.orThrow().array ?? []) }
    }

    /// `{doc, version, first_seen, last_seen, checked_at}` as an asset. The document is the one `prepare`
    /// wrote (read with the project's parser: a page decodes 50 of them per request).
    static func assemble(_ parts: [RedisReply]) throws -> Asset? {
        guard parts.count == 5, case .bulk(let bytes) = parts[0] else { return nil }
        guard case .object(let doc) = try JSONText.parse(bytes), let id = doc["id"]?.stringValue,
              let type = doc["type"]?.stringValue.flatMap(AssetType.init(rawValue:)), let name = doc["name"]?.stringValue,
              let by = doc["discoveredBy"]?.stringValue, let h = doc["health"]?.objectValue,
              let status = h["status"]?.stringValue.flatMap(HealthStatus.init(rawValue:)) else {
            throw RedisError.server("stored asset document is incomplete")
        }
        return Asset(
            id: id, type: type, name: name, namespace: doc["namespace"]?.stringValue, owner: doc["owner"]?.stringValue,
            labels: (doc["labels"]?.objectValue ?? [:]).compactMapValues(\.stringValue), properties: doc["properties"] ?? .object([:]),
            health: Health(status: status, reason: h["reason"]?.stringValue, checkedAt: parts[4].int.map { Timestamp.format(milliseconds: $0) }),
            discoveredBy: by,
            firstSeen: Timestamp.format(milliseconds: parts[2].int ?? 0), lastSeen: Timestamp.format(milliseconds: parts[3].int ?? 0),
            version: parts[1].int ?? 0
        )
    }

    /// Publishes change envelopes (PUBLISH only: catalog changes are too many for the event history).
    private func publish(_ changes: [AssetChange]) async {
        guard !changes.isEmpty else { return }
        let envelopes = changes.map { $0.envelope(source: source) }
        do {
            let replies = try await redis.pipeline(envelopes.map { .publish($0.channel.rawValue, $0.encodedString) })
            for (r, e) in zip(replies, envelopes) where (try? r.orThrow()) != nil { metrics?.messagePublished(channel: e.channel, type: e.type) }
        } catch {
            // The write is done; a subscriber missing a notification re-reads the catalog.
            metrics?.redisError(operation: "publish")
        }
    }

    /// Cursors are opaque to clients: base64url of the last id of the page.
    public static func encodeCursor(_ id: String) -> String {
        Data(id.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decodeCursor(_ cursor: String) throws -> String {
        var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b64.count % 4 != 0 { b64 += "=" }
        guard let data = Data(base64Encoded: b64), !data.isEmpty else {
            throw CatalogError(.invalid, "after: '\(cursor)' is not a cursor from this API")
        }
        // Any position is a valid place to continue from, even one no listing returned.
        return String(decoding: data, as: UTF8.self)
    }
}
