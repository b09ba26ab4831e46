import CortexCatalog
import CortexCore
import CortexSecurity
import CortexTestRunner
import Foundation
import Logging

/// Every skill, as a worker runs it and a master reads it: one work item in, a `SkillOutcome` out, and
/// the records of all a task's items merged into the master's summary. File-sharded skills (`Skill`)
/// run through `FileShardedSkill`; whole-target (test runs), per-namespace (cluster discovery and audit)
/// and agent (implementation) skills implement `perform` themselves. `SkillName.skill` names each one.
public protocol WorkSkill: Sendable {
    /// Runs one work item. An item that ran but did not succeed (skipped, denied, partial) returns its
    /// honest outcome with the reason and what it produced; an item that could not be done throws.
    func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome
    /// Merges the records of every item of a task into the master's summary.
    func summarize(_ records: [SkillRecord]) -> SkillSummary
}

/// What one work item came to: its records, how many files (or objects) this attempt examined, where it
/// resumed from a checkpoint (if it did), and its outcome with the reason for anything but `succeeded`.
public struct SkillOutcome: Sendable {
    public var outcome: Outcome
    public var reason: String?
    public var records: [SkillRecord]
    public var examined: Int
    public var resumedFrom: Int?
    /// How a file-sharded item used the results of earlier runs (nil: not file-sharded, or the cache is off).
    public var fileCache: FileCacheUse?
    /// What the files examined cost (file-sharded items that examined any).
    public var costs: FileCosts?

    /// Done, and everything it was asked to check was checked.
    public static func succeeded(_ records: [SkillRecord], examined: Int, resumedFrom: Int? = nil, fileCache: FileCacheUse? = nil, costs: FileCosts? = nil) -> SkillOutcome {
        SkillOutcome(outcome: .succeeded, reason: nil, records: records, examined: examined, resumedFrom: resumedFrom, fileCache: fileCache, costs: costs)
    }

    /// Ran but did not succeed (skipped, denied, partial or failed), keeping what it produced.
    public static func endedShort(_ outcome: Outcome, reason: String, records: [SkillRecord], examined: Int) -> SkillOutcome {
        SkillOutcome(outcome: outcome, reason: reason, records: records, examined: examined, resumedFrom: nil)
    }
}

/// What a skill gets from the worker running it: the process (Redis, bus, metrics, settings), the item's
/// logger, the catalog and the model when configured, the task's file listing and the item's checkpoints.
public struct SkillContext: Sendable {
    let process: ProcessContext
    /// The worker running the item.
    public let workerID: String
    /// The item's logger (its id and run id as metadata).
    public let logger: Logger
    /// Whether the item was delivered before (only then can it have a checkpoint).
    public let redelivered: Bool
    /// catalog-api, when configured.
    let catalog: CatalogClient?
    /// The model for implementation items, metered on the development master's workers' account; nil without a provider.
    let llm: MeteredLLM?
    let llmMaxTokens: Int
    let publisher: BranchPublisher
    let listings: TaskListings
    let checkpoints: CheckpointStore
    /// Per-file results of earlier runs (nil when switched off), and the files' blob ids to match them by.
    let fileCache: FileResultCache?
    let identities: FileIdentities
    /// How often a long item saves its progress.
    let checkpointEvery: Duration

    /// The worker's settings.
    public var settings: SettingValues { process.settings }

    /// The item's target as a local directory (a git URL is cloned shallowly, once per task on this worker).
    func checkoutBlocking(_ item: WorkItem) throws -> URL {
        try RepositoryCheckout.localPath(for: item.target, task: item.taskID, workDirectory: process.coordinationDirectory)
    }

    /// The same from async code: a clone runs on a thread of its own, not on the cooperative pool.
    func checkout(_ item: WorkItem) async throws -> URL {
        // A directory by definition: saying so spares the stat URL(fileURLWithPath:) would make to find out.
        guard RepositoryCheckout.isRemote(item.target) else { return URL(fileURLWithPath: item.target, isDirectory: true) }
        return try await BlockingExecutor.offload("cortex-clone") { [self] in try checkoutBlocking(item) }
    }

    /// The target's test runner, with the worker's test timeout, working under the coordination directory.
    func testRunner() throws -> TestRunner {
        TestRunner(timeout: Double(try settings.int(.testTimeout, range: 10...86_400)),
                   workDirectory: process.coordinationDirectory.appendingPathComponent("test-runs"))
    }
}
