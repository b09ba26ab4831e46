import CortexCore
import Foundation
import Logging

/// Submits runs and follows them: what `cortexctl run` and `cortexctl up` use.
public struct RunClient: Sendable {
    public let bus: MessageBus
    public var redis: RedisClient { bus.redis }

    public init(bus: MessageBus) { self.bus = bus }

    /// Queues a run on the durable run stream and announces it; returns its id.
    @discardableResult
    public func submit(_ request: RunRequest) async throws -> String {
        // The coordinator checks again; here the caller hears why at once. (A request without targets
        // may still be meant for a cluster the coordinator reaches: it decides.)
        if let problem = request.problem(cluster: true) { throw CortexError(.refused, "run request refused: \(problem)") }
        let json = try WireJSON.encode(request)
        try await redis.run([
            .hset(CortexNames.run(request.runID), ["status": RunStatus.queued.rawValue, "goal": request.goal,
                                                  "targets": try WireJSON.encode(request.targets), "requested_by": request.requestedBy]),
            .zadd(CortexNames.runIndex, score: epochMilliseconds(request.requestedAt), request.runID),
            .xadd(CortexNames.runRequests, fields: [("request", json)]),
        ])
        await redis.awaitReplication()
        try await bus.publish(RunRequested(goal: request.goal, targets: request.targets), runID: request.runID)
        return request.runID
    }

    /// Calls `onEvent` for each message of the run as it arrives, until the run ends or `timeout` passes.
    /// The run's hash is re-read every second, so a missed RUN_COMPLETE cannot leave the caller hanging.
    public func follow(runID: String, subscribedBeforeSubmit subscription: (RedisSubscriber, EnvelopeStream)? = nil,
                       timeout: Duration, onEvent: @escaping @Sendable (Envelope) -> Void) async throws -> RunState {
        let (subscriber, events) = subscription ?? bus.subscribe(CortexNames.Channel.orchestration)
        defer { subscriber.stop() }
        let deadline = ContinuousClock.now + timeout
        let ended = Locked(false)
        let relay = Task {
            for await e in events where e.runID == runID {
                onEvent(e)
                if e.type == .RUN_COMPLETE || e.type == .RUN_FAILED { ended.withLock { $0 = true } }
            }
        }
        defer { relay.cancel() }
        while ContinuousClock.now < deadline {
            if let state = try? await RunState.load(runID, redis: redis), state.isFinished {
                // The coordinator marks the run finished, then announces it: a caller subscribed before the
                // submit gets the events up to RUN_COMPLETE / RUN_FAILED, waited for briefly (it may never
                // come: a publish that failed, a subscription that dropped). One that subscribed here may
                // have missed it before subscribing: a moment for the last events, no more.
                let linger = ContinuousClock.now + (subscription == nil ? .milliseconds(100) : .seconds(5))
                while !ended.value && ContinuousClock.now < linger { try? await Task.sleep(for: .milliseconds(20)) }
                return state
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw CortexError(.timeout, "run \(runID) did not finish within \(timeout)")
    }
}
