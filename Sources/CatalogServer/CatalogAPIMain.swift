import CortexCatalog
import CortexCore
import Foundation
import ServiceLifecycle

/// The `main` of the catalog-api executable.
public enum CatalogAPIMain {
    public static let process = "catalog-api"
    public static let defaultPort = 8080

    public static func main() async -> Never {
        let (settings, logger) = CortexRuntime.bootstrap(process: process, arguments: Array(CommandLine.arguments.dropFirst()))
        await CortexRuntime.run(logger: logger) {
            let context = try CortexRuntime.makeContext(process: process, settings: settings, logger: logger)
            let auth = try CatalogAuth(settings: settings)
            if auth.anonymous { logger.warning("token-less access is on (CORTEX_CATALOG_ALLOW_ANONYMOUS): every caller can write") }
            // A few connections: each hiredis connection runs one command at a time.
            let clients = [context.redis] + (1..<4).map { RedisClient(endpoint: context.redis.endpoint, configuration: context.redis.configuration, name: "catalog-\($0)") }
            let store = CatalogStore(clients: clients, source: process, metrics: context.metrics)
            let relay = EventRelay(bus: context.bus, logger: logger)
            let limits = QueryLimits(
                maxDepth: try settings.int(.catalogMaxDepth, range: 2...100),
                maxCost: try settings.int(.catalogMaxCost, range: 10...10_000_000),
                maxPage: try settings.int(.catalogMaxPage, range: 1...10_000),
                maxTokens: try settings.int(.catalogMaxTokens, range: 100...1_000_000)
            )
            let execution = ExecutionLimits(
                timeout: try settings.seconds(.catalogRequestTimeout),
                maxResultNodes: try settings.int(.catalogMaxResultNodes, range: 100...100_000_000),
                maxConcurrentPerClient: try settings.int(.catalogMaxConcurrentPerClient, range: 1...10_000)
            )
            let server = try CatalogHTTPServer(
                configuration: .init(host: settings.string(.httpHost), port: try settings.int(.httpPort, default: defaultPort, range: 0...65535),
                                     maxBody: try settings.int(.catalogMaxBody, range: 1024...1 << 30), limits: limits, execution: execution,
                                     headTimeout: try settings.seconds(.catalogHeaderTimeout), idleTimeout: try settings.seconds(.catalogIdleTimeout),
                                     fastPath: try settings.bool(.catalogFastPath)),
                store: store, relay: relay, auth: auth, metrics: context.metrics, logger: logger,
                readiness: {
                    guard await context.redis.ping() else { return .notReady(["redis unreachable at \(context.redis.endpoint)"]) }
                    guard relay.isSubscribed else { return .notReady(["not subscribed to \(EventRelay.channels.map(\.rawValue).joined(separator: ", ")) yet"]) }
                    return .ready
                }
            )
            logger.info("starting", metadata: [LogKey.instance: "\(context.instanceID)", LogKey.redis: "\(context.redis.endpoint)"])
            let trim = try CortexRuntime.idleMemoryTrim(settings, logger: logger)
            return (trim.map { [$0] } ?? []) + [.init(service: server), .init(service: relay)]
        }
    }
}
