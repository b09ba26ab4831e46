import CortexCore
import Foundation

/// Per-file results of the file-sharded skills, kept between runs so a re-run on an unchanged target
/// reuses them instead of reading every file again (docs/architecture.md, "Incremental runs").
///
/// One Redis hash per skill, skill version and target (`CortexNames.fileCache`): field = the file's path,
/// value = `{"blob": <git blob id>, "records": [...]}`, the records the skill made of that file. An entry
/// is used only when its blob id is the file's id now, so a changed file is examined again and an
/// unchanged one is not; a new skill version is a new key, so nothing an older version made is used.
/// The cache is bounded (`CORTEX_FILE_CACHE_MAX_MB`): when it is over, whole keys go, least recently
/// used first. An entry that is not of this shape is reported and the file examined again; Redis being
/// away costs the reuse, never the run.
public struct FileResultCache: Sendable {
    let redis: RedisClient
    /// The bound on the bytes of all cached entries (fields and values).
    let maxBytes: Int

    /// Cache keys untouched this long expire (a target nobody scans any more).
    static let ttlSeconds = 30 * 86_400
    /// The field of the cache hash naming its target (a path in a listing never starts with "/").
    static let targetField = "/target"
    /// Fields per HMGET or per store call, so one reply or script call stays small.
    static let batch = 1_000

    /// When this process last marked each key used: items of one task share a key, and marking it once
    /// per `touchEvery` instead of once per item keeps two commands per item off Redis.
    let touches = Locked<[String: Int]>([:])
    /// Seconds a mark of use stands for (the eviction order is by the second of last use; the TTL is 30 days).
    static let touchEvery = 10

    public init(redis: RedisClient, maxBytes: Int) {
        self.redis = redis
        self.maxBytes = maxBytes
    }

    /// Whether `key` should be marked used now (not marked by this process in the last `touchEvery` seconds).
    func dueForTouch(_ key: String, now: Int) -> Bool {
        touches.withLock { t in
            if let last = t[key], now - last < Self.touchEvery { return false }
            if t.count > 10_000 { t.removeAll() }  // a bound: forgetting a mark only costs a repeated one
            t[key] = now
            return true
        }
    }

    /// The cache's settings: nil when it is switched off (`CORTEX_FILE_CACHE_MAX_MB=0`).
    public static func configured(redis: RedisClient, settings: SettingValues) throws -> FileResultCache? {
        let mb = try settings.int(.fileCacheMaxMB, range: 0...1_048_576)
        return mb == 0 ? nil : FileResultCache(redis: redis, maxBytes: mb * 1_048_576)
    }

    /// One skill version's results on one target: what a key of the cache holds.
    public struct Scope: Sendable, Equatable {
        /// `<skill>@<version>`.
        public var skillVersion: String
        public var target: String

        public init(skill: SkillName, version: Int, target: String) { self.init(skillVersion: "\(skill.rawValue)@\(version)", target: target) }
        public init(skillVersion: String, target: String) {
            self.skillVersion = skillVersion
            self.target = target
        }

        /// Its Redis key.
        public var key: String { CortexNames.fileCache(skillVersion, RepositoryFiles.hash(target)) }
    }

    /// What a lookup found: the records of each file whose entry matches its blob id, and the paths whose
    /// entry could not be read (not JSON, or not of the entry's shape).
    public struct Lookup: Sendable {
        public var hits: [String: [SkillRecord]] = [:]
        public var unreadable: [String] = []
    }

    /// The cached records of `files` (path -> blob id) under `key`, and touches the key (it was used).
    public func lookup(_ scope: Scope, files: [(path: String, blob: String)]) async throws -> Lookup {
        let key = scope.key
        var found = Lookup()
        var start = 0
        while start < files.count {
            let slice = files[start..<min(start + Self.batch, files.count)]
            start += Self.batch
            let values = try await redis.send(.hmget(key, slice.map(\.path))).orThrow().array ?? []
            for (file, value) in zip(slice, values) {
                guard case .bulk(let bytes) = value else { continue }  // not cached
                guard let entry = Self.decode(bytes) else { found.unreadable.append(file.path); continue }
                if entry.blob == file.blob { found.hits[file.path] = entry.records }
            }
        }
        let now = Int(Date().timeIntervalSince1970)
        if !found.hits.isEmpty, dueForTouch(key, now: now) {
            // Used: it is the most recently used key now, and lives another TTL.
            do {
                try await redis.run([.zadd(CortexNames.fileCacheIndex, score: now, key), .expire(key, seconds: Self.ttlSeconds)])
            } catch {
                touches.withLock { $0[key] = nil }  // not marked after all: the next lookup tries again
                throw error
            }
        }
        return found
    }

    /// What storing came to: keys evicted to stay under the bound, and whether this key itself had to go
    /// (one target's results larger than the whole bound).
    public struct Stored: Sendable, Equatable {
        public var evicted: Int
        public var droppedSelf: Bool
    }

    /// Stores the records of freshly examined files in `scope`, evicting least recently used keys while
    /// the cache is over its bound.
    @discardableResult
    public func store(_ scope: Scope, entries: [(path: String, blob: String, records: [SkillRecord])]) async throws -> Stored {
        let key = CortexNames.fileCache(scope.skillVersion, RepositoryFiles.hash(scope.target))
        var result = Stored(evicted: 0, droppedSelf: false)
        var start = 0
        while start < entries.count {
            let slice = entries[start..<min(start + Self.batch, entries.count)]
            start += Self.batch
            var args: [any RedisArgument] = [Int(Date().timeIntervalSince1970), maxBytes, Self.ttlSeconds, Self.targetField, scope.target]
            for e in slice {
                args.append(e.path)
                args.append(JSONText.serialize(.object(["blob": .string(e.blob), "records": .array(e.records.map { .object($0) })])))
            }
            let reply = try await Self.storeScript.run(redis, keys: [key, CortexNames.fileCacheIndex, CortexNames.fileCacheBytes], args: args).orThrow()
            let numbers = reply.array?.compactMap(\.int) ?? []
            result.evicted += numbers.count > 1 ? numbers[1] : 0
            if numbers.count > 2, numbers[2] == 1 { result.droppedSelf = true; break }
        }
        return result
    }

    /// An entry, or nil when the bytes are not `{"blob": string, "records": [object]}`.
    static func decode(_ bytes: [UInt8]) -> (blob: String, records: [SkillRecord])? {
        guard let value = try? JSONText.parse(bytes), let blob = value["blob"]?.stringValue, let list = value["records"]?.arrayValue else { return nil }
        var records: [SkillRecord] = []
        records.reserveCapacity(list.count)
        for r in list {
            guard let object = r.objectValue else { return nil }
            records.append(object)
        }
        return (blob, records)
    }

    /// Writes entries and keeps the accounting: `fileCacheBytes` holds each key's bytes and the total
    /// (field `/total`), `fileCacheIndex` each key's last use. A key that expired since its bytes were
    /// counted starts from zero. A key that would be over the bound on its own is deleted, marked too big
    /// for a day (field `/too-big/<key>`: later stores of it, from this or another shard, write nothing and
    /// evict nothing), and nothing else is touched; otherwise, over the bound, the least recently used other
    /// keys are unlinked (reply: total, evicted, dropped-self).
    /// KEYS: cache hash, index, bytes. ARGV: now, max bytes, ttl, then field/value pairs.
    /// (Evicted keys are not declared in KEYS: fine on one Redis with Sentinel, not on Redis Cluster.)
    static let storeScript = RedisScript("""
    local key, index, sizes = KEYS[1], KEYS[2], KEYS[3]
    local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
    local marker = '/too-big/' .. key
    local marked = tonumber(redis.call('HGET', sizes, marker) or '0')
    if now - marked < 86400 then return {tonumber(redis.call('HGET', sizes, '/total') or '0'), 0, 1} end
    if redis.call('EXISTS', key) == 0 then
      local stale = tonumber(redis.call('HGET', sizes, key) or '0')
      if stale ~= 0 then redis.call('HINCRBY', sizes, '/total', -stale) end
      redis.call('HDEL', sizes, key)
    end
    local delta = 0
    for i = 4, #ARGV, 2 do
      local old = redis.call('HSTRLEN', key, ARGV[i])
      if old > 0 then delta = delta - old - #ARGV[i] end
      delta = delta + #ARGV[i] + #ARGV[i + 1]
    end
    local own = tonumber(redis.call('HGET', sizes, key) or '0')
    if own + delta > limit then
      redis.call('UNLINK', key)
      redis.call('ZREM', index, key)
      redis.call('HDEL', sizes, key)
      redis.call('HSET', sizes, marker, now)
      if own ~= 0 then redis.call('HINCRBY', sizes, '/total', -own) end
      return {tonumber(redis.call('HGET', sizes, '/total') or '0'), 0, 1}
    end
    for i = 4, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
    redis.call('EXPIRE', key, ARGV[3])
    redis.call('ZADD', index, now, key)
    redis.call('HINCRBY', sizes, key, delta)
    local total = redis.call('HINCRBY', sizes, '/total', delta)
    local evicted = 0
    while total > limit do
      local oldest = redis.call('ZRANGE', index, 0, 1)
      local victim = oldest[1]
      if victim == key then victim = oldest[2] end
      if not victim then break end
      local bytes = tonumber(redis.call('HGET', sizes, victim) or '0')
      redis.call('UNLINK', victim)
      redis.call('ZREM', index, victim)
      redis.call('HDEL', sizes, victim)
      if bytes ~= 0 then total = redis.call('HINCRBY', sizes, '/total', -bytes) end
      evicted = evicted + 1
    end
    return {total, evicted, 0}
    """)

    /// One cached skill result set, as `cortexctl memory show` lists it.
    public struct Summary: Sendable {
        public var key: String
        /// `<skill>@<version>`.
        public var skill: String
        public var target: String
        public var files: Int
        public var bytes: Int
        public var lastUsed: Date?
    }

    /// Every cached result set, most recently used first.
    public static func summaries(redis: RedisClient) async throws -> [Summary] {
        let keys = try await redis.zrevrange(CortexNames.fileCacheIndex, start: 0, stop: -1)
        guard !keys.isEmpty else { return [] }
        let sizes = try await redis.hgetall(CortexNames.fileCacheBytes)
        var out: [Summary] = []
        for key in keys {
            let replies = try await redis.pipeline([.hget(key, targetField), .hlen(key), .zscore(CortexNames.fileCacheIndex, key)])
            guard let target = replies[0].string else { continue }  // expired since
            let skill = key.split(separator: ":").dropFirst(2).first.map(String.init) ?? "?"
            out.append(Summary(key: key, skill: skill, target: target, files: max(0, (replies[1].int ?? 1) - 1), bytes: Int(sizes[key] ?? "0") ?? 0,
                               lastUsed: replies[2].string.flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }))
        }
        return out
    }

    /// Deletes cached result sets and their accounting (`cortexctl memory forget`).
    public static func forget(redis: RedisClient, keys: [String]) async throws {
        for key in keys { _ = try await forgetScript.run(redis, keys: [key, CortexNames.fileCacheIndex, CortexNames.fileCacheBytes]).orThrow() }
    }

    static let forgetScript = RedisScript("""
    local bytes = tonumber(redis.call('HGET', KEYS[3], KEYS[1]) or '0')
    redis.call('UNLINK', KEYS[1])
    redis.call('HDEL', KEYS[3], '/too-big/' .. KEYS[1])
    redis.call('ZREM', KEYS[2], KEYS[1])
    redis.call('HDEL', KEYS[3], KEYS[1])
    if bytes ~= 0 then redis.call('HINCRBY', KEYS[3], '/total', -bytes) end
    return tonumber(redis.call('HGET', KEYS[3], '/total') or '0')
    """)
}
