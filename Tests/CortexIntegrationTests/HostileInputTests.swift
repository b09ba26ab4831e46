import CortexControl
import CortexCore
@testable import CortexOrchestration
import Foundation
import CortexSecurity
import HTTPTypes
import Hummingbird
import NIOCore
import Logging
import Testing

/// Issue 15 against running daemons: each test is one finding of the hostile tester, and fails on the
/// code before the fix (named in the comment above it).
@Suite(.serialized) struct HostileInputTests {
    static func client(_ suite: LocalSuite) -> RedisClient { RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)) }

    static func bus(_ suite: LocalSuite) -> MessageBus {
        MessageBus(redis: client(suite), source: "test", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
    }

    static func envelope(type: String, data: String, v: String = "1") -> String {
        #"{"v":\#(v),"id":"h-\#(UUID().uuidString.prefix(8))","type":"\#(type)","source":"tester","run_id":null,"ts":"2026-12-01T00:00:00Z","data":\#(data)}"#
    }

    /// The sum of every sample of a metric family (all label sets).
    static func total(_ text: String, _ family: String) -> Double {
        text.split(separator: "\n").filter { $0.hasPrefix(family + "{") || $0.hasPrefix(family + " ") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    static func waitReady(_ child: ChildProcess) async throws -> Int {
        let port = try #require(await opsPort(child))
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 200 })
        return port
    }

    /// Before: `JSONValue.intValue` was `Int(n)`, which traps for 1e300 — one ~200-byte PUBLISH killed every
    /// subscriber of the channel. Now refused as invalid and counted; the daemons keep working.
    @Test func aNumberTooLargeForAnIntKillsNoSubscriber() async throws {
        let work = try temporaryDirectory("cortex-hostile-int")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let coordinator = try suite.startCoordinator()
        let master = try suite.startMaster(.inventory)
        let worker = try suite.startWorker()
        let coordinatorPort = try await Self.waitReady(coordinator)
        let masterPort = try await Self.waitReady(master)
        _ = try await Self.waitReady(worker)
        let redis = Self.client(suite)
        defer { redis.close() }
        let hostile = [
            (CortexNames.Channel.eventsSystem, Self.envelope(type: "PHASE_2_START", data: #"{"phase":2,"name":"x"}"#, v: "1e300")),
            (.eventsSystem, Self.envelope(type: "PHASE_2_START", data: #"{"phase":1e300,"name":"x"}"#)),
            (.mastersCoordination, Self.envelope(type: "MASTER_HEARTBEAT", data: #"{"master":"security","instance":"i","tasks_active":-9.3e18}"#)),
            (.workersStatus, Self.envelope(type: "TASK_PROGRESS", data: #"{"item_id":"i","worker":"w","done":1e300,"total":4}"#)),
        ]
        for (channel, message) in hostile {
            #expect(message.utf8.count < 260)
            try await redis.send("PUBLISH", channel.rawValue, message).orThrow()
        }
        var text = ""
        #expect(await eventually {
            text = (try? await scrape(port: coordinatorPort)) ?? ""
            return Self.total(text, "cortex_messages_rejected_total") >= 4
        }, "\(text)")
        #expect(metric(text, #"cortex_messages_rejected_total{reason="invalid_data"}"#) == 3)
        #expect(metric(text, #"cortex_messages_rejected_total{reason="invalid_envelope"}"#) == 1)
        #expect(await eventually { Self.total((try? await scrape(port: masterPort)) ?? "", "cortex_messages_rejected_total") >= 2 })
        let allAlive = coordinator.isRunning && master.isRunning && worker.isRunning
        #expect(allAlive)
        // And they still work: a run goes through.
        let target = try makeRepository()
        let state = try await RunClient(bus: Self.bus(suite)).follow(
            runID: try await RunClient(bus: Self.bus(suite)).submit(RunRequest(goal: "inventory", targets: [target.path], requestedBy: "test")),
            timeout: .seconds(60)) { _ in }
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        await suite.stop()
        for child in [coordinator, master, worker] {
            let status = child.exitStatus
            #expect(status == 0, "\(child.name)")
        }
    }

    /// Before: a burst beyond the subscriber's 10,000-message buffer was dropped with no metric and no log
    /// line. Now every message published is either received or counted as dropped, and drops are logged.
    @Test func aBurstIsAccountedForMessageByMessage() async throws {
        let work = try temporaryDirectory("cortex-hostile-burst")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let coordinator = try suite.startCoordinator()
        let port = try await Self.waitReady(coordinator)
        let redis = Self.client(suite)
        defer { redis.close() }
        let sent = 20_000
        let heartbeat = Self.envelope(type: "WORKER_HEARTBEAT", data: #"{"worker":"flood","node":"n","status":"alive"}"#)
        for start in stride(from: 0, to: sent, by: 1000) {
            let batch: [[any RedisArgument]] = (start..<min(sent, start + 1000)).map { _ in ["PUBLISH", CortexNames.Channel.workersStatus.rawValue, heartbeat] }
            for r in try await redis.pipeline(batch) { try r.orThrow() }
        }
        var text = ""
        let accounted = await eventually(timeout: .seconds(60)) {
            text = (try? await scrape(port: port)) ?? ""
            let received = metric(text, #"cortex_messages_received_total{channel="cortex:workers:status",type="WORKER_HEARTBEAT"}"#) ?? 0
            let dropped = Self.total(text, "cortex_messages_dropped_total")
            return Int(received + dropped) == sent
        }
        let received = metric(text, #"cortex_messages_received_total{channel="cortex:workers:status",type="WORKER_HEARTBEAT"}"#) ?? 0
        let dropped = Self.total(text, "cortex_messages_dropped_total")
        let interruptions = metric(text, "cortex_subscription_interruptions_total") ?? 0
        // Either every message is accounted for, or the subscription broke (Redis cut a slow client) and says so.
        #expect(accounted || interruptions > 0, "received \(received) + dropped \(dropped) of \(sent); interruptions \(interruptions)")
        let logged = coordinator.output().contains("reader too slow"), alive = coordinator.isRunning
        if dropped > 0 { #expect(logged) }
        #expect(alive)
        await suite.stop()
    }

    /// Before: a credential that the server echoed back in an error body (a bad key quoted in a 401, an
    /// Authorization header dumped in a 500) was copied into logs, reports and Redis. Now every error
    /// response is redacted of the credentials the request carried, and model/GitHub responses always.
    @Test func credentialsEchoedByAServerNeverComeBack() async throws {
        let router = Router()
        // Echo every header value back, in the body (JSON error message) and in a header.
        for (path, status) in [("/v1/messages", 401), ("/v1/chat/completions", 500), ("/repos/o/r/pulls", 422)] {
            router.post(RouterPath(path)) { request, _ in
                let echoed = request.headers.map { "\($0.name.rawName)=\($0.value)" }.joined(separator: "; ")
                var fields = HTTPFields()
                fields[.contentType] = "application/json"
                fields[HTTPField.Name("x-echo")!] = echoed
                let body: JSONValue = status == 500 ? .string(echoed) : ["error": ["message": .string("invalid credentials: \(echoed)")], "message": .string("refused: \(echoed)")]
                return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: body.description)))
            }
        }
        let (server, port) = try await startLocalServer(router, name: "echo")
        defer { server.cancel() }
        let key = "sk-ant-\(UUID().uuidString)"
        let token = "ghp_\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        let request = LLMRequest(system: "s", messages: [.init(.user, "hi")], maxTokens: 16)
        for provider in [LLMProvider.anthropic, .openai] {
            let client = LLMConfiguration(provider: provider, model: "m", baseURL: "http://127.0.0.1:\(port)", apiKey: key, maxRetries: 0).client(logger: Logger(label: "t"))
            do {
                _ = try await client.complete(request)
                Issue.record("\(provider) call succeeded")
            } catch {
                #expect(!"\(error)".contains(key), "\(provider): \(error)")
                #expect("\(error)".contains("[REDACTED]"), "\(provider): \(error)")
            }
        }
        let github = GitHubClient(apiURL: "http://127.0.0.1:\(port)", token: token)
        do {
            _ = try await github.openPullRequest(owner: "o", repo: "r", head: "h", base: "main", title: "t", body: "b")
            Issue.record("pull request opened")
        } catch {
            #expect(!"\(error)".contains(token), "\(error)")
            #expect("\(error)".contains("[REDACTED]"), "\(error)")
        }
        // The raw response too: nothing downstream can copy what is not there.
        let raw = try await HTTPClient.request("POST", url: "http://127.0.0.1:\(port)/v1/messages", headers: ["x-api-key": key], body: [])
        #expect(!raw.text.contains(key) && !(raw.headers["x-echo"] ?? "").contains(key))
    }

    /// Before: a run id with `../` made the coordinator write its report outside the output directory, and
    /// an unknown goal without targets was accepted and reported "succeeded".
    @Test func runRequestsThatCannotRunAreRefusedWithTheReason() async throws {
        let work = try temporaryDirectory("cortex-hostile-run")
        let output = work.appendingPathComponent("reports")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: output, binDirectory: binDirectory)
        let coordinator = try suite.startCoordinator()
        let port = try await Self.waitReady(coordinator)
        let redis = Self.client(suite)
        defer { redis.close() }
        let escape = "../escaped-\(UUID().uuidString.prefix(6))"
        // Straight onto the stream, as a hand-made XADD would: the coordinator must check for itself.
        for request in [RunRequest(runID: escape, goal: "inventory", targets: ["/tmp"], requestedBy: "hostile"),
                        RunRequest(runID: "run-unknown-goal", goal: "make coffee", targets: [], requestedBy: "hostile")] {
            try await redis.send("XADD", CortexNames.runRequests, "*", "request", try WireJSON.encode(request)).orThrow()
        }
        #expect(await eventually { (try? await RunState.load("run-unknown-goal", redis: redis))?.isFinished == true })
        let refused = try #require(try await RunState.load("run-unknown-goal", redis: redis))
        #expect(refused.status == "failed")
        #expect(refused.reason?.contains("refused: unknown goal 'make coffee'") == true, "\(refused.reason ?? "")")
        #expect(await eventually { (try? await redis.send("XLEN", CortexNames.deadLetters).int) == 1 })
        let letter = try await redis.send("XRANGE", CortexNames.deadLetters, "-", "+").orThrow()
        let reason = letter.array?.first?.array?.last?.fieldMap["reason"] ?? ""
        #expect(reason.hasPrefix("invalid run id '../escaped-"), "\(reason)")
        let text = try await scrape(port: port)
        #expect(metric(text, #"cortex_dead_letters_total{reason="malformed"}"#) == 1)
        #expect(!FileManager.default.fileExists(atPath: output.appendingPathComponent(escape).standardizedFileURL.path))
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent(String(escape.dropFirst(3))).path))
        // The client refuses before queueing (a refused request, not a configuration error).
        await #expect(throws: CortexError.self) {
            try await RunClient(bus: Self.bus(suite)).submit(RunRequest(runID: "../x", goal: "inventory", targets: ["/tmp"], requestedBy: "t"))
        }
        let alive = coordinator.isRunning
        #expect(alive)
        await suite.stop()
    }

    /// Before: a stream entry that was not a work item was dead-lettered but not counted, and a rejected
    /// message was logged in full (a 200 KB line). Now counted, and logged truncated with its size.
    @Test func malformedEntriesAreCountedAndRejectionsLoggedTruncated() async throws {
        let work = try temporaryDirectory("cortex-hostile-entries")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let worker = try suite.startWorker(pools: [.catalog])
        let port = try await Self.waitReady(worker)
        let coordinator = try suite.startCoordinator()
        _ = try await Self.waitReady(coordinator)
        let redis = Self.client(suite)
        defer { redis.close() }
        try await redis.send("XADD", CortexNames.workStream(.catalog), "*", "item", "{not a work item").orThrow()
        #expect(await eventually { metric((try? await scrape(port: port)) ?? "", #"cortex_dead_letters_total{reason="malformed"}"#) == 1 })
        #expect(try await redis.send("XLEN", CortexNames.workStream(.catalog)).int == 0)
        let huge = Self.envelope(type: "TASK_PROGRESS", data: #"{"item_id":"\#(String(repeating: "x", count: 200_000))","worker":"w","done":"many","total":4}"#)
        try await redis.send("PUBLISH", CortexNames.Channel.workersStatus.rawValue, huge).orThrow()
        #expect(await eventually { coordinator.output().contains("rejected message") })
        let output = coordinator.output()
        let line = output.split(separator: "\n").first { $0.contains("rejected message") } ?? ""
        #expect(line.utf8.count < 2000, "\(line.utf8.count) bytes")
        #expect(line.contains("\(huge.utf8.count)"))
        await suite.stop()
    }

    /// `cortexctl` ends every error path with its message and a documented status — never a crash dump.
    @Test func cortexctlErrorPathsExitCleanly() async throws {
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        let url = "redis://127.0.0.1:\(redis.server.port)/0"
        let cases: [(args: [String], status: Int32, says: String)] = [
            (["status", "--redis", "redis://127.0.0.1:1"], 2, "cannot reach Redis"),
            (["status", "--redis", "not-a-url"], 2, "invalid Redis URL"),
            (["events", "--redis", "redis://127.0.0.1:1", "--count", "1"], 2, "cannot reach Redis"),
            (["run", "--redis", url, "--goal", "make coffee", "--target", "/tmp"], 2, "unknown goal 'make coffee'"),
            (["run", "--redis", url, "--target", "/nonexistent/x"], 2, "is not a directory"),
            (["run", "--redis", url, "--target", "/tmp", "--timeout", "1"], 2, "did not finish within"),
            (["status", "--redis", url, "no-such-run"], 2, "no run no-such-run"),
            (["budget", "--redis", url, "no-such-run"], 2, "no budget accounts"),
            (["publish", "--redis", url, "system", "NOT_A_TYPE"], 2, "unknown message type"),
            (["publish", "--redis", url, "system", "PHASE_0_START", "--data", "{\"phase\":1e300,\"name\":\"x\"}"], 2, "data.phase"),
            (["up", "--workers", "0"], 64, "--workers must be at least 1"),
            (["up", "--llm-provider", "gpt"], 64, "--llm-provider must be none, anthropic or openai"),
            (["up", "--osv-db", "/nonexistent/osv"], 64, "--osv-db: /nonexistent/osv does not exist"),
            (["audit-ci", "--persona", "everyone", "x.yml"], 64, "--persona must be regular, pedantic or auditor"),
            (["audit-ci", "/nonexistent/ci.yml"], 2, "/nonexistent/ci.yml"),
            (["docs", "nope"], 64, "unknown document"),
        ]
        for c in cases {
            let result = try await Subprocess.runOffloaded(binDirectory.appendingPathComponent("cortexctl").path, c.args, timeout: .seconds(60))
            let output = result.stdoutText + result.stderrText
            #expect(result.status == c.status, "\(c.args): \(result.status) \(output)")
            #expect(output.contains(c.says), "\(c.args): \(output)")
            #expect(!output.contains("Fatal error") && !output.contains("crashed") && !output.contains("Backtrac"), "\(c.args): \(output)")
        }
    }

    /// Before: the ops endpoint kept a connection that trickled its request head open for ever.
    @Test func aSlowHeaderConnectionIsClosed() async throws {
        let work = try temporaryDirectory("cortex-hostile-slow")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_HTTP_IDLE_TIMEOUT": "2"])
        let coordinator = try suite.startCoordinator()
        let port = try await Self.waitReady(coordinator)
        let started = ContinuousClock.now
        let closedAfter = try await BlockingExecutor.offload("slowloris") { () -> Double? in
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard connected == 0 else { return nil }
            let begin = Date()
            // One byte a second, never finishing the head; the server must hang up.
            for byte in Array("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 30) {
                var b = byte
                if send(fd, &b, 1, Int32(MSG_NOSIGNAL)) < 0 { return Date().timeIntervalSince(begin) }
                var probe: UInt8 = 0
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 1000) > 0, recv(fd, &probe, 1, Int32(MSG_DONTWAIT)) == 0 { return Date().timeIntervalSince(begin) }
            }
            return nil
        }
        let seconds = try #require(closedAfter, "the server kept the slow connection for \(ContinuousClock.now - started)")
        #expect(seconds < 25)  // the client alone would trickle for over a minute
        // Normal clients are served all along.
        #expect((try await HTTPClient.request(url: "http://127.0.0.1:\(port)/healthz")).status == 200)
        await suite.stop()
    }

    /// Before: a master's task entry had no keep-alive, so a standby replica claimed any task that ran
    /// longer than the claim timeout and did it again (fix branches, PRs and handoffs twice).
    @Test func aStandbyReplicaDoesNotRedoALongTask() async throws {
        let work = try temporaryDirectory("cortex-hostile-standby")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_CLAIM_IDLE": "6"])  // a 2 s keep-alive: a master stalled 4 s on a loaded machine is not lost
        try suite.startCoordinator()
        let first = try suite.startMaster(.inventory, instance: "inventory-a")
        _ = try await Self.waitReady(first)
        let second = try suite.startMaster(.inventory, instance: "inventory-b")
        _ = try await Self.waitReady(second)
        let bus = Self.bus(suite)
        let client = RunClient(bus: bus)
        let reports = Locked(0)
        let subscription = bus.subscribe([.mastersCoordination])
        _ = await subscription.subscriber.waitUntilSubscribed()
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: [try makeRepository().path], requestedBy: "test"))
        let follower = Task { try await client.follow(runID: runID, subscribedBeforeSubmit: subscription, timeout: .seconds(90)) { e in
            if e.type == .MASTER_REPORT { reports.withLock { $0 += 1 } }
        } }
        let redis = Self.client(suite)
        defer { redis.close() }
        let stream = CortexNames.workStream(.catalog)
        #expect(await eventually { ((try? await redis.xinfoAdded(stream)) ?? 0) >= 4 })
        // No worker yet: the task waits over three claim timeouts, long enough for a standby to take it if it could.
        try await Task.sleep(for: .seconds(20))
        try suite.startWorker(pools: [.catalog])
        let state = try await follower.value
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        #expect(try await redis.xinfoAdded(stream) == 4, "work items dispatched more than once")
        #expect(reports.value == 1)
        await suite.stop()
    }

    /// A master restarted under the same name after its items finished reports them without dispatching any again.
    @Test func aRestartedMasterDoesNotRedispatchFinishedItems() async throws {
        let work = try temporaryDirectory("cortex-hostile-restart")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        try suite.startCoordinator()
        let master = try suite.startMaster(.inventory, instance: "inventory-same")
        _ = try await Self.waitReady(master)
        let client = RunClient(bus: Self.bus(suite))
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: [try makeRepository().path], requestedBy: "test"))
        let redis = Self.client(suite)
        defer { redis.close() }
        let stream = CortexNames.workStream(.catalog)
        #expect(await eventually { ((try? await redis.xinfoAdded(stream)) ?? 0) == 4 })
        master.signal(SIGKILL)
        _ = await master.wait(timeout: .seconds(10))
        try suite.startWorker(pools: [.catalog])
        #expect(await eventually { (try? await redis.send("HLEN", CortexNames.taskResults("\(runID).inventory.0")).int) == 4 })
        let again = try suite.startMaster(.inventory, instance: "inventory-same")
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        #expect(try await redis.xinfoAdded(stream) == 4)
        let log = again.output()
        #expect(log.contains("dispatching 0 work items"), "\(log.suffix(2000))")
        await suite.stop()
    }

    /// Before: the liveness check stopped at the first master whose task stream had no consumer group
    /// (a master that never started: NOGROUP), so no master after it was ever checked and a dead one was
    /// never announced. (Issue 16, item 6.)
    @Test func aMasterThatNeverStartedDoesNotBlindTheLivenessChecks() async throws {
        let work = try temporaryDirectory("cortex-hostile-liveness")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_HEARTBEAT_INTERVAL": "0.5", "CORTEX_HEARTBEAT_TIMEOUT": "2"])
        let coordinator = try suite.startCoordinator()
        let port = try await Self.waitReady(coordinator)
        // Only the last master in check order starts (security, the first, never does: its stream has no group).
        let monitoring = try suite.startMaster(.monitoring)
        _ = try await Self.waitReady(monitoring)
        let bus = Self.bus(suite)
        let downs = Locked<[String]>([])
        let (subscriber, events) = bus.subscribe([.eventsSystem])
        defer { subscriber.stop() }
        _ = await subscriber.waitUntilSubscribed()
        let listener = Task { for await e in events where e.type == .MASTER_DOWN { downs.withLock { $0.append(e.string("master") ?? "") } } }
        defer { listener.cancel() }
        #expect(await eventually { metric((try? await scrape(port: port)) ?? "", #"cortex_masters_live{master="monitoring"}"#) == 1 })
        monitoring.signal(SIGKILL)
        #expect(await eventually(timeout: .seconds(60)) { downs.value.contains("monitoring") }, "MASTER_DOWN never announced")
        let text = try await scrape(port: port)
        #expect(metric(text, #"cortex_masters_live{master="monitoring"}"#) == 0)
        await suite.stop()
    }

    /// Before: streams were never trimmed and run, result and budget keys never expired. Now a finished
    /// run's working keys are in its report's redis-archive.json and gone from Redis, the streams hold
    /// nothing processed, and every run key that stays has a TTL within CORTEX_RETENTION.
    @Test func aFinishedRunLeavesOnlyExpiringKeys() async throws {
        let work = try temporaryDirectory("cortex-hostile-retention")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_RETENTION": "7200"].merging(checkedAdvisories) { $1 })
        try suite.startAll(workers: 2)
        let client = RunClient(bus: Self.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "full-orchestration", targets: [try makeRepository().path], requestedBy: "test")),
                                            timeout: .seconds(90)) { _ in }
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let redis = Self.client(suite)
        defer { redis.close() }
        // The keys are deleted just after the run is marked finished: give the coordinator a moment.
        var keys: [String] = []
        #expect(await eventually {
            keys = (try? await redis.send("KEYS", "cortex:*").orThrow().array?.compactMap(\.string)) ?? []
            let requests = (try? await redis.send("XLEN", CortexNames.runRequests).int) ?? -1
            return !keys.contains { $0.hasPrefix("cortex:task:") } && requests == 0
        }, "\(keys.filter { $0.hasPrefix("cortex:task:") })")
        #expect(!keys.contains(CortexNames.runTasks(state.runID)) && !keys.contains(CortexNames.runResults(state.runID)))
        for key in keys where key.hasPrefix("cortex:run:\(state.runID)") || key.hasPrefix("cortex:budget:") || key.hasPrefix("cortex:dev:") {
            let ttl = try await redis.send("TTL", key).int ?? -3
            #expect((1...7200).contains(ttl), "\(key) ttl \(ttl)")
        }
        for stream in [CortexNames.runRequests] + MasterRole.allCases.map(CortexNames.taskStream) + WorkerPool.allCases.map(CortexNames.workStream) {
            #expect((try await redis.send("XLEN", stream).int ?? 0) == 0, "\(stream)")
        }
        let archive = try RunArchive.load(reportDirectory: try #require(state.reportDir))
        #expect(archive[CortexNames.runTasks(state.runID)]?.objectValue?.count == 6)
        #expect(archive[CortexNames.taskResults("\(state.runID).inventory.0")]?.objectValue?.count == 4)
        await suite.stop()
    }
}

extension RedisClient {
    /// `entries-added` of XINFO STREAM: every entry ever appended, deleted ones included.
    func xinfoAdded(_ stream: String) async throws -> Int {
        let reply = try await send("XINFO", "STREAM", stream).orThrow()
        let parts = reply.array ?? []
        for i in stride(from: 0, to: parts.count - 1, by: 2) where parts[i].string == "entries-added" { return parts[i + 1].int ?? 0 }
        return 0
    }
}
