import CortexCore
import Logging

/// The worker's group commit: every item finished since the last commit goes out in one MULTI/EXEC — each
/// result written once (HSETNX), the masters woken once per task, the entries acknowledged and deleted
/// with one XACK and one XDEL per stream, the items counted with one HINCRBY, and the announcements (one
/// TASK_BATCH_COMPLETE per task for short items, TASK_COMPLETE / TASK_FAILED for the others, TASK_STARTED
/// of long items queued by the supervisor) — so, as with one item, nothing is announced that is not committed.
extension WorkerService {
    /// Most entries (announcements and items) in one transaction.
    static let maxCommitBatch = 256
    /// Results past this many bytes go in a transaction of their own: one huge transaction would hold
    /// Redis (and every other client) for as long as it takes to apply it.
    static let maxCommitBytes = 8 * 1024 * 1024

    /// Commits what the items queue, batch after batch, until the in-flight work is closed and drained.
    func commitBatches(_ work: InFlightWork) async {
        while let batch = await work.nextBatch(max: Self.maxCommitBatch) {
            var started: [Envelope] = []
            var finished: [(item: InFlightWork.Finished, encoded: String)] = []
            var bytes = 0
            for entry in batch {
                switch entry {
                case .started(let envelope): started.append(envelope)
                case .finished(let f):
                    let encoded = f.result.wireJSON
                    if !finished.isEmpty, bytes + encoded.utf8.count > Self.maxCommitBytes {
                        await commit(started: started, finished: finished, work: work)
                        started = []
                        finished = []
                        bytes = 0
                    }
                    finished.append((f, encoded))
                    bytes += encoded.utf8.count
                }
            }
            await commit(started: started, finished: finished, work: work)
        }
    }

    /// The commands of one group commit, and where the HSETNX replies are (to count duplicates).
    func batchCommands(started: [Envelope], finished: [(item: InFlightWork.Finished, encoded: String)]) -> (commands: [RedisCommand], results: [Int], envelopes: [Envelope]) {
        let retention = context.retentionSeconds
        var commands: [RedisCommand] = []
        var envelopes = started
        for envelope in started { commands += MessageBus.commands(for: envelope) }
        var results: [Int] = []
        var tasks: [String] = []
        var byStream: [String: [String]] = [:]
        var streams: [String] = []
        for (f, encoded) in finished {
            results.append(commands.count)
            commands.append(.hsetnx(CortexNames.taskResults(f.item.taskID), f.item.id, encoded))
            if !tasks.contains(f.item.taskID) { tasks.append(f.item.taskID) }
            if byStream[f.delivery.stream] == nil { streams.append(f.delivery.stream) }
            byStream[f.delivery.stream, default: []].append(f.delivery.entry.id)
        }
        guard !finished.isEmpty else { return (commands, results, envelopes) }
        for task in tasks {
            // One wake-up per task: the master re-reads the task's results hash whenever it is woken.
            let last = finished.last { $0.item.item.taskID == task }!.item.item.id
            commands += [
                .expire(CortexNames.taskResults(task), seconds: retention),
                .xadd(CortexNames.taskResultEvents(task), maxLength: 1000, fields: [("item", last)]),
                .expire(CortexNames.taskResultEvents(task), seconds: retention),
            ]
        }
        // Acknowledged and deleted: a processed entry has no further use, and the stream stays small.
        for stream in streams {
            let ids = byStream[stream]!
            commands += [.xack(stream, group: CortexNames.Group.workers, ids: ids), .xdel(stream, ids: ids)]
        }
        commands += [
            .del(finished.map { CortexNames.checkpoint($0.item.item.id) }),
            .hincrby(CortexNames.workerRegistry(workerID), "items_done", by: finished.count),
        ]
        // Items that were announced (TASK_STARTED) or did not succeed are reported one by one; the others,
        // short and done, together per run and task.
        var short: [(run: String, task: String, ids: [String], longest: Int)] = []
        for (f, _) in finished {
            let item = f.item, result = f.result
            if result.status != .succeeded {
                var failed = Envelope(TaskFailed(itemID: item.id, taskID: item.taskID, worker: workerID, reason: result.error ?? "failed", status: result.status.rawValue),
                                      source: context.processName, runID: item.runID)
                failed.traceparent = f.traceparent
                envelopes.append(failed)
            } else if f.announced {
                var complete = Envelope(TaskComplete(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName, durationMs: result.durationMs),
                                        source: context.processName, runID: item.runID)
                complete.traceparent = f.traceparent
                envelopes.append(complete)
            } else if let i = short.firstIndex(where: { $0.run == item.runID && $0.task == item.taskID }) {
                short[i].ids.append(item.id)
                short[i].longest = max(short[i].longest, result.durationMs)
            } else {
                short.append((item.runID, item.taskID, [item.id], result.durationMs))
            }
        }
        for group in short {
            envelopes.append(Envelope(TaskBatchComplete(taskID: group.task, worker: workerID, node: context.nodeName, itemIDs: group.ids, durationMs: group.longest),
                                      source: context.processName, runID: group.run))
        }
        for envelope in envelopes.dropFirst(started.count) { commands += MessageBus.commands(for: envelope) }
        return (commands, results, envelopes)
    }

    /// One group commit. Refused by the ACL (NOPERM), the items are committed one by one (`commit(_:item:…)`
    /// says how a refusal is reported); with Redis away the whole transaction goes to the journal as one
    /// record (replayed as one script: all of it or none); either way every item's waiter is released.
    private func commit(started: [Envelope], finished: [(item: InFlightWork.Finished, encoded: String)], work: InFlightWork) async {
        defer {
            work.committed(finished.map(\.item.token))
            for (f, _) in finished { f.committed.resume() }
        }
        guard !started.isEmpty || !finished.isEmpty else { return }
        let (commands, results, envelopes) = batchCommands(started: started, finished: finished)
        let log = context.logger
        do {
            switch try await context.redis.transaction(commands) {
            case .committed(let replies):
                for r in replies { try r.orThrow() }
                for e in envelopes { context.metrics.messagePublished(channel: e.channel, type: e.type) }
                await context.redis.awaitReplication()
                let duplicates = results.indices.filter { replies[results[$0]].int == 0 }.map { finished[$0].item }
                if !duplicates.isEmpty { await countDuplicates(duplicates) }
            case .refused(let refusals):
                log.warning("Redis refused a batch commit (\(refusals.map(\.reason).joined(separator: "; "))); committing its \(finished.count) items one by one")
                for envelope in started { try? await context.bus.publish(envelope) }
                for (f, _) in finished { await commit(f.result, item: f.item, delivery: f.delivery, log: f.log) }
                return
            }
        } catch let error as RedisError where error.isConnectionError {
            do {
                try await context.journal.append(commands)
                log.notice("Redis unreachable; \(finished.count) results journaled for replay: \(error)")
            } catch {
                log.error("\(finished.count) results could not be committed nor journaled (the items stay pending and will be redone): \(error)")
            }
        } catch {
            log.error("batch refused by Redis (its \(finished.count) items stay pending and will be redone): \(error)")
        }
        for (f, _) in finished {
            if f.result.status == .succeeded {
                f.log.info("work item done", metadata: [LogKey.itemFiles: "\(f.result.filesExamined)", LogKey.itemMilliseconds: "\(f.result.durationMs)"])
            } else {
                f.log.warning("work item \(f.result.status): \(f.result.error ?? "")")
            }
        }
    }

    /// Items another worker committed first (this one was presumed dead): counted once, noted per task.
    private func countDuplicates(_ items: [InFlightWork.Finished]) async {
        var commands: [RedisCommand] = []
        for f in items {
            context.metrics.duplicateResult()
            f.log.notice("result already committed by another worker; this one is ignored")
            commands += [
                .hincrby(CortexNames.taskDuplicates(f.item.taskID), "count", by: 1),
                .expire(CortexNames.taskDuplicates(f.item.taskID), seconds: context.retentionSeconds),
            ]
        }
        _ = try? await context.redis.pipeline(commands)
    }
}
