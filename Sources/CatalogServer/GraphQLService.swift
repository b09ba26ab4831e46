import CortexCatalog
import CortexCore
import Foundation
import GraphQL
import Logging

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

/// Parses, authorizes, limits, validates and executes GraphQL operations (HTTP and WebSocket alike).
///
/// The order matters: the raw text is pre-scanned (token count, bracket nesting) before the recursive
/// parser sees it, and the document limits (depth with fragments expanded, cost, fragment cycles) are
/// checked before the library's recursive validation and execution. Execution is bounded in time,
/// result size and, per client, concurrency.
public struct GraphQLService: Sendable {
    public let schema: GraphQLSchema
    public let store: CatalogStore
    public let relay: EventRelay
    public let limits: QueryLimits
    public let execution: ExecutionLimits
    public let metrics: CortexMetrics
    /// Whether queries the fast path covers run on it (`CORTEX_CATALOG_FAST_PATH`); `executeJSON` can
    /// also be told per call.
    public let fastPath: Bool
    /// Parsed and validated documents by query text; nil without the fast path, so that turning it
    /// off gives the execution as it was before either (every text parsed and validated).
    public let documents: DocumentCache?
    let refusals: RefusalLog
    let limiter: ClientLimiter
    let fastExecutor: FastQueryExecutor
    let counted: Counters

    /// Counters bumped per request, made once (a registry lookup per request costs more than the bump).
    struct Counters: Sendable {
        let fast, library, cached, parsed: @Sendable () -> Void
        init(_ metrics: CortexMetrics) {
            fast = metrics.catalogExecutionCounter(path: "fast")
            library = metrics.catalogExecutionCounter(path: "library")
            cached = metrics.catalogDocumentCounter(outcome: "cached")
            parsed = metrics.catalogDocumentCounter(outcome: "parsed")
        }
    }

    public init(schema: GraphQLSchema, store: CatalogStore, relay: EventRelay, limits: QueryLimits, execution: ExecutionLimits = .init(),
                fastPath: Bool = true, documents: DocumentCache = DocumentCache(), metrics: CortexMetrics, logger: Logger) throws {
        self.schema = schema
        self.store = store
        self.relay = relay
        self.limits = limits
        self.execution = execution
        self.metrics = metrics
        self.fastPath = fastPath
        self.documents = fastPath ? documents : nil
        refusals = RefusalLog(metrics: metrics, logger: logger)
        limiter = ClientLimiter(limit: execution.maxConcurrentPerClient)
        fastExecutor = try FastQueryExecutor(schema: schema)
        counted = Counters(metrics)
    }

    /// A checked operation, ready to run.
    public struct Prepared: Sendable {
        let document: Document
        /// The operation that runs (the one `operationName` names, or the only one).
        let definition: OperationDefinition
        public let operation: OperationType
        /// The first root field, for metrics ("assets", "upsertAssets"...).
        public let rootField: String
        let request: GraphQLRequestBody
        /// Who asked: the concurrency limit is theirs.
        public let principal: Principal
    }

    /// What stops a request before execution: GraphQL errors with an HTTP status (and, for a
    /// refusal the client should retry later, the seconds to wait).
    public struct Refusal: Error {
        public var status: Int
        public var errors: [GraphQLError]
        public var retryAfter: Int?
        init(_ status: Int, _ errors: [GraphQLError], retryAfter: Int? = nil) {
            self.status = status
            self.errors = errors
            self.retryAfter = retryAfter
        }
        init(_ error: CatalogError) {
            self.init(error.httpStatus, [GraphQLError(message: error.message, extensions: GraphQLService.extensions(error))])
        }
        init(_ error: QueryLimitError) {
            self.init(400, [GraphQLService.limitError(error.message, code: error.code, classification: "BAD_REQUEST")])
        }
        public var result: GraphQLResult { GraphQLResult(errors: errors) }
    }

    /// Parses and checks the request; `authorize` is asked for the scope the operation needs and
    /// answers who is asking. A text seen before comes from the document cache: it passed the
    /// pre-scan, the parser and validation then, and only what depends on this request (the
    /// operation, authorization, the limits that read variables) is checked again.
    public func prepare(_ request: GraphQLRequestBody, authorize: (Scope) throws -> Principal) throws(Refusal) -> Prepared {
        let cached = documents?.document(for: request.query)
        let document: Document
        if let cached {
            document = cached
            counted.cached()
        } else {
            // Gate 1, before anything recursive: tokens and bracket nesting of the raw text.
            do {
                try limits.prescan(request.query)
            } catch {
                refusals.refused(error.reason, client: nil, query: request.query, error.message)
                throw Refusal(error)
            }
            do {
                document = try parse(source: Source(body: request.query, name: "GraphQL request"))
            } catch let e as GraphQLError {
                throw Refusal(400, Self.coded([e], "GRAPHQL_PARSE_FAILED"))
            } catch {
                throw Refusal(CatalogError(.invalid, "\(error)"))
            }
            counted.parsed()
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
        let principal: Principal
        do {
            principal = try authorize(chosen.operation == .mutation ? .write : .read)
        } catch let e as CatalogError {
            throw Refusal(e)
        } catch {
            throw Refusal(CatalogError(.unauthenticated, "\(error)"))
        }
        // Gate 2, before the library's (recursive) validation: depth, cost, fragment cycles.
        do {
            try limits.check(document, operationName: request.operationName, variables: request.variables)
        } catch {
            refusals.refused(error.reason, client: principal.name, query: request.query, error.message)
            throw Refusal(error)
        }
        if cached == nil {
            let validationErrors = validate(schema: schema, ast: document)
            guard validationErrors.isEmpty else { throw Refusal(400, Self.coded(validationErrors, "GRAPHQL_VALIDATION_FAILED")) }
            documents?.insert(document, for: request.query)
        }
        let root = chosen.selectionSet.selections.compactMap { ($0 as? Field)?.name.value }.first ?? "?"
        return Prepared(document: document, definition: chosen, operation: chosen.operation, rootField: root, request: request, principal: principal)
    }

    /// Runs a query or mutation within the client's concurrency limit, the time limit and the result
    /// size limit, and answers the JSON text of its result. Over the concurrency limit it is refused
    /// (429, `TOO_MANY_REQUESTS`, retry after a second); past the deadline the client gets `TIMEOUT` at
    /// once and the execution is cancelled (it keeps the client's slot until it has stopped); a result
    /// over the size limit is replaced by `RESULT_TOO_LARGE`.
    ///
    /// Queries the fast path covers run on `FastQueryExecutor` (unless `fastPath` is false, or the
    /// service was made without it), everything else and every query it steps aside from on the
    /// library: the text is the same either way.
    public func executeJSON(_ prepared: Prepared, fastPath: Bool? = nil) async throws(Refusal) -> String {
        let client = prepared.principal.name
        guard limiter.acquire(client) else {
            let message = "\(client) already has \(limiter.limit) operations running; retry when one has finished"
            refusals.refused("concurrency", client: client, query: prepared.request.query, message)
            throw Refusal(429, [Self.limitError(message, code: "TOO_MANY_REQUESTS", classification: "BAD_REQUEST")], retryAfter: 1)
        }
        let started = ContinuousClock.now
        let useFast = (fastPath ?? self.fastPath) && prepared.operation == .query
        let work = Task { [self] () -> Outcome in
            defer { limiter.release(client) }
            if useFast, let (json, nodes) = await fastExecutor.execute(prepared.definition, in: prepared.document,
                                                                       variables: prepared.request.variables, context: context(prepared.principal)) {
                return .fast(json, nodes: nodes)
            }
            return .library(await run(prepared))
        }
        guard let outcome = await value(of: work, within: execution.timeout) else {
            work.cancel()
            let message = "the operation did not finish within \(secondsText(execution.timeout)) s and was cancelled"
            refusals.refused("timeout", client: client, query: prepared.request.query, message)
            return Self.encode(GraphQLResult(errors: [Self.limitError(message, code: "TIMEOUT", classification: "INTERNAL_ERROR")]))
        }
        metrics.catalogGraphQL(operation: prepared.operation.rawValue, field: prepared.rootField, seconds: seconds(since: started))
        let nodes: Int
        switch outcome {
        case .fast(_, let n): nodes = n; counted.fast()
        case .library(let result): nodes = resultNodes(result.data, limit: execution.maxResultNodes); counted.library()
        }
        if nodes > execution.maxResultNodes {
            let message = "the result holds more than \(execution.maxResultNodes) values; select fewer fields or lower `first`"
            refusals.refused("result_size", client: client, query: prepared.request.query, message)
            return Self.encode(GraphQLResult(errors: [Self.limitError(message, code: "RESULT_TOO_LARGE", classification: "BAD_REQUEST")]))
        }
        switch outcome {
        case .fast(let json, _): return String(decoding: json, as: UTF8.self)
        case .library(let result): return Self.encode(result)
        }
    }

    /// What ran: the fast path's text and value count, or the library's result.
    enum Outcome: Sendable {
        case fast([UInt8], nodes: Int)
        case library(GraphQLResult)
    }

    /// Executes the operation (the library's execution, resolver errors given their codes).
    func run(_ prepared: Prepared) async -> GraphQLResult {
        do {
            let result = try await GraphQL.execute(
                schema: schema, documentAST: prepared.document, rootValue: (), context: context(prepared.principal),
                variableValues: prepared.request.variables, operationName: prepared.request.operationName
            )
            return Self.withCodes(result)
        } catch let e as GraphQLError {
            return GraphQLResult(errors: [e])
        } catch {
            return GraphQLResult(errors: [GraphQLError(message: "\(error)")])
        }
    }

    /// An error of a limit, with its code.
    static func limitError(_ message: String, code: String, classification: String) -> GraphQLError {
        GraphQLError(message: message, extensions: ["code": .string(code), "classification": .string(classification)])
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
            var text = #""data":"#
            writeJSON(data, into: &text)
            parts.append(text)
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// JSON text of result data with the fields in the order the query selected them, as the library's
    /// `GraphQLJSONEncoder` writes it (undefined members left out, numbers as JSON numbers) without its
    /// `Encodable` machinery, which was about a twentieth of a page's CPU under `perf`.
    static func writeJSON(_ value: Map, into out: inout String) {
        switch value {
        case .undefined, .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if n.storageType == .int {
                out += String(n.intValue)
            } else {
                out += JSONText.serialize(.number(n.doubleValue))
            }
        case .string(let s): out += JSONText.serialize(.string(s))
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                writeJSON(item, into: &out)
            }
            out += "]"
        case .dictionary(let members):
            out += "{"
            var first = true
            for (key, member) in members where !member.isUndefined {
                if !first { out += "," }
                first = false
                out += JSONText.serialize(.string(key))
                out += ":"
                writeJSON(member, into: &out)
            }
            out += "}"
        }
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

/// "15" or "1.5": a duration in seconds for messages.
func secondsText(_ d: Duration) -> String {
    let ms = d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    return ms % 1000 == 0 ? "\(ms / 1000)" : "\(Double(ms) / 1000)"
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
