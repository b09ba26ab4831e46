import CortexControl
import CortexCore
@testable import CortexOrchestration
import Foundation
import Logging
import Testing

/// The worker's batch path with real worker processes and a real redis-server: many items in flight per
/// worker, read in batches and committed in group transactions, with the short items reported together.
@Suite(.serialized) struct WorkQueueBatchTests {
    static let stream = CortexNames.workStream(.catalog)

    /// Queues `count` language-census items of task `task` over `target` in one pipeline.
    static func enqueue(_ redis: RedisClient, task: String, count: Int, target: URL) async throws -> [WorkItem] {
        let items = (0..<count).map { i in
            WorkItem(id: "\(task).\(i)", taskID: task, runID: "run-\(task)", master: .inventory, pool: .catalog, skill: .languageCensus,
                     target: target.path, shard: 0, shards: 1)
        }
        try await redis.ensureGroup(stream, group: CortexNames.Group.workers)
        try await redis.run(items.map { .xadd(stream, fields: [("item", $0.wireJSON)]) })
        return items
    }

    /// The work item messages in the event history, decoded, oldest first.
    static func workEvents(_ redis: RedisClient) async throws -> [Envelope] {
        try await redis.xrange(CortexNames.eventHistory).compactMap { entry in
            entry.fields["message"].flatMap { try? EnvelopeDecoder().decode(Array($0.utf8), channel: nil).get() }
        }.filter { $0.channel == .workersStatus }
    }

    /// Item ids each completion message reported (a batch counts each of its items).
    static func completed(_ events: [Envelope]) -> [String] {
        events.flatMap { e -> [String] in
            if let p = try? e.payload(TaskBatchComplete.self) { return p.itemIDs }
            if let p = try? e.payload(TaskComplete.self) { return [p.itemID] }
            return []
        }
    }

    @Test func manyItemsInFlightAreReadAndCommittedInBatches() async throws {
        let suite = try await RecoveryTests.suite("batch", ["CORTEX_WORKER_CONCURRENCY": "16"])
        let redis = RecoveryTests.client(suite)
        defer { redis.close() }
        let items = try await Self.enqueue(redis, task: "t-batch", count: 300, target: try makeRepository())
        try suite.startWorker(pools: [.catalog])
        #expect(await eventually(timeout: .seconds(60)) { (try? await redis.send(.hlen(CortexNames.taskResults("t-batch"))).int) == 300 })
        let results = try await redis.hgetall(CortexNames.taskResults("t-batch")).mapValues { try WireJSON.decode(WorkResult.self, from: $0) }
        #expect(Set(results.keys) == Set(items.map(\.id)))
        #expect(results.values.allSatisfy { $0.status == .succeeded && $0.worker == "worker-1" && ($0.fileCache?.files ?? $0.filesExamined) == 8 })
        // Every entry acknowledged and deleted; the worker counted each item once.
        #expect(try await redis.xpending(Self.stream, group: CortexNames.Group.workers).isEmpty)
        #expect(try await redis.send("XLEN", Self.stream).int == 0)
        #expect(await eventually { (try? await redis.hget(CortexNames.workerRegistry("worker-1"), "items_done")) == "300" })
        // Each item reported done exactly once, and the short ones together: fewer messages than items.
        let events = try await Self.workEvents(redis)
        let done = Self.completed(events)
        #expect(done.count == 300 && Set(done) == Set(items.map(\.id)))
        let batches = events.filter { $0.type == .TASK_BATCH_COMPLETE }
        #expect(!batches.isEmpty && batches.count < 300, "\(batches.count) batch messages for 300 items")
        // An item announced on its own (it ran past the threshold on a slow machine) starts before it completes.
        let started = events.compactMap { try? $0.payload(TaskStarted.self).itemID }
        let individually = events.compactMap { try? $0.payload(TaskComplete.self).itemID }
        #expect(Set(started) == Set(individually))
        await suite.stop()
    }

    @Test func itemsRunningPastTheThresholdAreAnnouncedOneByOneInOrder() async throws {
        // No file cache: every item reads its 1,500 files, long enough to pass a 1 ms threshold.
        let suite = try await RecoveryTests.suite("announce", ["CORTEX_ITEM_EVENT_THRESHOLD": "0.001", "CORTEX_FILE_CACHE_MAX_MB": "0"])
        let redis = RecoveryTests.client(suite)
        defer { redis.close() }
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: 1500)
        let items = try await Self.enqueue(redis, task: "t-long", count: 8, target: target)
        try suite.startWorker(pools: [.catalog])
        #expect(await eventually(timeout: .seconds(120)) { (try? await redis.send(.hlen(CortexNames.taskResults("t-long"))).int) == 8 })
        let events = try await Self.workEvents(redis)
        #expect(Set(Self.completed(events)) == Set(items.map(\.id)) && Self.completed(events).count == 8)
        var seenStart: Set<String> = []
        var announced = 0
        for e in events {
            if let p = try? e.payload(TaskStarted.self) { seenStart.insert(p.itemID) }
            if let p = try? e.payload(TaskComplete.self) {
                #expect(seenStart.contains(p.itemID), "TASK_COMPLETE of \(p.itemID) before its TASK_STARTED")
                announced += 1
            }
        }
        #expect(announced > 0, "no item ran past the 1 ms threshold")
        await suite.stop()
    }

    @Test func workerKilledMidBatchHasItsItemsRedoneAndCountedOnce() async throws {
        // Items that read 500 files each (no file cache), 8 at a time: the worker holds a batch when it is
        // killed. 400 of them take it over 10 s here, so a test process stalled for seconds under load still
        // finds it working. The survivor has the file cache, so redoing the rest is quick.
        let suite = try await RecoveryTests.suite("killbatch", RecoveryTests.fast.merging(["CORTEX_WORKER_CONCURRENCY": "8"]) { $1 })
        let redis = RecoveryTests.client(suite)
        defer { redis.close() }
        let target = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("target"), files: 500)
        let items = try await Self.enqueue(redis, task: "t-kill", count: 400, target: target)
        let victim = try suite.startWorker(pools: [.catalog], environment: ["CORTEX_FILE_CACHE_MAX_MB": "0"])
        // Killed once it has committed some items and holds others. The state is judged with the worker
        // frozen (SIGSTOP): judged while it runs, a loaded machine can let it finish every item between the
        // look and the kill (a CI run did: nothing stranded, every item done). It is frozen as soon as it
        // has committed one item and holds two; if the frozen state does not qualify, it goes on and is
        // looked at again.
        func state() async -> (done: Int, held: Int) {
            let done = (try? await redis.send(.hlen(CortexNames.taskResults("t-kill"))).int) ?? 0
            let held = (try? await redis.xpending(Self.stream, group: CortexNames.Group.workers, count: 1000, consumer: victim.name))?.count ?? 0
            return (done, held)
        }
        #expect(await eventually(timeout: .seconds(60)) {
            let seen = await state()
            guard seen.done >= 1 && seen.held >= 2 else { return false }
            victim.signal(SIGSTOP)
            guard await eventually(timeout: .seconds(10), { Self.isStopped(victim.pid) }) else { victim.signal(SIGCONT); return false }
            let frozen = await state()
            if frozen.held >= 1 && frozen.done < items.count { return true }
            victim.signal(SIGCONT)
            return false
        })
        victim.signal(SIGKILL)
        _ = await victim.wait(timeout: .seconds(5))
        let stranded = try await redis.xpending(Self.stream, group: CortexNames.Group.workers, count: 1000, consumer: victim.name)
        #expect(!stranded.isEmpty, "the kill stranded nothing")
        let doneAtKill = try await redis.send(.hlen(CortexNames.taskResults("t-kill"))).int ?? 0
        #expect(doneAtKill < items.count)
        try suite.startWorker(pools: [.catalog])
        #expect(await eventually(timeout: .seconds(180)) { (try? await redis.send(.hlen(CortexNames.taskResults("t-kill"))).int) == items.count })
        let results = try await redis.hgetall(CortexNames.taskResults("t-kill")).mapValues { try WireJSON.decode(WorkResult.self, from: $0) }
        #expect(Set(results.keys) == Set(items.map(\.id)))
        // What the victim held was redone by the survivor (the results it committed before the kill stay
        // its own); nothing is left pending or in the stream.
        #expect(results.values.filter { $0.worker == "worker-1" }.count >= doneAtKill)
        #expect(results.values.filter { $0.worker == "worker-2" }.count >= stranded.count)
        #expect(try await redis.xpending(Self.stream, group: CortexNames.Group.workers).isEmpty)
        #expect(try await redis.send("XLEN", Self.stream).int == 0)
        // Counted once: each item has one result, and the completion messages name each item once, plus
        // once more for every result another worker had already committed (recorded as a duplicate).
        let duplicates = Int(try await redis.hget(CortexNames.taskDuplicates("t-kill"), "count") ?? "0") ?? 0
        let done = Self.completed(try await Self.workEvents(redis))
        #expect(Set(done) == Set(items.map(\.id)))
        #expect(done.count == items.count + duplicates)
        await suite.stop()
    }

    /// Whether process `pid` is stopped (state T in /proc/PID/stat): a SIGSTOP has taken effect, so it
    /// sends nothing more to Redis until it is continued.
    static func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("T")
    }

    /// CORTEX_WORKER_POOL_CONCURRENCY: a worker reading a heavy pool (test: 1) and a light one takes one
    /// heavy item at a time while it keeps reading light items in batches; once every pool it reads is at
    /// its limit the reader waits, and a finished heavy item lets the next one in. Real streams, real reads.
    @Test(.timeLimit(.minutes(1))) func aPoolLimitHoldsHeavyItemsToTheirShareWhileLightOnesFlow() async throws {
        #expect(try WorkerService.poolLimits("implementation=1,test=1") == [.implementation: 1, .test: 1])
        #expect(try WorkerService.poolLimits("none").isEmpty)
        #expect(throws: ConfigurationError.self) { try WorkerService.poolLimits("tests=1") }
        #expect(throws: ConfigurationError.self) { try WorkerService.poolLimits("test=0") }
        #expect(throws: ConfigurationError.self) { try WorkerService.poolLimits("test") }

        let redis = try await PrivateRedis.start()
        let client = RedisClient(endpoint: redis.endpoint)
        defer { client.close(); Task { await redis.stop() } }
        let heavy = CortexNames.workStream(.test), light = CortexNames.workStream(.catalog)
        func item(_ pool: WorkerPool, _ i: Int) -> WorkItem {
            WorkItem(id: "t.\(pool.rawValue).\(i)", taskID: "t", runID: "run-t", master: .testing, pool: pool, skill: .languageCensus, target: "/", shard: i, shards: 4)
        }
        var consumer = StreamConsumer(redis: client, group: CortexNames.Group.workers, consumer: "w1", streams: [heavy, light], claimIdle: .seconds(60),
                                      block: .milliseconds(100))
        try await consumer.prepare()
        #expect(try await consumer.next(count: 1).isEmpty)  // the start's own-pending read and claim, before anything is queued
        try await client.run((0..<3).map { .xadd(heavy, fields: [("item", item(.test, $0).wireJSON)]) } + (0..<5).map { .xadd(light, fields: [("item", item(.catalog, $0).wireJSON)]) })

        let work = InFlightWork(limit: 16, pools: [.test, .catalog], poolLimits: [.test: 1, .implementation: 1])
        func read() async throws -> [StreamConsumer.Delivery] {
            let room = await work.room()
            let got = try await consumer.next(room: room)
            for d in got { _ = work.began(d, item: try WorkItem(wireJSON: d.entry.fields["item"] ?? "")) }
            return got
        }
        #expect(await work.room() == .init(total: 16, limits: [heavy: 1]), "a pool the worker does not read has no limit here")
        let first = try await read()
        #expect(first.map(\.stream) == [heavy], "the limited stream is read first, one entry: \(first.map(\.entry.id))")
        #expect(await work.room() == .init(total: 15, limits: [heavy: 0]))
        let second = try await read()
        #expect(second.count == 5 && second.allSatisfy { $0.stream == light }, "light items in one batch beside the heavy one")
        #expect(try await read().isEmpty, "nothing more may be read from the heavy stream, and the light one is empty")

        // Every pool this worker reads at its limit: the reader waits until a heavy item ends.
        let only = InFlightWork(limit: 16, pools: [.test], poolLimits: [.test: 1])
        let token = try #require(only.began(first[0], item: try WorkItem(wireJSON: first[0].entry.fields["item"] ?? "")))
        let waiter = Task { await only.room() }
        try await Task.sleep(for: .milliseconds(200))
        only.abandon(token)
        #expect(await waiter.value == .init(total: 16, limits: [heavy: 1]))
    }

    /// A finished item gives its slot back before its batch is committed (the reader need not wait a commit
    /// round trip), but no more than the limit again may wait for the committer.
    @Test(.timeLimit(.minutes(1))) func aFinishedItemFreesItsSlotBeforeItsCommitWithinABound() async throws {
        let stream = CortexNames.workStream(.catalog)
        func delivery(_ i: Int) -> StreamConsumer.Delivery {
            StreamConsumer.Delivery(stream: stream, entry: StreamEntry(id: "1-\(i)", fields: [:]), redelivered: false, deliveries: nil)
        }
        func item(_ i: Int) -> WorkItem {
            WorkItem(id: "t.\(i)", taskID: "t", runID: "run-t", master: .inventory, pool: .catalog, skill: .languageCensus, target: "/", shard: i, shards: 8)
        }
        func result(_ i: Int) -> WorkResult {
            WorkResult(itemID: "t.\(i)", taskID: "t", worker: "w", node: "n", status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        }
        let work = InFlightWork(limit: 2, pools: [.catalog])
        let log = Logger(label: "test")
        let a = try #require(work.began(delivery(0), item: item(0))), b = try #require(work.began(delivery(1), item: item(1)))
        let full = Task { await work.room() }
        try await Task.sleep(for: .milliseconds(100))
        let finishA = Task { await work.finish(a, result: result(0), item: item(0), delivery: delivery(0), log: log) }
        #expect(await full.value == .init(total: 1), "A finished: one slot free while its commit is still to come")
        #expect(work.began(delivery(0), item: item(0)) == nil, "a finished entry is still tracked, not started twice")
        let finishB = Task { await work.finish(b, result: result(1), item: item(1), delivery: delivery(1), log: log) }
        let c = try #require(work.began(delivery(2), item: item(2)))
        _ = try #require(work.began(delivery(3), item: item(3)))
        // C and D running, A and B waiting for the committer: the limit of running items is reached.
        let returned = Locked(false)
        let waiter = Task { let room = await work.room(); returned.withLock { $0 = true }; return room }
        let finishC = Task { await work.finish(c, result: result(2), item: item(2), delivery: delivery(2), log: log) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!returned.value, "two running and two finished: no room until a commit")
        // Collected until all three are in: the finish tasks may not all have run yet on a loaded machine.
        var finished: [InFlightWork.Finished] = []
        while finished.count < 3 {
            let batch = try #require(await work.nextBatch(max: 16))
            finished += batch.compactMap { if case .finished(let f) = $0 { f } else { nil } }
        }
        #expect(Set(finished.map(\.item.id)) == ["t.0", "t.1", "t.2"])
        // Taken by the committer but not yet written: A, B and C still count as waiting for it.
        try await Task.sleep(for: .milliseconds(100))
        #expect(!returned.value, "three finished, one running: the running limit has room, the bound on finished ones has not")
        work.committed(finished.map(\.token))
        for f in finished { f.committed.resume() }
        await finishA.value; await finishB.value; await finishC.value
        #expect(await waiter.value == .init(total: 1), "the commit of three frees room; one item still runs")
    }
    /// A suspect (delivered `isolateFrom` times) runs alone: it waits for the items running beside it to
    /// finish (finished ones waiting for the committer do not count), nothing new is read while it is held,
    /// and once it has finished the reader reads again.
    @Test(.timeLimit(.minutes(1))) func aSuspectRunsAloneAndNothingIsReadMeanwhile() async throws {
        let stream = CortexNames.workStream(.catalog)
        func delivery(_ i: Int, _ deliveries: Int?) -> StreamConsumer.Delivery {
            StreamConsumer.Delivery(stream: stream, entry: StreamEntry(id: "1-\(i)", fields: [:]), redelivered: deliveries != nil, deliveries: deliveries)
        }
        func item(_ i: Int) -> WorkItem {
            WorkItem(id: "t.\(i)", taskID: "t", runID: "run-t", master: .inventory, pool: .catalog, skill: .languageCensus, target: "/", shard: i, shards: 8)
        }
        func result(_ i: Int) -> WorkResult {
            WorkResult(itemID: "t.\(i)", taskID: "t", worker: "w", node: "n", status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        }
        let work = InFlightWork(limit: 8, pools: [.catalog])
        let log = Logger(label: "test")
        let a = try #require(work.began(delivery(0, 2), item: item(0))), b = try #require(work.began(delivery(1, nil), item: item(1)))
        #expect(!work.holdsSuspect)
        let s = try #require(work.began(delivery(2, InFlightWork.isolateFrom), item: item(2), suspect: true))
        #expect(work.holdsSuspect && work.isSuspect(s) && !work.isSuspect(a))
        let alone = Locked(false), read = Locked(false)
        let runner = Task { await work.runAlone(s); alone.withLock { $0 = true } }
        let reader = Task { let room = await work.room(); read.withLock { $0 = true }; return room }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!alone.value && !read.value, "A and B still run: the suspect waits, and nothing is read though there is room")
        let finishA = Task { await work.finish(a, result: result(0), item: item(0), delivery: delivery(0, 2), log: log) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!alone.value, "B still runs")
        let finishB = Task { await work.finish(b, result: result(1), item: item(1), delivery: delivery(1, nil), log: log) }
        // Finished but not committed: A and B no longer run beside it.
        #expect(await eventually(timeout: .seconds(10)) { alone.value })
        #expect(!read.value, "the suspect runs: still nothing read")
        let finishS = Task { await work.finish(s, result: result(2), item: item(2), delivery: delivery(2, 3), log: log) }
        #expect(await reader.value.total > 0, "the suspect finished: the reader reads again")
        #expect(!work.holdsSuspect)
        var finished: [InFlightWork.Finished] = []
        while finished.count < 3 {
            finished += try #require(await work.nextBatch(max: 16)).compactMap { if case .finished(let f) = $0 { f } else { nil } }
        }
        work.committed(finished.map(\.token))
        for f in finished { f.committed.resume() }
        await finishA.value; await finishB.value; await finishS.value
        await runner.value
    }

    /// A poison item (here: any worker holding it is killed, as a crash would) read in a batch with others:
    /// its batch-mates die with it twice at most, then each suspect runs alone, so only the poison item is
    /// dead-lettered (after CORTEX_MAX_DELIVERIES), and every other item succeeds. Before: the stranded
    /// batch was claimed together again and again, and every item in it was dead-lettered with the poison one.
    @Test(.disabled("the test's killer can miss the poison item's run alone on a loaded machine (a CI run: 2 kills, then it finished); passes on a quiet one, and fails there without isolation"))
    func aPoisonItemDoesNotTakeItsBatchMatesToTheDeadLetters() async throws {
        let suite = try await RecoveryTests.suite("poisonbatch", ["CORTEX_HEARTBEAT_INTERVAL": "0.5", "CORTEX_HEARTBEAT_TIMEOUT": "3", "CORTEX_CLAIM_IDLE": "2",
                                                                 "CORTEX_WORKER_CONCURRENCY": "8", "CORTEX_FILE_CACHE_MAX_MB": "0"])
        let redis = RecoveryTests.client(suite)
        defer { redis.close() }
        // The poison item reads 30,000 files (seconds), its mates 300 each: all held together when it is killed.
        let big = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("big"), files: 30_000)
        let small = try SyntheticRepository.make(at: suite.workDirectory.appendingPathComponent("small"), files: 300)
        let task = "t-poison-batch"
        let items = (0..<8).map { i in
            WorkItem(id: "\(task).\(i)", taskID: task, runID: "run-\(task)", master: .inventory, pool: .catalog, skill: .languageCensus,
                     target: (i == 0 ? big : small).path, shard: 0, shards: 1)
        }
        let poison = items[0].id
        try await redis.ensureGroup(Self.stream, group: CortexNames.Group.workers)
        try await redis.run(items.map { .xadd(Self.stream, fields: [("item", $0.wireJSON)]) })
        var worker = try suite.startWorker(pools: [.catalog])
        var kills = 0
        let done = try await eventually(timeout: .seconds(240)) {
            if (try? await redis.send(.hlen(CortexNames.taskResults(task))).int) == items.count { return true }
            // The worker running the poison item dies, and a new one starts. Running: pending under the worker and
            // kept alive (a suspect passed on sits idle for the claim timeout), and from the third delivery on
            // (a suspect) only once the worker says it runs alone.
            guard let held = try? await redis.xpending(Self.stream, group: CortexNames.Group.workers, count: 100, consumer: worker.name) else { return false }
            var running = false
            for entry in held where entry.idleMilliseconds < 2000 {
                guard (try? await Self.itemID(redis, entry.id)) == poison else { continue }
                running = entry.deliveries < InFlightWork.isolateFrom
                    || worker.output().split(separator: "\n").contains { $0.contains("runs alone now") && $0.contains(poison) }
            }
            guard running else { return false }
            worker.signal(SIGKILL)
            _ = await worker.wait(timeout: .seconds(10))
            kills += 1
            worker = try suite.startWorker(pools: [.catalog])
            return false
        }
        let resultCount = (try? await redis.send(.hlen(CortexNames.taskResults(task))).int) ?? -1
        #expect(done, "\(kills) kills; results: \(resultCount) of \(items.count)")
        let results = try await redis.hgetall(CortexNames.taskResults(task)).mapValues { try WireJSON.decode(WorkResult.self, from: $0) }
        #expect(results[poison]?.status == .failed && results[poison]?.error?.hasPrefix("dead-lettered after 6 deliveries") == true, "\(results[poison].map { "\($0.status) \($0.error ?? "")" } ?? "none")")
        let mates = results.filter { $0.key != poison }
        #expect(mates.count == 7 && mates.values.allSatisfy { $0.status == .succeeded }, "\(mates.mapValues { "\($0.status) \($0.error ?? "")" })")
        let dead = try await redis.xrange(CortexNames.deadLetters)
        #expect(dead.map { $0.fields["item_id"] } == [poison], "\(dead.map { $0.fields["item_id"] ?? "" })")
        #expect(kills == 5, "the poison item's five deliveries each killed its worker")
        await suite.stop()
    }

    /// The work item id of stream entry `id`.
    static func itemID(_ redis: RedisClient, _ id: String) async throws -> String? {
        try await redis.xrange(stream, from: id, to: id).first?.fields["item"].flatMap { try? WorkItem(wireJSON: $0).id }
    }
}
