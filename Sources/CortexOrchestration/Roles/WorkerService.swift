import CortexCatalog
import CortexCore
import CortexSecurity
import Foundation
import Logging
import Tracing
import ServiceLifecycle

/// A worker process: serves one or more pools, hands each work item to its skill (`SkillName.skill`) and
/// commits the result idempotently, reporting start / progress / finish on cortex:workers:status. Up to
/// `CORTEX_WORKER_CONCURRENCY` items run at once (`InFlightWork`); their results are committed in batches
/// (`WorkerService+BatchCommit`).
/// Registration and heartbeats (`WorkerRegistration`), keep-alive (`StreamConsumer`), checkpoints and
/// listings (`CheckpointStore`, `TaskListings`) and catalog registration (`CatalogRegistrar`) live apart.
public struct WorkerService: RoleService {
    let context: ProcessContext
    let pools: [WorkerPool]
    let claimIdle: Duration
    let maxDeliveries: Int
    /// How often a long item saves its progress.
    let checkpointEvery: Duration
    let registration: WorkerRegistration
    /// catalog-api, when configured: each item's findings are registered there.
    let catalog: CatalogClient?
    /// The model for implementation items, metered on the development master's workers' account; nil without a provider.
    let llm: MeteredLLM?
    let llmMaxTokens: Int
    let publisher: BranchPublisher
    let listings = TaskListings()
    let identities = FileIdentities()
    /// Per-file results of earlier runs, reused for unchanged files (nil: CORTEX_FILE_CACHE_MAX_MB=0).
    let fileCache: FileResultCache?
    /// Items in flight at once (`CORTEX_WORKER_CONCURRENCY`).
    let concurrency: Int
    /// Items of a pool in flight at once, for the pools with a limit of their own (`CORTEX_WORKER_POOL_CONCURRENCY`).
    let poolConcurrency: [WorkerPool: Int]
    /// How long an item runs before it is announced on its own (`CORTEX_ITEM_EVENT_THRESHOLD`).
    let eventThreshold: Duration
    /// CORTEX_WORKER_IDLE_EXIT: a spawned worker (a Kubernetes Job) ends after this long without items; nil never.
    let idleExit: Duration?

    public init(context: ProcessContext) throws {
        self.context = context
        let raw = context.settings.raw(.workerPools) ?? WorkerPool.allCases.map(\.rawValue).joined(separator: ",")
        var pools: [WorkerPool] = []
        for name in raw.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let p = WorkerPool(rawValue: name) else {
                throw ConfigurationError("unknown worker pool '\(name)'; pools are \(WorkerPool.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !pools.contains(p) { pools.append(p) }
        }
        guard !pools.isEmpty else { throw ConfigurationError("CORTEX_WORKER_POOLS / --pools names no pool") }
        self.pools = pools
        self.registration = WorkerRegistration(context: context, workerID: context.instanceID, pools: pools)
        self.claimIdle = try context.settings.seconds(.claimIdle)
        self.maxDeliveries = try context.settings.int(.maxDeliveries, range: 1...1000)
        self.concurrency = try context.settings.int(.workerConcurrency, range: 1...1024)
        self.poolConcurrency = try Self.poolLimits(context.settings.string(.workerPoolConcurrency))
        self.eventThreshold = try context.settings.seconds(.itemEventThreshold)
        self.checkpointEvery = .seconds(1)
        // Whole seconds, 0 allowed (the default: never), unlike the other durations.
        let idle = try context.settings.int(.workerIdleExit, range: 0...604_800)
        self.idleExit = idle > 0 ? .seconds(idle) : nil
        self.catalog = try CatalogClient(settings: context.settings)
        self.fileCache = try FileResultCache.configured(redis: context.redis, settings: context.settings)
        let llmConfiguration = try LLMConfiguration.from(context.settings)
        self.llmMaxTokens = llmConfiguration?.maxTokens ?? 0
        self.llm = try llmConfiguration.map {
            MeteredLLM(client: $0.client(logger: context.logger), bus: context.bus, agent: "development:workers", logger: context.logger,
                       decisionTimeout: try context.settings.seconds(.budgetRequestTimeout), journal: context.journal, metrics: context.metrics)
        }
        self.publisher = BranchPublisher(githubAPIURL: context.settings.string(.githubAPIURL), githubToken: try context.settings.secret(.githubToken, file: .githubTokenFile),
                                         githubHost: context.settings.string(.githubHost))
    }

    var workerID: String { context.instanceID }

    /// Parses CORTEX_WORKER_POOL_CONCURRENCY: `pool=n` pairs, comma-separated, or `none`.
    static func poolLimits(_ text: String) throws -> [WorkerPool: Int] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed != "none" else { return [:] }
        var limits: [WorkerPool: Int] = [:]
        for pair in trimmed.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let pool = WorkerPool(rawValue: parts[0]) else {
                throw ConfigurationError("CORTEX_WORKER_POOL_CONCURRENCY: '\(pair)' is not pool=n with a pool of \(WorkerPool.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let n = Int(parts[1]), (1...1024).contains(n) else {
                throw ConfigurationError("CORTEX_WORKER_POOL_CONCURRENCY: '\(pair)': the limit must be a whole number from 1 to 1024")
            }
            limits[pool] = n
        }
        return limits
    }

    public func readiness() async -> Readiness {
        registration.isRegistered ? .ready : .notReady(["worker not registered yet"])
    }

    public func run() async throws {
        let log = context.logger
        let reader = context.blockingClient(name: "work-reader", block: .seconds(1))
        defer { reader.close() }
        let consumer = StreamConsumer(redis: reader, group: CortexNames.Group.workers, consumer: workerID,
                                      streams: pools.map { CortexNames.workStream($0) }, claimIdle: claimIdle)
        try await retryingRedis(log) { try await consumer.prepare() }
        try await registration.register(status: ProcessStatus.idle.rawValue)
        log.info("worker ready", metadata: [LogKey.workerPools: "\(pools.map(\.rawValue).joined(separator: ","))"])

        let work = InFlightWork(limit: concurrency, pools: pools, poolLimits: poolConcurrency)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await registration.heartbeats() }
            group.addTask { await supervise(work) }
            group.addTask { await commitBatches(work) }
            // A spawned worker (idleExit set) also ends when its pools stay empty for idleExit: whichever
            // ends first, the consumer (shutdown) or the idle watcher, ends the other.
            let idle = idleExit.map { _ in IdleExit() }
            let prepared = consumer
            await withTaskGroup(of: Void.self) { reading in
                reading.addTask { await consume(prepared, into: work, idle: idle) }
                if let idleExit, let idle {
                    reading.addTask {
                        while !Task.isCancelled, !idle.stopIfIdle(for: idleExit) { try? await Task.sleep(for: .milliseconds(250)) }
                        if idle.stopped { log.info("no work item for \(idleExit): exiting (CORTEX_WORKER_IDLE_EXIT)") }
                    }
                }
                _ = await reading.next()
                reading.cancelAll()
            }
            // Every item has ended and queued its result: the committer drains the queue and returns.
            work.close()
            group.cancelAll()
        }
        await registration.deregister()
        log.info("worker stopped")
    }

    /// Reads work until shutdown (or, for a spawned worker, until `idle` decides to leave), one child task
    /// per item: an item may be long (a clone, a test suite, a model call), and one long item must not hold
    /// up the short ones read with it. Everything else an item needs from Redis is shared: the read
    /// (XREADGROUP COUNT <room>), the commit (one transaction for every item finished meanwhile), the
    /// keep-alives and TASK_STARTED (the supervisor, for all items). Returns once every item has ended.
    private func consume(_ prepared: StreamConsumer, into work: InFlightWork, idle: IdleExit?) async {
        var consumer = prepared
        await withDiscardingTaskGroup { items in
            await consumer.consumeBatches(context: context, operation: "reading work", room: { await work.room() }) { deliveries in
                for delivery in deliveries {
                    guard let text = delivery.entry.fields["item"], let item = try? WorkItem(wireJSON: text) else {
                        items.addTask { await StreamConsumer.deadLetter(delivery, group: CortexNames.Group.workers, reason: "malformed work item", context: context) }
                        continue
                    }
                    // A suspect (delivered again and again: its workers died holding it) runs alone; a worker
                    // holds one at a time, and passes the others it reads on, uncharged, to other workers.
                    let suspect = delivery.deliveries.map { $0 >= InFlightWork.isolateFrom && $0 <= maxDeliveries } ?? false
                    if suspect && work.holdsSuspect {
                        items.addTask { await passOn(delivery) }
                        continue
                    }
                    guard idle?.begin() ?? true else {
                        // Read in the instant this spawned worker decided to leave: back on the stream for another
                        // worker (if that fails, the entry stays pending here and is claimed after CORTEX_CLAIM_IDLE).
                        items.addTask { await handBack(delivery) }
                        continue
                    }
                    guard let token = work.began(delivery, item: item, suspect: suspect) else { idle?.end(); continue }
                    items.addTask {
                        await process(item, delivery: delivery, token: token, work: work)
                        idle?.end()
                    }
                }
            }
        }
    }

    /// A second suspect read while one is held: left pending with its delivery count as it was before this
    /// delivery and idle for the claim timeout, so another worker claims it at once and the count is what
    /// it was when it reached us (it never ran here). If that fails it stays ours, and runs here later.
    private func passOn(_ delivery: StreamConsumer.Delivery) async {
        guard let deliveries = delivery.deliveries else { return }
        do {
            try await StreamConsumer.passOn(stream: delivery.stream, group: CortexNames.Group.workers, consumer: workerID, entryID: delivery.entry.id,
                                            deliveries: deliveries - 1, idle: claimIdle, redis: context.redis)
            context.logger.info("\(delivery.entry.id) on \(delivery.stream) (delivered \(deliveries) times) passed on: this worker runs another such item alone first")
        } catch {
            context.logger.warning("could not pass \(delivery.entry.id) on \(delivery.stream) on: \(error); it is claimed after CORTEX_CLAIM_IDLE")
        }
    }

    private func handBack(_ delivery: StreamConsumer.Delivery) async {
        do {
            try await StreamConsumer.handBack(stream: delivery.stream, group: CortexNames.Group.workers, entryID: delivery.entry.id,
                                              fields: delivery.entry.fields, redis: context.redis)
        } catch {
            context.logger.warning("could not hand \(delivery.entry.id) on \(delivery.stream) back while leaving: \(error); another worker claims it after CORTEX_CLAIM_IDLE")
        }
    }

    /// Keeps the entries of running items from looking abandoned (one pipelined keep-alive for all that are
    /// due, on the liveness connection), and queues TASK_STARTED for items running past the event threshold.
    private func supervise(_ work: InFlightWork) async {
        let refreshEvery = max(claimIdle / 3, .milliseconds(200))
        let tick = max(min(eventThreshold / 2, refreshEvery / 2), .milliseconds(20))
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            if Task.isCancelled { return }
            work.announceLongRunning(after: eventThreshold) { item in
                Envelope(TaskStarted(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName, pool: item.pool.rawValue),
                         source: context.processName, runID: item.runID)
            }
            let due = work.dueForKeepAlive(every: refreshEvery)
            guard !due.isEmpty else { continue }
            do {
                let replies = try await StreamConsumer.keepAliveScript.runPipelined(context.liveness, calls: due.map { d in
                    (keys: [d.delivery.stream], args: [CortexNames.Group.workers, workerID, d.delivery.entry.id] as [any RedisArgument])
                })
                for (d, reply) in zip(due, replies) where reply.int == 0 {
                    work.markLost(d.token)
                    context.logger.warning("\(d.delivery.entry.id) on \(d.delivery.stream) was claimed by another consumer while this one worked on it; left to them")
                }
            } catch {
                // A missed refresh only risks a redelivery, which results and reports absorb.
                context.logger.debug("keep-alive of \(due.count) entries failed: \(error)")
            }
        }
    }

    /// One item inside its span: a child of its master's task span (the entry's traceparent); the skill's
    /// model calls and the item's TASK_COMPLETE / TASK_FAILED announcement carry it.
    private func process(_ item: WorkItem, delivery: StreamConsumer.Delivery, token: Int, work: InFlightWork) async {
        await withSpan("work-item \(item.skill.rawValue)", context: TracePropagation.context(continuing: delivery.entry.fields[TracePropagation.field]),
                       ofKind: .consumer) { span in
            span.attributes["cortex.run.id"] = item.runID
            span.attributes["cortex.task.id"] = item.taskID
            span.attributes["cortex.item.id"] = item.id
            span.attributes["cortex.pool"] = item.pool.rawValue
            span.attributes["cortex.worker"] = workerID
            span.attributes["cortex.node"] = context.nodeName
            if delivery.redelivered { span.attributes["cortex.item.redelivered"] = true }
            await process(item, delivery: delivery, token: token, work: work, span: span)
        }
    }

    private func process(_ item: WorkItem, delivery: StreamConsumer.Delivery, token: Int, work: InFlightWork, span: any Span) async {
        var itemLog = context.logger.forRun(item.runID)
        itemLog[metadataKey: LogKey.itemID] = "\(item.id)"
        // The committer logs the item's end outside its span: the logger carries the span's ids.
        if let trace = span.context.traceContext {
            itemLog[metadataKey: LogKey.traceID] = "\(trace.traceID)"
            itemLog[metadataKey: LogKey.spanID] = "\(trace.spanID)"
        }
        if delivery.redelivered { context.metrics.redelivered(kind: "work-item") }
        if let deliveries = delivery.deliveries, deliveries > maxDeliveries {
            await bury(item, delivery: delivery, deliveries: deliveries, log: itemLog)
            work.abandon(token)
            return
        }
        if work.isSuspect(token) {
            // If it is what kills its workers, the items beside it must not be charged for it again.
            await work.runAlone(token)
            itemLog.notice("delivered \(delivery.deliveries ?? 0) times (the workers that held it ended without finishing it): it runs alone now")
        }
        let started = ContinuousClock.now
        var result = WorkResult(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName,
                                status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        do {
            let outcome = try await item.skill.skill.perform(item, context: skillContext(log: itemLog, redelivered: delivery.redelivered))
            result.status = outcome.outcome
            result.error = outcome.reason
            result.output = .array(outcome.records.map { .object($0) })
            result.filesExamined = outcome.examined
            result.resumedFrom = outcome.resumedFrom
            result.fileCache = outcome.fileCache
            result.costs = outcome.costs
        } catch {
            result.status = .failed
            result.error = "\(error)"
        }
        if result.status == .succeeded, let catalog, let records = result.output.arrayValue {
            let registrar = CatalogRegistrar(catalog: catalog, metrics: context.metrics, workerID: workerID)
            result.catalog = await registrar.register(records.compactMap(\.objectValue), item: item, log: itemLog)
        }
        result.durationMs = Int((ContinuousClock.now - started) / .milliseconds(1))
        result.finishedAtMs = epochMilliseconds()
        span.attributes["cortex.item.status"] = result.status.rawValue
        span.attributes["cortex.item.files"] = result.filesExamined
        if result.status == .failed { span.setStatus(SpanStatus(code: .error, message: result.error)) }
        await work.finish(token, result: result, item: item, delivery: delivery, log: itemLog)
        context.metrics.workItemFinished(pool: item.pool, outcome: result.status.rawValue, seconds: Double(result.durationMs) / 1000)
    }

    /// What the item's skill gets from this worker.
    private func skillContext(log: Logger, redelivered: Bool) -> SkillContext {
        SkillContext(process: context, workerID: workerID, logger: log, redelivered: redelivered, catalog: catalog, llm: llm, llmMaxTokens: llmMaxTokens,
                     publisher: publisher, listings: listings, checkpoints: CheckpointStore(redis: context.redis, metrics: context.metrics),
                     fileCache: fileCache, identities: identities, checkpointEvery: checkpointEvery)
    }

    /// A poison item: moved to the dead-letter stream and reported as failed, so its task can finish.
    private func bury(_ item: WorkItem, delivery: StreamConsumer.Delivery, deliveries: Int, log: Logger) async {
        let reason = "dead-lettered after \(deliveries) deliveries without completing"
        log.error("poison work item: \(reason)")
        context.metrics.deadLettered(reason: "max_deliveries")
        let result = WorkResult(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName, status: .failed,
                                error: reason, durationMs: 0, filesExamined: 0, output: .null, finishedAtMs: epochMilliseconds())
        let fields = JSONValue.object(delivery.entry.fields.mapValues { .string($0) }).description
        await commit(result, item: item, delivery: delivery, log: log, extra: [
            .xadd(CortexNames.deadLetters, maxLength: CortexNames.Retention.deadLetterLength, fields: [
                ("stream", delivery.stream), ("entry", delivery.entry.id), ("reason", reason), ("run_id", item.runID), ("item_id", item.id), ("fields", fields),
            ]),
        ])
    }

    /// One item's commit, for a poison item and for items whose batch the ACL refused (`commitBatches`).
    /// Writes the result once (HSETNX: an item finished again after a redelivery changes nothing), wakes
    /// the master, acknowledges and announces TASK_COMPLETE / TASK_FAILED, all in one round trip — so the
    /// announcement never runs ahead of the commit. While Redis is unreachable the same commands go to
    /// the journal and are applied on reconnect. The round trip is one MULTI/EXEC: a command this worker's
    /// Redis user may not run (NOPERM) aborts all of it, and the item is committed again as failed with the
    /// reason, without the refused commands (`omitting`: command and key), so its task can finish.
    func commit(_ result: WorkResult, item: WorkItem, delivery: StreamConsumer.Delivery, log: Logger, extra: [RedisCommand] = [],
                        omitting refused: [[String]] = []) async {
        let encoded = result.wireJSON
        let announcement: Envelope = result.status == .succeeded
            ? Envelope(TaskComplete(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName, durationMs: result.durationMs),
                       source: context.processName, runID: item.runID)
            : Envelope(TaskFailed(itemID: item.id, taskID: item.taskID, worker: workerID, reason: result.error ?? "failed", status: result.status.rawValue),
                       source: context.processName, runID: item.runID)
        let retention = context.retentionSeconds
        let commands: [RedisCommand] = ([
            .hsetnx(CortexNames.taskResults(item.taskID), item.id, encoded),
            .expire(CortexNames.taskResults(item.taskID), seconds: retention),
            .xadd(CortexNames.taskResultEvents(item.taskID), maxLength: 1000, fields: [("item", item.id)]),
            .expire(CortexNames.taskResultEvents(item.taskID), seconds: retention),
            // Acknowledged and deleted: a processed entry has no further use, and the stream stays small.
        ] + StreamConsumer.acknowledged(delivery, group: CortexNames.Group.workers) + [
            .del(CortexNames.checkpoint(item.id)),
            .hincrby(CortexNames.workerRegistry(workerID), "items_done", by: 1),
        ] + extra + MessageBus.commands(for: announcement)).filter { !refused.contains(Array($0.parts.prefix(2))) }
        do {
            let replies: [RedisReply]
            switch try await context.redis.transaction(commands) {
            case .committed(let committed): replies = committed
            case .refused(let refusals):
                let reason = refusals.map(\.reason).joined(separator: "; ")
                // Without the result itself (or on a second refusal) there is nothing to report with.
                guard refused.isEmpty, !refusals.contains(where: { $0.index == 0 }) else {
                    log.error("result cannot be committed: Redis refused \(reason); the item stays pending until the Redis user's ACL allows it")
                    return
                }
                var failed = result
                failed.status = .failed
                failed.error = "Redis refused the commit: \(reason)"
                log.error("Redis refused the commit (\(reason)); committing the item as failed")
                await commit(failed, item: item, delivery: delivery, log: log, extra: extra, omitting: refusals.map { Array(commands[$0.index].parts.prefix(2)) })
                return
            }
            for r in replies { try r.orThrow() }
            context.metrics.messagePublished(channel: announcement.channel, type: announcement.type)
            await context.redis.awaitReplication()
            if replies[0].int == 0 {
                // Another worker committed this item first (we were presumed dead): counted once, noted here.
                context.metrics.duplicateResult()
                _ = try? await context.redis.pipeline([
                    .hincrby(CortexNames.taskDuplicates(item.taskID), "count", by: 1),
                    .expire(CortexNames.taskDuplicates(item.taskID), seconds: context.retentionSeconds),
                ])
                log.notice("result already committed by another worker; this one is ignored")
            }
        } catch let error as RedisError where error.isConnectionError {
            do {
                try await context.journal.append(commands)
                log.notice("Redis unreachable; result journaled for replay: \(error)")
            } catch {
                log.error("result could not be committed nor journaled (the item stays pending and will be redone): \(error)")
            }
        } catch {
            log.error("result refused by Redis (the item stays pending and will be redone): \(error)")
        }
        if result.status == .succeeded {
            log.info("work item done", metadata: [LogKey.itemFiles: "\(result.filesExamined)", LogKey.itemMilliseconds: "\(result.durationMs)"])
        } else {
            log.warning("work item \(result.status): \(result.error ?? "")")
        }
    }
}

/// Retries a Redis operation until it succeeds, the task is cancelled or shutdown begins; logs each failure.
func retryingRedis(_ log: Logger, _ body: () async throws -> Void) async throws {
    var delay = Duration.milliseconds(200)
    while true {
        do { return try await body() } catch let error as RedisError where error.isConnectionError {
            log.warning("redis unavailable, retrying in \(delay): \(error)")
            if Task.isShuttingDownGracefully || Task.isCancelled { throw error }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}

/// When a spawned worker may leave: no item in hand and none taken for the idle time.
final class IdleExit: Sendable {
    private let state = Locked((inFlight: 0, last: ContinuousClock.now, stopped: false))

    /// An item is about to be processed; false once the worker decided to leave.
    func begin() -> Bool {
        state.withLock { s in
            if s.stopped { return false }
            s.inFlight += 1
            return true
        }
    }

    func end() { state.withLock { s in s.inFlight -= 1; s.last = .now } }

    /// Decides to leave when idle long enough; true once decided.
    func stopIfIdle(for idle: Duration) -> Bool {
        state.withLock { s in
            if !s.stopped, s.inFlight == 0, ContinuousClock.now - s.last >= idle { s.stopped = true }
            return s.stopped
        }
    }

    var stopped: Bool { state.value.stopped }
}
