import CortexControl
import CortexCore
import Foundation
import Testing

/// `cortexctl up` remembers: its private Redis keeps its data and the coordination directory its files
/// in a state directory between invocations; `--fresh` starts from nothing; two invocations never share one.
@Suite(.serialized) struct LocalStateTests {
    static func up(_ args: [String]) async throws -> (status: Int32, output: String) {
        let r = try await Subprocess.runOffloaded(binDirectory.appendingPathComponent("cortexctl").path, ["up", "--workers", "1", "--goal", "inventory"] + args,
                                                  timeout: .seconds(120))
        return (r.status, r.stdoutText + r.stderrText)
    }

    /// The runs the state directory's Redis holds (started on its data the way `cortexctl up` starts it).
    static func runsRemembered(_ state: URL) async throws -> Int {
        let supervisor = try ProcessSupervisor(logDirectory: try temporaryDirectory("cortex-state-logs"))
        let redis = try await LocalRedis(supervisor: supervisor, directory: state.appendingPathComponent("redis"), extraArguments: LocalState.redisArguments)
        defer { supervisor.killAll() }
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: redis.port))
        defer { client.close() }
        return try await client.send(.zcard(CortexNames.runIndex)).orThrow().int ?? -1
    }

    @Test func upRemembersBetweenInvocationsAndFreshForgets() async throws {
        let target = try TestRunnerTests.write(["README.md": "# shop\n", "app.py": "print('hi')\n"])
        let state = try temporaryDirectory("cortex-up-state")
        let output = try temporaryDirectory("cortex-up-reports")
        let common = ["--target", target.path, "--state-dir", state.path, "--output-dir", output.path]
        let first = try await Self.up(common)
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("state in \(state.path);"), "\(first.output)")
        let second = try await Self.up(common)
        #expect(second.status == 0, "\(second.output)")
        #expect(try await Self.runsRemembered(state) == 2)
        // Another invocation holds the directory: refused, nothing started.
        try Data("\(getpid())\n".utf8).write(to: state.appendingPathComponent("up.lock"))
        let refused = try await Self.up(common)
        #expect(refused.status == 2 && refused.output.contains("another cortexctl up (pid \(getpid())) is using \(state.path)"), "\(refused.output)")
        try FileManager.default.removeItem(at: state.appendingPathComponent("up.lock"))
        let fresh = try await Self.up(common + ["--fresh"])
        #expect(fresh.status == 0 && fresh.output.contains("(fresh)"), "\(fresh.output)")
        #expect(try await Self.runsRemembered(state) == 1)
    }
}
