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

    /// A child that ended is seen as ended even when Foundation has not noticed: here a background
    /// grandchild inherits the socket Foundation watches for the child's end (as a process started by
    /// another thread at the wrong moment can), so only the kernel knows the child exited.
    @Test func aChildThatEndedIsSeenEndedWhileItsSocketIsHeldElsewhere() async throws {
        let dir = try temporaryDirectory("cortex-child")
        let supervisor = try ProcessSupervisor(logDirectory: dir)
        let pidFile = dir.appendingPathComponent("grandchild.pid")
        let child = try supervisor.start(name: "sh", executable: URL(fileURLWithPath: "/bin/sh"),
                                         arguments: ["-c", "sleep 30 & echo $! > \(pidFile.path); exit 3"])
        defer {
            if let pid = (try? String(contentsOf: pidFile, encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) { kill(pid, SIGKILL) }
        }
        let status = await child.wait(timeout: .seconds(20))
        #expect(status == 3, "the child's exit was not seen within 20 s (the grandchild sleeps 30)")
        #expect(!child.isRunning && child.exitStatus == 3)
        print("Foundation noticed the end by itself: \(!child.process.isRunning)")
        let running = try supervisor.start(name: "sleeper", executable: URL(fileURLWithPath: "/bin/sleep"), arguments: ["30"])
        #expect(running.isRunning && running.exitStatus == nil)
        running.signal(SIGKILL)
        #expect(await running.wait(timeout: .seconds(30)) == SIGKILL)
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

    /// `up` takes the run options `run` takes and the daemons' settings as flags: test execution on,
    /// an OSV database, and the planner, all reaching the suite it starts.
    @Test func upTakesEveryRunOption() async throws {
        let target = try TestRunnerTests.write(TestRunnerTests.python.merging(["requirements.txt": "jinja2==2.10\n"]) { $1 })
        let state = try temporaryDirectory("cortex-up-state")
        let output = try temporaryDirectory("cortex-up-reports")
        let r = try await Subprocess.runOffloaded(binDirectory.appendingPathComponent("cortexctl").path,
            ["up", "--workers", "2", "--goal", "security testing", "--target", target.path, "--state-dir", state.path, "--output-dir", output.path,
             "--allow-test-execution", "--osv-db", SecurityMasterTests.fixtures.path, "--planner", "rules"], timeout: .seconds(240))
        let text = r.stdoutText + r.stderrText
        // A failing test makes the run partial (exit 3); what matters is that the options arrived.
        #expect(r.status == 0 || r.status == 3, "\(text)")
        let reports = try FileManager.default.subpathsOfDirectory(atPath: output.path)
        let testing = try #require(reports.first { $0.hasSuffix("masters/testing-0.md") }, "\(reports)")
        let testingReport = try String(contentsOfFile: output.appendingPathComponent(testing).path, encoding: .utf8)
        #expect(testingReport.contains("| pytest |") && !testingReport.contains("Not run: running a target's tests"), "\(testingReport)")
        let security = try #require(reports.first { $0.hasSuffix("masters/security-0.md") }, "\(reports)")
        let securityReport = try String(contentsOfFile: output.appendingPathComponent(security).path, encoding: .utf8)
        #expect(securityReport.contains("Advisory database: \(SecurityMasterTests.fixtures.path)") || securityReport.contains("jinja2"), "\(securityReport)")
    }
}
