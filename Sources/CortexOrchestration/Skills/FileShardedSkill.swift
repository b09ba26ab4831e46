import CortexCore
import Foundation
import Logging

/// A file-based `Skill` as a `WorkSkill`: runs it on the item's shard of the task's listing file by file,
/// saving a checkpoint (progress plus records so far) at most every `checkpointEvery`, and resuming from
/// the last one when the item was delivered before. Its outcome carries the records, how many files this
/// attempt examined, and where it resumed (if it did).
///
/// With the file cache on (`FileResultCache`), a file whose git blob id matches the entry an earlier run
/// left for this skill version is not read: its records come from the cache. Files examined here are
/// added to the cache as the item goes (with each checkpoint, and at the end).
public struct FileShardedSkill: WorkSkill {
    /// The file-based skill run on each shard.
    public let base: any Skill
    /// The name the cache keys its results by.
    let name: SkillName

    public init(_ base: any Skill, name: SkillName) {
        self.base = base
        self.name = name
    }

    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        let log = context.logger
        let root = try await context.checkout(item)
        // The shard's files the skill looks at (a CI skill only pipelines): the others yield nothing whatever
        // they hold, so they are neither read, hashed nor cached.
        let files = try await context.listings.files(for: item, context: context).filter {
            ShardPlan.shard(of: $0, shards: item.shards, pinned: item.pinned) == item.shard && base.considers($0)
        }
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
        var cache = await CacheUse(skill: name, version: base.version, item: item, root: root, files: Array(files[next...]), total: files.count, context: context)
        var lastSaved = ContinuousClock.now
        var examined = 0
        var meter = FileCostMeter()
        for index in next..<files.count {
            let path = files[index]
            if let reused = cache.hits[path] {
                records += reused
                cache.use?.reused += 1
            } else {
                let began = ContinuousClock.now
                let found = try base.examine(root: root, files: [path]) { _ in }
                meter.add(path, ContinuousClock.now - began)
                records += found
                examined += 1
                cache.examined(path, found, root: root)
            }
            if ContinuousClock.now - lastSaved >= context.checkpointEvery && index + 1 < files.count {
                records = base.compact(records)
                await cache.flush(context: context)
                try await context.checkpoints.save(item, Checkpoint(next: index + 1, fileCount: files.count, lastPath: files[index], records: records), log: log)
                await context.process.bus.notify(TaskProgress(itemID: item.id, worker: context.workerID, done: index + 1, total: files.count), runID: item.runID)
                lastSaved = .now
            }
        }
        await cache.flush(context: context)
        if let use = cache.use {
            let metrics = context.process.metrics
            metrics.fileCache(skill: name.rawValue, result: "reused", by: use.reused)
            metrics.fileCache(skill: name.rawValue, result: "examined", by: examined)
            metrics.fileCache(skill: name.rawValue, result: "unreadable", by: use.unreadable)
        }
        return .succeeded(base.compact(records), examined: examined, resumedFrom: resumedFrom, fileCache: cache.use, costs: meter.costs)
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary { base.summarize(records) }
}

/// One item's use of the file cache: what it found before the work, what it examined since (to store).
/// Every cache failure is recorded in `use.error` and logged; the item goes on without the cache.
private struct CacheUse {
    let scope: FileResultCache.Scope
    let log: Logger
    /// What the item reports (nil: the cache is off).
    var use: FileCacheUse?
    /// The cached records of unchanged files.
    var hits: [String: [SkillRecord]] = [:]
    /// The files' blob ids (a file without one is examined and not cached).
    var blobs: [String: String] = [:]
    /// Files examined since the last flush, to store.
    var pending: [(path: String, blob: String, records: [SkillRecord])] = []
    /// The target's results do not fit the cache's bound: nothing more is stored.
    var tooBig = false

    /// `files`: those still to do (after a checkpoint); `total`: the item's files, for the report.
    init(skill: SkillName, version: Int, item: WorkItem, root: URL, files: [String], total: Int, context: SkillContext) async {
        scope = FileResultCache.Scope(skill: skill, version: version, target: item.target)
        log = context.logger
        guard let cache = context.fileCache else { return }
        var use = FileCacheUse(files: total)
        do {
            blobs = try await context.identities.blobIDs(root: root, target: item.target, files: files, run: item.runID)
            let found = try await cache.lookup(scope, files: files.compactMap { path in blobs[path].map { (path, $0) } })
            hits = found.hits
            use.unreadable = found.unreadable.count
            if let first = found.unreadable.first {
                log.warning("file cache: \(found.unreadable.count) entries of \(scope.key) are not cache entries (first: \(first)); those files are examined again and their entries rewritten")
            }
        } catch {
            use.error = "file cache not read: \(error)"
            hits = [:]
            log.warning("file cache not read, examining every file: \(error)")
        }
        self.use = use
    }

    mutating func examined(_ path: String, _ records: [SkillRecord], root: URL) {
        guard use != nil, !tooBig, let blob = blobs[path], FileIdentities.readable(root: root, path) else { return }
        pending.append((path, blob, records))
    }

    /// Stores what was examined since the last flush; a failure is reported, not thrown.
    mutating func flush(context: SkillContext) async {
        guard let cache = context.fileCache, !pending.isEmpty, use != nil, !tooBig else { return }
        do {
            let stored = try await cache.store(scope, entries: pending)
            if stored.evicted > 0 {
                context.process.metrics.fileCacheEvictions(by: stored.evicted)
                log.info("file cache over its bound: \(stored.evicted) least recently used result sets evicted")
            }
            if stored.droppedSelf {
                tooBig = true
                let earlier = use?.error.map { $0 + "; " } ?? ""
                use?.error = earlier + "file cache: this target's results are larger than CORTEX_FILE_CACHE_MAX_MB and were not kept"
                log.warning("file cache: the results of \(scope.key) alone are over the bound (CORTEX_FILE_CACHE_MAX_MB) and were dropped; raise the bound to keep them")
            }
        } catch {
            if use?.error == nil { use?.error = "file cache not written: \(error)" }
            log.warning("file cache not written: \(error)")
        }
        pending = []
    }
}
