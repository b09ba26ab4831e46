/// A Lua script run by its SHA1 (EVALSHA), loaded on first use and again after the server lost its
/// script cache (a restart or a failover answers NOSCRIPT): large scripts are not resent on every call.
public final class RedisScript: Sendable {
    public let source: String
    private let sha = Locked<String?>(nil)

    public init(_ source: String) { self.source = source }

    /// Runs the script with `keys` and `args`; returns the reply (which may be a Redis error reply).
    public func run(_ redis: RedisClient, keys: [String] = [], args: [any RedisArgument] = []) async throws -> RedisReply {
        for _ in 0..<2 {
            let digest = try await load(redis)
            let reply = try await redis.send(["EVALSHA", digest, keys.count] + keys + args)
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                sha.withLock { $0 = nil }
                continue
            }
            return reply
        }
        throw RedisError.server("NOSCRIPT twice for one script")
    }

    /// Runs the script once per call, all in one round trip (EVALSHA each); calls answered NOSCRIPT (the
    /// cache was lost in between) are sent again after the script is loaded anew. One reply per call.
    public func runPipelined(_ redis: RedisClient, calls: [(keys: [String], args: [any RedisArgument])]) async throws -> [RedisReply] {
        guard !calls.isEmpty else { return [] }
        var replies = [RedisReply?](repeating: nil, count: calls.count)
        for _ in 0..<2 {
            let digest = try await load(redis)
            let open = replies.indices.filter { replies[$0] == nil }
            let sent = try await redis.pipeline(open.map { i -> [any RedisArgument] in
                ["EVALSHA", digest, calls[i].keys.count] + calls[i].keys + calls[i].args
            })
            var lost = false
            for (i, reply) in zip(open, sent) {
                if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") { lost = true } else { replies[i] = reply }
            }
            if !lost { return replies.map { $0! } }
            sha.withLock { $0 = nil }
        }
        throw RedisError.server("NOSCRIPT twice for one script")
    }

    /// The script's digest, loading it when it is not known yet.
    private func load(_ redis: RedisClient) async throws -> String {
        if let known = sha.value { return known }
        guard let loaded = try await redis.send("SCRIPT", "LOAD", source).orThrow().string else {
            throw RedisError.server("SCRIPT LOAD returned no digest")
        }
        sha.withLock { $0 = loaded }
        return loaded
    }
}
