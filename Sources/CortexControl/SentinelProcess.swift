import CortexCore
import Foundation

/// A redis-sentinel watching one primary, for local failover drills (tests and `cortex-lab chaos`).
public struct SentinelProcess: Sendable {
    public let port: Int
    public let child: ChildProcess

    /// Writes a sentinel configuration (quorum 1, fast failure detection) and starts redis-sentinel,
    /// or `redis-server --sentinel` where only the server is installed.
    public static func start(supervisor: ProcessSupervisor, directory: URL, masterName: String, primaryPort: Int,
                             downAfterMilliseconds: Int = 1000, failoverTimeoutMilliseconds: Int = 5000) async throws -> SentinelProcess {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let port = try FreePort.find()
        let config = directory.appendingPathComponent("sentinel.conf")
        try """
        port \(port)
        bind 127.0.0.1
        dir \(directory.path)
        sentinel monitor \(masterName) 127.0.0.1 \(primaryPort) 1
        sentinel down-after-milliseconds \(masterName) \(downAfterMilliseconds)
        sentinel failover-timeout \(masterName) \(failoverTimeoutMilliseconds)
        sentinel parallel-syncs \(masterName) 1

        """.write(to: config, atomically: true, encoding: .utf8)
        let child: ChildProcess
        if let sentinel = ExecutableLocator.system("redis-sentinel") {
            child = try supervisor.start(name: "redis-sentinel-\(port)", executable: sentinel, arguments: [config.path])
        } else if let server = ExecutableLocator.system("redis-server") {
            child = try supervisor.start(name: "redis-sentinel-\(port)", executable: server, arguments: [config.path, "--sentinel"])
        } else {
            throw ConfigurationError("redis-sentinel not found: install it with `sudo apt-get install redis-sentinel`")
        }
        // Generous bounds: it answers within milliseconds normally, but a loaded machine (a full test suite on
        // two cores) once took more than 10 s, and a connect that includes the first reply needs more than 200 ms.
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), configuration: .init(connectTimeout: .seconds(1), initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(20)))
        defer { client.close() }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline && child.isRunning {
            if let reply = try? await client.send(.sentinelPrimary(masterName)), reply.array?.count == 2 {
                return SentinelProcess(port: port, child: child)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        child.signal(SIGKILL)
        throw CortexError(.unreachable, "redis-sentinel on port \(port) did not start: \(child.output().suffix(500))")
    }
}
