import Foundation
import Logging
import Synchronization
import Tracing

/// A swift-log handler that writes one JSON object per line to stdout, so `kubectl logs` reads well.
///
/// Every line carries `process` (the executable name) and, when its logger carries the run's id
/// (`LogKey.runID`, see `Logger.forRun`), `run_id`; with tracing on, a line logged inside a span carries
/// its `trace_id` and `span_id` (the W3C ids in the collector's trace view).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let process: String
    private let label: String

    private static let output = Mutex<Void>(())

    public init(label: String, process: String, level: Logger.Level) {
        self.label = label
        self.process = process
        self.logLevel = level
    }

    /// Installs the handler for the whole process; call once, first thing in `main`.
    public static func bootstrap(process: String, level: Logger.Level) {
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, process: process, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: JSONValue] = [
            "ts": .string(Timestamp.format(Date())),
            "level": .string(event.level.rawValue),
            "process": .string(process),
            "logger": .string(label),
            "msg": .string(event.message.description),
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        // One name for one idea: the run's id is the top-level `run_id`, never also `cortex.run.id`.
        for (key, value) in merged { object[key == LogKey.runID ? "run_id" : key] = Self.json(value) }
        if object[LogKey.traceID] == nil, let trace = InstrumentationContext.current?.traceContext {
            object[LogKey.traceID] = .string(trace.traceID.description)
            object[LogKey.spanID] = .string(trace.spanID.description)
        }
        if event.level >= .error { object["source_location"] = .string("\(event.file.split(separator: "/").last ?? ""):\(event.line)") }
        let line = JSONValue.object(object).description + "\n"
        // One write(2) per line under a lock: lines from concurrent tasks never interleave.
        Self.output.withLock { _ in
            FileHandle.standardOutput.write(Data(line.utf8))
        }
    }

    private static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(d.mapValues(json))
        }
    }
}
