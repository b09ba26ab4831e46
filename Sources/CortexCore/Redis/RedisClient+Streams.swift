/// One entry of a Redis Stream.
public struct StreamEntry: Sendable, Equatable {
    /// The entry id, e.g. `1700000000000-0`.
    public var id: String
    public var fields: [String: String]
    public init(id: String, fields: [String: String]) {
        self.id = id
        self.fields = fields
    }
}

/// A pending entry as XPENDING's extended form reports it.
public struct PendingEntry: Sendable, Equatable {
    public var id: String
    public var consumer: String
    public var idleMilliseconds: Int
    public var deliveries: Int
}

extension RedisClient {
    /// XADD with an auto id; `maxLength` caps the stream approximately (`MAXLEN ~`).
    @discardableResult
    public func xadd(_ stream: String, fields: [(String, String)], maxLength: Int? = nil) async throws -> String {
        var args: [any RedisArgument] = ["XADD", stream]
        if let maxLength { args += ["MAXLEN", "~", maxLength] }
        args.append("*")
        for (k, v) in fields { args += [k, v] }
        let reply = try await send(args).orThrow()
        guard let id = reply.string else { throw RedisError.unexpectedReply("XADD returned \(reply)") }
        return id
    }

    /// Creates a consumer group (and the stream) unless it exists already.
    public func ensureGroup(_ stream: String, group: String, startID: String = "0") async throws {
        let reply = try await send("XGROUP", "CREATE", stream, group, startID, "MKSTREAM")
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
            throw RedisError.server(message)
        }
    }

    /// XREADGROUP over several streams. `ids` of ">" read new entries; "0" re-reads this consumer's pending ones.
    /// `block` of nil returns at once. Returns (stream, entry) pairs; entries deleted meanwhile are skipped.
    public func xreadgroup(
        group: String, consumer: String, streams: [String], ids: [String]? = nil,
        count: Int = 10, block: Duration? = nil
    ) async throws -> [(stream: String, entry: StreamEntry)] {
        var args: [any RedisArgument] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if let block { args += ["BLOCK", Int(block.components.seconds * 1000 + block.components.attoseconds / 1_000_000_000_000_000)] }
        args.append("STREAMS")
        args += streams.map { $0 as any RedisArgument }
        args += (ids ?? Array(repeating: ">", count: streams.count)).map { $0 as any RedisArgument }
        let reply = try await send(args).orThrow()
        return Self.parseStreams(reply)
    }

    /// XREAD (no group) from one stream after `lastID`, optionally blocking.
    public func xread(_ stream: String, after lastID: String, count: Int = 100, block: Duration? = nil) async throws -> [StreamEntry] {
        var args: [any RedisArgument] = ["XREAD", "COUNT", count]
        if let block { args += ["BLOCK", Int(block.components.seconds * 1000 + block.components.attoseconds / 1_000_000_000_000_000)] }
        args += ["STREAMS", stream, lastID]
        return Self.parseStreams(try await send(args).orThrow()).map { $0.entry }
    }

    /// XACK; returns how many entries were acknowledged.
    @discardableResult
    public func xack(_ stream: String, group: String, ids: [String]) async throws -> Int {
        guard !ids.isEmpty else { return 0 }
        return try await send(["XACK", stream, group] + ids.map { $0 as any RedisArgument }).orThrow().int ?? 0
    }

    /// XPENDING's extended form: up to `count` pending entries of the group.
    public func xpending(_ stream: String, group: String, count: Int = 100, consumer: String? = nil) async throws -> [PendingEntry] {
        var args: [any RedisArgument] = ["XPENDING", stream, group, "-", "+", count]
        if let consumer { args.append(consumer) }
        let reply = try await send(args).orThrow()
        return (reply.array ?? []).compactMap { item in
            guard let f = item.array, f.count >= 4, let id = f[0].string, let c = f[1].string,
                  let idle = f[2].int, let n = f[3].int else { return nil }
            return PendingEntry(id: id, consumer: c, idleMilliseconds: idle, deliveries: n)
        }
    }

    /// XAUTOCLAIM: takes over entries idle for at least `minIdle` and returns them (deleted ones are dropped by Redis).
    public func xautoclaim(_ stream: String, group: String, consumer: String, minIdle: Duration, count: Int = 10) async throws -> [StreamEntry] {
        let ms = Int(minIdle.components.seconds * 1000 + minIdle.components.attoseconds / 1_000_000_000_000_000)
        let reply = try await send("XAUTOCLAIM", stream, group, consumer, ms, "0-0", "COUNT", count).orThrow()
        guard let parts = reply.array, parts.count >= 2 else { return [] }
        return Self.parseEntries(parts[1])
    }

    /// XCLAIM: takes the given entries for `consumer` if idle at least `minIdle`; returns those it took.
    public func xclaim(_ stream: String, group: String, consumer: String, minIdle: Duration, ids: [String]) async throws -> [StreamEntry] {
        guard !ids.isEmpty else { return [] }
        let ms = Int(minIdle.components.seconds * 1000 + minIdle.components.attoseconds / 1_000_000_000_000_000)
        let reply = try await send(["XCLAIM", stream, group, consumer, ms] + ids.map { $0 as any RedisArgument }).orThrow()
        return Self.parseEntries(reply)
    }

    /// XRANGE from `start` to `end` (inclusive).
    public func xrange(_ stream: String, from start: String = "-", to end: String = "+", count: Int? = nil) async throws -> [StreamEntry] {
        var args: [any RedisArgument] = ["XRANGE", stream, start, end]
        if let count { args += ["COUNT", count] }
        return Self.parseEntries(try await send(args).orThrow())
    }

    static func parseStreams(_ reply: RedisReply) -> [(stream: String, entry: StreamEntry)] {
        var out: [(String, StreamEntry)] = []
        for streamReply in reply.array ?? [] {
            guard let pair = streamReply.array, pair.count == 2, let name = pair[0].string else { continue }
            for entry in parseEntries(pair[1]) { out.append((name, entry)) }
        }
        return out.map { (stream: $0.0, entry: $0.1) }
    }

    static func parseEntries(_ reply: RedisReply) -> [StreamEntry] {
        (reply.array ?? []).compactMap { item in
            guard let pair = item.array, pair.count == 2, let id = pair[0].string, !pair[1].isNull else { return nil }
            return StreamEntry(id: id, fields: pair[1].fieldMap)
        }
    }
}
