import CortexCore
import Foundation

/// A file-based `Skill` as a `WorkSkill`: runs it on the item's shard of the task's listing file by file,
/// saving a checkpoint (progress plus records so far) at most every `checkpointEvery`, and resuming from
/// the last one when the item was delivered before. Its outcome carries the records, how many files this
/// attempt examined, and where it resumed (if it did).
public struct FileShardedSkill: WorkSkill {
    /// The file-based skill run on each shard.
    public let base: any Skill

    public init(_ base: any Skill) { self.base = base }

    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        let log = context.logger
        let root = try await context.checkout(item)
        let files = try await context.listings.files(for: item, context: context).filter { RepositoryFiles.shard(of: $0, shards: item.shards) == item.shard }
        var records: [SkillRecord] = []
        var next = 0
        var resumedFrom: Int?
        // Only an item delivered before can have a checkpoint: a first delivery skips the lookup.
        if context.redelivered, let checkpoint = try await context.checkpoints.load(item, files: files, log: log) {
            records = checkpoint.records
            next = checkpoint.next
            resumedFrom = next
            context.process.metrics.checkpoint(event: "resumed")
            log.info("resuming from checkpoint at file \(next) of \(files.count)")
        }
        var lastSaved = ContinuousClock.now
        for index in next..<files.count {
            records += try base.examine(root: root, files: [files[index]]) { _ in }
            if ContinuousClock.now - lastSaved >= context.checkpointEvery && index + 1 < files.count {
                records = base.compact(records)
                try await context.checkpoints.save(item, Checkpoint(next: index + 1, fileCount: files.count, lastPath: files[index], records: records), log: log)
                await context.process.bus.notify(TaskProgress(itemID: item.id, worker: context.workerID, done: index + 1, total: files.count), runID: item.runID)
                lastSaved = .now
            }
        }
        return .succeeded(base.compact(records), examined: files.count - next, resumedFrom: resumedFrom)
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary { base.summarize(records) }
}
