import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import HTTPTypes
import Logging
import Hummingbird
import NIOCore
import Testing
import Tracing

/// A small OTLP/HTTP receiver: accepts `POST /v1/traces` in OTLP's JSON encoding (what Cortex sends),
/// and keeps every span with its resource's `service.name`.
final class OTLPReceiver: @unchecked Sendable {
    struct ReceivedSpan: Sendable {
        var service: String
        var traceID: String
        var spanID: String
        var parentSpanID: String?
        var name: String
        var kind: Int
        var start: UInt64
        var end: UInt64
        var attributes: [String: JSONValue]
        var statusCode: Int
    }

    let spans = Locked<[ReceivedSpan]>([])
    let requests = Locked<[(contentType: String, bytes: Int)]>([])
    /// How long the next requests are held, one entry each, before their spans are kept and they are answered (a slow collector).
    let delays = Locked<[Duration]>([])
    private var task: Task<Void, Error>?
    private(set) var port = 0
    var baseURL: String { "http://127.0.0.1:\(port)" }

    func start() async throws {
        let router = Router()
        router.post("/v1/traces") { [self] request, _ in
            let buffer = try await request.body.collect(upTo: 16 << 20)
            let bytes = Array(buffer: buffer)
            requests.withLock { $0.append((request.headers[.contentType] ?? "", bytes.count)) }
            if let delay = delays.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { try await Task.sleep(for: delay) }
            guard let body = try? JSONText.parse(bytes) else { return Response(status: .badRequest) }
            var received: [ReceivedSpan] = []
            for resourceSpans in body["resourceSpans"]?.arrayValue ?? [] {
                let resource = Self.attributes(resourceSpans["resource"]?["attributes"])
                for scope in resourceSpans["scopeSpans"]?.arrayValue ?? [] {
                    for s in scope["spans"]?.arrayValue ?? [] {
                        received.append(ReceivedSpan(
                            service: resource["service.name"]?["stringValue"]?.stringValue ?? "?",
                            traceID: s["traceId"]?.stringValue ?? "", spanID: s["spanId"]?.stringValue ?? "",
                            parentSpanID: s["parentSpanId"]?.stringValue, name: s["name"]?.stringValue ?? "",
                            kind: s["kind"]?.intValue ?? 0,
                            start: UInt64(s["startTimeUnixNano"]?.stringValue ?? "") ?? 0, end: UInt64(s["endTimeUnixNano"]?.stringValue ?? "") ?? 0,
                            attributes: Self.attributes(s["attributes"]), statusCode: s["status"]?["code"]?.intValue ?? 0))
                    }
                }
            }
            spans.withLock { $0 += received }
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        (task, port) = try await startLocalServer(router, name: "OTLP receiver")
    }

    func stop() { task?.cancel() }

    /// OTLP `KeyValue` list → key: AnyValue.
    static func attributes(_ list: JSONValue?) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for kv in list?.arrayValue ?? [] { if let k = kv["key"]?.stringValue, let v = kv["value"] { out[k] = v } }
        return out
    }
}

/// Traces across processes: a real run (coordinator, masters and workers as separate processes on a
/// private redis-server, a model on a local server) exporting OTLP/HTTP to a receiver in the test.
@Suite(.serialized) struct TracingTests {
    @Test func oneTraceAcrossCoordinatorMastersAndWorkersWithParentLinks() async throws {
        let receiver = OTLPReceiver()
        try await receiver.start()
        defer { receiver.stop() }
        let s = try await PlanRunTests.start("cortex-tracing", masters: [.security, .inventory],
                                             // The receiver runs in the test process: a loaded machine can stall it past the
                                             // default 10 s, and a batch not answered in time is dropped.
                                             environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": receiver.baseURL, "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"])
        let target = try makeRepository()
        let state = try await PlanRunTests.run(s, RunRequest(goal: "security,inventory", targets: [target.path], requestedBy: "test"))
        let runID = state.runID
        let history = try await s.bus.redis.xrange(CortexNames.eventHistory)
        let runHash = try await s.bus.redis.hgetall(CortexNames.run(runID))
        // Spans go out once a second; the run's own span ends last, just before RUN_COMPLETE. Wait for it and
        // for every parent named so far (each master's task span): on a loaded machine a master's batch can
        // still be on its way. (What waits at exit is sent then: flushBeforeExitWaitsForTheBatchInFlight.)
        let rootSeen = await eventually(timeout: .seconds(60)) {
            let spans = receiver.spans.value, ids = Set(spans.map(\.spanID))
            return spans.contains { $0.name == "run" && $0.attributes["cortex.run.id"]?["stringValue"] == .string(runID) }
                && spans.allSatisfy { $0.parentSpanID.map(ids.contains) ?? true }
        }
        // Stopping the daemons flushes whatever is still queued (SIGTERM → forceFlush before exit).
        let logs = s.suite.supervisor.all.map { ($0.name, $0.output()) }
        await s.stop()
        #expect(state.status == "succeeded" || state.status == "partial", "\(state.status): \(state.reason ?? "")")
        #expect(rootSeen, "the run span, or a parent of a span that arrived, did not arrive within 60 s")
        #expect(receiver.requests.value.allSatisfy { $0.contentType == "application/json" })

        let all = receiver.spans.value
        let root = try #require(all.first { $0.name == "run" && $0.parentSpanID == nil }, "\(all.map(\.name))")
        // What arrived, for the record: spans per process, and the tree down one branch.
        let perService = Dictionary(grouping: all, by: \.service).mapValues(\.count).sorted { $0.key < $1.key }
        print("trace \(root.traceID): \(all.count) spans in \(receiver.requests.value.count) OTLP requests; " + perService.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        var branch: [OTLPReceiver.ReceivedSpan] = []
        if var span = all.first(where: { $0.name.hasPrefix("work-item ") }) {
            branch.append(span)
            while let parent = span.parentSpanID.flatMap({ id in all.first { $0.spanID == id } }) { branch.insert(parent, at: 0); span = parent }
        }
        for (depth, span) in branch.enumerated() {
            print(String(repeating: "  ", count: depth) + "\(span.name) [\(span.service)] span \(span.spanID) parent \(span.parentSpanID ?? "-") \(Double(span.end - span.start) / 1e6) ms")
        }
        #expect(root.service == "coordinator" && root.attributes["cortex.run.id"]?["stringValue"] == .string(runID))
        // One trace: every span of every process belongs to the run's trace.
        #expect(Set(all.map(\.traceID)) == [root.traceID], "\(Set(all.map(\.traceID)))")
        #expect(root.traceID.count == 32 && root.spanID.count == 16 && root.traceID != String(repeating: "0", count: 32))
        let byID = Dictionary(all.map { ($0.spanID, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byID.count == all.count, "span ids are unique")
        // Every parent link points at a span that arrived: no orphans, no cycles back to nothing.
        for span in all where span.spanID != root.spanID {
            let parent = try #require(span.parentSpanID.flatMap { byID[$0] }, "\(span.service) \(span.name) has parent \(span.parentSpanID ?? "none"), which never arrived")
            #expect(parent.start <= span.start || parent.service != span.service, "\(span.name) starts before its parent \(parent.name)")
        }

        // Phases 0-5: children of the run, in the coordinator.
        let phases = all.filter { $0.name.hasPrefix("phase ") }
        #expect(phases.map(\.name).sorted() == ["phase 0 pre-flight", "phase 1 master-activation", "phase 2 work-distribution",
                                                 "phase 3 parallel-execution", "phase 4 aggregation", "phase 5 reporting"].sorted(), "\(phases.map(\.name))")
        #expect(phases.allSatisfy { $0.parentSpanID == root.spanID && $0.service == "coordinator" })
        let phaseIDs = Set(phases.map(\.spanID))

        // Tasks: one span per task in the master that did it, a child of the phase that queued it.
        let tasks = all.filter { $0.name.hasPrefix("task ") }
        #expect(Set(tasks.map(\.service)) == ["security-master", "inventory-master"], "\(tasks.map { "\($0.service) \($0.name)" })")
        #expect(tasks.allSatisfy { phaseIDs.contains($0.parentSpanID ?? "") && $0.kind == 5 })
        let taskIDs = Set(tasks.map(\.spanID))
        #expect(tasks.count == Int(runHash["tasks"] ?? "") && tasks.count >= 2, "\(tasks.count) task spans for \(runHash["tasks"] ?? "?") tasks")

        // Work items: in the worker processes, each a child of its master's task span.
        let items = all.filter { $0.name.hasPrefix("work-item ") }
        #expect(!items.isEmpty && items.allSatisfy { $0.service == "worker" && taskIDs.contains($0.parentSpanID ?? "") })
        for task in tasks {
            let children = items.filter { $0.parentSpanID == task.spanID }
            let dispatched = task.attributes["cortex.task.items"]?["intValue"]?.stringValue.flatMap { Int($0) } ?? -1
            #expect(children.count >= dispatched && dispatched > 0, "\(task.name): \(children.count) item spans, \(dispatched) items")
            #expect(children.allSatisfy { $0.attributes["cortex.task.id"] == task.attributes["cortex.task.id"] })
        }
        #expect(Set(items.compactMap { $0.attributes["cortex.worker"]?["stringValue"]?.stringValue }).count >= 1)

        // Model calls: the masters' assessments, children of their task spans, with the usage the model reported.
        let calls = all.filter { $0.name == "chat claude-test" }
        #expect(calls.count >= 2 && calls.allSatisfy { taskIDs.contains($0.parentSpanID ?? "") && $0.kind == 3 }, "\(calls.map { "\($0.service) \($0.parentSpanID ?? "")" })")
        #expect(calls.allSatisfy { $0.attributes["gen_ai.usage.input_tokens"]?["intValue"] == "100" && $0.attributes["gen_ai.usage.output_tokens"]?["intValue"] == "50" })

        // The same ids in the places an operator looks: the run's hash, messages, log lines.
        #expect(runHash["traceparent"]?.hasPrefix("00-\(root.traceID)-") == true, "\(runHash["traceparent"] ?? "none")")
        let messages = history.compactMap { entry -> Envelope? in
            guard let text = entry.fields["message"], let e = try? EnvelopeDecoder().decode(Array(text.utf8), channel: nil).get(), e.runID == runID else { return nil }
            return e
        }
        // Messages sent inside a span carry it: the masters' reports (the task span), phase starts (the
        // run's), and an item's own TASK_COMPLETE / TASK_FAILED when it is announced on its own.
        let tracedTypes: Set<MessageType> = [.MASTER_REPORT, .PHASE_3_START, .TASK_COMPLETE, .TASK_FAILED]
        let traced = messages.filter { tracedTypes.contains($0.type) }
        let reports = traced.filter { $0.type == .MASTER_REPORT }
        #expect(reports.count == tasks.count)
        let prefix = "00-\(root.traceID)-"
        let untraced = traced.filter { !($0.traceparent ?? "").hasPrefix(prefix) }.map { "\($0.type.rawValue) \($0.traceparent ?? "none")" }
        #expect(untraced.isEmpty, "\(untraced)")
        var reportSpans: Set<String> = []
        for report in reports {
            let parts = (report.traceparent ?? "").split(separator: "-")
            if parts.count == 4 { reportSpans.insert(String(parts[2])) }
        }
        #expect(reportSpans == taskIDs, "each report names its task span")
        let itemIDs = Set(items.map(\.spanID))
        let workerLines = logs.filter { $0.0.hasPrefix("worker") }.flatMap { $0.1.split(separator: "\n") }
            .compactMap { try? JSONText.parse(Array($0.utf8)) }.filter { $0["msg"] == "work item done" }
        #expect(!workerLines.isEmpty && workerLines.allSatisfy { $0["trace_id"]?.stringValue == root.traceID && itemIDs.contains($0["span_id"]?.stringValue ?? "") },
                "\(workerLines.prefix(2))")
    }

    /// A process about to exit sends what waits, and a batch the once-a-second loop has in flight to a slow
    /// collector is waited for, not abandoned: `flushNow` returns with every span delivered.
    @Test func flushBeforeExitWaitsForTheBatchInFlight() async throws {
        let receiver = OTLPReceiver()
        try await receiver.start()
        defer { receiver.stop() }
        receiver.delays.withLock { $0 = [.seconds(3)] }  // the first request only
        // A request timeout far above the 3 s hold: with the default 5 s, a loaded CI machine answered the
        // held request after the exporter had given up on it, and "first" was counted as failed, not lost
        // by flushNow (what this test is about).
        let exporter = OTLPExporter(url: receiver.baseURL + "/v1/traces", resource: [("service.name", "exiting")], logger: Logger(label: "test"),
                                    timeout: .seconds(60))
        let tracer = CortexTracer(exporter: exporter)
        exporter.start()
        tracer.startSpan("first", context: .topLevel).end()
        // The loop has taken "first" and its request is held by the collector; "second" would be answered at once.
        #expect(await eventually(timeout: .seconds(30)) { receiver.requests.value.count == 1 })
        tracer.startSpan("second", context: .topLevel).end()
        try await BlockingExecutor.offload("flush") { tracer.forceFlush() }
        #expect(receiver.spans.value.map(\.name).sorted() == ["first", "second"], "\(receiver.spans.value.map(\.name))")
        #expect(receiver.requests.value.count == 2)
    }

    /// Without an endpoint nothing is traced: no trace context in messages, nothing bootstrapped.
    @Test func withoutAnEndpointNothingIsWritten() throws {
        #expect(TracePropagation.current == nil)
        let envelope = Envelope(PhaseStart(phase: 1), source: "test", runID: "run-1")
        #expect(envelope.traceparent == nil && !envelope.encodedString.contains("traceparent"))
        // The optional envelope field: kept when it is a W3C traceparent, dropped when it is not, refused when not a string.
        var traced = envelope
        traced.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        traced.timestamp = Date(timeIntervalSince1970: 1_800_000_000)  // whole milliseconds: the wire form's precision
        #expect(try EnvelopeDecoder().decode(traced.encoded(), channel: nil).get() == traced)
        let garbled = traced.encodedString.replacingOccurrences(of: "00f067aa0ba902b7", with: "not-a-span-id")
        #expect(try EnvelopeDecoder().decode(Array(garbled.utf8), channel: nil).get().traceparent == nil)
        let number = traced.encodedString.replacingOccurrences(of: "\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"", with: "5")
        guard case .failure(let rejection) = EnvelopeDecoder().decode(Array(number.utf8), channel: nil) else { Issue.record("a numeric traceparent was accepted"); return }
        #expect(rejection.reason == .invalid_envelope && rejection.detail.contains("traceparent"))
        let settings = try SettingValues(arguments: [], environment: [:], settings: Setting.all)
        #expect(try CortexTracing.tracesURL(settings) == nil)
        let configured = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"], settings: Setting.all)
        #expect(try CortexTracing.tracesURL(configured) == "http://collector:4318/v1/traces")
        let bad = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"], settings: Setting.all)
        #expect(throws: ConfigurationError.self) { try CortexTracing.tracesURL(bad) }
        let headers = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=ops"], settings: Setting.all)
        #expect(try CortexTracing.headers(headers) == ["authorization": "Bearer abc", "x-tenant": "ops"])
        #expect(try CortexTracing.timeout(settings) == .seconds(10))
        let timeouts = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "60000"], settings: Setting.all)
        #expect(try CortexTracing.timeout(timeouts) == .seconds(60))
        let tracesOnly = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "60000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500"], settings: Setting.all)
        #expect(try CortexTracing.timeout(tracesOnly) == .milliseconds(2500))
        let notANumber = try SettingValues(arguments: [], environment: ["OTEL_EXPORTER_OTLP_TIMEOUT": "10s"], settings: Setting.all)
        #expect(throws: ConfigurationError.self) { try CortexTracing.timeout(notANumber) }
    }
}
