import CortexCore
import Foundation
import Logging

/// A skill's progress through one item, kept in Redis so a worker killed mid-item is not starting over.
struct Checkpoint: Codable {
    var next: Int
    var fileCount: Int
    var lastPath: String?
    var records: [[String: JSONValue]]
}

/// Loads and saves items' checkpoints (`CortexNames.checkpoint`); the commit of an item deletes its checkpoint.
struct CheckpointStore: Sendable {
    let redis: RedisClient
    let metrics: CortexMetrics

    /// How long a checkpoint outlives the worker that saved it.
    static let ttl = 24 * 3600

    /// The item's checkpoint, if it has one taken on the same listing as `files`.
    func load(_ item: WorkItem, files: [String], log: Logger) async throws -> Checkpoint? {
        guard let text = try await redis.sendUnlessDenied(.get(CortexNames.checkpoint(item.id)))?.string else { return nil }
        guard let checkpoint = try? WireJSON.decode(Checkpoint.self, from: text) else {
            metrics.checkpoint(event: "unreadable")
            log.warning("checkpoint of \(item.id) is not a checkpoint (\(text.prefix(80))); starting the item over")
            return nil
        }
        // The listing must be the one the checkpoint was taken on, or its position means nothing.
        guard checkpoint.fileCount == files.count, checkpoint.next > 0, checkpoint.next <= files.count,
              checkpoint.lastPath == files[checkpoint.next - 1] else {
            metrics.checkpoint(event: "unreadable")
            log.warning("checkpoint of \(item.id) does not match the target's files any more; starting the item over")
            return nil
        }
        return checkpoint
    }

    /// Saves the item's progress; a failure loses only progress (logged), but a missing permission is thrown.
    func save(_ item: WorkItem, _ checkpoint: Checkpoint, log: Logger) async throws {
        do {
            try await redis.send(.set(CortexNames.checkpoint(item.id), try WireJSON.encode(checkpoint), ex: Self.ttl)).orThrow()
            metrics.checkpoint(event: "saved")
        } catch let error as RedisError where error.isPermissionDenied {
            throw error  // a missing permission is a configuration error, not lost progress
        } catch {
            log.debug("checkpoint not saved: \(error)")  // only progress is at stake
        }
    }
}
