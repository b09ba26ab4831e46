/// A Redis reply (RESP2), free of any hiredis type.
public enum RedisReply: Sendable, Equatable {
    case bulk([UInt8])
    case status(String)
    case integer(Int)
    case null
    case array([RedisReply])
    case error(String)

    /// The reply as text when it is a bulk string or a status.
    public var string: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The reply as an integer when it is one (or a bulk string holding one).
    public var int: Int? {
        switch self {
        case .integer(let i): return i
        case .bulk, .status: return string.flatMap { Int($0) }
        default: return nil
        }
    }

    /// The elements of an array reply; `nil` for anything else (a null array included).
    public var array: [RedisReply]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// True for a nil bulk string or a nil array.
    public var isNull: Bool { self == .null }

    /// Throws the server's error text when the reply is an error.
    @discardableResult
    public func orThrow() throws -> RedisReply {
        if case .error(let message) = self { throw RedisError.server(message) }
        return self
    }

    /// A flat `[field, value, field, value]` array as a dictionary (HGETALL, stream entry fields).
    public var fieldMap: [String: String] {
        guard let items = array else { return [:] }
        var out: [String: String] = [:]
        var i = 0
        while i + 1 < items.count {
            if let k = items[i].string, let v = items[i + 1].string { out[k] = v }
            i += 2
        }
        return out
    }
}

/// What went wrong talking to Redis.
public enum RedisError: Error, CustomStringConvertible, Equatable {
    /// The URL could not be parsed.
    case invalidURL(String)
    /// No connection could be made, or it dropped; the text says why.
    case disconnected(String)
    /// The server answered with an error reply.
    case server(String)
    /// A reply had an unexpected shape for the command.
    case unexpectedReply(String)
    /// The client was closed.
    case closed

    public var description: String {
        switch self {
        case .invalidURL(let s): return "invalid Redis URL: \(s)"
        case .disconnected(let s): return "Redis unreachable: \(s)"
        case .server(let s): return "Redis error: \(s)"
        case .unexpectedReply(let s): return "unexpected Redis reply: \(s)"
        case .closed: return "Redis client closed"
        }
    }

    /// True when retrying later (after a reconnect) may succeed.
    public var isConnectionError: Bool {
        switch self {
        case .disconnected, .closed: return true
        default: return false
        }
    }
}
