import CortexCore
import Foundation

/// A worker's entry in the worker registry (`CortexNames.workerRegistry`, `workerSet`) and its heartbeat
/// key, which the coordinator's liveness monitor watches: registered at start, refreshed every
/// heartbeat interval, marked stopped at shutdown.
struct WorkerRegistration: Sendable {
    let context: ProcessContext
    let workerID: String
    let pools: [WorkerPool]
    private let registered = Locked(false)

    init(context: ProcessContext, workerID: String, pools: [WorkerPool]) {
        self.context = context
        self.workerID = workerID
        self.pools = pools
    }

    /// Whether the worker has registered (its readiness).
    var isRegistered: Bool { registered.value }

    /// Registers the worker (retried while Redis is away) and announces WORKER_REGISTERED.
    func register(status: String) async throws {
        try await retryingRedis(context.logger) {
            try await context.redis.run([
                .hset(CortexNames.workerRegistry(workerID), ["worker": workerID, "node": context.nodeName,
                                                               "pools": pools.map(\.rawValue).joined(separator: ","), "status": status,
                                                               "last_heartbeat": epochMilliseconds()]),
                .sadd(CortexNames.workerSet, workerID),
                .set(CortexNames.workerHeartbeat(workerID), context.nodeName, px: heartbeatMilliseconds),
            ])
        }
        try await context.bus.publish(WorkerRegistered(worker: workerID, node: context.nodeName, pools: pools.map(\.rawValue)))
        registered.withLock { $0 = true }
    }

    /// Refreshes the heartbeat every heartbeat interval until cancelled (a missed beat is only logged by its
    /// absence). The keys and the WORKER_HEARTBEAT go in one round trip on the liveness connection, so a
    /// beat never waits behind the worker's batch commits.
    func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: context.heartbeatInterval)
            if Task.isCancelled { return }
            let beat = Envelope(WorkerHeartbeat(worker: workerID, node: context.nodeName, status: ProcessStatus.alive.rawValue), source: context.processName)
            do {
                try await context.liveness.run([
                    .hset(CortexNames.workerRegistry(workerID), ["last_heartbeat": epochMilliseconds()]),
                    .set(CortexNames.workerHeartbeat(workerID), context.nodeName, px: heartbeatMilliseconds),
                ] + MessageBus.commands(for: beat))
                context.metrics.messagePublished(channel: beat.channel, type: beat.type)
            } catch {
                // A late heartbeat says nothing true: never journaled.
                context.metrics.redisError(operation: "publish")
                context.logger.warning("heartbeat failed: \(error)")
            }
        }
    }

    /// Announces WORKER_SHUTDOWN and marks the worker stopped (best effort: the heartbeat expires anyway).
    func deregister() async {
        await context.bus.notify(WorkerShutdown(worker: workerID, node: context.nodeName))
        _ = try? await context.redis.pipeline([
            .hset(CortexNames.workerRegistry(workerID), ["status": ProcessStatus.stopped.rawValue, "last_heartbeat": epochMilliseconds()]),
            .del(CortexNames.workerHeartbeat(workerID)),
        ])
    }

    private var heartbeatMilliseconds: Int { Int(context.heartbeatTimeout / .milliseconds(1)) }
}
