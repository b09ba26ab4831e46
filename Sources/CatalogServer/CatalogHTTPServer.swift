import CortexCatalog
import CortexCore
import Foundation
import GraphQL
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// The catalog-api HTTP server: GraphQL (HTTP and WebSocket), REST under /api/v1, Server-Sent Events,
/// the OpenAPI document, and the ops endpoints (/healthz, /readyz, /metrics) on one port.
public struct CatalogHTTPServer: Service {
    public typealias Context = BasicWebSocketRequestContext
    private let application: Application<RouterResponder<Context>>
    public let boundPort: Locked<Int?>

    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var maxBody: Int
        public var limits: QueryLimits
        public var execution: ExecutionLimits
        /// A new connection must deliver its first complete request head within this (slowloris).
        public var headTimeout: Duration
        /// A connection with no complete request part for this long is closed (idle keep-alive,
        /// slow heads of later requests); a response being written or streamed is not idle.
        public var idleTimeout: Duration
        /// Whether GraphQL queries the fast path covers run on it, and repeated texts come from the
        /// document cache (docs/catalog.md, Execution).
        public var fastPath: Bool
        public init(host: String, port: Int, maxBody: Int, limits: QueryLimits, execution: ExecutionLimits = .init(),
                    headTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60), fastPath: Bool = true) {
            self.host = host
            self.port = port
            self.maxBody = maxBody
            self.limits = limits
            self.execution = execution
            self.headTimeout = headTimeout
            self.idleTimeout = idleTimeout
            self.fastPath = fastPath
        }
    }

    public init(configuration: Configuration, store: CatalogStore, relay: EventRelay, auth: CatalogAuth, metrics: CortexMetrics,
                logger: Logger, readiness: @escaping @Sendable () async -> Readiness) throws {
        let schema = try CatalogSchema.build()
        // Introspection lists cost what this schema makes them return.
        var limits = configuration.limits
        limits.introspection = try IntrospectionSizes(schema: schema)
        let graphql = try GraphQLService(schema: schema, store: store, relay: relay, limits: limits, execution: configuration.execution,
                                         fastPath: configuration.fastPath, metrics: metrics, logger: logger)
        let refusals = RefusalLog(metrics: metrics, logger: logger)
        refusals.start()
        let router = Router(context: Context.self)
        router.add(middleware: CatalogMiddleware(metrics: metrics, logger: logger))
        let routes = CatalogRoutes(store: store, relay: relay, auth: auth, graphql: graphql, metrics: metrics, logger: logger,
                                   maxBody: configuration.maxBody, maxPage: configuration.limits.maxPage)
        routes.register(on: router, readiness: readiness)
        let ws = GraphQLTransportWS(service: graphql, auth: auth, metrics: metrics, logger: logger)
        router.ws("/graphql", shouldUpgrade: { request, _ in
            let offered = request.headers[.secWebSocketProtocol]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            guard offered.contains(GraphQLTransportWS.subprotocol) else { return .dontUpgrade }
            return .upgrade([.secWebSocketProtocol: GraphQLTransportWS.subprotocol])
        }, onUpgrade: { inbound, outbound, context in
            try await ws.serve(inbound: inbound, outbound: outbound, upgradeAuthorization: context.request.headers[.authorization])
        })
        let bound = Locked<Int?>(nil)
        boundPort = bound
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)
        application = Application(
            router: router,
            server: .catalog(webSocketRouter: router, headTimeout: configuration.headTimeout, idleTimeout: configuration.idleTimeout, refusals: refusals),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "cortex-catalog"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                bound.withLock { $0 = port }
                logger.notice("catalog-api listening", metadata: [LogKey.httpPort: "\(port)"])
                logger.notice("ops endpoint listening", metadata: [LogKey.httpPort: "\(port)"])
            },
            logger: quiet
        )
    }

    public func run() async throws { try await application.run() }
}

/// Times every request by route template and turns every error into a JSON body with a code.
struct CatalogMiddleware: RouterMiddleware {
    typealias Context = CatalogHTTPServer.Context
    let metrics: CortexMetrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            // The router knows paths per method (handlers report a missing asset as a CatalogError, not an
            // HTTPError): a documented path asked with another method is a 405.
            if let allowed = OpenAPIDocument.allowedMethods(path: request.uri.path), !allowed.contains(request.method.rawValue) {
                response = jsonResponse(.methodNotAllowed, ["error": ["code": "METHOD_NOT_ALLOWED", "message": .string("\(request.method) is not allowed on \(request.uri.path); use \(allowed.joined(separator: ", "))")]],
                                        headers: [.allow: allowed.joined(separator: ", ")])
            } else {
                response = Self.errorResponse(e, request: request, logger: logger)
            }
        } catch {
            response = Self.errorResponse(error, request: request, logger: logger)
        }
        let route = context.endpointPath ?? "unmatched"
        metrics.catalogRequest(route: route, method: request.method.rawValue, status: response.status.code, seconds: seconds(since: started))
        return response
    }

    static func errorResponse(_ error: any Error, request: Request, logger: Logger) -> Response {
        let status: Int
        let code: String
        let message: String
        switch error {
        case let e as CatalogError:
            (status, code, message) = (e.httpStatus, e.code.rawValue, e.message)
        case is NIOTooManyBytesError:
            (status, code, message) = (413, CatalogError.Code.tooLarge.rawValue, "request body too large")
        case let e as HTTPError:
            (status, code, message) = (e.status.code, e.status.code == 404 ? "NOT_FOUND" : "HTTP_\(e.status.code)", e.body ?? e.status.reasonPhrase)
        case let e as RedisError:
            logger.error("redis error serving \(request.method) \(request.uri.path): \(e)")
            (status, code, message) = (503, CatalogError.Code.unavailable.rawValue, "storage unavailable: \(e)")
        default:
            logger.error("internal error serving \(request.method) \(request.uri.path): \(error)")
            (status, code, message) = (500, "INTERNAL", "internal error")
        }
        return jsonResponse(HTTPResponse.Status(code: status), ["error": ["code": .string(code), "message": .string(message)]])
    }
}

func jsonResponse(_ status: HTTPResponse.Status, _ body: JSONValue, headers: HTTPFields = [:]) -> Response {
    jsonResponse(status, text: body.description, headers: headers)
}

func jsonResponse(_ status: HTTPResponse.Status, text: String, headers: HTTPFields = [:]) -> Response {
    var h = headers
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
}
