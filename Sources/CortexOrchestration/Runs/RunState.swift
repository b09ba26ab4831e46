import CortexCore
import Foundation

/// A run as kept in its Redis hash (`CortexNames.run`): what `cortexctl status` shows.
public struct RunState: Sendable, Equatable {
    public var runID: String
    /// queued, running, succeeded, partial or failed.
    public var status: String
    public var phase: Int?
    public var goal: String
    public var targets: [String]
    public var reportDir: String?
    public var reason: String?
    public var startedAt: Date?
    public var finishedAt: Date?

    /// True once the run ended, whichever way.
    public var isFinished: Bool { outcome != nil }

    /// How the run ended (nil while it is queued or running).
    public var outcome: Outcome? { Outcome(rawValue: status) }

    init(runID: String, fields: [String: String]) {
        self.runID = runID
        status = fields["status"] ?? "unknown"
        phase = fields["phase"].flatMap(Int.init)
        goal = fields["goal"] ?? ""
        targets = fields["targets"].flatMap { try? WireJSON.decode([String].self, from: $0) } ?? []
        reportDir = fields["report_dir"].flatMap { $0.isEmpty ? nil : $0 }
        reason = fields["reason"].flatMap { $0.isEmpty ? nil : $0 }
        startedAt = fields["started_at"].flatMap(Timestamp.parse)
        finishedAt = fields["finished_at"].flatMap(Timestamp.parse)
    }

    /// Reads a run's state; nil when no such run exists.
    public static func load(_ runID: String, redis: RedisClient) async throws -> RunState? {
        let fields = try await redis.hgetall(CortexNames.run(runID))
        return fields.isEmpty ? nil : RunState(runID: runID, fields: fields)
    }
}
