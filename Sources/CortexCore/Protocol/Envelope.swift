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

    public init(type: MessageType, source: String, runID: String? = nil, data: JSONValue, id: String = UUID().uuidString.lowercased(), timestamp: Date = Date()) {
        self.id = id
        self.type = type
        self.source = source
        self.runID = runID
        self.timestamp = timestamp
        self.data = data
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
}

/// Decodes and validates channel messages against the closed list of types.
public struct EnvelopeDecoder: Sendable {
    /// Payloads larger than this are refused before parsing (default 256 KiB).
    public var maxBytes: Int

    public init(maxBytes: Int = 256 * 1024) { self.maxBytes = maxBytes }

    /// Parses `payload` received on `channel` (nil skips the channel check, e.g. for `cortexctl publish`).
    public func decode(_ payload: [UInt8], channel: CortexNames.Channel?) -> Result<Envelope, MessageRejection> {
        func reject(_ r: RejectionReason, _ d: String) -> Result<Envelope, MessageRejection> {
            .failure(MessageRejection(reason: r, detail: d))
        }
        if payload.count > maxBytes {
            return reject(.oversized, "\(payload.count) bytes exceeds the \(maxBytes)-byte cap")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(payload))
        } catch {
            return reject(.invalid_json, "not JSON: \(Self.describe(error))")
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
        return .success(Envelope(type: type, source: o["source"]!.stringValue!, runID: runID, data: data, id: o["id"]!.stringValue!, timestamp: ts))
    }

    private static func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            return (ctx.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String ?? ctx.debugDescription
        }
        return "\(error)"
    }
}

/// ISO 8601 timestamps as the protocol writes them (UTC, milliseconds).
public enum Timestamp {
    private static func formatter(fractional: Bool) -> ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = fractional ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return f
    }

    /// `2026-11-28T03:00:00.123Z`
    public static func format(_ date: Date) -> String { formatter(fractional: true).string(from: date) }

    /// Accepts the protocol's form with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        formatter(fractional: true).date(from: text) ?? formatter(fractional: false).date(from: text)
    }
}
