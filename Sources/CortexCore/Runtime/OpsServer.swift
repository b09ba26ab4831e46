import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// What /readyz answers: ready, or not ready with the reasons.
public struct Readiness: Sendable {
    public var ready: Bool
    public var reasons: [String]
    public static let ready = Readiness(ready: true, reasons: [])
    public static func notReady(_ reasons: [String]) -> Readiness { Readiness(ready: false, reasons: reasons) }
}

/// The per-process HTTP endpoint: /healthz (alive), /readyz (Redis reachable and registered), /metrics.
public struct OpsServer: Service {
    private let application: Application<RouterResponder<BasicRequestContext>>
    /// The port actually bound (useful when configured as 0); set once the server listens.
    public let boundPort: Locked<Int?>

    /// Connections idle this long are closed — including one still sending its request head, so a client
    /// that trickles header bytes (slowloris) cannot hold connections open.
    public static let defaultIdleTimeout: Duration = .seconds(30)

    public init(host: String, port: Int, metrics: CortexMetrics, logger: Logger, idleTimeout: Duration = defaultIdleTimeout,
                readiness: @escaping @Sendable () async -> Readiness) {
        let router = Router()
        Self.addRoutes(to: router, metrics: metrics, readiness: readiness)
        let bound = Locked<Int?>(nil)
        self.boundPort = bound
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)  // one line per request would drown the process's own logs
        application = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(idleTimeout / .milliseconds(1))))),
            configuration: .init(address: .hostname(host, port: port), serverName: "cortex"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? port
                bound.withLock { $0 = port }
                // notice, not info: operators (and cortexctl) look for this line at any log level.
                logger.notice("ops endpoint listening", metadata: [LogKey.httpPort: "\(port)"])
            },
            logger: quiet
        )
    }

    public func run() async throws {
        try await application.run()
    }

    /// /healthz, /readyz and /metrics on any router (catalog-api serves them beside its API);
    /// `beforeScrape` refreshes gauges that are read rather than counted.
    public static func addRoutes<Context: RequestContext>(to router: Router<Context>, metrics: CortexMetrics,
                                                          readiness: @escaping @Sendable () async -> Readiness,
                                                          beforeScrape: @escaping @Sendable () async -> Void = {}) {
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}\n")))
        }
        router.get("/readyz") { _, _ in readinessResponse(await readiness()) }
        router.get("/metrics") { _, _ in
            await beforeScrape()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
    }

    /// What /readyz answers for `r`: 200 or 503, `{"ready": …, "reasons": [...]}` (every process's
    /// /readyz, cortex-mcp's included, says it the same way).
    public static func readinessResponse(_ r: Readiness) -> Response {
        let body = JSONValue.object(["ready": .bool(r.ready), "reasons": .array(r.reasons.map { .string($0) })]).description + "\n"
        return Response(status: r.ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Waits (briefly) until the server has bound its port and returns it.
    public func waitForPort(timeout: Duration = .seconds(10)) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let p = boundPort.value { return p }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }
}
