import CortexCore
import Foundation
import Logging

/// One thing a master learned from an outcome, kept between runs: e.g. that the automatic bump of a
/// package for an advisory failed its tests and needs a person, so the next run does not try again.
public struct Learning: Codable, Sendable, Equatable {
    /// What it is about, unique per master: `fix|<ecosystem>|<package>|<advisory>`, `file-costs|<skill>|<target hash>`.
    public var key: String
    /// `fix-outcome` or `file-costs`.
    public var kind: String
    /// `needs-human-review` or `fixed` (fix outcomes); `measured` (file costs).
    public var outcome: String
    /// One line for people: what happened, where, in which run.
    public var detail: String
    /// The repository it was learned on (its name).
    public var target: String
    public var runID: String
    public var learnedAt: Date
    /// What a learning carries beyond its line (file costs: `FileCosts`); absent for fix outcomes.
    public var data: JSONValue?

    public init(key: String, kind: String, outcome: String, detail: String, target: String, runID: String, learnedAt: Date = Date(), data: JSONValue? = nil) {
        self.data = data
        self.key = key
        self.kind = kind
        self.outcome = outcome
        self.detail = detail
        self.target = target
        self.runID = runID
        self.learnedAt = learnedAt
    }

    /// The key of a fix outcome for one vulnerable package and advisory (package names compared lower-cased).
    public static func fixKey(ecosystem: String, package: String, advisory: String) -> String {
        "fix|\(ecosystem)|\(package.lowercased())|\(advisory)"
    }
}

/// The mirror file of one master's learnings: `CORTEX_COORDINATION_DIR/masters/<master>/learnings.json`.
public struct LearningsFile: Codable, Sendable, Equatable {
    /// The schema's version (1); a file of another version is not read, and is rebuilt from Redis.
    public var version: Int
    public var master: String
    public var updatedAt: Date
    public var learnings: [Learning]

    public static let currentVersion = 1
}

/// A master's learnings: in Redis (`cortex:learnings:<master>`, a hash key → Learning JSON, no TTL) and
/// mirrored, human-readable, to `masters/<master>/learnings.json` under the coordination directory
/// (written atomically after every change). When Redis has none (it was emptied), they are restored
/// from the file; a corrupt file is reported and rebuilt from Redis, never trusted and never a crash.
public struct LearningStore: Sendable {
    let redis: RedisClient
    public let master: String
    public let file: URL

    public init(redis: RedisClient, master: String, coordinationDirectory: URL) {
        self.redis = redis
        self.master = master
        file = coordinationDirectory.appendingPathComponent("masters").appendingPathComponent(master).appendingPathComponent("learnings.json")
    }

    /// Every learning, by key.
    public func all() async throws -> [String: Learning] {
        var out: [String: Learning] = [:]
        for (key, text) in try await redis.hgetall(CortexNames.learnings(master)) {
            // One unreadable entry is skipped (and reported by `cortexctl memory show`), not fatal.
            if let l = try? WireJSON.decode(Learning.self, from: text) { out[key] = l }
        }
        return out
    }

    /// The learnings with these keys (missing ones absent).
    public func get(_ keys: [String]) async throws -> [String: Learning] {
        guard !keys.isEmpty else { return [:] }
        let values = try await redis.send(.hmget(CortexNames.learnings(master), keys)).orThrow().array ?? []
        var out: [String: Learning] = [:]
        for (key, value) in zip(keys, values) {
            if let text = value.string, let l = try? WireJSON.decode(Learning.self, from: text) { out[key] = l }
        }
        return out
    }

    /// Records learnings (replacing those with the same keys) and rewrites the mirror file.
    public func record(_ learnings: [Learning]) async throws {
        guard !learnings.isEmpty else { return }
        let fields = try learnings.map { ($0.key, try WireJSON.encode($0)) }
        try await redis.run([.hset(CortexNames.learnings(master), fields: fields)])
        try await mirror()
    }

    /// Removes learnings (all when `keys` is nil) and rewrites the mirror file; returns how many went.
    @discardableResult
    public func forget(_ keys: [String]? = nil) async throws -> Int {
        let existing = try await all()
        let doomed = keys.map { ks in ks.filter { existing[$0] != nil } } ?? Array(existing.keys)
        guard !doomed.isEmpty else { return 0 }
        try await redis.run([.hdel(CortexNames.learnings(master), doomed)])
        try await mirror()
        return doomed.count
    }

    /// Writes the file from what Redis holds (atomically: a temporary file renamed over it).
    public func mirror() async throws {
        let learnings = try await all().values.sorted { $0.key < $1.key }
        let body = LearningsFile(version: LearningsFile.currentVersion, master: master, updatedAt: Date(), learnings: learnings)
        let e = JSONEncoder()
        e.dateEncodingStrategy = .iso8601
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try e.encode(body).write(to: file, options: .atomic)
    }

    /// At start: learnings Redis lost come back from the file; a file that cannot be read is reported
    /// and rebuilt from Redis. Returns what happened, for the log (nil: nothing to do).
    public func restore() async throws -> String? {
        let inRedis = try await redis.hkeys(CortexNames.learnings(master)).count
        guard FileManager.default.fileExists(atPath: file.path) else {
            if inRedis > 0 { try await mirror(); return "learnings of \(master): \(inRedis) in Redis, mirrored to \(file.path)" }
            return nil
        }
        let parsed: LearningsFile
        do {
            let d = JSONDecoder()
            d.dateDecodingStrategy = .iso8601
            parsed = try d.decode(LearningsFile.self, from: Data(contentsOf: file))
            guard parsed.version == LearningsFile.currentVersion else {
                throw CortexError(.invalidInput, "version \(parsed.version), expected \(LearningsFile.currentVersion)")
            }
        } catch {
            try await mirror()
            return "learnings file \(file.path) is corrupt (\(error)); rebuilt from Redis (\(inRedis) learnings)"
        }
        guard inRedis == 0, !parsed.learnings.isEmpty else { return nil }
        let fields = try parsed.learnings.map { ($0.key, try WireJSON.encode($0)) }
        try await redis.run([.hset(CortexNames.learnings(master), fields: fields)])
        return "restored \(parsed.learnings.count) learnings of \(master) from \(file.path) (Redis had none)"
    }
}

extension LearningStore {
    /// A master's learnings about one target as retrieval chunks (newest first, within `budget` tokens),
    /// cited `learnings/<master>#<key>`: fix outcomes, flaky tests, suite durations. File costs are left
    /// out (they steer the shard plan, not a person). A Redis failure is a retrieval problem, not an error.
    public static func retrieve(master: String, target: String, budget: Int, redis: RedisClient) async -> Retrieval {
        let name = RepositoryCheckout.name(of: target)
        let all: [String: String]
        do { all = try await redis.hgetall(CortexNames.learnings(master)) } catch {
            return Retrieval(problems: ["learnings of \(master) not read: \(error)"])
        }
        let mine = all.values.compactMap { try? WireJSON.decode(Learning.self, from: $0) }
            .filter { ($0.target == name || $0.target == target) && $0.kind != "file-costs" }
            .sorted { ($0.learnedAt, $0.key) > ($1.learnedAt, $1.key) }
        let chunks = mine.map { Chunk(source: "learnings/\(master)", anchor: $0.key, title: "\($0.kind): \($0.outcome)", text: $0.detail) }
        return Retrieval(chunks: Retrieval.select(chunks, budget: budget), problems: [])
    }
}
