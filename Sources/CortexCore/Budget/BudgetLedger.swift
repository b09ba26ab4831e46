import Foundation

/// Token budgets kept in Redis, changed only by Lua scripts so that concurrent callers in any number
/// of processes can never spend more than a budget holds.
///
/// A call first *reserves* its estimate on every account it draws from (a worker's own budget and its
/// master's worker budget, say), all or nothing; afterwards it *commits* the actual usage or *releases*
/// the reservation. The check and the hold happen in one atomic step, which is what LLM proxies that
/// check first and record later get wrong under concurrency.
public struct BudgetLedger: Sendable {
    public let redis: RedisClient
    public let runID: String

    public init(redis: RedisClient, runID: String) {
        self.redis = redis
        self.runID = runID
    }

    /// An account's figures.
    public struct Account: Codable, Sendable, Equatable {
        public var name: String
        public var limit: Int
        public var reserved: Int
        public var used: Int
        /// What can still be reserved.
        public var available: Int { limit - reserved - used }
        public init(name: String, limit: Int, reserved: Int, used: Int) {
            self.name = name
            self.limit = limit
            self.reserved = reserved
            self.used = used
        }
    }

    /// A held estimate, to be committed or released.
    public struct Reservation: Sendable, Equatable {
        public var id: String
        public var accounts: [String]
        public var amount: Int
    }

    /// Why a reservation was refused.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var account: String
        public var requested: Int
        public var available: Int
        public var description: String { "budget \(account) has \(available) tokens available, \(requested) requested" }
        public init(account: String, requested: Int, available: Int) {
            self.account = account
            self.requested = requested
            self.available = available
        }
    }

    /// Creates or resets accounts with their limits (run start).
    public func open(_ limits: [String: Int], retentionSeconds: Int = CortexNames.Retention.defaultSeconds) async throws {
        // The accounts outlive the run (for `cortexctl budget`) until the retention ends.
        let ttl = max(60, retentionSeconds)
        let commands: [RedisCommand] = limits.sorted { $0.key < $1.key }.flatMap { name, limit -> [RedisCommand] in
            [.hset(CortexNames.budgetAccount(runID, name), ["limit": limit, "reserved": 0, "used": 0]),
             .expire(CortexNames.budgetAccount(runID, name), seconds: ttl)]
        } + [.sadd(CortexNames.budgetAccounts(runID), members: limits.keys.sorted()),
             .expire(CortexNames.budgetAccounts(runID), seconds: ttl)]
        try await redis.run(commands)
    }

    static let reserveScript = RedisScript("""
        local amount = tonumber(ARGV[1])
        for i = 1, #KEYS - 1 do
          local a = redis.call('HMGET', KEYS[i], 'limit', 'reserved', 'used')
          if a[1] == false then return {0, i, -1} end
          local available = tonumber(a[1]) - tonumber(a[2]) - tonumber(a[3])
          if available < amount then return {0, i, available} end
        end
        for i = 1, #KEYS - 1 do redis.call('HINCRBY', KEYS[i], 'reserved', amount) end
        local fields = {'amount', amount}
        for i = 1, #KEYS - 1 do fields[#fields + 1] = 'account' .. i; fields[#fields + 1] = KEYS[i] end
        redis.call('HSET', KEYS[#KEYS], unpack(fields))
        redis.call('EXPIRE', KEYS[#KEYS], ARGV[2])
        return {1, 0, 0}
        """)

    /// Holds `amount` tokens on every account in `accounts`, or none of them.
    /// - Throws: `Refusal` naming the first account that cannot cover it.
    /// The reservation expires after `ttl` (a day: longer than any model call, and than a Redis outage the
    /// journal bridges) — only a process that died mid-call leaves one to expire.
    public func reserve(_ amount: Int, from accounts: [String], ttl: Duration = .seconds(86_400)) async throws -> Reservation {
        precondition(amount >= 0 && !accounts.isEmpty)
        let id = UUID().uuidString.lowercased()
        let keys = accounts.map { CortexNames.budgetAccount(runID, $0) } + [CortexNames.budgetReservation(runID, id)]
        let reply = try await Self.reserveScript.run(redis, keys: keys, args: [amount, Int(ttl / .seconds(1))]).orThrow().array ?? []
        guard reply.count == 3, let ok = reply[0].int else { throw RedisError.unexpectedReply("budget reserve returned \(reply)") }
        if ok == 1 { return Reservation(id: id, accounts: accounts, amount: amount) }
        let index = (reply[1].int ?? 1) - 1
        throw Refusal(account: accounts[max(0, min(index, accounts.count - 1))], requested: amount, available: reply[2].int ?? 0)
    }

    static let settleScript = RedisScript("""
        local r = redis.call('HGETALL', KEYS[1])
        if #r == 0 then return 0 end
        local amount = 0
        local accounts = {}
        for i = 1, #r, 2 do
          if r[i] == 'amount' then amount = tonumber(r[i + 1]) else accounts[#accounts + 1] = r[i + 1] end
        end
        local actual = tonumber(ARGV[1])
        for _, key in ipairs(accounts) do
          redis.call('HINCRBY', key, 'reserved', -amount)
          if actual > 0 then redis.call('HINCRBY', key, 'used', actual) end
        end
        redis.call('DEL', KEYS[1])
        return 1
        """)

    /// Turns a reservation into actual usage (which may be less, or — for a provider that reports more
    /// than estimated — more). Returns false if the reservation was already settled or expired.
    @discardableResult
    public func commit(_ reservation: Reservation, actual: Int) async throws -> Bool {
        try await Self.settleScript.run(redis, keys: [CortexNames.budgetReservation(runID, reservation.id)], args: [max(actual, 0)]).orThrow().int == 1
    }

    /// The plain commands that settle `reservation` as `actual` usage (0: released), for the journal when
    /// Redis cannot be reached: replayed only while the reservation key exists (`settleGuard`), so a
    /// settle that landed before the connection broke is not applied twice.
    public func settleCommands(_ reservation: Reservation, actual: Int) -> [RedisCommand] {
        reservation.accounts.flatMap { name -> [RedisCommand] in
            let key = CortexNames.budgetAccount(runID, name)
            return [.hincrby(key, "reserved", by: -reservation.amount)] + (actual > 0 ? [.hincrby(key, "used", by: actual)] : [])
        } + [.del(settleGuard(reservation))]
    }

    /// The key whose existence means `reservation` is not settled yet.
    public func settleGuard(_ reservation: Reservation) -> String { CortexNames.budgetReservation(runID, reservation.id) }

    /// Gives a reservation back unused (the call failed).
    @discardableResult
    public func release(_ reservation: Reservation) async throws -> Bool {
        try await Self.settleScript.run(redis, keys: [CortexNames.budgetReservation(runID, reservation.id)], args: [0]).orThrow().int == 1
    }

    static let transferScript = RedisScript("""
        local a = redis.call('HMGET', KEYS[1], 'limit', 'reserved', 'used')
        if a[1] == false or redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
        local available = tonumber(a[1]) - tonumber(a[2]) - tonumber(a[3])
        local amount = tonumber(ARGV[1])
        if available < amount then return available end
        redis.call('HINCRBY', KEYS[1], 'limit', -amount)
        redis.call('HINCRBY', KEYS[2], 'limit', amount)
        return amount
        """)

    /// Moves unreserved, unused limit from one account to another (a granted budget request).
    /// - Throws: `Refusal` when `from` cannot spare it.
    public func transfer(_ amount: Int, from: String, to: String) async throws {
        let moved = try await Self.transferScript.run(redis, keys: [CortexNames.budgetAccount(runID, from), CortexNames.budgetAccount(runID, to)], args: [amount]).orThrow().int ?? -1
        if moved != amount { throw Refusal(account: from, requested: amount, available: max(moved, 0)) }
    }

    static let reserveGrantScript = RedisScript("""
        local a = redis.call('HMGET', KEYS[1], 'limit', 'reserved', 'used')
        if a[1] == false or redis.call('EXISTS', KEYS[2]) == 0 or redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
        local available = tonumber(a[1]) - tonumber(a[2]) - tonumber(a[3])
        local amount = tonumber(ARGV[1])
        if available < amount then return available end
        redis.call('HINCRBY', KEYS[1], 'limit', -amount)
        redis.call('HINCRBY', KEYS[2], 'limit', amount)
        redis.call('HINCRBY', KEYS[3], 'limit', amount)
        return amount
        """)

    /// Raises `account`'s cap by `amount` out of the emergency reserve, atomically: the reserve gives it up
    /// and the run's cap grows by the same (the reserve lies outside the run's cap), so the tokens exist once.
    /// - Throws: `Refusal` when the reserve cannot spare it.
    public func grantFromReserve(_ amount: Int, to account: String) async throws {
        let keys = [BudgetPlan.reserveAccount, BudgetPlan.runAccount, account].map { CortexNames.budgetAccount(runID, $0) }
        let moved = try await Self.reserveGrantScript.run(redis, keys: keys, args: [amount]).orThrow().int ?? -1
        if moved != amount { throw Refusal(account: BudgetPlan.reserveAccount, requested: amount, available: max(moved, 0)) }
    }

    /// Every account of the run.
    public func accounts() async throws -> [Account] {
        let names = try await redis.smembers(CortexNames.budgetAccounts(runID)).sorted()
        let replies = try await redis.pipeline(names.map { .hmget(CortexNames.budgetAccount(runID, $0), ["limit", "reserved", "used"]) })
        return zip(names, replies).compactMap { name, reply in
            guard let f = reply.array, f.count == 3, let limit = f[0].int else { return nil }
            return Account(name: name, limit: limit, reserved: f[1].int ?? 0, used: f[2].int ?? 0)
        }
    }
}
