import Tracing
import W3CTraceContext

/// The key under which a Cortex span's W3C trace context (trace id, span id, flags, state) travels in the
/// task-local `InstrumentationContext`: the active span's, or a remote parent's after extraction.
public enum CortexTraceContextKey: InstrumentationContextKey {
    public typealias Value = TraceContext
    public static var nameOverride: String? { "w3c-trace-context" }
}

extension InstrumentationContext {
    /// The W3C trace context of the active span (or of the remote parent a carrier named).
    public var traceContext: TraceContext? {
        get { self[CortexTraceContextKey.self] }
        set { self[CortexTraceContextKey.self] = newValue }
    }
}

/// W3C trace context across processes: the `traceparent` an envelope or a stream entry carries.
///
/// Everything goes through the bootstrapped instrument, so with tracing off (no
/// `OTEL_EXPORTER_OTLP_ENDPOINT`) nothing is injected and nothing extracted: no field is written.
public enum TracePropagation {
    /// The field name in envelopes and stream entries (the W3C header's name).
    public static let field = "traceparent"

    /// The active span's `traceparent`, nil when no span is active or tracing is off.
    public static var current: String? { traceparent(of: InstrumentationContext.current) }

    /// The `traceparent` of a span's context (nil when tracing is off).
    public static func traceparent(of context: InstrumentationContext?) -> String? {
        guard let context, context.traceContext != nil else { return nil }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier[field]
    }

    /// A context that continues the trace `traceparent` names: spans started in it are children of that
    /// remote span. Top level (a new trace) when it is nil or not a valid W3C traceparent.
    public static func context(continuing traceparent: String?) -> InstrumentationContext {
        var context = InstrumentationContext.topLevel
        guard let traceparent, !traceparent.isEmpty else { return context }
        InstrumentationSystem.instrument.extract([field: traceparent], into: &context, using: DictionaryExtractor())
        return context
    }

    /// Whether `text` is a W3C `traceparent` (version 00: `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
    public static func isValid(_ text: String) -> Bool {
        (try? TraceContext(traceParentHeaderValue: text)) != nil
    }
}

/// Writes propagation fields into a `[String: String]` (envelope fields, stream entry fields).
public struct DictionaryInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

/// Reads propagation fields from a `[String: String]`.
public struct DictionaryExtractor: Extractor {
    public init() {}
    public func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
