import Foundation
import Logging
import Tracing

/// Sends ended spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding
/// (`POST <endpoint>/v1/traces`, `Content-Type: application/json`), in batches: every second, or at
/// once when `batchSize` spans wait. A collector that is down or refuses costs the spans of that batch
/// (logged at most every 30 s with the count), never the daemon's work; at most `maxQueue` spans wait,
/// the rest are dropped and counted. `flushNow` sends what waits before the process exits.
public final class OTLPExporter: Sendable {
    /// Where spans go: the full traces URL (`…/v1/traces`).
    public let url: String
    let headers: [String: String]
    /// `service.name`, `service.instance.id`, `host.name` … of every span this process sends.
    let resource: [(String, String)]
    let logger: Logger
    let batchSize: Int
    let maxQueue: Int
    let timeout: Duration
    private let queue = Locked<[FinishedSpan]>([])
    private let problems = Locked<(dropped: Int, failed: Int, lastWarning: ContinuousClock.Instant?)>((0, 0, nil))
    private let loop = Locked<Task<Void, Never>?>(nil)
    /// Held while batches are sent (see `sendQueued`).
    private let sending = NSLock()
    /// Set by `flushNow`: the background loop sends no further batch.
    private let stopping = Locked(false)

    public init(url: String, headers: [String: String] = [:], resource: [(String, String)], logger: Logger,
                batchSize: Int = 512, maxQueue: Int = 8192, timeout: Duration = .seconds(5)) {
        self.url = url
        self.headers = headers
        self.resource = resource
        self.logger = logger
        self.batchSize = batchSize
        self.maxQueue = maxQueue
        self.timeout = timeout
    }

    /// Starts the once-a-second sender.
    public func start() {
        loop.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await flush()
                }
            }
        }
    }

    /// Queues an ended span (dropped and counted when `maxQueue` spans already wait).
    func add(_ span: FinishedSpan) {
        let full = queue.withLock { q -> Bool in
            guard q.count < maxQueue else { return true }
            q.append(span)
            return false
        }
        if full { note(dropped: 1, failed: 0, why: "the queue is full (\(maxQueue) spans)") }
    }

    /// Sends what waits, in batches (from the background loop), on a thread of its own: the sends block.
    func flush() async {
        guard queue.withLock({ !$0.isEmpty }) else { return }
        _ = try? await BlockingExecutor.offload("cortex-otlp") { [self] in sendQueued(untilFailure: false) }
    }

    /// Sends what waits, blocking (a process about to exit cannot await the loop). A batch the loop has
    /// in flight is waited for (bounded by `timeout`), not abandoned: the process exits right after this.
    public func flushNow() {
        loop.withLock { $0?.cancel() }
        stopping.withLock { $0 = true }
        sendQueued(untilFailure: true)
    }

    /// Takes and sends batches until the queue is empty. One sender at a time (`sending`), so `flushNow`
    /// finds every span either delivered, failed, or still queued. The loop gives way between batches once
    /// `flushNow` has begun; `flushNow` stops at its first failure, to bound the time an exit takes.
    private func sendQueued(untilFailure: Bool) {
        sending.lock()
        defer { sending.unlock() }
        while untilFailure || !stopping.withLock({ $0 }), let batch = take() {
            do {
                try check(try HTTPClient.perform("POST", url: url, headers: requestHeaders, body: Self.encode(batch, resource: resource), timeout: timeout))
            } catch {
                note(dropped: 0, failed: batch.count, why: "\(error)")
                if untilFailure { return }
            }
        }
    }

    private var requestHeaders: [String: String] { headers.merging(["Content-Type": "application/json"]) { $1 } }

    private func take() -> [FinishedSpan]? {
        queue.withLock { q -> [FinishedSpan]? in
            guard !q.isEmpty else { return nil }
            let batch = Array(q.prefix(batchSize))
            q.removeFirst(batch.count)
            return batch
        }
    }

    private func check(_ response: HTTPResponse) throws {
        guard (200..<300).contains(response.status) else {
            throw HTTPClientError(description: "the collector answered HTTP \(response.status): \(response.text.prefix(200))")
        }
    }

    /// Counts lost spans and says so at most every 30 s (a collector outage must not flood the log).
    private func note(dropped: Int, failed: Int, why: String) {
        let report = problems.withLock { p -> (Int, Int)? in
            p.dropped += dropped
            p.failed += failed
            if let last = p.lastWarning, ContinuousClock.now - last < .seconds(30) { return nil }
            p.lastWarning = .now
            defer { p.dropped = 0; p.failed = 0 }
            return (p.dropped, p.failed)
        }
        if let (d, f) = report {
            logger.warning("trace export to \(url): \(f) spans not delivered, \(d) dropped: \(why)")
        }
    }

    // MARK: OTLP/JSON

    /// An `ExportTraceServiceRequest` in OTLP's JSON mapping: ids as lowercase hex, 64-bit integers as
    /// strings, enums as numbers.
    public static func encode(_ spans: [FinishedSpan], resource: [(String, String)]) -> [UInt8] {
        let request: JSONValue = ["resourceSpans": [[
            "resource": ["attributes": .array(resource.map { keyValue($0.0, ["stringValue": .string($0.1)]) })],
            "scopeSpans": [[
                "scope": ["name": "cortex"],
                "spans": .array(spans.map(span)),
            ]],
        ]]]
        return Array(request.description.utf8)
    }

    static func span(_ s: FinishedSpan) -> JSONValue {
        var o: [String: JSONValue] = [
            "traceId": .string(s.traceID), "spanId": .string(s.spanID), "name": .string(s.name),
            "kind": .number(Double(kindNumber(s.kind))),
            "startTimeUnixNano": .string(String(s.start)), "endTimeUnixNano": .string(String(s.end)),
            "attributes": attributes(s.attributes),
        ]
        if let parent = s.parentSpanID { o["parentSpanId"] = .string(parent) }
        if !s.events.isEmpty {
            o["events"] = .array(s.events.map { ["timeUnixNano": .string(String($0.nanosecondsSinceEpoch)), "name": .string($0.name),
                                                 "attributes": attributes($0.attributes)] })
        }
        if !s.links.isEmpty { o["links"] = .array(s.links.map { ["traceId": .string($0.traceID), "spanId": .string($0.spanID)] }) }
        if let status = s.status {
            var st: [String: JSONValue] = ["code": .number(status.code == .ok ? 1 : 2)]
            if let m = status.message { st["message"] = .string(m) }
            o["status"] = .object(st)
        }
        return .object(o)
    }

    /// OTLP's `SpanKind`: INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
    static func kindNumber(_ kind: SpanKind) -> Int {
        switch kind {
        case .internal: return 1
        case .server: return 2
        case .client: return 3
        case .producer: return 4
        case .consumer: return 5
        @unknown default: return 0
        }
    }

    static func attributes(_ attributes: SpanAttributes) -> JSONValue {
        var list: [JSONValue] = []
        attributes.forEach { key, value in
            if let v = anyValue(value) { list.append(keyValue(key, v)) }
        }
        return .array(list.sorted { ($0["key"]?.stringValue ?? "") < ($1["key"]?.stringValue ?? "") })
    }

    static func keyValue(_ key: String, _ value: JSONValue) -> JSONValue { ["key": .string(key), "value": value] }

    /// An attribute as OTLP's `AnyValue`.
    static func anyValue(_ value: SpanAttribute) -> JSONValue? {
        func array(_ values: [JSONValue]) -> JSONValue { ["arrayValue": ["values": .array(values)]] }
        switch value {
        case .int32(let v): return ["intValue": .string(String(v))]
        case .int64(let v): return ["intValue": .string(String(v))]
        case .double(let v): return ["doubleValue": .number(v)]
        case .bool(let v): return ["boolValue": .bool(v)]
        case .string(let v): return ["stringValue": .string(v)]
        case .stringConvertible(let v): return ["stringValue": .string(v.description)]
        case .int32Array(let v): return array(v.map { ["intValue": .string(String($0))] })
        case .int64Array(let v): return array(v.map { ["intValue": .string(String($0))] })
        case .doubleArray(let v): return array(v.map { ["doubleValue": .number($0)] })
        case .boolArray(let v): return array(v.map { ["boolValue": .bool($0)] })
        case .stringArray(let v): return array(v.map { ["stringValue": .string($0)] })
        case .stringConvertibleArray(let v): return array(v.map { ["stringValue": .string($0.description)] })
        default: return nil
        }
    }
}
