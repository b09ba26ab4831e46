import CortexControl
import CortexCore
import Foundation
import Testing

/// Real daemons receiving real messages: the documented examples are accepted, bad ones are refused and counted.
@Suite(.serialized) struct DaemonMessageTests {
    /// Every `redis-cli PUBLISH` line of docs/protocol.md, exactly as written.
    static func documentedExamples() throws -> [String] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        return doc.split(separator: "\n").map(String.init).filter { $0.hasPrefix("redis-cli PUBLISH ") }
    }

    /// Runs a shell command line (as an operator would type it) with redis-cli pointed at `port`.
    static func sh(_ line: String, port: Int) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", line.replacingOccurrences(of: "redis-cli ", with: "redis-cli -p \(port) ")]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func everyDocumentedExampleIsAccepted() async throws {
        let examples = try Self.documentedExamples()
        #expect(examples.count == MessageType.allCases.count)
        let work = try temporaryDirectory("cortex-examples")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let (catalog, catalogPort) = try await suite.startCatalog()
        let coordinator = try suite.startCoordinator()
        let port = try #require(await opsPort(coordinator))
        for p in [port, catalogPort] {
            #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(p)/readyz").status) == 200 })
        }
        for line in examples {
            let r = try Self.sh(line, port: suite.redis.port)
            #expect(r.status == 0, "\(line): \(r.output)")
            // The coordinator listens on the three orchestration channels, catalog-api on the catalog's and the workers'.
            let listeners = line.contains(CortexNames.Channel.workersStatus.rawValue) ? "2" : "1"
            #expect(r.output.trimmingCharacters(in: .whitespacesAndNewlines) == listeners, "\(line)")
        }
        // Each type arrives once where it is listened to, and none is rejected. The example BUDGET_REQUEST
        // also gets an answer: the coordinator's own BUDGET_DECISION (a denial: run-debug has no ledger).
        func received(_ text: String, _ type: MessageType) -> Double? {
            let n = metric(text, #"cortex_messages_received_total{channel="\#(type.channel.rawValue)",type="\#(type.rawValue)"}"#)
            return type == .BUDGET_DECISION ? n.map { $0 - 1 } : n
        }
        for (p, types) in [(port, MessageType.allCases.filter { $0.channel != .catalogEvents }), (catalogPort, MessageType.allCases.filter { $0.channel == .catalogEvents })] {
            var text = ""
            let all = await eventually {
                text = (try? await scrape(port: p)) ?? ""
                return types.allSatisfy { received(text, $0) == 1 }
            }
            #expect(all, "missing: \(types.filter { received(text, $0) != 1 })")
            for reason in RejectionReason.allCases {
                #expect(metric(text, #"cortex_messages_rejected_total{reason="\#(reason.rawValue)"}"#) == 0)
            }
        }
        #expect(coordinator.output().contains("budget request of security for 1400 tokens (high) denied: "))
        #expect(coordinator.isRunning && catalog.isRunning)
        await suite.stop()
        #expect(exitStatus(coordinator) == 0)
        #expect(exitStatus(catalog) == 0)
    }

    @Test func badMessagesAreRejectedCountedAndSurvived() async throws {
        let work = try temporaryDirectory("cortex-bad")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let master = try suite.startMaster(.security)
        let port = try #require(await opsPort(master))
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 200 })
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
        defer { client.close() }
        let channel = CortexNames.Channel.eventsSystem.rawValue  // the master listens here
        let wrongType = #"{"v":1,"id":"a","type":"PHASE_2_START","source":"x","run_id":"r","ts":"2026-01-01T00:00:00Z","data":{"phase":"two","name":"work-distribution"}}"#
        let unknown = #"{"v":1,"id":"b","type":"MASTER_DANCE","source":"x","run_id":"r","ts":"2026-01-01T00:00:00Z","data":{}}"#
        let huge = #"{"v":1,"id":"c","type":"RUN_FAILED","source":"x","run_id":"r","ts":"2026-01-01T00:00:00Z","data":{"reason":""# + String(repeating: "x", count: 300 * 1024) + #""}}"#
        for payload in ["{not json", wrongType, unknown, huge] {
            try await client.send("PUBLISH", channel, payload).orThrow()
        }
        var text = ""
        let counted = await eventually {
            text = (try? await scrape(port: port)) ?? ""
            return ["invalid_json", "invalid_data", "unknown_type", "oversized"].allSatisfy { metric(text, #"cortex_messages_rejected_total{reason="\#($0)"}"#) == 1 }
        }
        #expect(counted, "\(text.split(separator: "\n").filter { $0.contains("rejected") })")
        // Still alive, still ready, and it said why in its log.
        #expect(master.isRunning)
        #expect(try await HTTPClient.request(url: "http://127.0.0.1:\(port)/healthz").status == 200)
        #expect(try await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status == 200)
        let rejections = logLines(master).filter { $0["msg"] as? String == "rejected message" }
        #expect(Set(rejections.compactMap { $0["cortex.reject.reason"] as? String }) == ["invalid_json", "invalid_data", "unknown_type", "oversized"])
        #expect(rejections.contains { ($0["cortex.reject.detail"] as? String)?.contains("PHASE_2_START data.phase must be integer") == true })
        // A valid message after the bad ones is still processed.
        try await client.send("PUBLISH", channel, Envelope(type: .PHASE_1_START, source: "test", data: MessageType.PHASE_1_START.exampleData).encoded()).orThrow()
        #expect(await eventually { metric((try? await scrape(port: port)) ?? "", #"cortex_messages_received_total{channel="cortex:events:system",type="PHASE_1_START"}"#) == 1 })
        await suite.stop()
        #expect(exitStatus(master) == 0)
    }

    @Test func readinessFollowsRedis() async throws {
        let work = try temporaryDirectory("cortex-ready")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        let worker = try suite.startWorker()
        let port = try #require(await opsPort(worker))
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 200 })
        await suite.redis.stop()
        #expect(await eventually { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").status) == 503 })
        let body = try await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz").text
        #expect(body.contains("redis unreachable"))
        #expect(try await HTTPClient.request(url: "http://127.0.0.1:\(port)/healthz").status == 200)
        #expect(worker.isRunning)
        worker.signal(SIGTERM)
        #expect(await worker.wait(timeout: .seconds(60)) == 0)
    }

    @Test func badConfigurationIsAClearErrorAndExit2() async throws {
        let work = try temporaryDirectory("cortex-badconf")
        let supervisor = try ProcessSupervisor(logDirectory: work)
        let worker = try supervisor.start(name: "w", executable: ExecutableLocator.path(of: "worker", in: binDirectory), arguments: ["--pools", "scan,nonsense"])
        #expect(await worker.wait(timeout: .seconds(60)) == 2)
        #expect(worker.output().contains("unknown worker pool 'nonsense'"))
        let flag = try supervisor.start(name: "c", executable: ExecutableLocator.path(of: "coordinator", in: binDirectory), arguments: ["--bogus", "1"])
        #expect(await flag.wait(timeout: .seconds(60)) == 2)
        #expect(flag.output().contains("unknown flag --bogus"))
    }
}
