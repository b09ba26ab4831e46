import CortexControl
import CortexCore
import Foundation
import Hummingbird
import Testing

/// A fresh temporary directory.
func temporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A private redis-server for one test, stopped by `stop()`.
struct PrivateRedis {
    let supervisor: ProcessSupervisor
    let server: LocalRedis
    var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: server.port) }

    static func start() async throws -> PrivateRedis {
        let dir = try temporaryDirectory("cortex-test-redis")
        let supervisor = try ProcessSupervisor(logDirectory: dir.appendingPathComponent("logs"))
        return PrivateRedis(supervisor: supervisor, server: try await LocalRedis(supervisor: supervisor, directory: dir))
    }

    func stop() async { await server.stop() }
}

/// The committed OSV fixtures as the advisory database: a run whose target has packages is only
/// `succeeded` when they were matched against something (docs/outcomes.md, "not checked").
let checkedAdvisories = ["CORTEX_OSV_DB": SecurityMasterTests.fixtures.path]

/// The Redis the test script started (CORTEX_TEST_REDIS_URL), else nil: tests then start a private one.
var sharedTestRedisURL: String? { ProcessInfo.processInfo.environment["CORTEX_TEST_REDIS_URL"] }

/// Where the built executables are (the test script exports CORTEX_BIN_DIR).
var binDirectory: URL {
    if let dir = ProcessInfo.processInfo.environment["CORTEX_BIN_DIR"] { return URL(fileURLWithPath: dir) }
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug")
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes. It returns as soon as the condition
/// holds, so the default bound costs nothing when a test passes; it is long because a full parallel
/// suite on a 2-core CI machine can stall a process for many seconds.
func eventually(timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Every message in the event history (`CortexNames.eventHistory`), decoded, oldest first. Complete, unlike
/// what a follower relayed: `RunClient.follow` stops listening soon after the run is marked finished, and a
/// relay stalled on a loaded machine can miss the last messages of a run.
func eventHistory(_ redis: RedisClient) async throws -> [Envelope] {
    try await redis.xrange(CortexNames.eventHistory).compactMap { entry in
        entry.fields["message"].flatMap { try? EnvelopeDecoder().decode(Array($0.utf8), channel: nil).get() }
    }
}

/// The JSON log lines a daemon wrote.
func logLines(_ child: ChildProcess) -> [[String: Any]] {
    child.output().split(separator: "\n").compactMap { line in
        (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
    }
}

/// The ops port a daemon logged when its endpoint came up.
func opsPort(_ child: ChildProcess) async -> Int? {
    var port: Int?
    _ = await eventually {
        port = logLines(child).first { $0["msg"] as? String == "ops endpoint listening" }.flatMap { ($0["cortex.http.port"] as? String).flatMap(Int.init) }
        return port != nil
    }
    return port
}

/// The value of one sample in a Prometheus exposition, e.g. `cortex_messages_rejected_total{reason="oversized"}`.
func metric(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// Fetches a daemon's /metrics.
func scrape(port: Int) async throws -> String {
    try await HTTPClient.request(url: "http://127.0.0.1:\(port)/metrics", timeout: .seconds(60)).text
}

/// A fixture repository with known contents (same as the unit tests' one, smaller).
func makeRepository() throws -> URL {
    let root = try temporaryDirectory("cortex-target")
    let files: [String: String] = [
        "README.md": "# Demo\n",
        "Package.swift": "// swift-tools-version:6.0\n",
        "Sources/App/main.swift": "print(1)\nprint(2)\n",
        "Sources/App/Util.swift": "let x = 1\n",
        "Tests/AppTests/AppTests.swift": "import Testing\n@Test func one() {}\n",
        "requirements.txt": "flask==3.0.0\n",
        ".github/workflows/ci.yml": "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n",
        "ops/rules.yml": "groups:\n- name: demo\n  rules:\n  - alert: DemoDown\n    expr: up == 0\n",
    ]
    try writeFiles(files, under: root)
    return root
}

/// Writes `files` (path relative to `root` → text) under `root`, making the directories they need.
func writeFiles(_ files: [String: String], under root: URL) throws {
    for (path, text) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
}

/// Serves `router` on a free loopback port (for servers that stand in for external APIs in a test);
/// returns the running task (cancel it to stop) and the port.
func startLocalServer(_ router: Router<BasicRequestContext>, name: String) async throws -> (Task<Void, Error>, Int) {
    let bound = Locked<Int?>(nil)
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { channel in bound.withLock { $0 = channel.localAddress?.port } })
    let task = Task { try await app.runService() }
    // Binding takes milliseconds; the bound is for a loaded CI machine (it was 5 s).
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if let port = bound.value { return (task, port) }
        try await Task.sleep(for: .milliseconds(10))
    }
    task.cancel()
    throw ConfigurationError("\(name) did not start within 60 s")
}

/// Waits until each of `roles` has registered with a fresh heartbeat, as the coordinator's pre-flight
/// reads it; tests that submit right after starting masters use it so a slow start is not a missing master.
func waitForMasters(_ redisPort: Int, _ roles: [MasterRole], timeout: Duration = .seconds(60)) async -> Bool {
    let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: redisPort))
    defer { redis.close() }
    return await eventually(timeout: timeout) {
        guard let replies = try? await redis.pipeline(roles.map { .hgetall(CortexNames.masterRegistry($0)) }) else { return false }
        return replies.allSatisfy { $0.fieldMap["last_heartbeat"] != nil && $0.fieldMap["status"] != ProcessStatus.stopped.rawValue }
    }
}

/// The exit status of a child that ended; nil while it still runs (Foundation traps on the status of a
/// running process, which turned a slow shutdown on a loaded machine into a crash of the whole test run).
func exitStatus(_ child: ChildProcess) -> Int32? { child.exitStatus }
