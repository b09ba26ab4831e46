import CortexCatalog
import CortexCore
import Foundation
import GraphQL

/// A GraphQL request as GraphQL-over-HTTP and graphql-transport-ws carry it.
public struct GraphQLRequestBody: Sendable {
    public var query: String
    public var variables: [String: Map]
    public var operationName: String?

    /// Reads `{query, variables, operationName}`; a wrong shape is a `CatalogError.invalid`.
    public init(json: JSONValue) throws {
        guard case .object(let o) = json else { throw CatalogError(.invalid, "a GraphQL request is a JSON object with a query") }
        guard let q = o["query"]?.stringValue else { throw CatalogError(.invalid, "missing 'query' (a string)") }
        query = q
        switch o["variables"] {
        case nil, .null?: variables = [:]
        case .object(let vars)?: variables = vars.mapValues(MapConversion.map)
        default: throw CatalogError(.invalid, "'variables' must be an object")
        }
        switch o["operationName"] {
        case nil, .null?: operationName = nil
        case .string(let s)?: operationName = s
        default: throw CatalogError(.invalid, "'operationName' must be a string")
        }
    }
}

/// Parses, authorizes, validates, limits and executes GraphQL operations (HTTP and WebSocket alike).
public struct GraphQLService: Sendable {
    public let schema: GraphQLSchema
    public let store: CatalogStore
    public let relay: EventRelay
    public let limits: QueryLimits
    public let metrics: CortexMetrics

    /// A checked operation, ready to run.
    public struct Prepared: Sendable {
        let document: Document
        public let operation: OperationType
        /// The first root field, for metrics ("assets", "upsertAssets"...).
        public let rootField: String
        let request: GraphQLRequestBody
    }

    /// What stops a request before execution: GraphQL errors with an HTTP status.
    public struct Refusal: Error {
        public var status: Int
        public var errors: [GraphQLError]
        init(_ status: Int, _ errors: [GraphQLError]) {
            self.status = status
            self.errors = errors
        }
        init(_ error: CatalogError) {
            self.init(error.httpStatus, [GraphQLError(message: error.message, extensions: GraphQLService.extensions(error))])
        }
        public var result: GraphQLResult { GraphQLResult(errors: errors) }
    }

    /// Parses and checks the request; `authorize` is asked for the scope the operation needs.
    public func prepare(_ request: GraphQLRequestBody, authorize: (Scope) throws -> Void) throws(Refusal) -> Prepared {
        let document: Document
        do {
            document = try parse(source: Source(body: request.query, name: "GraphQL request"))
        } catch let e as GraphQLError {
            throw Refusal(400, Self.coded([e], "GRAPHQL_PARSE_FAILED"))
        } catch {
            throw Refusal(CatalogError(.invalid, "\(error)"))
        }
        let operations = document.definitions.compactMap { $0 as? OperationDefinition }
        let chosen: OperationDefinition
        if let name = request.operationName {
            guard let o = operations.first(where: { $0.name?.value == name }) else {
                throw Refusal(CatalogError(.invalid, "no operation named '\(name)' in the document"))
            }
            chosen = o
        } else {
            guard operations.count == 1 else {
                throw Refusal(CatalogError(.invalid, operations.isEmpty ? "the document has no operation" : "several operations: name one with operationName"))
            }
            chosen = operations[0]
        }
        do {
            try authorize(chosen.operation == .mutation ? .write : .read)
        } catch let e as CatalogError {
            throw Refusal(e)
        } catch {
            throw Refusal(CatalogError(.unauthenticated, "\(error)"))
        }
        let validationErrors = validate(schema: schema, ast: document)
        guard validationErrors.isEmpty else { throw Refusal(400, Self.coded(validationErrors, "GRAPHQL_VALIDATION_FAILED")) }
        do {
            try limits.check(document, operationName: request.operationName, variables: request.variables)
        } catch let e as CatalogError {
            throw Refusal(e)
        } catch {
            throw Refusal(CatalogError(.invalid, "\(error)"))
        }
        let root = chosen.selectionSet.selections.compactMap { ($0 as? Field)?.name.value }.first ?? "?"
        return Prepared(document: document, operation: chosen.operation, rootField: root, request: request)
    }

    /// Runs a query or mutation.
    public func execute(_ prepared: Prepared, principal: Principal) async -> GraphQLResult {
        let started = ContinuousClock.now
        defer { metrics.catalogGraphQL(operation: prepared.operation.rawValue, field: prepared.rootField, seconds: seconds(since: started)) }
        do {
            let result = try await GraphQL.execute(
                schema: schema, documentAST: prepared.document, rootValue: (), context: context(principal),
                variableValues: prepared.request.variables, operationName: prepared.request.operationName
            )
            return Self.withCodes(result)
        } catch let e as GraphQLError {
            return GraphQLResult(errors: [e])
        } catch {
            return GraphQLResult(errors: [GraphQLError(message: "\(error)")])
        }
    }

    /// Starts a subscription: a stream of results, or the errors that prevented it.
    public func subscribe(_ prepared: Prepared, principal: Principal) async -> Result<AsyncThrowingStream<GraphQLResult, Error>, GraphQLErrors> {
        do {
            return try await graphqlSubscribe(
                schema: schema, request: prepared.request.query, context: context(principal),
                variableValues: prepared.request.variables, operationName: prepared.request.operationName
            )
        } catch let e as GraphQLError {
            return .failure(GraphQLErrors([e]))
        } catch {
            return .failure(GraphQLErrors([GraphQLError(message: "\(error)")]))
        }
    }

    func context(_ principal: Principal) -> CatalogContext {
        CatalogContext(store: store, principal: principal, relay: relay, maxPage: limits.maxPage)
    }

    static func extensions(_ e: CatalogError) -> [String: Map] {
        ["code": .string(e.code.rawValue), "classification": .string(e.classification)]
    }

    /// Resolver errors from the catalog carry their code (`extensions.code`), as clients branch on it.
    static func withCodes(_ result: GraphQLResult) -> GraphQLResult {
        guard !result.errors.isEmpty else { return result }
        var out = result
        out.errors = result.errors.map { e in
            guard let c = e.originalError as? CatalogError else {
                if e.originalError is RedisError {
                    return GraphQLError(message: "storage unavailable: \(e.message)", locations: e.locations, path: e.path,
                                        extensions: extensions(CatalogError(.unavailable, "")))
                }
                return e
            }
            return GraphQLError(message: c.message, locations: e.locations, path: e.path, extensions: extensions(c))
        }
        return out
    }

    /// The JSON text of a result. Errors carry `path` only when a field failed (the library writes an
    /// empty one for request errors, which clients then take for a resolver failure).
    public static func encode(_ result: GraphQLResult) -> String {
        var parts: [String] = []
        if !result.errors.isEmpty { parts.append(#""errors":"# + encode(result.errors)) }
        if let data = result.data {
            parts.append(#""data":"# + ((try? String(decoding: GraphQLJSONEncoder().encode(data), as: UTF8.self)) ?? "null"))
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// A JSON array of GraphQL errors, without empty paths.
    public static func encode(_ errors: [GraphQLError]) -> String {
        let items: [String] = errors.map { error in
            guard let data = try? GraphQLJSONEncoder().encode(error),
                  var object = (try? JSONDecoder().decode(JSONValue.self, from: data))?.objectValue else {
                return JSONValue.object(["message": .string(error.message)]).description
            }
            if object["path"]?.arrayValue?.isEmpty == true { object["path"] = nil }
            return JSONValue.object(object).description
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    /// Request errors with the code clients branch on (Apollo's names for the two kinds).
    static func coded(_ errors: [GraphQLError], _ code: String) -> [GraphQLError] {
        errors.map { e in
            e.extensions["code"] != nil ? e : GraphQLError(message: e.message, locations: e.locations, extensions: e.extensions.merging(["code": .string(code)]) { $1 })
        }
    }
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
