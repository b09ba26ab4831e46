import CortexCore
import Foundation

/// The target's file list for a task, shared by every item of it: from this worker's cache, else the
/// listing the task's first worker stored in Redis, else walked here and stored (SET NX) for the others.
/// Every item of a task shards the same listing, and a worker started mid-task does not walk a large tree again.
final class TaskListings: Sendable {
    private let cache = Locked<[(task: String, files: [String])]>([])

    /// The listing of `item`'s task (see the type's note for where it comes from).
    func files(for item: WorkItem, context: SkillContext) async throws -> [String] {
        if let cached = cache.withLock({ $0.first { $0.task == item.taskID }?.files }) { return cached }
        let redis = context.process.redis
        let key = CortexNames.taskFiles(item.taskID)
        var files: [String]?
        // Redis away: walked here. A permission this worker's Redis user lacks (NOPERM) fails the item.
        if let text = try await redis.sendUnlessDenied(.get(key))?.string {
            files = Self.decode(text)
        }
        if files == nil {
            let root = try await context.checkout(item)
            let walked = try await BlockingExecutor.offload("cortex-listing") { try RepositoryFiles.list(root: root) }
            let stored = try await redis.sendUnlessDenied(.set(key, JSONText.serialize(.array(walked.map(JSONValue.string))), ex: context.process.retentionSeconds, nx: true))
            if stored?.isNull == true, let text = try await redis.sendUnlessDenied(.get(key))?.string {
                files = Self.decode(text)  // another worker stored it first: use theirs
            }
            files = files ?? walked
        }
        let result = files ?? []
        cache.withLock { cache in
            cache.insert((item.taskID, result), at: 0)
            if cache.count > 4 { cache.removeLast() }
        }
        return result
    }

    /// A stored listing (a JSON array of paths), or nil when it is not one. The project's own parser:
    /// Foundation's JSONDecoder costs tens of milliseconds on a 20,000-path listing, for every task.
    static func decode(_ text: String) -> [String]? {
        guard let list = (try? JSONText.parse(text))?.arrayValue else { return nil }
        var out: [String] = []
        out.reserveCapacity(list.count)
        for v in list {
            guard let s = v.stringValue else { return nil }
            out.append(s)
        }
        return out
    }
}
