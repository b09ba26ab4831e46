import CortexCore
import Foundation
import Logging

/// The coordinator's watch over heartbeats.
///
/// - A worker whose heartbeat key expired without a clean shutdown is marked `lost` and announced
///   (WORKER_LOST); its pending items are claimed by other workers after the visibility timeout.
/// - A master with no live instance is announced (MASTER_DOWN on cortex:events:system, ESCALATION on
///   cortex:masters:coordination). Tasks pending under dead instances are claimed by the coordinator
///   (consumer `coordinator-held`) and handed back to the stream as soon as any instance is alive,
///   so a restarted master, whatever its new name, picks them up at once.
struct LivenessMonitor: Sendable {
    let context: ProcessContext
    /// When each master went down, for runs that give up on a master after a while.
    let downSince = Locked<[MasterRole: Date]>([:])
    private let known = Locked<[MasterRole: Bool]>([:])

    /// Marks a worker lost when its heartbeat key is gone; forgets workers gone for longer than the
    /// retention (pods come and go under new names: the registry must not grow forever).
    static let markLostScript = RedisScript("""
        if redis.call('EXISTS', KEYS[2]) == 1 then return false end
        local status = redis.call('HGET', KEYS[1], 'status')
        if status == false or status == 'stopped' or status == 'lost' then
          local last = tonumber(redis.call('HGET', KEYS[1], 'last_heartbeat') or '0') or 0
          if tonumber(ARGV[1]) - last > tonumber(ARGV[2]) then
            redis.call('DEL', KEYS[1])
            redis.call('SREM', KEYS[3], ARGV[3])
          end
          return false
        end
        redis.call('HSET', KEYS[1], 'status', 'lost', 'lost_at', ARGV[1])
        return {redis.call('HGET', KEYS[1], 'node') or '', redis.call('HGET', KEYS[1], 'last_heartbeat') or '0'}
        """)

    /// Workers stopped or lost for a day are dropped from the registry.
    static let forgetAfterMilliseconds = 24 * 3600 * 1000

    var interval: Duration { max(min(context.heartbeatInterval / 2, .seconds(2)), .milliseconds(250)) }

    /// Checks until cancelled; a failed check (Redis away) is logged and retried next time.
    func run() async {
        while !Task.isCancelled {
            do { try await check() } catch { context.logger.debug("liveness check failed: \(error)") }
            try? await Task.sleep(for: interval)
        }
    }

    /// One pass over workers and masters.
    /// Each check stands alone: one that fails (a master that never started has no consumer group yet:
    /// NOGROUP; Redis away) is logged at warning and counted, and the others still run.
    func check() async throws {
        do { try await checkWorkers() } catch { failed("workers", error) }
        for role in MasterRole.allCases {
            do { try await checkMaster(role) } catch { failed(role.processName, error) }
        }
    }

    private func failed(_ what: String, _ error: Error) {
        context.metrics.livenessCheckFailed(what: what)
        context.logger.warning("liveness check of \(what) failed: \(error)")
    }

    private func checkWorkers() async throws {
        let workers = try await context.redis.smembers(CortexNames.workerSet)
        guard !workers.isEmpty else { return }
        let now = epochMilliseconds()
        let replies = try await Self.markLostScript.runPipelined(context.redis, calls: workers.map {
            (keys: [CortexNames.workerRegistry($0), CortexNames.workerHeartbeat($0), CortexNames.workerSet], args: [now, Self.forgetAfterMilliseconds, $0])
        })
        await exportWorkers(workers)
        for (worker, reply) in zip(workers, replies) {
            guard let parts = reply.array, parts.count == 2 else { continue }
            let node = parts[0].string ?? ""
            let last = parts[1].int ?? 0
            context.metrics.liveness(event: "worker_lost")
            context.logger.warning("worker \(worker) on \(node) lost: no heartbeat for \((now - last) / 1000) s")
            await context.bus.notify(WorkerLost(worker: worker, node: node, lastHeartbeat: last))
        }
    }

    /// `cortex_workers_live{pool}` (every pool, zero included, so "pool empty" can alert) and
    /// `cortex_workers_by_node{node}`, from the live workers' registry entries.
    private func exportWorkers(_ workers: [String]) async {
        guard let replies = try? await context.redis.pipeline(workers.flatMap { w -> [RedisCommand] in
            [.exists(CortexNames.workerHeartbeat(w)), .hmget(CortexNames.workerRegistry(w), ["node", "pools", "status"])]
        }) else { return }
        var pools: [String: Int] = Dictionary(uniqueKeysWithValues: WorkerPool.allCases.map { ($0.rawValue, 0) })
        var nodes: [String: Int] = [:]
        for i in stride(from: 0, to: replies.count - 1, by: 2) where replies[i].int == 1 {
            let fields = replies[i + 1].array ?? []
            guard fields.count == 3, fields[2].string != ProcessStatus.stopped.rawValue, fields[2].string != ProcessStatus.lost.rawValue else { continue }
            nodes[fields[0].string ?? "unknown", default: 0] += 1
            for pool in (fields[1].string ?? "").split(separator: ",") { pools[String(pool), default: 0] += 1 }
        }
        for (pool, n) in pools { context.metrics.workersLive(pool: pool, n) }
        context.metrics.workersByNode(nodes)
    }

    /// Instances of `role` whose heartbeat key is alive.
    func liveInstances(_ role: MasterRole) async throws -> Set<String> {
        try await instances(role).live
    }

    /// Every instance that registered for `role`, and those whose heartbeat key is alive.
    func instances(_ role: MasterRole) async throws -> (all: Set<String>, live: Set<String>) {
        let instances = try await context.redis.smembers(CortexNames.masterInstances(role))
        guard !instances.isEmpty else { return ([], []) }
        let replies = try await context.redis.pipeline(instances.map { .exists(CortexNames.masterHeartbeat(role, instance: $0)) })
        return (Set(instances), Set(zip(instances, replies).filter { $0.1.int == 1 }.map(\.0)))
    }

    private func checkMaster(_ role: MasterRole) async throws {
        let (all, live) = try await instances(role)
        let stream = CortexNames.taskStream(role)
        let group = CortexNames.Group.masters
        var held = 0
        // Tasks stuck with instances that are gone: the coordinator takes them. A master that never started
        // has no group yet: nothing is pending then.
        let pending: [PendingEntry]
        do {
            pending = try await context.redis.xpending(stream, group: group, count: 1000)
        } catch RedisError.server(let message) where message.hasPrefix("NOGROUP") {
            pending = []
        }
        // Idle for a heartbeat interval at least: a task just delivered to a starting instance is not orphaned.
        let minIdle = Int(context.heartbeatInterval / .milliseconds(1))
        let orphaned = pending.filter { $0.consumer != CortexNames.Group.heldByCoordinator && !live.contains($0.consumer) && $0.idleMilliseconds >= minIdle }
        if !orphaned.isEmpty {
            let claimed = try await context.redis.xclaim(stream, group: group, consumer: CortexNames.Group.heldByCoordinator,
                                                         minIdle: context.heartbeatInterval, ids: orphaned.map(\.id))
            if !claimed.isEmpty {
                context.metrics.liveness(event: "tasks_held", by: claimed.count)
                context.logger.warning("holding \(claimed.count) task(s) of \(role.processName) from dead instance(s) \(Set(orphaned.map(\.consumer)).sorted().joined(separator: ", "))")
            }
        }
        let heldEntries = pending.isEmpty ? [] : try await context.redis.xpending(stream, group: group, count: 1000, consumer: CortexNames.Group.heldByCoordinator)
        held = heldEntries.count


        let wasUp = known.value[role]
        let up = !live.isEmpty
        context.metrics.mastersLive(master: role, live.count)
        known.withLock { $0[role] = up }
        if up {
            if wasUp == false {
                downSince.withLock { $0[role] = nil }
                context.metrics.liveness(event: "master_up")
                context.logger.notice("\(role.processName) is back (\(live.sorted().joined(separator: ", ")))")
            }
            if held > 0 { try await handBack(role, entries: heldEntries) }
        } else if wasUp == true {
            downSince.withLock { $0[role] = Date() }
            let last = try await context.redis.hget(CortexNames.masterRegistry(role), "last_heartbeat").flatMap { Int($0) } ?? 0
            _ = try? await context.redis.send(.hset(CortexNames.masterRegistry(role), "status", ProcessStatus.down.rawValue))
            context.metrics.liveness(event: "master_down")
            context.logger.error("\(role.processName) is down: no live instance; \(held) task(s) held until it returns")
            await context.bus.notify(MasterDown(master: role.rawValue, lastHeartbeat: last, heldTasks: held))
            await context.bus.notify(Escalation(severity: "high",
                                                reason: "\(role.processName) missed its heartbeat (timeout \(context.heartbeatTimeout)); \(held) task(s) held until it is restarted",
                                                subject: role.processName))
        }
        await forgetDead(role, all: all, live: live, pending: pending)
    }

    /// Forgets dead instances that hold nothing any more (their tasks were taken above), so pods that come
    /// and go under new names do not grow the set for ever; a live one re-adds itself each heartbeat.
    /// Last and non-fatal: housekeeping must never stop the checks that matter.
    private func forgetDead(_ role: MasterRole, all: Set<String>, live: Set<String>, pending: [PendingEntry]) async {
        let gone = all.subtracting(live).filter { dead in !pending.contains { $0.consumer == dead } }
        guard !gone.isEmpty else { return }
        do {
            try await context.redis.send(.srem(CortexNames.masterInstances(role), gone.sorted())).orThrow()
        } catch {
            failed("\(role.processName) instances", error)
        }
    }

    /// Returns held tasks to the stream (attempt + 1) for the live instances to take.
    private func handBack(_ role: MasterRole, entries: [PendingEntry]) async throws {
        let stream = CortexNames.taskStream(role)
        for entry in entries {
            guard var fields = try await context.redis.xrange(stream, from: entry.id, to: entry.id).first?.fields else {
                _ = try await context.redis.xack(stream, group: CortexNames.Group.masters, ids: [entry.id])  // trimmed away: nothing to return
                continue
            }
            if let text = fields["task"], var task = try? WireJSON.decode(TaskSpec.self, from: text) {
                task.attempt += 1
                fields["task"] = try WireJSON.encode(task)
            }
            try await StreamConsumer.handBack(stream: stream, group: CortexNames.Group.masters, entryID: entry.id, fields: fields, redis: context.redis)
        }
        context.metrics.liveness(event: "tasks_handed_back", by: entries.count)
        context.logger.notice("handed \(entries.count) held task(s) back to \(role.processName)")
    }
}
