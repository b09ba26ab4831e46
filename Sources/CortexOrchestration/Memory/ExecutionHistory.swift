import CortexCore
import Foundation

/// What earlier runs found on a target, for the next model call about it: one entry per master report
/// (run, master, outcome, summary, reason), newest first, the last 50 per target, kept for the retention.
/// Written by the coordinator when a run is aggregated; read (and cited as `history/<run>#<master>`) by
/// the masters' assessments and the development agent before they call a model.
public enum ExecutionHistory {
    /// How many entries a target keeps.
    public static let kept = 50

    /// One earlier report on a target.
    public struct Entry: Codable, Sendable, Equatable {
        public var runID: String
        public var master: String
        public var status: String
        public var summary: String
        public var reason: String?
        public var finishedAt: Date
    }

    /// The history key of a target (targets are paths or URLs: hashed into the key).
    public static func key(_ target: String) -> String { CortexNames.targetHistory(RepositoryFiles.hash(target)) }

    /// The commands that add a run's reports to their targets' histories (newest first, capped, with the retention).
    public static func commands(for reports: [MasterReport], retentionSeconds: Int) throws -> [RedisCommand] {
        var commands: [RedisCommand] = []
        for (target, group) in Dictionary(grouping: reports, by: \.target) {
            let key = CortexNames.targetHistory(RepositoryFiles.hash(target))
            for r in group.sorted(by: { $0.taskID < $1.taskID }) {
                let entry = Entry(runID: r.runID, master: r.master.rawValue, status: r.status.rawValue, summary: String(r.summary.prefix(600)),
                                  reason: r.reason.map { String($0.prefix(400)) }, finishedAt: r.finishedAt)
                commands.append(.lpush(key, try WireJSON.encode(entry)))
            }
            commands += [.ltrim(key, start: 0, stop: kept - 1), .expire(key, seconds: retentionSeconds)]
        }
        return commands
    }

    /// The earlier entries on `target` (not of `runID`) that best answer `query`, within `budget` tokens,
    /// as chunks cited `history/<run>#<master>`; what could not be read is in the retrieval's problems.
    public static func retrieve(target: String, excluding runID: String, query: String, budget: Int, redis: RedisClient) async -> Retrieval {
        let texts: [String]
        do {
            texts = try await redis.lrange(key(target), start: 0, stop: kept - 1)
        } catch {
            return Retrieval(problems: ["execution history of \(RepositoryCheckout.name(of: target)) not read: \(error)"])
        }
        var problems: [String] = []
        var chunks: [Chunk] = []
        for text in texts {
            guard let e = try? WireJSON.decode(Entry.self, from: text) else {
                problems.append("an execution history entry of \(RepositoryCheckout.name(of: target)) is unreadable (skipped): \(text.prefix(80))")
                continue
            }
            guard e.runID != runID else { continue }
            let title = "\(e.master)-master on \(RepositoryCheckout.name(of: target)) in \(e.runID) (\(Timestamp.format(e.finishedAt)))"
            chunks.append(Chunk(source: "history/\(e.runID)", anchor: e.master, title: title,
                                text: "\(title): \(e.status) — \(e.summary)" + (e.reason.map { "; reason: \($0)" } ?? "")))
        }
        guard !chunks.isEmpty else { return Retrieval(problems: problems) }
        // Relevance first; without any shared term, the newest entries still say what happened last time.
        var ranked = BM25Index(chunks).search(query, limit: 8).map(\.chunk)
        for c in chunks where !ranked.contains(c) && ranked.count < 3 { ranked.append(c) }
        return Retrieval(chunks: Retrieval.select(ranked, budget: budget), problems: problems)
    }
}

extension Retrieval {
    /// Two retrievals as one (this one's chunks first), within `budget` tokens.
    public func merged(with other: Retrieval, budget: Int) -> Retrieval {
        Retrieval(chunks: Retrieval.select(chunks + other.chunks, budget: budget), problems: problems + other.problems)
    }
}
