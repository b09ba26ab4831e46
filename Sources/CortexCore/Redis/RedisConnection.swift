import CHiredis
import Foundation

/// One synchronous hiredis connection. Not thread-safe: callers confine it to one thread, which is how
/// `RedisClient` (its `RedisConnectionThread`) and `RedisSubscriber` (its `BlockingExecutor`) use it.
final class RedisConnection: @unchecked Sendable {  // confined to one executor thread
    private var context: UnsafeMutablePointer<redisContext>?
    let endpoint: RedisEndpoint
    let connectTimeout: Duration
    let commandTimeout: Duration?

    init(endpoint: RedisEndpoint, connectTimeout: Duration, commandTimeout: Duration?) {
        self.address = (endpoint.host, endpoint.port)
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    deinit { close() }

    var isOpen: Bool { context != nil }

    /// Opens the socket, then AUTH and SELECT as the endpoint asks.
    /// Where the connection actually went (the primary a sentinel named, or the endpoint's address).
    private(set) var address: (host: String, port: Int)

    func open() throws {
        close()
        address = endpoint.sentinels.isEmpty ? (endpoint.host, endpoint.port) : try resolvePrimary()
        context = try Self.connect(address.host, address.port, timeout: connectTimeout)
        let ctx = context!
        if let commandTimeout { redisSetTimeout(ctx, Self.timeval(commandTimeout)) }
        redisEnableKeepAlive(ctx)
        do {
            if let password = endpoint.password {
                let args = endpoint.username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
                try command(args.map { Array($0.utf8) }).orThrow()
            }
            if endpoint.database != 0 {
                try command(["SELECT", String(endpoint.database)].map { Array($0.utf8) }).orThrow()
            }
            if !endpoint.sentinels.isEmpty {
                // A sentinel can answer with a stale address during a failover: only a primary will do.
                let role = try command([Array("ROLE".utf8)]).orThrow()
                guard role.array?.first?.string == "master" else {
                    throw RedisError.disconnected("\(address.host):\(address.port) is not the primary (\(role.array?.first?.string ?? "?")); asking the sentinels again")
                }
            }
        } catch {
            close()
            throw error
        }
    }

    private static func connect(_ host: String, _ port: Int, timeout: Duration) throws -> UnsafeMutablePointer<redisContext> {
        guard let ctx = redisConnectWithTimeout(host, Int32(port), timeval(timeout)) else {
            throw RedisError.disconnected("cannot allocate a hiredis context")
        }
        if ctx.pointee.err != 0 {
            let reason = errorText(ctx)
            redisFree(ctx)
            throw RedisError.disconnected("\(host):\(port): \(reason)")
        }
        return ctx
    }

    /// Asks each sentinel in turn for the primary's address (SENTINEL get-master-addr-by-name).
    private func resolvePrimary() throws -> (host: String, port: Int) {
        var reasons: [String] = []
        for sentinel in endpoint.sentinels {
            do {
                let probe = RedisConnection(endpoint: RedisEndpoint(host: sentinel.host, port: sentinel.port), connectTimeout: connectTimeout, commandTimeout: connectTimeout)
                probe.context = try Self.connect(sentinel.host, sentinel.port, timeout: connectTimeout)
                redisSetTimeout(probe.context!, Self.timeval(connectTimeout))
                defer { probe.close() }
                let reply = try probe.command(["SENTINEL", "get-master-addr-by-name", endpoint.masterName].map { Array($0.utf8) }).orThrow()
                if let parts = reply.array, parts.count == 2, let host = parts[0].string, let port = parts[1].int {
                    return (host, port)
                }
                reasons.append("\(sentinel.host):\(sentinel.port) does not know '\(endpoint.masterName)'")
            } catch {
                reasons.append("\(sentinel.host):\(sentinel.port): \(error)")
            }
        }
        throw RedisError.disconnected("no sentinel named a primary for '\(endpoint.masterName)': \(reasons.joined(separator: "; "))")
    }

    func close() {
        if let ctx = context { redisFree(ctx) }
        context = nil
    }

    /// Sends one command and reads its reply.
    func command(_ args: [[UInt8]]) throws -> RedisReply {
        try append(args)
        return try checkRole(readReply())
    }

    /// A READONLY error means this server was demoted in a failover: drop the connection so the
    /// next attempt finds the new primary.
    @discardableResult
    func checkRole(_ reply: RedisReply) throws -> RedisReply {
        if case .error(let message) = reply, message.hasPrefix("READONLY") {
            close()
            throw RedisError.disconnected("\(address.host):\(address.port) is read-only now (failover?): \(message)")
        }
        return reply
    }

    /// Queues a command in the output buffer (written on the next read).
    func append(_ args: [[UInt8]]) throws { try append(args.map { $0 as any RedisArgument }) }

    /// The arguments of the command being appended, laid end to end; reused (the connection lives on one thread).
    private var scratch: [UInt8] = []
    private var lengths: [Int] = []

    /// Queues a command in the output buffer (written on the next read). The arguments are copied once,
    /// into one buffer, and hiredis copies them from there into its output buffer.
    func append(_ args: [any RedisArgument]) throws {
        guard let ctx = context else { throw RedisError.disconnected("not connected") }
        scratch.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        for arg in args {
            let before = scratch.count
            switch arg {
            case let text as String: scratch.append(contentsOf: text.utf8)
            case let bytes as [UInt8]: scratch.append(contentsOf: bytes)
            default: scratch.append(contentsOf: arg.redisBytes)
            }
            lengths.append(scratch.count - before)
        }
        scratch.append(0)  // never empty, so the buffer has an address even when every argument is
        let status = scratch.withUnsafeBufferPointer { bytes -> Int32 in
            let base = UnsafeRawPointer(bytes.baseAddress!)
            var offset = 0
            var argv: [UnsafePointer<CChar>?] = []
            argv.reserveCapacity(lengths.count)
            for length in lengths {
                argv.append(base.advanced(by: offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            return lengths.withUnsafeBufferPointer { lens in
                argv.withUnsafeMutableBufferPointer { av in
                    redisAppendCommandArgv(ctx, Int32(lens.count), av.baseAddress, lens.baseAddress)
                }
            }
        }
        // A large command (a batch's results) leaves no large buffer behind on an idle connection.
        if scratch.capacity > 1 << 20 { scratch = [] }
        if status != REDIS_OK { throw failure() }
    }

    /// Reads the next reply, blocking up to the command timeout.
    func readReply() throws -> RedisReply {
        guard let ctx = context else { throw RedisError.disconnected("not connected") }
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(ctx, &raw) != REDIS_OK || raw == nil { throw failure() }
        let reply = raw!.assumingMemoryBound(to: redisReply.self)
        defer { cortex_free_reply(reply) }
        return Self.convert(reply)
    }

    /// Returns a reply already buffered, or waits up to `timeoutMilliseconds` for one; nil on timeout.
    func readReply(timeoutMilliseconds: Int32) throws -> RedisReply? {
        guard let ctx = context else { throw RedisError.disconnected("not connected") }
        var buffered: UnsafeMutablePointer<redisReply>?
        if cortex_buffered_reply(ctx, &buffered) != REDIS_OK { throw failure() }
        if let reply = buffered {
            defer { cortex_free_reply(reply) }
            return Self.convert(reply)
        }
        let ready = cortex_wait_readable(ctx, timeoutMilliseconds)
        if ready == 0 { return nil }
        if ready < 0 { throw failure(fallback: "socket closed") }
        if redisBufferRead(ctx) != REDIS_OK { throw failure() }
        if cortex_buffered_reply(ctx, &buffered) != REDIS_OK { throw failure() }
        guard let reply = buffered else { return nil }
        defer { cortex_free_reply(reply) }
        return Self.convert(reply)
    }

    /// Writes whatever is queued without reading (the subscriber sends PING this way).
    func flush() throws {
        guard let ctx = context else { throw RedisError.disconnected("not connected") }
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(ctx, &done) != REDIS_OK { throw failure() }
        }
    }

    private func failure(fallback: String = "connection lost") -> RedisError {
        let reason = context.map { Self.errorText($0) } ?? fallback
        close()  // a hiredis context that reported an I/O error cannot be reused
        return .disconnected("\(address.host):\(address.port): \(reason.isEmpty ? fallback : reason)")
    }

    private static func errorText(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: ctx.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func timeval(_ d: Duration) -> timeval {
        let (seconds, attoseconds) = d.components
        return Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let reply = r.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulk(reply.str.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(reply.len))) } ?? [])
        case REDIS_REPLY_STATUS:
            return .status(reply.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(reply.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(Int(reply.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(reply.elements))
            for i in 0..<Int(reply.elements) {
                if let child = reply.element[i] { items.append(convert(child)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }
}
