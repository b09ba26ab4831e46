import CortexCore
import Foundation
import Logging
import ServiceLifecycle

/// A worker process: serves one or more pools, runs each work item's skill and commits the result
/// idempotently, reporting start / progress / finish on cortex:workers:status.
public struct WorkerService: RoleService {
    let context: ProcessContext
    let pools: [WorkerPool]
    let claimIdle: Duration
    private let registered = Locked(false)

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
        self.claimIdle = try context.settings.seconds(.claimIdle)
    }

    var workerID: String { context.instanceID }

    public func readiness() async -> Readiness {
        registered.value ? .ready : .notReady(["worker not registered yet"])
    }

    public func run() async throws {
        let log = context.logger
        let reader = context.blockingClient(name: "work-reader", block: .seconds(1))
        defer { reader.close() }
        var consumer = StreamConsumer(redis: reader, group: CortexNames.Group.workers, consumer: workerID,
                                      streams: pools.map { CortexNames.workStream($0) }, claimIdle: claimIdle)
        try await retryingRedis(log) { try await consumer.prepare() }
        try await register(status: "idle")
        log.info("worker ready", metadata: ["cortex.worker.pools": "\(pools.map(\.rawValue).joined(separator: ","))"])

        await withTaskGroup(of: Void.self) { group in
            group.addTask { await heartbeats() }
            await consumer.consume(context: context, operation: "reading work") { await process($0) }
            group.cancelAll()
        }
        await context.bus.notify(.WORKER_SHUTDOWN, data: ["worker": .string(workerID), "node": .string(context.nodeName)])
        _ = try? await context.redis.pipeline([
            ["HSET", CortexNames.workerRegistry(workerID), "status", "stopped", "last_heartbeat", epochMilliseconds()],
            ["DEL", CortexNames.workerHeartbeat(workerID)],
        ])
        log.info("worker stopped")
    }

    private func register(status: String) async throws {
        try await retryingRedis(context.logger) {
            let replies = try await context.redis.pipeline([
                ["HSET", CortexNames.workerRegistry(workerID), "worker", workerID, "node", context.nodeName,
                 "pools", pools.map(\.rawValue).joined(separator: ","), "status", status, "last_heartbeat", epochMilliseconds()],
                ["SADD", CortexNames.workerSet, workerID],
                ["SET", CortexNames.workerHeartbeat(workerID), context.nodeName, "PX", Int(context.heartbeatTimeout / .milliseconds(1))],
            ])
            for r in replies { try r.orThrow() }
        }
        try await context.bus.publish(.WORKER_REGISTERED, data: [
            "worker": .string(workerID), "node": .string(context.nodeName), "pools": .array(pools.map { .string($0.rawValue) }),
        ])
        registered.withLock { $0 = true }
    }

    private func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: context.heartbeatInterval)
            if Task.isCancelled { return }
            _ = try? await context.redis.pipeline([
                ["HSET", CortexNames.workerRegistry(workerID), "last_heartbeat", epochMilliseconds()],
                ["SET", CortexNames.workerHeartbeat(workerID), context.nodeName, "PX", Int(context.heartbeatTimeout / .milliseconds(1))],
            ])
            await context.bus.notify(.WORKER_HEARTBEAT, data: ["worker": .string(workerID), "node": .string(context.nodeName), "status": "alive"])
        }
    }

    private func process(_ delivery: StreamConsumer.Delivery) async {
        let log = context.logger
        guard let text = delivery.entry.fields["item"], let item = try? WireJSON.decode(WorkItem.self, from: text) else {
            await StreamConsumer.deadLetter(delivery, group: CortexNames.Group.workers, reason: "malformed work item", context: context)
            return
        }
        if delivery.redelivered { context.metrics.redelivered(kind: "work-item") }
        var itemLog = log
        itemLog[metadataKey: "cortex.item.id"] = "\(item.id)"
        itemLog[metadataKey: "cortex.run.id"] = "\(item.runID)"
        await context.bus.notify(.TASK_STARTED, runID: item.runID, data: [
            "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID),
            "node": .string(context.nodeName), "pool": .string(item.pool.rawValue),
        ])
        let started = ContinuousClock.now
        var result = WorkResult(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName,
                                status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        do {
            let root = URL(fileURLWithPath: item.target)
            let files = try RepositoryFiles.list(root: root).filter { RepositoryFiles.shard(of: $0, shards: item.shards) == item.shard }
            result.filesExamined = files.count
            let records = try item.skill.skill.examine(root: root, files: files) { done in
                Task { await context.bus.notify(.TASK_PROGRESS, runID: item.runID, data: ["item_id": .string(item.id), "worker": .string(workerID), "done": .number(Double(done)), "total": .number(Double(files.count))]) }
            }
            result.output = .array(records.map { .object($0) })
        } catch {
            result.status = .failed
            result.error = "\(error)"
        }
        let elapsed = ContinuousClock.now - started
        result.durationMs = Int(elapsed / .milliseconds(1))
        await commit(result, item: item, delivery: delivery, log: itemLog)
        context.metrics.workItemFinished(pool: item.pool, outcome: result.status.rawValue, seconds: Double(result.durationMs) / 1000)
    }

    /// Writes the result once (HSETNX: a redelivered item that finishes again changes nothing), wakes the master, acks.
    private func commit(_ result: WorkResult, item: WorkItem, delivery: StreamConsumer.Delivery, log: Logger) async {
        let encoded: String
        do { encoded = try WireJSON.encode(result) } catch { log.error("cannot encode result: \(error)"); return }
        let retention = 7 * 24 * 3600
        while true {
            do {
                let replies = try await context.redis.pipeline([
                    ["HSETNX", CortexNames.taskResults(item.taskID), item.id, encoded],
                    ["EXPIRE", CortexNames.taskResults(item.taskID), retention],
                    ["XADD", CortexNames.taskResultEvents(item.taskID), "MAXLEN", "~", 1000, "*", "item", item.id],
                    ["EXPIRE", CortexNames.taskResultEvents(item.taskID), retention],
                    ["XACK", delivery.stream, CortexNames.Group.workers, delivery.entry.id],
                    ["HINCRBY", CortexNames.workerRegistry(workerID), "items_done", 1],
                ])
                for r in replies { try r.orThrow() }
                break
            } catch {
                // The item stays pending until committed; retry until Redis is back or we are told to stop
                // (then another worker claims it after the idle timeout).
                log.warning("committing result failed, retrying: \(error)")
                if Task.isShuttingDownGracefully { return }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        if result.status == .succeeded {
            await context.bus.notify(.TASK_COMPLETE, runID: item.runID, data: [
                "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID),
                "node": .string(context.nodeName), "duration_ms": .number(Double(result.durationMs)),
            ])
            log.info("work item done", metadata: ["cortex.item.files": "\(result.filesExamined)", "cortex.item.ms": "\(result.durationMs)"])
        } else {
            await context.bus.notify(.TASK_FAILED, runID: item.runID, data: [
                "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID), "reason": .string(result.error ?? "failed"),
            ])
            log.warning("work item failed: \(result.error ?? "")")
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
