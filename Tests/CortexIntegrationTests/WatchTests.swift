import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// `cortexctl watch` in a real 80×24 terminal (tmux) during a real run: snapshots of the pane show
/// the phases advancing, workers by node and the token bars; when the run ends the terminal is back on
/// its normal screen with the final frame printed, and the exit status is the run's (0: the fixture's run succeeds). Without a
/// terminal the same command prints plain lines.
@Suite(.serialized) struct WatchTests {
    /// tmux through the project's Subprocess (Foundation's Process.waitUntilExit can miss a child that
    /// the suite's supervisor reaps).
    static func tmux(_ socket: String, _ args: [String]) async throws -> String {
        let r = try await Subprocess.runOffloaded("/usr/bin/tmux", ["-L", socket] + args, timeout: .seconds(10))
        return r.stdoutText + r.stderrText
    }

    @Test func watchInTmuxDuringARealRun() async throws {
        let target = try temporaryDirectory("cortex-watch-target")
        // The target's own Go test takes eight seconds: phase 3 lasts long enough to be seen in the pane even
        // when the suite's other tests load the machine (at three seconds a loaded CI run sampled no frame of it).
        let files: [String: String] = [
            "README.md": "# slow\n",
            "go.mod": "module example.com/slow\n\ngo 1.19\n",
            "slow_test.go": "package slow\n\nimport (\n\t\"testing\"\n\t\"time\"\n)\n\nfunc TestSlowIntegration(t *testing.T) {\n\ttime.Sleep(8 * time.Second)\n}\n",
            "requirements.txt": "flask==3.0.0\nrequests==2.28.1\n",
            ".github/workflows/ci.yml": GoldenRunTests.files[".github/workflows/ci.yml"] ?? "",
        ]
        try writeFiles(files, under: target)
        let work = try temporaryDirectory("cortex-watch-run")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories.merging(["CORTEX_SECURITY_FIX_BRANCHES": "false", "CORTEX_ITEMS_PER_TASK": "4"]) { $1 })
        try suite.startAll(workers: 3)
        let socket = "cortex-watch-\(UUID().uuidString.prefix(8))"
        let cortexctl = binDirectory.appendingPathComponent("cortexctl").path
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test", allowTestExecution: [target.path]))
        _ = try await Self.tmux(socket, ["new-session", "-d", "-x", "80", "-y", "24", "-s", "w",
                                         "\(cortexctl) watch --redis \(suite.redis.url); echo WATCH-EXIT=$?; sleep 120"])
        defer { _ = Task { try? await Self.tmux(socket, ["kill-server"]) } }
        func alternate() async throws -> String { try await Self.tmux(socket, ["display-message", "-p", "-t", "w", "#{alternate_on}"]).trimmingCharacters(in: .whitespacesAndNewlines) }
        var frames: [(alternate: String, text: String)] = []
        for _ in 0..<900 {
            let alt = try await alternate()
            // The visible screen while the view is up; with the scrollback once it has left (the final frame is longer than 24 lines).
            let text = try await Self.tmux(socket, ["capture-pane", "-p", "-t", "w"] + (alt == "1" ? [] : ["-S", "-60"]))
            if frames.last?.text != text { frames.append((alt, text)) }
            if text.contains("WATCH-EXIT=") { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        // No terminal: plain lines, no escape sequences, the run's exit status.
        let plain = try await Subprocess.runOffloaded(cortexctl, ["watch", runID, "--redis", suite.redis.url], timeout: .seconds(60))
        // The masters' reports, to hold the view's master table to (watch started after most tasks were assigned).
        let reportDir = try #require(try await RunState.load(runID, redis: RecoveryTests.client(suite))?.reportDir)
        let reports = try ReportWriter.reports(inReportDirectory: reportDir)
        await suite.stop()
        #expect(!reports.isEmpty)
        for (master, list) in Dictionary(grouping: reports, by: \.master) {
            let status = Outcome.rollUp(list.map(\.status)).rawValue
            let items = list.reduce(0) { $0 + $1.items.count }
            let row = plain.stdoutText.split(separator: "\n").first { $0.hasPrefix(master.rawValue + " ") }.map(String.init) ?? ""
            let fields = row.split(separator: " ").map(String.init)
            #expect(fields.count >= 5 && fields[1] == status && fields[2] == String(list.count) && fields[4].hasSuffix("/\(items)"),
                    "\(master.rawValue): reported \(status), \(list.count) task(s), \(items) items; the view shows '\(row)'")
        }
        #expect(plain.status == 0 && !plain.stdoutText.contains("\u{1B}[") && plain.stdoutText.contains("Cortex \(runID)  SUCCEEDED"), "\(plain.status) \(plain.stdoutText) \(plain.stderrText)")
        let live = frames.filter { $0.alternate == "1" }.map(\.text)
        // Phases advancing: the view shows phase 3 (the target's eight-second test) as the current one,
        // and after the run every phase reached.
        let current = live.compactMap { frame -> Int? in
            guard let r = frame.range(of: #">[0-5] "#, options: .regularExpression) else { return nil }
            return Int(String(frame[r].dropFirst().prefix(1)))
        }
        #expect(current.contains(3), "phases seen as current: \(current); frames: \(frames.map { "\($0.alternate): \($0.text.prefix(60))" })")
        let withWorkers = live.first { $0.contains("WORKERS BY NODE") && $0.contains(" worker-") }
        #expect(withWorkers != nil, "no frame shows workers by node")
        #expect(live.contains { $0.contains("TOKENS") && $0.contains("reserve") && $0.contains("[") }, "no frame shows the token bars")
        #expect(live.allSatisfy { $0.split(separator: "\n").allSatisfy { $0.count <= 80 } })
        // Read once more after the loop: the view may have left between a frame's two tmux calls.
        let last = (alternate: try await alternate(), text: try await Self.tmux(socket, ["capture-pane", "-p", "-t", "w", "-S", "-60"]))
        #expect(last.alternate == "0", "the terminal is back on its normal screen")
        #expect(last.text.contains("WATCH-EXIT=0") && last.text.contains("Cortex \(runID)  SUCCEEDED") && last.text.contains("+5 reporting") && last.text.contains("FINDINGS  critical"), "\(last.text)")
        // Three moments, for the record.
        let early = live.first { $0.contains(">3 ") } ?? live.first ?? ""
        print("watch, early:\n\(early)\nwatch, workers:\n\(withWorkers ?? "")\nwatch, after exit:\n\(last.text)")

    }
}
