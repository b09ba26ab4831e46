import Foundation
import Logging
import ServiceLifecycle
import Tracing

/// A process's role (coordinator, a master, a worker): a service that can also say whether it is ready.
public protocol RoleService: Service {
    /// Whether the role can take work now; /readyz answers with this.
    func readiness() async -> Readiness
}

/// Everything a role needs from the process it runs in, built once from the settings.
public struct ProcessContext: Sendable {
    /// The executable name, e.g. `security-master`.
    public let processName: String
    public let instanceID: String
    public let nodeName: String
    public let settings: SettingValues
    public let logger: Logger
    public let metrics: CortexMetrics
    /// For ordinary commands; roles open further clients for blocking reads.
    public let redis: RedisClient
    /// A connection of its own for heartbeats and keep-alives: `redis` pipelines whatever its callers queue,
    /// and a beat must not wait behind a large batch (a worker's group commit, a master's dispatch).
    public let liveness: RedisClient
    public let bus: MessageBus
    /// Where writes wait while Redis is unreachable.
    public let journal: Journal
    /// The coordination directory (journal, snapshots).
    public let coordinationDirectory: URL
    public let heartbeatInterval: Duration
    public let heartbeatTimeout: Duration
    /// `CORTEX_RETENTION` in whole seconds: the TTL of run, result, budget and attempt keys.
    public let retentionSeconds: Int

    /// A second client for blocking stream reads, whose command timeout outlasts its BLOCK time.
    public func blockingClient(name: String, block: Duration) -> RedisClient {
        RedisClient(endpoint: redis.endpoint, configuration: .init(commandTimeout: block + .seconds(5)), name: name)
    }
}

/// The shared `main` of every Cortex daemon: settings, JSON logging, metrics, the ops endpoint and
/// graceful shutdown on SIGTERM/SIGINT around one role service.
public enum CortexRuntime {
    /// Parses the command line and environment, runs the role until it ends or a signal arrives, and exits.
    public static func main(
        process: String,
        defaultPort: Int,
        arguments: [String] = Array(CommandLine.arguments.dropFirst()),
        makeRole: @escaping @Sendable (ProcessContext) throws -> any RoleService
    ) async -> Never {
        let (settings, logger) = bootstrap(process: process, arguments: arguments)
        do {
            try CortexTracing.bootstrap(settings: settings, process: process, logger: logger)
        } catch {
            logger.critical("configuration error: \(error)")
            exit(2)
        }
        await run(logger: logger) {
            let context = try makeContext(process: process, settings: settings, logger: logger)
            let role = try makeRole(context)
            let ops = OpsServer(
                host: settings.string(.httpHost), port: try settings.int(.httpPort, default: defaultPort, range: 0...65535),
                metrics: context.metrics, logger: logger, idleTimeout: try settings.seconds(.httpIdleTimeout),
                readiness: {
                    guard await context.redis.ping() else { return .notReady(["redis unreachable at \(context.redis.endpoint)"]) }
                    return await role.readiness()
                }
            )
            logger.info("starting", metadata: [LogKey.instance: "\(context.instanceID)", LogKey.node: "\(context.nodeName)", LogKey.redis: "\(context.redis.endpoint)"])
            // Services shut down in reverse order: the role stops taking work first, the ops endpoint last.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
                .init(service: ops),
                .init(service: role, successTerminationBehavior: .gracefullyShutdownGroup),
            ]
            if let trim = try idleMemoryTrim(settings, logger: logger) { services.insert(trim, at: 0) }
            return services
        }
    }

    /// The idle memory trim (`CORTEX_IDLE_MEMORY_TRIM`), nil when it is off. It ends only at shutdown.
    public static func idleMemoryTrim(_ settings: SettingValues, logger: Logger) throws -> ServiceGroupConfiguration.ServiceConfiguration? {
        let seconds = try settings.int(.idleMemoryTrim, range: 0...86_400)
        guard seconds > 0 else { return nil }
        return .init(service: IdleMemoryTrim(interval: .seconds(seconds), logger: logger), successTerminationBehavior: .ignore)
    }

    /// `--help`, settings from flags and environment (exit 2 with the reason when wrong), JSON logging.
    public static func bootstrap(process: String, arguments: [String]) -> (SettingValues, Logger) {
        if arguments.contains("--help") || arguments.contains("-h") {
            print(SettingValues.help(process: process, settings: Setting.all))
            exit(0)
        }
        let settings: SettingValues
        do {
            settings = try SettingValues(arguments: arguments, settings: Setting.all)
        } catch {
            FileHandle.standardError.write(Data("\(process): \(error)\n".utf8))
            exit(2)
        }
        let levelText = settings.string(.logLevel)
        guard let level = Logger.Level(rawValue: levelText) else {
            FileHandle.standardError.write(Data("\(process): CORTEX_LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got '\(levelText)'\n".utf8))
            exit(2)
        }
        JSONLogHandler.bootstrap(process: process, level: level)
        return (settings, Logger(label: "cortex.\(process)"))
    }

    /// Runs the services `build` returns in one group with graceful shutdown on SIGTERM/SIGINT, then exits:
    /// 0 after a clean stop, 2 for a configuration error, 1 for any other failure.
    public static func run(logger: Logger, build: () throws -> [ServiceGroupConfiguration.ServiceConfiguration]) async -> Never {
        do {
            var services = try build()
            if ProcessInfo.processInfo.environment["CORTEX_EXIT_WITH_PARENT"] == "1" {
                services.append(.init(service: ParentWatch(logger: logger), successTerminationBehavior: .gracefullyShutdownGroup))
            }
            let group = ServiceGroup(configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
            try await group.run()
            logger.info("stopped")
            flushTraces()
            exit(0)
        } catch let error as ConfigurationError {
            logger.critical("configuration error: \(error)")
            flushTraces()
            exit(2)
        } catch {
            logger.critical("exiting after error: \(error)")
            flushTraces()
            exit(1)
        }
    }

    /// Sends the spans that wait (a no-op without tracing): `exit` would drop them.
    static func flushTraces() { InstrumentationSystem.tracer.forceFlush() }

    /// The Redis endpoint from the URL plus, when configured, the sentinels.
    public static func endpoint(_ settings: SettingValues) throws -> RedisEndpoint {
        do {
            var endpoint = try RedisEndpoint(url: settings.string(.redisURL))
            if let password = try settings.secret(nil, file: .redisPasswordFile) { endpoint.password = password }
            if let sentinels = settings.raw(.redisSentinels), !sentinels.isEmpty {
                try endpoint.useSentinels(sentinels, masterName: settings.string(.redisMasterName))
            }
            return endpoint
        } catch { throw ConfigurationError("\(error)") }
    }

    /// Builds the shared context (also used by tests to run a role in-process).
    public static func makeContext(process: String, settings: SettingValues, logger: Logger) throws -> ProcessContext {
        let endpoint = try endpoint(settings)
        let metrics = CortexMetrics()
        let instance = settings.raw(.instanceID) ?? ProcessIdentity.instanceID(prefix: process)
        let coordination = URL(fileURLWithPath: settings.string(.coordinationDir)).standardizedFileURL
        let journal = Journal(directory: coordination, name: "\(process)-\(instance)", logger: logger, metrics: metrics)
        let client = Locked<RedisClient?>(nil)
        let redis = RedisClient(endpoint: endpoint, configuration: .init(), name: "redis", onConnectionChange: { up in
            metrics.redisConnected(up)
            if up {
                logger.info("redis connected")
                // What could not be written while Redis was away goes out first, in order.
                if let redis = client.value { Task { await journal.replay(redis: redis) } }
            } else {
                logger.warning("redis connection lost; reconnecting with backoff")
            }
        })
        client.withLock { $0 = redis }
        let bus = MessageBus(redis: redis, source: process, metrics: metrics,
                             decoder: EnvelopeDecoder(maxBytes: try settings.int(.maxMessageBytes, range: 1024...64 * 1024 * 1024)), logger: logger, journal: journal)
        return ProcessContext(
            processName: process, instanceID: instance, nodeName: settings.raw(.nodeName) ?? ProcessIdentity.hostname,
            settings: settings, logger: logger, metrics: metrics, redis: redis,
            liveness: RedisClient(endpoint: endpoint, configuration: .init(), name: "redis-liveness"), bus: bus, journal: journal, coordinationDirectory: coordination,
            heartbeatInterval: try settings.seconds(.heartbeatInterval), heartbeatTimeout: try settings.seconds(.heartbeatTimeout),
            retentionSeconds: try retention(settings)
        )
    }
}

/// `CORTEX_RETENTION` in whole seconds, at least twice `CORTEX_RUN_TIMEOUT`: a run's keys and its
/// unread stream entries must outlive the run, or a long run would lose its own state part-way.
func retention(_ settings: SettingValues) throws -> Int {
    let retention = Int(try settings.seconds(.retention) / .seconds(1))
    let runTimeout = Int(try settings.seconds(.runTimeout) / .seconds(1))
    guard retention >= 2 * runTimeout else {
        throw ConfigurationError("CORTEX_RETENTION (\(retention) s) must be at least twice CORTEX_RUN_TIMEOUT (\(runTimeout) s): a run's keys must outlive the run")
    }
    return retention
}

/// Milliseconds since the epoch, the unit of every timestamp field in registry hashes.
public func epochMilliseconds(_ date: Date = Date()) -> Int { Int(date.timeIntervalSince1970 * 1000) }

/// Ends the process gracefully when the process that started it is gone (local mode: a `cortexctl up`
/// killed without a chance to clean up must not leave daemons behind).
struct ParentWatch: Service {
    let logger: Logger

    func run() async throws {
        let parent = getppid()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            if getppid() != parent {
                logger.warning("parent process \(parent) is gone; shutting down")
                return
            }
        }
    }
}
