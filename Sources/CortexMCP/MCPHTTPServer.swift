import CortexCatalog
import CortexCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MCP
import NIOCore

/// cortex-mcp over MCP's streamable HTTP transport, for in-cluster use: `POST/GET/DELETE /mcp`, one MCP
/// session (its own `Server` on a `StatefulHTTPServerTransport`) per client, keyed by `Mcp-Session-Id`.
///
/// Every request needs a catalog bearer token (`Authorization: Bearer …`, the same `CORTEX_CATALOG_TOKENS`
/// as catalog-api): read scope for everything, write scope for the tools that start work
/// (`CortexMCPServer.writeTools`, checked per call). Without a token the answer is 401 with
/// `WWW-Authenticate: Bearer`. Only with `CORTEX_CATALOG_ALLOW_ANONYMOUS=true` is no token needed, and then
/// browser origins other than localhost are refused (DNS rebinding). `/healthz` (alive) and `/readyz` (Redis
/// reachable: 200, else 503 with the reason, as every Cortex process's /readyz) answer without a token.
public final class MCPHTTPServer: Sendable {
    let cortex: CortexMCPServer
    let auth: CatalogAuth
    let logger: Logger
    /// At most this many live sessions; the least recently used is closed to make room.
    let maxSessions: Int
    /// A session unused this long is closed.
    let idleTimeout: Duration
    private let sessions = SessionTable()

    public init(cortex: CortexMCPServer, auth: CatalogAuth, logger: Logger, maxSessions: Int = 64, idleTimeout: Duration = .seconds(1800)) {
        self.cortex = cortex
        self.auth = auth
        self.logger = logger
        self.maxSessions = maxSessions
        self.idleTimeout = idleTimeout
    }

    /// Serves until cancelled (SIGTERM/SIGINT through the caller's task); `onListening` gets the bound port.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router()
        router.get("/healthz") { _, _ in "ok\n" }
        // Ready when Redis answers PING: every tool reads or writes Redis (the catalog tools also need
        // catalog-api, but a catalog outage should not take the run tools out of the Service).
        router.get("/readyz") { [cortex] _, _ in
            let redis = cortex.bus.redis
            return OpsServer.readinessResponse(await redis.ping() ? .ready : .notReady(["redis unreachable at \(redis.endpoint)"]))
        }
        for method in [HTTPRequest.Method.post, .get, .delete] {
            router.on("/mcp", method: method) { [self] request, _ in try await handle(request) }
        }
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "cortex-mcp"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) }, logger: logger)
        try await app.runService()
        await sessions.closeAll()
    }

    func handle(_ request: Request) async throws -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        // Authenticated before anything reaches a session (read scope; the write tools check again per call).
        do {
            _ = try auth.authorize(headers["authorization"], requires: .read)
        } catch let error as CatalogError {
            return Self.refusal(status: 401, message: error.message,
                                headers: ["WWW-Authenticate": #"Bearer realm="cortex-mcp", error="invalid_token""#])
        }
        let body = request.method == .post ? Data(try await request.body.collect(upTo: 4 << 20).readableBytesView) : nil
        let mcpRequest = MCP.HTTPRequest(method: request.method.rawValue, headers: headers, body: body, path: request.uri.path)
        return Self.response(await route(mcpRequest))
    }

    /// The request's session (or a new one for an initialize request without a session id).
    func route(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        if let id = request.header("Mcp-Session-Id") {
            guard let transport = await sessions.transport(id) else {
                return .error(statusCode: 404, .invalidRequest("no such MCP session (expired or closed): initialize again"))
            }
            let response = await transport.handleRequest(request)
            if request.method == "DELETE" { await sessions.close(id) }
            return response
        }
        guard request.method == "POST" else {
            return .error(statusCode: 400, .invalidRequest("Mcp-Session-Id header required (initialize first with POST)"))
        }
        await sessions.prune(olderThan: idleTimeout, keep: maxSessions - 1)
        let transport = StatefulHTTPServerTransport(validationPipeline: StandardValidationPipeline(validators: validators), logger: logger)
        let server = CortexMCPServer.makeServer()
        await cortex.register(on: server)
        do {
            try await server.start(transport: transport)
        } catch {
            return .error(statusCode: 500, .internalError("could not start an MCP session: \(error)"))
        }
        let response = await transport.handleRequest(request)
        if let id = response.headers.first(where: { $0.key.lowercased() == "mcp-session-id" })?.value {
            await sessions.add(id, server: server, transport: transport)
            logger.info("MCP session \(id) opened")
        } else {
            await server.stop()
        }
        return response
    }

    /// The SDK's checks for a stateful session; the localhost origin check only when no token is needed.
    var validators: [any HTTPRequestValidator] {
        (auth.anonymous ? [OriginValidator.localhost()] : []) + [
            AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(), ProtocolVersionValidator(), SessionValidator(),
        ]
    }

    static func response(_ r: MCP.HTTPResponse) -> Response {
        var fields = HTTPFields()
        for (k, v) in r.headers { if let name = HTTPField.Name(k) { fields[name] = v } }
        if case .stream(let stream, _) = r {
            return Response(status: .ok, headers: fields, body: ResponseBody { writer in
                for try await chunk in stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            })
        }
        return Response(status: .init(code: r.statusCode), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: r.bodyData ?? Data())))
    }

    static func refusal(status: Int, message: String, headers: [String: String]) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        for (k, v) in headers { if let name = HTTPField.Name(k) { fields[name] = v } }
        let body: JSONValue = ["jsonrpc": "2.0", "id": .null, "error": ["code": -32001, "message": .string(message)]]
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body.description)))
    }
}

/// The live sessions, by id, with when each was last used.
actor SessionTable {
    private var sessions: [String: (server: Server, transport: StatefulHTTPServerTransport, used: ContinuousClock.Instant)] = [:]

    func transport(_ id: String) -> StatefulHTTPServerTransport? {
        guard var s = sessions[id] else { return nil }
        s.used = .now
        sessions[id] = s
        return s.transport
    }

    func add(_ id: String, server: Server, transport: StatefulHTTPServerTransport) {
        sessions[id] = (server, transport, .now)
    }

    func close(_ id: String) async {
        guard let s = sessions.removeValue(forKey: id) else { return }
        await s.server.stop()
    }

    /// Closes sessions idle longer than `olderThan`, then the least recently used beyond `keep`.
    func prune(olderThan idle: Duration, keep: Int) async {
        let now = ContinuousClock.now
        for (id, s) in sessions where now - s.used > idle { await close(id) }
        while sessions.count > max(0, keep), let oldest = sessions.min(by: { $0.value.used < $1.value.used })?.key { await close(oldest) }
    }

    func closeAll() async {
        for id in Array(sessions.keys) { await close(id) }
    }
}
