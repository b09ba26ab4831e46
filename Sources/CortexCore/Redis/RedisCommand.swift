/// One Redis command, built by name — `.hset(key, ["status": "ready"])`, `.xadd(stream, minID: id, fields: …)` —
/// rather than as a raw array at the call site: every command Cortex sends is spelled here once, and
/// pipelines, transactions and the journal are lists of these (in the manner of RediStack's
/// `RedisClient+Commands`).
public struct RedisCommand: Sendable, Equatable, CustomStringConvertible {
    /// The command and its arguments as text (every Cortex argument is text or a number).
    public let parts: [String]

    /// A command from its parts; prefer the named constructors below.
    public init(_ parts: [String]) {
        precondition(!parts.isEmpty, "a Redis command needs a name")
        self.parts = parts
    }

    public init(_ name: String, _ args: any CustomStringConvertible...) {
        self.init([name] + args.map { "\($0)" })
    }

    /// The command's name (`HSET`).
    public var name: String { parts[0] }
    /// Its first argument, the key for every command Cortex sends.
    public var key: String? { parts.count > 1 ? parts[1] : nil }
    /// The arguments as the client sends them.
    public var arguments: [any RedisArgument] { parts }
    public var description: String { parts.joined(separator: " ") }

    // MARK: - Strings and keys

    public static func get(_ key: String) -> RedisCommand { .init("GET", key) }
    /// SET, with an expiry in milliseconds (`px`) or seconds (`ex`), only if absent (`nx`).
    public static func set(_ key: String, _ value: String, px: Int? = nil, ex: Int? = nil, nx: Bool = false) -> RedisCommand {
        var parts = ["SET", key, value]
        if let px { parts += ["PX", String(px)] }
        if let ex { parts += ["EX", String(ex)] }
        if nx { parts.append("NX") }
        return .init(parts)
    }
    public static func del(_ keys: String...) -> RedisCommand { .init(["DEL"] + keys) }
    public static func del(_ keys: [String]) -> RedisCommand { .init(["DEL"] + keys) }
    public static func unlink(_ keys: [String]) -> RedisCommand { .init(["UNLINK"] + keys) }
    public static func exists(_ key: String) -> RedisCommand { .init("EXISTS", key) }
    /// EXPIRE in seconds.
    public static func expire(_ key: String, seconds: Int) -> RedisCommand { .init("EXPIRE", key, seconds) }

    // MARK: - Hashes

    /// HSET of several fields, in the order given.
    public static func hset(_ key: String, _ fields: KeyValuePairs<String, any CustomStringConvertible>) -> RedisCommand {
        .init(["HSET", key] + fields.flatMap { [$0.key, "\($0.value)"] })
    }
    public static func hset(_ key: String, fields: [(String, String)]) -> RedisCommand {
        .init(["HSET", key] + fields.flatMap { [$0.0, $0.1] })
    }
    public static func hset(_ key: String, _ field: String, _ value: any CustomStringConvertible) -> RedisCommand { .init("HSET", key, field, value) }
    public static func hsetnx(_ key: String, _ field: String, _ value: String) -> RedisCommand { .init("HSETNX", key, field, value) }
    public static func hdel(_ key: String, _ fields: [String]) -> RedisCommand { .init(["HDEL", key] + fields) }
    public static func hget(_ key: String, _ field: String) -> RedisCommand { .init("HGET", key, field) }
    public static func hmget(_ key: String, _ fields: [String]) -> RedisCommand { .init(["HMGET", key] + fields) }
    public static func hgetall(_ key: String) -> RedisCommand { .init("HGETALL", key) }
    public static func hkeys(_ key: String) -> RedisCommand { .init("HKEYS", key) }
    public static func hvals(_ key: String) -> RedisCommand { .init("HVALS", key) }
    public static func hexists(_ key: String, _ field: String) -> RedisCommand { .init("HEXISTS", key, field) }
    public static func hlen(_ key: String) -> RedisCommand { .init("HLEN", key) }
    public static func hincrby(_ key: String, _ field: String, by amount: Int) -> RedisCommand { .init("HINCRBY", key, field, amount) }

    // MARK: - Sets and sorted sets

    public static func sadd(_ key: String, _ members: String...) -> RedisCommand { .init(["SADD", key] + members) }
    public static func sadd(_ key: String, members: [String]) -> RedisCommand { .init(["SADD", key] + members) }
    public static func srem(_ key: String, _ members: [String]) -> RedisCommand { .init(["SREM", key] + members) }
    public static func smembers(_ key: String) -> RedisCommand { .init("SMEMBERS", key) }
    public static func scard(_ key: String) -> RedisCommand { .init("SCARD", key) }
    public static func zadd(_ key: String, score: Int, _ member: String) -> RedisCommand { .init("ZADD", key, score, member) }
    public static func zcard(_ key: String) -> RedisCommand { .init("ZCARD", key) }
    public static func zscore(_ key: String, _ member: String) -> RedisCommand { .init("ZSCORE", key, member) }
    /// ZREMRANGEBYSCORE with the bounds as Redis reads them (`-inf`, `(123` for exclusive).
    public static func zremrangebyscore(_ key: String, min: String, max: String) -> RedisCommand { .init("ZREMRANGEBYSCORE", key, min, max) }
    public static func zrevrange(_ key: String, start: Int, stop: Int) -> RedisCommand { .init("ZREVRANGE", key, start, stop) }

    // MARK: - Lists

    public static func rpush(_ key: String, _ values: String...) -> RedisCommand { .init(["RPUSH", key] + values) }
    public static func lpush(_ key: String, _ values: String...) -> RedisCommand { .init(["LPUSH", key] + values) }
    public static func ltrim(_ key: String, start: Int, stop: Int) -> RedisCommand { .init("LTRIM", key, start, stop) }
    public static func lrange(_ key: String, start: Int, stop: Int) -> RedisCommand { .init("LRANGE", key, start, stop) }

    // MARK: - Streams

    /// XADD with an auto id, trimmed to entries newer than `minID` (`MINID ~`) or to about `maxLength`.
    public static func xadd(_ stream: String, minID: String? = nil, maxLength: Int? = nil, fields: [(String, String)]) -> RedisCommand {
        var parts = ["XADD", stream]
        if let minID { parts += ["MINID", "~", minID] }
        if let maxLength { parts += ["MAXLEN", "~", String(maxLength)] }
        return .init(parts + ["*"] + fields.flatMap { [$0.0, $0.1] })
    }
    public static func xack(_ stream: String, group: String, ids: [String]) -> RedisCommand { .init(["XACK", stream, group] + ids) }
    public static func xdel(_ stream: String, ids: [String]) -> RedisCommand { .init(["XDEL", stream] + ids) }
    /// XPENDING's extended form: entries from `from` to `to` (ids or `-`/`+`), of one consumer when given.
    public static func xpending(_ stream: String, group: String, from: String, to: String, count: Int, consumer: String? = nil) -> RedisCommand {
        .init(["XPENDING", stream, group, from, to, String(count)] + (consumer.map { [$0] } ?? []))
    }

    // MARK: - Pub/sub, scripts, server

    public static func publish(_ channel: String, _ message: String) -> RedisCommand { .init("PUBLISH", channel, message) }
    // Lua scripts are not commands here: they run through `RedisScript` (EVALSHA, loaded once; `runPipelined` for many calls).
    public static func info(_ section: String) -> RedisCommand { .init("INFO", section) }
    public static var dbsize: RedisCommand { .init("DBSIZE") }
    /// XPENDING's summary form: count, smallest and largest id, and pending entries per consumer.
    public static func xpendingSummary(_ stream: String, group: String) -> RedisCommand { .init("XPENDING", stream, group) }
    /// SHUTDOWN NOSAVE (the connection closes instead of a reply).
    public static var shutdownWithoutSaving: RedisCommand { .init("SHUTDOWN", "NOSAVE") }
    /// Asks a sentinel for the current primary of `name`: host and port.
    public static func sentinelPrimary(_ name: String) -> RedisCommand { .init("SENTINEL", "get-master-addr-by-name", name) }
    /// The `ACL SETUSER` line that creates or replaces a user with `rules`.
    public static func aclSetUser(_ username: String, rules: [String]) -> RedisCommand { .init(["ACL", "SETUSER", username] + rules) }
}

extension RedisClient {
    /// Sends one command.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RedisReply { try await send(command.arguments) }

    /// Sends the commands in one round trip; one reply per command (an error reply stays a reply).
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisReply] { try await pipeline(commands.map(\.arguments)) }

    /// The commands in one MULTI/EXEC (see `transaction(_:)` for what a refusal means).
    public func transaction(_ commands: [RedisCommand]) async throws -> TransactionOutcome { try await transaction(commands.map(\.arguments)) }

    /// Sends a command whose failure the caller can live without: nil when Redis is unreachable, the reply
    /// otherwise (error replies included), but a NOPERM is thrown, naming the command and key.
    public func sendUnlessDenied(_ command: RedisCommand) async throws -> RedisReply? {
        let reply: RedisReply
        do { reply = try await send(command) } catch let error as RedisError where error.isConnectionError { return nil }
        if let denied = reply.permissionDenied { throw Self.describe(denied, command.arguments) }
        return reply
    }

    /// Sends the commands in one round trip and throws the first error reply.
    public func run(_ commands: [RedisCommand]) async throws {
        for reply in try await pipeline(commands) { try reply.orThrow() }
    }

    // MARK: - Typed reads

    /// A hash's fields (empty when the key does not exist).
    public func hgetall(_ key: String) async throws -> [String: String] { try await send(.hgetall(key)).orThrow().fieldMap }
    public func hkeys(_ key: String) async throws -> [String] { try await send(.hkeys(key)).orThrow().array?.compactMap(\.string) ?? [] }
    public func hvals(_ key: String) async throws -> [String] { try await send(.hvals(key)).orThrow().array?.compactMap(\.string) ?? [] }
    public func hget(_ key: String, _ field: String) async throws -> String? { try await send(.hget(key, field)).orThrow().string }
    public func hexists(_ key: String, _ field: String) async throws -> Bool { try await send(.hexists(key, field)).orThrow().int == 1 }
    public func get(_ key: String) async throws -> String? { try await send(.get(key)).orThrow().string }
    public func exists(_ key: String) async throws -> Bool { try await send(.exists(key)).orThrow().int == 1 }
    public func smembers(_ key: String) async throws -> [String] { try await send(.smembers(key)).orThrow().array?.compactMap(\.string) ?? [] }
    public func lrange(_ key: String, start: Int, stop: Int) async throws -> [String] {
        try await send(.lrange(key, start: start, stop: stop)).orThrow().array?.compactMap(\.string) ?? []
    }
    /// A section of INFO as text.
    public func info(_ section: String) async throws -> String { try await send(.info(section)).orThrow().string ?? "" }
    public func zrevrange(_ key: String, start: Int, stop: Int) async throws -> [String] {
        try await send(.zrevrange(key, start: start, stop: stop)).orThrow().array?.compactMap(\.string) ?? []
    }
}
