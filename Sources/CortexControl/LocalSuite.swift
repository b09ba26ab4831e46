import CortexCore
import Foundation

/// The whole suite on one machine: a private redis-server, the coordinator, the six masters and N workers
/// as child processes. `cortexctl up` uses it; so do the integration tests, so they run what users run.
public final class LocalSuite: @unchecked Sendable {
    public let supervisor: ProcessSupervisor
    public let redis: LocalRedis
    public let workDirectory: URL
    public let binDirectory: URL
    public let outputDirectory: URL
    /// Extra environment for every daemon started from now on (e.g. shorter timeouts in tests).
    public var environment: [String: String] {
        get { extraEnvironment.value }
        set { extraEnvironment.withLock { $0 = newValue } }
    }
    private let extraEnvironment: Locked<[String: String]>
    private let workerCounter = Locked(0)

    /// Starts redis only; call `startAll` (or the single starters) for the daemons. `redisArguments` go to
    /// redis-server (e.g. `--aclfile PATH` to run the suite with one Redis user per role).
    public init(workDirectory: URL, outputDirectory: URL, binDirectory: URL = ExecutableLocator.binDirectory, environment: [String: String] = [:], appendOnly: Bool = false,
                redisArguments: [String] = []) async throws {
        self.workDirectory = workDirectory
        self.outputDirectory = outputDirectory
        self.binDirectory = binDirectory
        self.extraEnvironment = Locked(environment)
        supervisor = try ProcessSupervisor(logDirectory: workDirectory.appendingPathComponent("logs"))
        redis = try await LocalRedis(supervisor: supervisor, directory: workDirectory.appendingPathComponent("redis"), appendOnly: appendOnly, extraArguments: redisArguments)
    }

    private func env(instance: String) -> [String: String] {
        [
            "CORTEX_REDIS_URL": redis.url, "CORTEX_HTTP_HOST": "127.0.0.1", "CORTEX_HTTP_PORT": "0",
            "CORTEX_OUTPUT_DIR": outputDirectory.path, "CORTEX_INSTANCE_ID": instance, "CORTEX_EXIT_WITH_PARENT": "1",
            "CORTEX_COORDINATION_DIR": workDirectory.appendingPathComponent("coordination").path,
        ].merging(environment) { $1 }
    }

    /// Starts the coordinator; `environment` is added for this process only (e.g. its own CORTEX_REDIS_URL).
    @discardableResult
    public func startCoordinator(environment extra: [String: String] = [:]) throws -> ChildProcess {
        try supervisor.start(name: "coordinator", executable: ExecutableLocator.path(of: "coordinator", in: binDirectory),
                             environment: env(instance: "coordinator-local").merging(extra) { $1 })
    }

    /// Starts one master; `instance` distinguishes a restarted or second instance.
    @discardableResult
    public func startMaster(_ role: MasterRole, instance: String? = nil, environment extra: [String: String] = [:]) throws -> ChildProcess {
        let id = instance ?? "\(role.processName)-local"
        return try supervisor.start(name: id, executable: ExecutableLocator.path(of: role.processName, in: binDirectory),
                                    environment: env(instance: id).merging(extra) { $1 })
    }

    /// Starts one worker serving `pools` (all pools when empty).
    @discardableResult
    public func startWorker(pools: [WorkerPool] = [], environment extra: [String: String] = [:]) throws -> ChildProcess {
        let n = workerCounter.withLock { c -> Int in c += 1; return c }
        let id = "worker-\(n)"
        var e = env(instance: id).merging(extra) { $1 }
        if !pools.isEmpty { e["CORTEX_WORKER_POOLS"] = pools.map(\.rawValue).joined(separator: ",") }
        return try supervisor.start(name: id, executable: ExecutableLocator.path(of: "worker", in: binDirectory), environment: e)
    }

    /// Starts catalog-api and points every daemon started afterwards at it (CORTEX_CATALOG_URL).
    /// Token-less by default, as for local use; pass tokens in `environment` to test authentication.
    /// Returns the process and its port.
    @discardableResult
    public func startCatalog(name: String = "catalog-api", environment extra: [String: String] = ["CORTEX_CATALOG_ALLOW_ANONYMOUS": "true"]) async throws -> (process: ChildProcess, port: Int) {
        let child = try supervisor.start(name: name, executable: ExecutableLocator.path(of: "catalog-api", in: binDirectory),
                                         environment: env(instance: name).merging(extra) { $1 })
        // Returns as soon as it is up; the bound is long for a loaded machine (a test suite on 2 cores).
        guard let port = await child.opsPort(timeout: .seconds(60)) else {
            let last = child.output().split(separator: "\n").last.map(String.init) ?? ""
            throw CortexError(.failed, "catalog-api did not start: \(last)")
        }
        if environment["CORTEX_CATALOG_URL"] == nil { environment["CORTEX_CATALOG_URL"] = "http://127.0.0.1:\(port)" }
        return (child, port)
    }

    /// Starts the coordinator, every master and `workers` workers.
    public func startAll(workers: Int) throws {
        try startCoordinator()
        for role in MasterRole.allCases { try startMaster(role) }
        for _ in 0..<workers { try startWorker() }
    }

    /// Stops every daemon (SIGTERM, then SIGKILL after the grace period), then redis.
    public func stop(grace: Duration = .seconds(10)) async {
        let daemons = supervisor.all.filter { !$0.name.hasPrefix("redis-server") }
        for c in daemons where c.isRunning { c.signal(SIGTERM) }
        for c in daemons where await c.wait(timeout: grace) == nil { c.signal(SIGKILL) }
        await redis.stop()
    }
}
