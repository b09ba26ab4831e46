/// A Lua script run by its SHA1 (EVALSHA), loaded on first use and again after the server lost its
/// script cache (a restart or a failover answers NOSCRIPT): large scripts are not resent on every call.
public final class RedisScript: Sendable {
    public let source: String
    private let sha = Locked<String?>(nil)

    public init(_ source: String) { self.source = source }

    /// Runs the script with `keys` and `args`; returns the reply (which may be a Redis error reply).
    public func run(_ redis: RedisClient, keys: [String] = [], args: [any RedisArgument] = []) async throws -> RedisReply {
        for _ in 0..<2 {
            let digest: String
            if let known = sha.value {
                digest = known
            } else {
                guard let loaded = try await redis.send("SCRIPT", "LOAD", source).orThrow().string else {
                    throw RedisError.server("SCRIPT LOAD returned no digest")
                }
                sha.withLock { $0 = loaded }
                digest = loaded
            }
            let reply = try await redis.send(["EVALSHA", digest, keys.count] + keys + args)
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
                sha.withLock { $0 = nil }
                continue
            }
            return reply
        }
        throw RedisError.server("NOSCRIPT twice for one script")
    }
}
