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
        let json = try jsonScalar()
        let enums = try Enums()
        let objects = try Objects(enums, json: json)
        let inputs = try Inputs(enums, json: json)
        return try GraphQLSchema(
            query: try queryType(objects, inputs, enums),
            mutation: try mutationType(objects, inputs, enums),
            subscription: try subscriptionType(objects, enums)
        )
    }

    // MARK: resolver helpers

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

    /// An `AssetInput` from GraphQL, whose labels are a list of {key, value}. Read field by field
    /// (`AssetInput(json:at:)`), not through a `Decodable` text round trip: `upsertAssets` reads up to
    /// 5,000 of them per request.
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
        return try AssetInput(json: MapConversion.json(.dictionary(fields)), at: "input")
    }

    /// A `RelationInput` from GraphQL.
    static func parseRelationInput(_ value: Map) throws -> RelationInput {
        try RelationInput(json: MapConversion.json(value), at: "relation")
    }

    static func assetEvents(_ c: CatalogContext, _ type: MessageType, type assetType: String?) -> AnySendableStream {
        let stream = c.relay.stream(types: [type])
        return AnySendableStream(stream.filter { e in
            guard let wanted = assetType else { return true }
            return (assetJSON(e)?["type"]?.stringValue ?? (try? e.payload(AssetDeleted.self))?.type) == wanted
        })
    }

    /// The asset an ASSET_ADDED or ASSET_CHANGED carries.
    static func assetJSON(_ e: Envelope) -> JSONValue? {
        (try? e.payload(AssetAdded.self))?.asset ?? (try? e.payload(AssetChanged.self))?.asset
    }

    static func eventAsset(_ source: any Sendable) throws -> [String: any Sendable] {
        let e = source as! Envelope
        guard let json = assetJSON(e) else { throw CatalogError(.invalid, "event without an asset") }
        return MapConversion.source(try json.decode(Asset.self))
    }

    /// One WorkerProgress from any of the five work item messages (each decoded as its own payload).
    static func workerProgress(_ e: Envelope) -> [String: any Sendable] {
        var worker = "", node: String?, taskID: String?, itemID: String?, pool: String?, done: Int?, total: Int?, durationMs: Int?, reason: String?
        if let p = try? e.payload(TaskStarted.self) {
            (worker, node, taskID, itemID, pool) = (p.worker, p.node, p.taskID, p.itemID, p.pool)
        } else if let p = try? e.payload(TaskProgress.self) {
            (worker, itemID, done, total) = (p.worker, p.itemID, p.done, p.total)
        } else if let p = try? e.payload(TaskComplete.self) {
            (worker, node, taskID, itemID, durationMs) = (p.worker, p.node, p.taskID, p.itemID, p.durationMs)
        } else if let p = try? e.payload(TaskBatchComplete.self) {
            // Several short items at once: the task, not one item (`itemId` stays null).
            (worker, node, taskID, durationMs) = (p.worker, p.node, p.taskID, p.durationMs)
        } else if let p = try? e.payload(TaskFailed.self) {
            (worker, taskID, itemID, reason) = (p.worker, p.taskID, p.itemID, p.reason)
        }
        return [
            "event": e.type.rawValue, "worker": worker, "node": node as (any Sendable)?, "runId": e.runID as (any Sendable)?,
            "taskId": taskID as (any Sendable)?, "itemId": itemID as (any Sendable)?, "pool": pool as (any Sendable)?,
            "done": done as (any Sendable)?, "total": total as (any Sendable)?, "durationMs": durationMs as (any Sendable)?,
            "reason": reason as (any Sendable)?, "at": Timestamp.format(e.timestamp),
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
