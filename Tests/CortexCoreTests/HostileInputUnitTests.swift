@testable import CortexCore
@testable import CortexOrchestration
import CortexSecurity
import CortexTestRunner
import Foundation
import Testing

/// Issue 15: input that must be refused with a reason (never trap), and processes that release what
/// they take. The daemon-level counterparts are in CortexIntegrationTests/HostileInputTests.swift.
@Suite struct HostileInputUnitTests {
    static func envelope(_ data: String, type: String = "TASK_PROGRESS", v: String = "1") -> [UInt8] {
        Array(#"{"v":\#(v),"id":"x1","type":"\#(type)","source":"test","run_id":null,"ts":"2026-12-01T00:00:00Z","data":\#(data)}"#.utf8)
    }

    // MARK: numbers

    @Test func numbersTooLargeForAnIntAreRefusedNotTrapped() throws {
        #expect(JSONValue.number(1e300).intValue == nil)
        #expect(JSONValue.number(-1e19).intValue == nil)
        #expect(JSONValue.number(9.3e18).intValue == nil)
        #expect(JSONValue.number(2.5).intValue == nil)
        #expect(JSONValue.number(42).intValue == 42)
        let decoder = EnvelopeDecoder()
        // The envelope's own version field, read as an integer by every subscriber.
        guard case .failure(let v) = decoder.decode(Self.envelope(#"{}"#, v: "1e300"), channel: nil) else { Issue.record("accepted v=1e300"); return }
        #expect(v.reason == .invalid_envelope)
        // An integer payload field.
        let progress = Self.envelope(#"{"item_id":"i","worker":"w","done":1e300,"total":4}"#)
        guard case .failure(let d) = decoder.decode(progress, channel: .workersStatus) else { Issue.record("accepted done=1e300"); return }
        #expect(d.reason == .invalid_data)
        #expect(d.detail.contains("data.done"))
        // Whole numbers in range are fine.
        #expect((try? decoder.decode(Self.envelope(#"{"item_id":"i","worker":"w","done":3,"total":4}"#), channel: .workersStatus).get()) != nil)
    }

    @Test func hugeRetryAfterAndDurationsDoNotTrap() throws {
        #expect(LLMTransport.retryAfter("1e300") == .seconds(86_400))
        #expect(LLMTransport.retryAfter("5") == .seconds(5))
        #expect(throws: ConfigurationError.self) {
            _ = try SettingValues(arguments: ["--claim-idle", "1e300"], settings: Setting.all).seconds(.claimIdle)
        }
    }

    // MARK: text

    @Test func invalidUTF8IsRefused() throws {
        for bad: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22]] {
            #expect(throws: JSONText.SyntaxError.self, "\(bad)") { try JSONText.parse(bad) }
        }
        #expect(try JSONText.parse("\"é€😀\"") == .string("é€😀"))
        let message = Self.envelope(#"{"item_id":"\#u{0}","worker":"w","done":1,"total":4}"#.replacingOccurrences(of: "\u{0}", with: "x"))
        var broken = message
        broken[broken.firstIndex(of: UInt8(ascii: "x"))!] = 0xFE
        guard case .failure(let r) = EnvelopeDecoder().decode(broken, channel: .workersStatus) else { Issue.record("accepted invalid UTF-8"); return }
        #expect(r.reason == .invalid_json)
        #expect(r.detail.contains("invalid UTF-8"))
    }

    @Test func rejectionDetailsAreTruncated() {
        let big = String(repeating: "A", count: 200_000)
        let message = Self.envelope(#"{"item_id":"i","worker":"w","done":"\#(big)","total":4}"#)
        guard case .failure(let r) = EnvelopeDecoder().decode(message, channel: .workersStatus) else { Issue.record("accepted"); return }
        #expect(r.detail.utf8.count < 400, "\(r.detail.utf8.count) bytes")
        #expect(r.detail.contains("bytes)"))
    }

    // MARK: run requests

    @Test func runIDsThatCouldEscapeAreRefused() {
        for bad in ["../x", "../../etc", "a/b", "", ".hidden", "run.1", "run 1", String(repeating: "a", count: 101), "-x", "run\u{0}"] {
            #expect(!RunRequest.isValidRunID(bad), "\(bad)")
            #expect(RunRequest(runID: bad, goal: "inventory", targets: ["/x"], requestedBy: "t").problem() != nil)
        }
        for good in ["run-20261128-031500-ab12", "R1", "a_b-c"] { #expect(RunRequest.isValidRunID(good), "\(good)") }
        #expect(RunRequest(goal: "make coffee", targets: ["/x"], requestedBy: "t").problem()?.contains("unknown goal") == true)
        #expect(RunRequest(goal: "inventory", targets: [], requestedBy: "t").problem()?.contains("no targets") == true)
        #expect(RunRequest(goal: "inventory", targets: [], requestedBy: "t").problem(cluster: true) == nil)
        #expect(RunRequest(goal: "full-orchestration", targets: ["/x"], requestedBy: "t").problem() == nil)
        #expect(RunRequest(goal: "security, testing", targets: ["/x"], requestedBy: "t").problem() == nil)
    }

    @Test func theReportWriterRefusesAnEscapingRunID() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-rw-\(UUID().uuidString.prefix(8))/reports")
        let request = RunRequest(runID: "../escaped", goal: "inventory", targets: ["/x"], requestedBy: "t")
        let outcome = RunOutcome(request: request, status: .succeeded, reason: nil, phases: [], tasks: [], reports: [], startedAt: Date(), finishedAt: Date(),
                                 budget: [], model: nil, catalogBefore: nil, catalogAfter: nil, catalogProblem: nil)
        #expect(throws: CortexError.self) { try ReportWriter.write(outcome, to: out) }
        #expect(!FileManager.default.fileExists(atPath: out.deletingLastPathComponent().appendingPathComponent("escaped").path))
    }

    // MARK: credentials

    @Test func credentialsInRequestHeadersAreRedacted() {
        let secrets = Redaction.credentials(in: ["Authorization": "Bearer ghp_abcdef123456", "x-api-key": "sk-ant-999999", "Accept": "application/json"])
        let r = Redaction(secrets: secrets)
        #expect(r.apply(to: "bad token ghp_abcdef123456 and sk-ant-999999, header Bearer ghp_abcdef123456") == "bad token [REDACTED] and [REDACTED], header [REDACTED]")
        #expect(r.apply(to: "application/json") == "application/json")
    }

    // MARK: subprocesses

    static func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }

    /// Open pipe descriptors of this process (what a subprocess runner leaks). Sockets and files of the
    /// other suites running beside this one in the same process are not counted.
    static func openPipes() -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "").hasPrefix("pipe:") }.count
    }

    @Test func subprocessTimeoutStopsTheWholeProcessGroup() throws {
        let started = ContinuousClock.now
        // The grandchild keeps stdout open: a reader that waits for end of file first would wait 30 s.
        let r = try Subprocess.run("/bin/sh", ["-c", "sleep 30 & sleep 30"], timeout: .seconds(1))
        #expect(r.timedOut)
        #expect(ContinuousClock.now - started < .seconds(25))  // not the 30 s sleep; room for a loaded machine
        let ok = try Subprocess.run("/bin/sh", ["-c", "printf out; printf err >&2; exit 3"])
        #expect(ok.stdoutText == "out" && ok.stderrText == "err" && ok.status == 3 && !ok.timedOut)
        let fed = try Subprocess.run("cat", [], stdin: Array("fed".utf8))
        #expect(fed.stdoutText == "fed")
        #expect(throws: SubprocessError.self) { try Subprocess.run("/nonexistent/tool", []) }
        let capped = try Subprocess.run("/bin/sh", ["-c", "head -c 100000 /dev/zero"], outputLimit: 1000)
        #expect(capped.stdout.count == 1000 && capped.truncated)
    }

    @Test func gitTimeoutFiresWhileGitHoldsItsPipeOpen() throws {
        let repo = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-gt-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: repo, withIntermediateDirectories: true)
        try Git.run(["init", "--quiet"], in: repo)
        let started = ContinuousClock.now
        // An editor that never returns: git waits on it with its stdout still open.
        do {
            // git runs the editor through the shell as `<editor> "$@"`: `sleep 30;:` sleeps, then ignores the file.
            try Git.run(["-c", "core.editor=sleep 30;:", "commit", "--allow-empty", "--quiet"], in: repo, environment: Git.identity, timeout: 1)
            Issue.record("git returned")
        } catch {
            #expect("\(error)".contains("took longer than 1 s"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(25))  // not the 30 s sleep; room for a loaded machine
    }

    @Test func fiftyFixBranchesLeaveNoDescriptorsBehind() async throws {
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-fd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        try Data("requests==2.19.0\nflask==3.0.0\n".utf8).write(to: target.appendingPathComponent("requirements.txt"))
        try Git.run(["init", "--quiet"], in: target)
        try Git.run(["add", "-A"], in: target)
        try Git.run(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "init"], in: target, environment: Git.identity)
        let plan = FixPlan(file: "requirements.txt", ecosystem: "PyPI", package: "requests", from: "2.19.0", to: "2.20.0", advisories: ["GHSA-x84v-xcm2-53pg"])
        let work = target.deletingLastPathComponent().appendingPathComponent("\(target.lastPathComponent)-work")
        // Warm up once (libraries, caches), then count.
        _ = await FixBranchMaker(runID: "warm", workDirectory: work).make(target: target.path, plans: [plan])
        let before = Self.openPipes()
        for i in 0..<50 {
            let result = await FixBranchMaker(runID: "fd-\(i)", workDirectory: work).make(target: target.path, plans: [plan])
            #expect(result.commit != nil && result.problems.isEmpty, "\(result.problems)")
        }
        let after = Self.openPipes()
        // Each run starts 7 git processes; HEAD's Git.run left about one pipe open per call (50 calls of
        // `git --version`: 21 -> 82 descriptors). Other suites run beside this one: a little slack.
        #expect(after - before < 10, "open pipes \(before) -> \(after)")
    }

    /// The implementation item's git work, as the worker does it (clone, branch, the agent's apply_diff,
    /// status, add, commit, format-patch, rev-parse), 50 times: no pipe left open.
    @Test func fiftyImplementationItemsLeaveNoDescriptorsBehind() async throws {
        let source = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-fdi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
        try Data("def add(a, b):\n    return a - b\n".utf8).write(to: source.appendingPathComponent("calc.py"))
        try Git.run(["init", "--quiet"], in: source)
        try Git.run(["add", "-A"], in: source)
        try Git.run(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "init"], in: source, environment: Git.identity)
        let diff = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
        func item(_ i: Int) async throws {
            let work = source.deletingLastPathComponent().appendingPathComponent("\(source.lastPathComponent)-impl\(i)")
            defer { try? FileManager.default.removeItem(at: work) }
            _ = try await Git.runAsync(["clone", "--quiet", "--no-hardlinks", "--", source.path, work.path], in: source.deletingLastPathComponent())
            _ = try await Git.runAsync(["checkout", "--quiet", "-b", "cortex/dev/run/impl\(i)"], in: work)
            let workspace = AgentWorkspace(root: work, testRunner: TestRunner(timeout: 60, workDirectory: work.appendingPathComponent(".runs")))
            _ = try workspace.applyDiff(diff)
            #expect(try await Git.runAsync(["status", "--porcelain"], in: work).contains("calc.py"))
            _ = try await Git.runAsync(["add", "calc.py"], in: work)
            _ = try await Git.runAsync(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "fix add"], in: work, environment: Git.identity)
            _ = try await Git.runAsync(["format-patch", "-1", "--stdout", "HEAD"], in: work, trim: false)
            _ = try await Git.runAsync(["rev-parse", "HEAD"], in: work)
        }
        try await item(-1)  // warm up
        let before = Self.openPipes()
        for i in 0..<50 { try await item(i) }
        let after = Self.openPipes()
        #expect(after - before < 10, "open pipes \(before) -> \(after)")
    }
}
