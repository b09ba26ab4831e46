import Foundation
import Logging
import Tracing

/// Turns tracing on for a daemon when an OTLP endpoint is configured.
public enum CortexTracing {
    /// The traces URL the settings name: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; nil when neither is set (tracing off).
    public static func tracesURL(_ settings: SettingValues) throws -> String? {
        let url: String
        if let traces = settings.raw(.otlpTracesEndpoint), !traces.isEmpty {
            url = traces
        } else if let base = settings.raw(.otlpEndpoint), !base.isEmpty {
            url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
        } else {
            return nil
        }
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ConfigurationError("OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http(s) URL such as http://otel-collector:4318; got '\(url)'")
        }
        return url
    }

    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-decoded (the OpenTelemetry form).
    public static func headers(_ settings: SettingValues) throws -> [String: String] {
        guard let raw = settings.raw(.otlpHeaders), !raw.isEmpty else { return [:] }
        var headers: [String: String] = [:]
        for pair in raw.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let key = parts.first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard parts.count == 2, !key.isEmpty, let value = parts[1].trimmingCharacters(in: .whitespaces).removingPercentEncoding else {
                throw ConfigurationError("OTEL_EXPORTER_OTLP_HEADERS must be comma-separated key=value pairs; '\(pair.prefix(40))' is not one")
            }
            headers[key] = value
        }
        return headers
    }

    /// How long the collector may take to answer a batch: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds (the OpenTelemetry form; default 10,000).
    public static func timeout(_ settings: SettingValues) throws -> Duration {
        for setting in [Setting.otlpTracesTimeout, .otlpTimeout] {
            guard let raw = settings.raw(setting), !raw.isEmpty else { continue }
            guard let ms = Int(raw.trimmingCharacters(in: .whitespaces)), (1...600_000).contains(ms) else {
                throw ConfigurationError("\(setting.env) must be a whole number of milliseconds from 1 to 600000; got '\(raw.prefix(40))'")
            }
            return .milliseconds(ms)
        }
        return .seconds(10)
    }

    /// Bootstraps the process-wide tracer when a traces URL is configured and returns it; nil (and
    /// nothing bootstrapped: no spans, no `traceparent` written anywhere) otherwise. Once per process.
    @discardableResult
    public static func bootstrap(settings: SettingValues, process: String, logger: Logger) throws -> CortexTracer? {
        guard let url = try tracesURL(settings) else { return nil }
        let service = settings.raw(.otelServiceName).flatMap { $0.isEmpty ? nil : $0 } ?? process
        let instance = settings.raw(.instanceID) ?? ProcessIdentity.instanceID(prefix: process)
        let exporter = OTLPExporter(url: url, headers: try headers(settings), resource: [
            ("service.name", service), ("service.namespace", "cortex"), ("service.instance.id", instance),
            ("host.name", settings.raw(.nodeName) ?? ProcessIdentity.hostname), ("process.pid", String(getpid())),
        ], logger: logger, timeout: try timeout(settings))
        let tracer = CortexTracer(exporter: exporter)
        InstrumentationSystem.bootstrap(tracer)
        exporter.start()
        logger.info("tracing on: spans go to \(url) (OTLP/HTTP JSON)")
        return tracer
    }
}
