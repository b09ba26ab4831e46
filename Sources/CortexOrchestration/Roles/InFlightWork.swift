import CortexCore
import Logging
import Synchronization

/// A worker's work items between delivery and commit, shared by the tasks that run them, the loop that
/// reads the stream, the committer (`WorkerService.commitBatches`) and the supervisor (keep-alives, late TASK_STARTED):
///
/// - how many items are running — from delivery until their result is queued for the committer — against
///   the worker's limit (`CORTEX_WORKER_CONCURRENCY`), so the reader asks the stream for as many entries as
///   there is room for, and never starts an entry it is already running (its own entry claimed back after a
///   late refresh). A finished item gives its slot back at once — the reader does not wait for a commit
///   round trip before it reads again — but stays tracked (kept alive, not started twice) until its batch
///   is committed; at most `limit` more finished items wait for the committer, so results awaiting a slow
///   commit do not pile up without bound;
/// - when each item started and whether TASK_STARTED was announced for it: only items still running after
///   the event threshold are announced one by one (the supervisor queues the announcement); shorter ones are
///   reported together in their batch's TASK_BATCH_COMPLETE;
/// - what is waiting to be committed, in order: an announcement is queued under the same lock that decides
///   how the item's end is reported, so TASK_STARTED always goes out before the item's TASK_COMPLETE;
/// - the one suspect it holds (an item delivered `isolateFrom` times or more: the workers that held it
///   before died): it runs alone — once the items running beside it have finished, and with no new read
///   meanwhile — so that if it is the item that kills its worker, only its own delivery count grows, not
///   that of items that happened to be read with it. Further suspects are passed on (`WorkerService`).
final class InFlightWork: Sendable {
    /// One running item.
    struct Running: Sendable {
        var delivery: StreamConsumer.Delivery
        var item: WorkItem
        var started: ContinuousClock.Instant
        /// When the entry's idle time was last reset (its delivery, or the last keep-alive).
        var refreshed: ContinuousClock.Instant
        var announced = false
        /// Another consumer claimed the entry meanwhile: no more keep-alives (the result still counts once).
        var lost = false
        /// Its result waits for the committer: still kept alive (a commit can take a while under load, and
        /// an entry idle past the claim timeout would be taken and done again), never announced any more.
        var finished = false
    }

    /// A finished item waiting for the committer; `committed` is resumed once its batch is written (or journaled).
    struct Finished: Sendable {
        var token: Int
        var result: WorkResult
        var item: WorkItem
        var delivery: StreamConsumer.Delivery
        var log: Logger
        /// TASK_STARTED went out for it: its end is announced on its own (TASK_COMPLETE), not in a batch event.
        var announced: Bool
        /// The item's span (its TASK_COMPLETE / TASK_FAILED joins the item's trace; the committer runs outside it).
        var traceparent: String?
        var committed: CheckedContinuation<Void, Never>
    }

    /// What the committer takes, in the order it was queued.
    enum Pending: Sendable {
        case started(Envelope)
        case finished(Finished)
    }

    private struct State {
        /// Items from delivery until their result is committed (finished ones included).
        var running: [Int: Running] = [:]
        /// How many of `running` are finished, waiting for the committer.
        var finished = 0
        /// The token of each running entry, by stream and entry id.
        var entries: [String: Int] = [:]
        var nextToken = 0
        var pending: [Pending] = []
        var committerWaiting: CheckedContinuation<Void, Never>?
        var readerWaiting: CheckedContinuation<Void, Never>?
        var closed = false
        /// The suspect held, from its delivery until it finishes (or is given up).
        var suspect: Int?
        /// The suspect waiting for the items beside it to finish (`runAlone`).
        var aloneWaiting: CheckedContinuation<Void, Never>?
    }

    /// From which delivery on an item is a suspect and runs alone: its workers died twice while holding it.
    static let isolateFrom = 3

    /// The most items in flight at once.
    let limit: Int
    /// The most items of a pool in flight at once, for pools with a limit of their own (`CORTEX_WORKER_POOL_CONCURRENCY`).
    let poolLimits: [WorkerPool: Int]
    /// The pools this worker reads.
    let pools: [WorkerPool]
    private let state = Mutex(State())

    init(limit: Int, pools: [WorkerPool] = WorkerPool.allCases, poolLimits: [WorkerPool: Int] = [:]) {
        self.limit = max(1, limit)
        self.pools = pools
        self.poolLimits = poolLimits.filter { pools.contains($0.key) }.mapValues { max(1, $0) }
    }

    // MARK: - Reader

    /// Waits until at least one more item may be read — room in total and in at least one pool — and
    /// returns how many, in total and from each limited pool's stream.
    func room() async -> StreamConsumer.ReadRoom {
        while true {
            if let room = state.withLock({ readable($0) }) { return room }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if readable(s) != nil { return true }
                    s.readerWaiting = c
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// What may be read now; nil when nothing may.
    private func readable(_ s: State) -> StreamConsumer.ReadRoom? {
        // Nothing new while a suspect is held: it is to run alone, and soon.
        guard s.suspect == nil else { return nil }
        // Running items against the limit; finished ones against the same number again.
        let free = min(limit - (s.running.count - s.finished), 2 * limit - s.running.count)
        guard free > 0 else { return nil }
        guard !poolLimits.isEmpty else { return StreamConsumer.ReadRoom(total: free) }
        var running: [WorkerPool: Int] = [:]
        for r in s.running.values where !r.finished && poolLimits[r.item.pool] != nil { running[r.item.pool, default: 0] += 1 }
        var limits: [String: Int] = [:]
        for (pool, max) in poolLimits { limits[CortexNames.workStream(pool)] = Swift.max(0, max - running[pool, default: 0]) }
        // Every pool this worker reads is limited and full: wait for one to free.
        if pools.allSatisfy({ limits[CortexNames.workStream($0)] == 0 }) { return nil }
        return StreamConsumer.ReadRoom(total: free, limits: limits)
    }

    /// Counts an item as in flight from its delivery on; returns its token, or nil when this worker is
    /// running that entry already (its own entry claimed back after a refresh came too late: running it
    /// twice would only commit it twice). A `suspect` becomes the one this worker holds (the caller checked
    /// `holdsSuspect` first).
    func began(_ delivery: StreamConsumer.Delivery, item: WorkItem, suspect: Bool = false) -> Int? {
        let now = ContinuousClock.now
        let key = Self.key(delivery)
        return state.withLock { s in
            if let token = s.entries[key] {
                s.running[token]?.refreshed = now  // XAUTOCLAIM reset its idle time
                return nil
            }
            s.nextToken += 1
            s.running[s.nextToken] = Running(delivery: delivery, item: item, started: now, refreshed: now)
            s.entries[key] = s.nextToken
            if suspect { s.suspect = s.nextToken }
            return s.nextToken
        }
    }

    /// Whether a suspect is held now (another one read meanwhile is passed on, not held beside it).
    var holdsSuspect: Bool { state.withLock { $0.suspect != nil } }

    /// Whether `token` is the suspect held.
    func isSuspect(_ token: Int) -> Bool { state.withLock { $0.suspect == token } }

    /// Returns once `token` (the suspect) is the only item still running: the others have finished (their
    /// results may still wait for the committer). No new item is read meanwhile (`readable`).
    func runAlone(_ token: Int) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if Self.alone(token, s) { return true }
                s.aloneWaiting = c
                return false
            }
            if now { c.resume() }
        }
    }

    private static func alone(_ token: Int, _ s: State) -> Bool { s.running.allSatisfy { $0.key == token || $0.value.finished } }

    /// The suspect's wait to resume, when it may run alone now (called under the lock after a change).
    private static func releaseAlone(_ s: inout State) -> CheckedContinuation<Void, Never>? {
        guard let suspect = s.suspect, let waiting = s.aloneWaiting, alone(suspect, s) else { return nil }
        s.aloneWaiting = nil
        return waiting
    }

    private static func key(_ delivery: StreamConsumer.Delivery) -> String { delivery.stream + "\u{0}" + delivery.entry.id }

    /// Removes items (committed, dead-lettered or given up) and wakes the reader if it waits for room.
    private func remove(_ tokens: [Int]) {
        let (reader, alone) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
            for token in tokens {
                if let r = s.running.removeValue(forKey: token) {
                    s.entries[Self.key(r.delivery)] = nil
                    if r.finished { s.finished -= 1 }
                }
                if s.suspect == token { s.suspect = nil }
            }
            defer { s.readerWaiting = nil }
            return (s.readerWaiting, Self.releaseAlone(&s))
        }
        alone?.resume()
        reader?.resume()
    }

    /// Ends an item without a result of its own to commit (it was dead-lettered or buried on its own path).
    func abandon(_ token: Int) { remove([token]) }

    /// The committer wrote (or journaled) these items: their slots are free.
    func committed(_ tokens: [Int]) { remove(tokens) }

    // MARK: - Items

    /// Queues a finished item for the committer and returns once its batch is committed (or journaled).
    /// Its slot is free for the reader at once; its entry stays kept alive until the commit.
    func finish(_ token: Int, result: WorkResult, item: WorkItem, delivery: StreamConsumer.Delivery, log: Logger) async {
        let traceparent = TracePropagation.current
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let (committer, reader, alone) = state.withLock { s -> (CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?, CheckedContinuation<Void, Never>?) in
                if let r = s.running[token], !r.finished {
                    s.running[token]?.finished = true
                    s.finished += 1
                }
                if s.suspect == token { s.suspect = nil }  // it ran: the reader may read again
                let announced = s.running[token]?.announced ?? false
                s.pending.append(.finished(Finished(token: token, result: result, item: item, delivery: delivery, log: log, announced: announced, traceparent: traceparent, committed: c)))
                defer { s.committerWaiting = nil; s.readerWaiting = nil }
                return (s.committerWaiting, s.readerWaiting, Self.releaseAlone(&s))
            }
            alone?.resume()
            committer?.resume()
            reader?.resume()
        }
    }

    // MARK: - Committer

    /// Everything queued since the last call, at most `max` entries; waits while nothing is; nil once
    /// `close()` was called and everything queued was taken.
    func nextBatch(max: Int) async -> [Pending]? {
        while true {
            let taken = state.withLock { s -> [Pending]?? in
                if !s.pending.isEmpty {
                    let n = Swift.min(max, s.pending.count)
                    let batch = Array(s.pending.prefix(n))
                    s.pending.removeFirst(n)
                    return .some(batch)
                }
                return s.closed ? .some(nil) : nil
            }
            if let taken { return taken }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if !s.pending.isEmpty || s.closed { return true }
                    s.committerWaiting = c
                    return false
                }
                if now { c.resume() }
            }
        }
    }

    /// No more items will start: the committer ends once it has taken what is queued.
    func close() {
        let committer = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.closed = true
            defer { s.committerWaiting = nil }
            return s.committerWaiting
        }
        committer?.resume()
    }

    // MARK: - Supervisor

    /// Items running for at least `threshold` that were not announced yet: marks them announced and queues
    /// their TASK_STARTED (built by `announcement`) for the committer, ahead of anything they queue later.
    func announceLongRunning(after threshold: Duration, announcement: (WorkItem) -> Envelope) {
        let now = ContinuousClock.now
        let committer = state.withLock { s -> CheckedContinuation<Void, Never>? in
            var queued = false
            for (token, r) in s.running where !r.announced && !r.finished && now - r.started >= threshold {
                s.running[token]?.announced = true
                s.pending.append(.started(announcement(r.item)))
                queued = true
            }
            guard queued else { return nil }
            defer { s.committerWaiting = nil }
            return s.committerWaiting
        }
        committer?.resume()
    }

    /// Entries whose idle time was last reset at least `every` ago (and that are still ours), marked refreshed now.
    func dueForKeepAlive(every: Duration) -> [(token: Int, delivery: StreamConsumer.Delivery)] {
        let now = ContinuousClock.now
        return state.withLock { s in
            var due: [(Int, StreamConsumer.Delivery)] = []
            for (token, r) in s.running where !r.lost && now - r.refreshed >= every {
                s.running[token]?.refreshed = now
                due.append((token, r.delivery))
            }
            return due
        }
    }

    /// Stops refreshing an entry another consumer took.
    func markLost(_ token: Int) { state.withLock { $0.running[token]?.lost = true } }

}
