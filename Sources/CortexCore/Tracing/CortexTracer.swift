import Tracing
import W3CTraceContext

/// The tracer every Cortex daemon bootstraps when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: spans with W3C
/// ids (a new trace id at a root, the parent's otherwise), ended spans handed to an `OTLPExporter`.
/// Every span is sampled: a run makes hundreds of spans, not millions, and a partial trace of a run
/// would hide exactly the item that went wrong.
public final class CortexTracer: Tracer, Sendable {
    public typealias Span = CortexSpan

    let exporter: OTLPExporter

    public init(exporter: OTLPExporter) {
        self.exporter = exporter
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> CortexSpan {
        var context = context()
        let parent = context.traceContext
        context.traceContext = TraceContext(traceID: parent?.traceID ?? .random(), spanID: .random(), flags: .sampled,
                                            state: parent?.state ?? TraceState())
        return CortexSpan(operationName: operationName, kind: kind, context: context, parentSpanID: parent?.spanID,
                          start: instant().nanosecondsSinceEpoch, exporter: exporter)
    }

    /// Sends every ended span now (blocking, bounded by the exporter's timeout): called before a daemon exits.
    public func forceFlush() { exporter.flushNow() }

    public func inject<Carrier, Inject>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject: Injector, Carrier == Inject.Carrier {
        guard let trace = context.traceContext else { return }
        injector.inject(trace.traceParentHeaderValue, forKey: TracePropagation.field, into: &carrier)
        if let state = trace.traceStateHeaderValue { injector.inject(state, forKey: "tracestate", into: &carrier) }
    }

    public func extract<Carrier, Extract>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract: Extractor, Carrier == Extract.Carrier {
        // An invalid traceparent starts a new trace (W3C: a vendor that cannot parse it must not use it).
        guard let value = extractor.extract(key: TracePropagation.field, from: carrier),
              let trace = try? TraceContext(traceParentHeaderValue: value, traceStateHeaderValue: extractor.extract(key: "tracestate", from: carrier))
        else { return }
        context.traceContext = trace
    }
}

/// One span of a `CortexTracer`: mutable until it ends, then handed to the exporter once.
public final class CortexSpan: Tracing.Span, Sendable {
    public let context: InstrumentationContext
    let kind: SpanKind
    let parentSpanID: SpanID?
    let start: UInt64
    let exporter: OTLPExporter
    private let state: Locked<State>

    struct State: @unchecked Sendable {  // SpanEvent and SpanLink hold Sendable values; guarded by the lock
        var name: String
        var attributes = SpanAttributes()
        var status: SpanStatus?
        var events: [SpanEvent] = []
        var links: [TraceContext] = []
        var ended = false
    }

    init(operationName: String, kind: SpanKind, context: InstrumentationContext, parentSpanID: SpanID?, start: UInt64, exporter: OTLPExporter) {
        self.context = context
        self.kind = kind
        self.parentSpanID = parentSpanID
        self.start = start
        self.exporter = exporter
        self.state = Locked(State(name: operationName))
    }

    public var operationName: String {
        get { state.value.name }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { state.value.attributes }
        set { state.withLock { $0.attributes = newValue } }
    }

    public var isRecording: Bool { !state.value.ended }

    public func setStatus(_ status: SpanStatus) {
        state.withLock { s in
            // OpenTelemetry: OK is final; an error does not overwrite it.
            if s.status?.code == .ok { return }
            s.status = status
        }
    }

    public func addEvent(_ event: SpanEvent) { state.withLock { $0.events.append(event) } }

    public func addLink(_ link: SpanLink) {
        guard let trace = link.context.traceContext else { return }
        state.withLock { $0.links.append(trace) }
    }

    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        var attributes = attributes
        attributes["exception.type"] = "\(type(of: error))"
        attributes["exception.message"] = "\(error)"
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: attributes))
    }

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let end = instant().nanosecondsSinceEpoch
        guard let trace = context.traceContext else { return }
        let finished: FinishedSpan? = state.withLock { s in
            guard !s.ended else { return nil }
            s.ended = true
            return FinishedSpan(traceID: trace.traceID.description, spanID: trace.spanID.description, parentSpanID: parentSpanID?.description,
                                name: s.name, kind: kind, start: start, end: max(end, start), attributes: s.attributes, status: s.status,
                                events: s.events, links: s.links.map { ($0.traceID.description, $0.spanID.description) })
        }
        if let finished { exporter.add(finished) }
    }
}

/// An ended span as the exporter sends it (ids in lowercase hex, times in Unix nanoseconds).
public struct FinishedSpan: @unchecked Sendable {  // SpanAttributes/SpanEvent hold only Sendable values
    public var traceID: String
    public var spanID: String
    public var parentSpanID: String?
    public var name: String
    public var kind: SpanKind
    public var start: UInt64
    public var end: UInt64
    public var attributes: SpanAttributes
    public var status: SpanStatus?
    public var events: [SpanEvent]
    public var links: [(traceID: String, spanID: String)]
}
