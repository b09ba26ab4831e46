/// Permission errors (Redis ACLs): a NOPERM reply means the process's Redis user lacks a key, channel or
/// command. Retrying cannot help, so callers that tolerate Redis failures (a cache miss, a lost checkpoint)
/// must not swallow this one: the work fails with the reason instead of quietly running without it.
extension RedisError {
    /// True for a NOPERM error reply, also when a Lua script's `redis.call` was refused.
    public var isPermissionDenied: Bool {
        if case .server(let message) = self { return RedisReply.isPermissionMessage(message) }
        return false
    }
}

extension RedisError {
    /// Whether an error's text (passed along as a string, e.g. a model call's failure reason) is a
    /// permission refusal by Redis.
    public static func mentionsPermissionDenial(_ text: String) -> Bool {
        text.contains("NOPERM") || text.contains("The user executing the script can't")
    }
}

extension RedisReply {
    /// NOPERM, or the same refusal met by a Lua script's `redis.call`, which Redis 7.0 reports as
    /// `ERR The user executing the script can't access at least one of the keys ...` (or `... run this command`).
    static func isPermissionMessage(_ message: String) -> Bool {
        message.hasPrefix("NOPERM") || message.contains("The user executing the script can't")
    }

    /// The NOPERM error of this reply, or nil when it is not one.
    public var permissionDenied: RedisError? {
        if case .error(let message) = self, Self.isPermissionMessage(message) { return .server(message) }
        return nil
    }
}

extension RedisClient {
    /// Runs a command whose failure the caller can live without: nil when Redis is unreachable, the reply
    /// otherwise (error replies included, as before), but a NOPERM is thrown, naming the command and key.
    public func sendUnlessDenied(_ args: any RedisArgument...) async throws -> RedisReply? {
        let reply: RedisReply
        do { reply = try await send(args) } catch let error as RedisError where error.isConnectionError { return nil }
        if let denied = reply.permissionDenied { throw Self.describe(denied, args) }
        return reply
    }

    /// What a transaction came to.
    public enum TransactionOutcome: Sendable {
        /// EXEC ran: one reply per command, in order (a command can still have failed at run time).
        case committed([RedisReply])
        /// Redis refused commands while queueing them (NOPERM, unknown command, wrong arity), so nothing
        /// was applied: the index of each refused command and the reason.
        case refused([(index: Int, reason: String)])
    }

    /// Runs `commands` in one MULTI/EXEC, in one round trip: all or nothing. A command the user may not run
    /// is refused at queue time and aborts the whole transaction, so a missing permission can never leave
    /// half of a commit applied.
    public func transaction(_ commands: [[any RedisArgument]]) async throws -> TransactionOutcome {
        let replies = try await pipeline([["MULTI"]] + commands + [["EXEC"]])
        try replies[0].orThrow()
        let queued = replies[1..<(replies.count - 1)]
        let refusals = queued.enumerated().compactMap { i, reply -> (index: Int, reason: String)? in
            guard case .error(let message) = reply else { return nil }
            return (i, Self.describe(.server(message), commands[i]).description)
        }
        if !refusals.isEmpty { return .refused(refusals) }
        guard let results = replies[replies.count - 1].array else {
            try replies[replies.count - 1].orThrow()
            throw RedisError.unexpectedReply("EXEC returned \(replies[replies.count - 1])")
        }
        return .committed(results)
    }

    /// The error with the command and its first argument (the key, for every command Cortex sends), so a
    /// log line or an item's failure says which permission is missing.
    static func describe(_ error: RedisError, _ args: [any RedisArgument]) -> RedisError {
        guard case .server(let message) = error else { return error }
        let words = args.prefix(2).map { String(decoding: $0.redisBytes.prefix(200), as: UTF8.self) }
        return .server("\(message) (\(words.joined(separator: " ")))")
    }
}
