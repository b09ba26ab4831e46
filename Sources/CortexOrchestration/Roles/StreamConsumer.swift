import CortexCore
import Logging

/// Reads a consumer group's streams with at-least-once delivery: first this consumer's own pending
/// entries (left by an earlier life of the same identity), then entries other consumers left idle
/// for longer than `claimIdle` (XAUTOCLAIM), then new entries (blocking XREADGROUP).
struct StreamConsumer {
    /// A delivered entry; `redelivered` when it had been delivered before.
    struct Delivery {
        var stream: String
        var entry: StreamEntry
        var redelivered: Bool
        /// How many times Redis has delivered the entry, counting this time (known for redeliveries).
        var deliveries: Int?
    }

    let redis: RedisClient
    let group: String
    let consumer: String
    let streams: [String]
    let claimIdle: Duration
    let block: Duration
    private var pendingChecked = false
    private var lastClaim: ContinuousClock.Instant? = nil

    init(redis: RedisClient, group: String, consumer: String, streams: [String], claimIdle: Duration, block: Duration = .seconds(1)) {
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.streams = streams
        self.claimIdle = claimIdle
        self.block = block
    }

    /// Creates the consumer groups (idempotent).
    func prepare() async throws {
        for s in streams { try await redis.ensureGroup(s, group: group) }
    }

    /// How many entries one read may take: `total` across the streams, and at most `limits[stream]` from a
    /// stream that has a limit (0: none from it this time) — a worker's per-pool concurrency.
    struct ReadRoom: Equatable {
        var total: Int
        var limits: [String: Int] = [:]

        /// How many entries `stream` may give this time.
        func room(for stream: String) -> Int { min(total, limits[stream] ?? total) }
    }

    /// The next deliveries; empty when the block time passed with nothing new.
    mutating func next(count: Int = 1) async throws -> [Delivery] { try await next(room: ReadRoom(total: count)) }

    /// The next deliveries within `room`; empty when the block time passed with nothing new.
    ///
    /// XREADGROUP has one COUNT for all its streams, so streams with a limit of their own are read apart:
    /// first without blocking (at most the smallest of their limits), then the others with a blocking read.
    /// An entry arriving on a limited stream during that blocking read waits for the next read (at most
    /// `block`); a worker whose every stream is limited blocks on those.
    mutating func next(room: ReadRoom) async throws -> [Delivery] {
        if !pendingChecked {
            pendingChecked = true
            // Entries an earlier life of this consumer left are ours already, whatever the room: take them all.
            let own = try await redis.xreadgroup(group: group, consumer: consumer, streams: streams, ids: streams.map { _ in "0" }, count: 100)
            if !own.isEmpty { return try await withDeliveryCounts(own.map { Delivery(stream: $0.stream, entry: $0.entry, redelivered: true) }) }
        }
        // Claiming more often than half the idle time would only find nothing.
        if lastClaim.map({ ContinuousClock.now - $0 >= claimIdle / 2 }) ?? true {
            lastClaim = .now
            for s in streams where room.room(for: s) > 0 {
                let claimed = try await redis.xautoclaim(s, group: group, consumer: consumer, minIdle: claimIdle, count: room.room(for: s))
                if !claimed.isEmpty { return try await withDeliveryCounts(claimed.map { Delivery(stream: s, entry: $0, redelivered: true) }) }
            }
        }
        let limited = streams.filter { room.limits[$0] != nil && room.room(for: $0) > 0 }
        let open = streams.filter { room.limits[$0] == nil }
        let limitedCount = limited.map { room.room(for: $0) }.min() ?? 0
        if !limited.isEmpty && !open.isEmpty {
            let read = try await redis.xreadgroup(group: group, consumer: consumer, streams: limited, count: limitedCount)
            if !read.isEmpty { return read.map { Delivery(stream: $0.stream, entry: $0.entry, redelivered: false) } }
        }
        let (blocking, count) = open.isEmpty ? (limited, limitedCount) : (open, room.total)
        guard !blocking.isEmpty, count > 0 else {
            // Nothing may be read now (the caller's room said otherwise a moment ago): wait as a read would.
            try? await Task.sleep(for: block)
            return []
        }
        return try await redis.xreadgroup(group: group, consumer: consumer, streams: blocking, count: count, block: block)
            .map { Delivery(stream: $0.stream, entry: $0.entry, redelivered: false) }
    }

    /// Leaves an entry this consumer holds pending with `deliveries` as its delivery count and idle for
    /// `idle` (XCLAIM … IDLE … RETRYCOUNT … JUSTID to itself: JUSTID does not count a delivery), so the next
    /// XAUTOCLAIM of another consumer takes it and counts one delivery more.
    static func passOn(stream: String, group: String, consumer: String, entryID: String, deliveries: Int, idle: Duration, redis: RedisClient) async throws {
        let ms = Int(idle.components.seconds * 1000 + idle.components.attoseconds / 1_000_000_000_000_000)
        _ = try await redis.send("XCLAIM", stream, group, consumer, 0, entryID, "IDLE", ms, "RETRYCOUNT", max(0, deliveries), "JUSTID").orThrow()
    }

    /// Looks up how often each redelivered entry has been delivered (one XPENDING per entry; redeliveries are rare).
    private func withDeliveryCounts(_ deliveries: [Delivery]) async throws -> [Delivery] {
        var out = deliveries
        for i in out.indices {
            let reply = try await redis.send(.xpending(out[i].stream, group: group, from: out[i].entry.id, to: out[i].entry.id, count: 1)).orThrow()
            out[i].deliveries = reply.array?.first?.array.flatMap { $0.count >= 4 ? $0[3].int : nil }
        }
        return out
    }

    /// The commands that acknowledge a processed entry and delete it: it has no further use, and deleting
    /// it keeps the stream as long as its backlog (CORTEX_RETENTION trims what is never read).
    static func acknowledged(_ delivery: Delivery, group: String) -> [RedisCommand] {
        [.xack(delivery.stream, group: group, ids: [delivery.entry.id]), .xdel(delivery.stream, ids: [delivery.entry.id])]
    }

    /// Hands each delivery to `handle` until graceful shutdown begins; read errors (Redis away) are
    /// logged, counted and retried after a second, never fatal.
    mutating func consume(context: ProcessContext, operation: String, handle: (Delivery) async -> Void) async {
        await consumeBatches(context: context, operation: operation, room: { ReadRoom(total: 1) }) { deliveries in
            for delivery in deliveries { await handle(delivery) }
        }
    }

    /// Hands the deliveries of each read to `handle` until graceful shutdown begins, asking the stream for
    /// as many entries as `room` says there is room for (it may wait until there is some).
    mutating func consumeBatches(context: ProcessContext, operation: String, room: () async -> ReadRoom, handle: ([Delivery]) async -> Void) async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let room = await room()
            do {
                await handle(try await next(room: room))
            } catch RedisError.server(let message) where message.hasPrefix("NOGROUP") {
                // The stream or group vanished (a failover to a replica that never had it, a FLUSHALL): recreate, carry on.
                context.logger.warning("\(operation): \(message); recreating the consumer group")
                try? await prepare()
            } catch {
                context.metrics.redisError(operation: operation)
                context.logger.warning("\(operation) failed: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Keeps a delivery's idle time low while it is being worked on, so a long task or item is not claimed
    /// by another consumer (a standby replica, another worker) as if we had died: every third of the claim
    /// timeout, if the entry is still pending under our name, XCLAIM ... JUSTID to ourselves resets its idle
    /// time without counting a delivery. If another consumer took it meanwhile (a refresh came too late),
    /// it is left to them — taking it back would have two consumers working on it for good — and that is
    /// logged: the result counts once either way (results and reports are written once).
    /// Cancel the returned task when the work ends.
    static func keepAlive(_ delivery: Delivery, group: String, consumer: String, claimIdle: Duration, redis: RedisClient, logger: Logger) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: max(claimIdle / 3, .milliseconds(200)))
                if Task.isCancelled { break }
                do {
                    let mine = try await keepAliveScript.run(redis, keys: [delivery.stream], args: [group, consumer, delivery.entry.id]).orThrow().int
                    if mine == 0 {
                        logger.warning("\(delivery.entry.id) on \(delivery.stream) was claimed by another consumer while this one worked on it; left to them")
                        return
                    }
                } catch {
                    // A missed refresh only risks a redelivery, which results and reports absorb.
                    logger.debug("keep-alive of \(delivery.entry.id) failed: \(error)")
                }
            }
        }
    }

    /// XCLAIM ... JUSTID only while the entry is still pending under this consumer (KEYS[1] stream;
    /// ARGV: group, consumer, entry id). Returns 1 when refreshed, 0 when it is not ours any more.
    static let keepAliveScript = RedisScript("""
        local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
        if #p == 0 then return 0 end
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
        return 1
        """)

    /// Returns an entry to its stream as a new entry (with `fields`) and acknowledges (and deletes) the old one, atomically,
    /// so the next reader takes it at once instead of after the visibility timeout.
    static func handBack(stream: String, group: String, entryID: String, fields: [String: String], redis: RedisClient) async throws {
        var args: [any RedisArgument] = [group, entryID]
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
        try await handBackScript.run(redis, keys: [stream], args: args).orThrow()
    }

    /// XADD a copy (KEYS[1] stream; ARGV: group, entry id, then field, value, …), XACK and XDEL the original.
    static let handBackScript = RedisScript("""
        local args = {'XADD', KEYS[1], '*'}
        for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
        redis.call(unpack(args))
        local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        return acked
        """)

    /// Moves an entry that cannot be read to the dead-letter stream, with the reason, and acknowledges it:
    /// kept for the operator instead of dropped or retried forever.
    static func deadLetter(_ delivery: Delivery, group: String, reason: String, context: ProcessContext) async {
        let size = delivery.entry.fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        context.logger.error("\(reason): entry moved to \(CortexNames.deadLetters)", metadata: [
            LogKey.stream: "\(delivery.stream)", LogKey.entry: "\(delivery.entry.id)", LogKey.entryBytes: "\(size)",
        ])
        context.metrics.deadLettered(reason: "malformed")
        do {
            // Capped like every stream: the dead letters are for the operator to look at, not an archive.
            try await context.redis.run([
                .xadd(CortexNames.deadLetters, maxLength: CortexNames.Retention.deadLetterLength, fields: [
                    ("stream", delivery.stream), ("entry", delivery.entry.id), ("reason", reason),
                    ("fields", JSONValue.object(delivery.entry.fields.mapValues { .string($0) }).description),
                ]),
            ] + acknowledged(delivery, group: group))
        } catch {
            // Still pending: it comes back after the claim timeout and is dead-lettered then.
            context.logger.warning("could not dead-letter \(delivery.entry.id) (it stays pending and is retried): \(error)")
        }
    }
}

/// Wakes waiters when something relevant happened (an event arrived), so waits are event-driven
/// with a bounded re-check instead of fixed sleeps.
actor EventSignal {
    private var generation = 0
    private var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]

    func fire() {
        generation += 1
        let all = waiters
        waiters = [:]
        for (_, c) in all { c.resume() }
    }

    /// Returns when `fire()` is called or `timeout` passes.
    func wait(timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.release(id)
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                waiters[id] = c
            }
            group.cancelAll()
        }
    }

    private func release(_ id: UUID) {
        waiters.removeValue(forKey: id)?.resume()
    }
}

import Foundation
