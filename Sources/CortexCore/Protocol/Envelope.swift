import Foundation

/// The one JSON envelope every channel message travels in.
///
/// `{"v":1,"id":"…","type":"TASK_STARTED","source":"worker-1","run_id":"run-…","ts":"2026-…Z","data":{…}}`
public struct Envelope: Sendable, Equatable {
    /// The envelope version this code speaks.
    public static let version = 1

    public var id: String
    public var type: MessageType
    /// The process that sent it (e.g. `security-master`, `cortexctl`).
    public var source: String
    /// The run it belongs to, when it belongs to one.
    public var runID: String?
    public var timestamp: Date
    public var data: JSONValue
    /// The W3C trace context of the span that sent it (optional; only with tracing on). By default the
    /// active span's, so every message published inside a span joins that span's trace.
    public var traceparent: String?

    public init(type: MessageType, source: String, runID: String? = nil, data: JSONValue, id: String = MessageID.random(), timestamp: Date = Date(),
                traceparent: String? = TracePropagation.current) {
        self.id = id
        self.type = type
        self.source = source
        self.runID = runID
        self.timestamp = timestamp
        self.data = data
        self.traceparent = traceparent
    }

    /// The channel this envelope's type belongs on.
    public var channel: CortexNames.Channel { type.channel }

    /// A payload field as text (for display and routing).
    public func string(_ field: String) -> String? { data[field]?.stringValue }
    /// A payload field as an integer.
    public func int(_ field: String) -> Int? { data[field]?.intValue }

    /// The wire form: compact JSON, sorted keys.
    public func encoded() -> [UInt8] {
        var object: [String: JSONValue] = [
            "v": .number(Double(Self.version)), "id": .string(id), "type": .string(type.rawValue),
            "source": .string(source), "ts": .string(Timestamp.format(timestamp)), "data": data,
        ]
        object["run_id"] = runID.map { .string($0) } ?? .null
        if let traceparent { object[TracePropagation.field] = .string(traceparent) }
        return Array(JSONValue.object(object).description.utf8)
    }

    public var encodedString: String { String(decoding: encoded(), as: UTF8.self) }
}

/// Why an incoming message was refused; the raw value is the `reason` label of
/// `cortex_messages_rejected_total`.
public enum RejectionReason: String, Sendable, CaseIterable {
    case oversized, invalid_json, invalid_envelope, unsupported_version, unknown_type, wrong_channel, invalid_data
}

/// A refused message: the reason label plus a sentence for the log.
public struct MessageRejection: Error, Sendable, CustomStringConvertible {
    public var reason: RejectionReason
    public var detail: String
    public var description: String { "\(reason.rawValue): \(detail)" }

    /// The longest detail kept: a rejection is logged, and a hostile message must not turn into a
    /// 250 KB log line (the size is logged beside it).
    public static let maxDetail = 300

    /// `text` cut to `maxDetail` characters, saying how much was cut.
    public static func truncated(_ text: String) -> String {
        guard text.utf8.count > maxDetail else { return text }
        return String(text.prefix(maxDetail)) + "… (\(text.utf8.count) bytes)"
    }
}

/// Decodes and validates channel messages against the closed list of types.
public struct EnvelopeDecoder: Sendable {
    /// Payloads larger than this are refused before parsing (default 256 KiB).
    public var maxBytes: Int

    public init(maxBytes: Int = 256 * 1024) { self.maxBytes = maxBytes }

    /// Parses `payload` received on `channel` (nil skips the channel check, e.g. for `cortexctl publish`).
    public func decode(_ payload: [UInt8], channel: CortexNames.Channel?) -> Result<Envelope, MessageRejection> {
        func reject(_ r: RejectionReason, _ d: String) -> Result<Envelope, MessageRejection> {
            .failure(MessageRejection(reason: r, detail: MessageRejection.truncated(d)))
        }
        if payload.count > maxBytes {
            return reject(.oversized, "\(payload.count) bytes exceeds the \(maxBytes)-byte cap")
        }
        let value: JSONValue
        do {
            value = try JSONText.parse(payload)
        } catch {
            return reject(.invalid_json, "not JSON: \(error)")
        }
        guard case .object(let o) = value else { return reject(.invalid_envelope, "the message is not a JSON object") }
        guard let v = o["v"] else { return reject(.invalid_envelope, "missing field 'v'") }
        guard let version = v.intValue else { return reject(.invalid_envelope, "field 'v' must be an integer") }
        guard version == Envelope.version else {
            return reject(.unsupported_version, "envelope version \(version); this build speaks \(Envelope.version)")
        }
        for name in ["id", "type", "source", "ts"] {
            guard let field = o[name] else { return reject(.invalid_envelope, "missing field '\(name)'") }
            guard let s = field.stringValue, !s.isEmpty else {
                return reject(.invalid_envelope, "field '\(name)' must be a non-empty string")
            }
        }
        let typeName = o["type"]!.stringValue!
        guard let type = MessageType(rawValue: typeName) else { return reject(.unknown_type, "unknown message type '\(typeName)'") }
        if let channel, type.channel != channel {
            return reject(.wrong_channel, "\(typeName) belongs on \(type.channel.rawValue), not \(channel.rawValue)")
        }
        guard let ts = Timestamp.parse(o["ts"]!.stringValue!) else {
            return reject(.invalid_envelope, "field 'ts' must be an ISO 8601 timestamp such as 2026-01-01T00:00:00Z")
        }
        var runID: String?
        switch o["run_id"] {
        case nil, .null?: runID = nil
        case .string(let s)?: runID = s.isEmpty ? nil : s
        default: return reject(.invalid_envelope, "field 'run_id' must be a string or null")
        }
        // Optional; a string that is not a W3C traceparent is dropped, not refused (W3C: start a new trace).
        var traceparent: String?
        switch o[TracePropagation.field] {
        case nil, .null?: traceparent = nil
        case .string(let s)?: traceparent = TracePropagation.isValid(s) ? s : nil
        default: return reject(.invalid_envelope, "field 'traceparent' must be a string (a W3C traceparent) or null")
        }
        guard let data = o["data"] else { return reject(.invalid_envelope, "missing field 'data'") }
        guard case .object(let fields) = data else { return reject(.invalid_envelope, "field 'data' must be an object") }
        for spec in type.fields {
            guard let value = fields[spec.name] else {
                if spec.required { return reject(.invalid_data, "\(typeName) needs data.\(spec.name) (\(spec.kind.rawValue))") }
                continue
            }
            if !spec.accepts(value) {
                return reject(.invalid_data, "\(typeName) data.\(spec.name) must be \(spec.kind.rawValue), got \(value)")
            }
        }
        return .success(Envelope(type: type, source: o["source"]!.stringValue!, runID: runID, data: data, id: o["id"]!.stringValue!, timestamp: ts,
                                 traceparent: traceparent))
    }

}

/// ISO 8601 timestamps as the protocol writes them (UTC, milliseconds).
public enum Timestamp {
    private static func formatter(fractional: Bool) -> ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = fractional ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return f
    }

    /// `2026-11-28T03:00:00.123Z` (by hand: a formatter costs more than the message it stamps).
    public static func format(_ date: Date) -> String { format(milliseconds: Int((date.timeIntervalSince1970 * 1000).rounded(.down))) }

    /// The same from epoch milliseconds.
    public static func format(milliseconds: Int) -> String {
        var seconds = time_t(milliseconds.quotientAndRemainder(dividingBy: 1000).quotient - (milliseconds < 0 && milliseconds % 1000 != 0 ? 1 : 0))
        let ms = ((milliseconds % 1000) + 1000) % 1000
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(ms, 3))Z"
    }

    /// Accepts the protocol's form with or without fractional seconds (any ISO 8601 offset via the formatter).
    public static func parse(_ text: String) -> Date? {
        if let d = parseUTC(text) { return d }
        // ICU, behind the formatter, misreads fractions past about 20 digits and traps (SIGFPE) on
        // longer ones; the longest form meant here (nanoseconds and an offset) is 35 bytes.
        guard text.utf8.count <= 35 else { return nil }
        guard let date = formatter(fractional: true).date(from: text) ?? formatter(fractional: false).date(from: text) else { return nil }
        // Only years 0001-9999, which `format` writes back as four digits: the formatter also reads
        // `-026-11-28T…`, and a timestamp that does not survive being forwarded must be refused here
        // (found by the fuzzer's envelope round-trip check).
        guard date.timeIntervalSince1970 >= -62_135_596_800, date.timeIntervalSince1970 < 253_402_300_800 else { return nil }
        return date
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff...]Z`, the form Cortex writes, without a formatter.
    static func parseUTC(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count >= 20, b.last == UInt8(ascii: "Z"), b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) else { return nil }
                v = v * 10 + Int(b[i] - UInt8(ascii: "0"))
            }
            return v
        }
        guard let year = num(0..<4), let month = num(5..<7), let day = num(8..<10), let hour = num(11..<13),
              let minute = num(14..<16), let second = num(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var fraction = 0.0
        if b.count > 20 {
            // Digits past nanoseconds add nothing a Date can hold; reading them all into an Int
            // overflowed (a trap) on a long fraction, so they are checked but not accumulated.
            let fractionDigits = b.count - 21
            guard b[19] == UInt8(ascii: "."), fractionDigits > 0,
                  b[20..<(b.count - 1)].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  let digits = num(20..<(20 + min(fractionDigits, 9))) else { return nil }
            fraction = Double(digits) / pow(10, Double(min(fractionDigits, 9)))
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}
