import CortexCatalog
import CortexCore
import CortexKubernetes
import Foundation
import Logging
import Tracing
import ServiceLifecycle

/// A domain master: registers and heartbeats, acknowledges activation, consumes its task stream,
/// fans each task out as work items to its worker pool, merges the results and reports to the coordinator.
public struct MasterService: RoleService {
    let context: ProcessContext
    let role: MasterRole
    let itemsPerTask: Int
    let claimIdle: Duration
    /// The model behind the master's assessment step, metered on the run's ledger; nil without a provider.
    let llm: MeteredLLM?
    let llmMaxTokens: Int
    /// The security master's matching, fix branch, handoff and SARIF step (nil for the other masters).
    let security: SecurityReview?
    /// The monitoring master's generation step (nil for the other masters).
    let monitoring: MonitoringReview?
    /// The embeddings endpoint for knowledge-base retrieval (nil: BM25 alone).
    let embeddings: EmbeddingsClient?
    /// catalog-api, when configured: what it holds about the target goes into the assessment's prompt.
    let catalog: CatalogClient?
    /// The development master's documentation step (nil for the other masters).
    let documentation: DocumentationReview?
    /// Spawn mode (CORTEX_WORKER_MODE jobs or both): worker Jobs for this master's backlog; nil in pool mode.
    let spawner: WorkerJobSpawner?
    private let state = Locked(State())

    struct State {
        var registered = false
        /// The master's subscription to cortex:events:system, for readiness.
        var subscriber: RedisSubscriber?
        var tasksActive = 0
        var workersSeen: Set<String> = []
    }

    public init(role: MasterRole, context: ProcessContext) throws {
        self.role = role
        self.context = context
        self.itemsPerTask = try context.settings.int(.itemsPerTask, range: 1...10_000)
        self.claimIdle = try context.settings.seconds(.claimIdle)
        let llmConfiguration = try LLMConfiguration.from(context.settings)
        self.llmMaxTokens = llmConfiguration?.maxTokens ?? 0
        self.security = role == .security ? try SecurityReview(context: context) : nil
        self.monitoring = role == .monitoring ? try MonitoringReview(context: context) : nil
        self.llm = try llmConfiguration.map {
            MeteredLLM(client: $0.client(logger: context.logger), bus: context.bus, agent: role.rawValue, logger: context.logger,
                       decisionTimeout: try context.settings.seconds(.budgetRequestTimeout), journal: context.journal, metrics: context.metrics)
        }
        self.embeddings = try EmbeddingsClient.configured(context.settings)
        self.catalog = try CatalogClient(settings: context.settings)
        self.documentation = role == .development ? try DocumentationReview(context: context, llm: llm, maxTokens: llmMaxTokens) : nil
        self.spawner = try WorkerJobSpawner.configured(role: role, context: context)
    }

    public func readiness() async -> Readiness {
        let s = state.value
        guard s.registered else { return .notReady(["\(role.processName) not registered yet"]) }
        if let subscriber = s.subscriber, !subscriber.isSubscribed {
            return .notReady(["\(role.processName) not subscribed to \(CortexNames.Channel.eventsSystem.rawValue) (Redis unreachable or resubscribing)"])
        }
        return .ready
    }

    public func run() async throws {
        let log = context.logger
        let (subscriber, events) = context.bus.subscribe([.eventsSystem])
        defer { subscriber.stop() }
        let reader = context.blockingClient(name: "task-reader", block: .seconds(1))
        defer { reader.close() }
        var consumer = StreamConsumer(redis: reader, group: CortexNames.Group.masters, consumer: context.instanceID,
                                      streams: [CortexNames.taskStream(role)], claimIdle: claimIdle)
        try await retryingRedis(log) { try await consumer.prepare() }
        // Subscribed before registering: once the coordinator sees us registered, we hear its broadcasts.
        state.withLock { $0.subscriber = subscriber }
        if !(await subscriber.waitUntilSubscribed(timeout: .seconds(10))) {
            log.warning("not subscribed to \(CortexNames.Channel.eventsSystem.rawValue) after 10 s; registering anyway, not ready until subscribed")
        }
        try await retryingRedis(log) { try await writeRegistry(status: .ready) }
        try await context.bus.publish(MasterRegistered(master: role.rawValue, instance: context.instanceID))
        state.withLock { $0.registered = true }
        log.info("master registered")

        var handedBack = 0
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await heartbeats() }
            if let spawner { group.addTask { await spawner.run() } }
            group.addTask {
                for await envelope in events where envelope.type == .MASTER_ACTIVATION_START {
                    await acknowledgeActivation(envelope)
                }
            }
            await consumer.consume(context: context, operation: "reading tasks") { delivery in
                if await handle(delivery) == .handedBack { handedBack += 1 }
            }
            group.cancelAll()
        }
        await context.bus.notify(MasterShutdown(master: role.rawValue, instance: context.instanceID, handedBack: handedBack))
        _ = try? await context.redis.pipeline([
            .hset(CortexNames.masterRegistry(role), ["status": ProcessStatus.stopped.rawValue, "tasks_active": 0, "last_heartbeat": epochMilliseconds()]),
            .del(CortexNames.masterHeartbeat(role, instance: context.instanceID)),
        ])
        log.info("master stopped", metadata: [LogKey.tasksHandedBack: "\(handedBack)"])
    }

    /// Writes the registry hash and the heartbeat key; heartbeats go on the liveness connection (`on`), so
    /// they never wait behind a large dispatch pipeline.
    private func writeRegistry(status: ProcessStatus, on redis: RedisClient? = nil) async throws {
        let s = state.value
        try await (redis ?? context.redis).run([
            .hset(CortexNames.masterRegistry(role), ["master": role.rawValue, "instance": context.instanceID, "node": context.nodeName,
                                                    "status": status.rawValue, "tasks_active": s.tasksActive, "workers_spawned": s.workersSeen.count,
                                                    "last_heartbeat": epochMilliseconds(), "experts": MasterExperts.format(security?.experts ?? [:])]),
            .sadd(CortexNames.masterSet, role.rawValue),
            .sadd(CortexNames.masterInstances(role), context.instanceID),
            .set(CortexNames.masterHeartbeat(role, instance: context.instanceID), context.nodeName, px: Int(context.heartbeatTimeout / .milliseconds(1))),
        ])
    }

    private func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: context.heartbeatInterval)
            if Task.isCancelled { return }
            let active = state.value.tasksActive
            do {
                try await writeRegistry(status: active > 0 ? .busy : .ready, on: context.liveness)
                await context.bus.notify(MasterHeartbeat(master: role.rawValue, instance: context.instanceID, tasksActive: active))
            } catch {
                context.logger.warning("heartbeat failed: \(error)")
            }
        }
    }

    private func acknowledgeActivation(_ envelope: Envelope) async {
        guard let runID = envelope.runID else {
            context.logger.warning("MASTER_ACTIVATION_START without run_id ignored")
            return
        }
        if let start = try? envelope.payload(MasterActivationStart.self), !start.masters.contains(role.rawValue) { return }
        do {
            try await context.redis.run([
                .hset(CortexNames.runActivation(runID), role.rawValue, context.instanceID),
                .expire(CortexNames.runActivation(runID), seconds: context.retentionSeconds),
            ])
            try await context.bus.publish(MasterActivationAck(master: role.rawValue, instance: context.instanceID), runID: runID)
            context.logger.info("activated", metadata: [LogKey.runID: "\(runID)"])
        } catch {
            context.logger.warning("could not acknowledge activation: \(error)")
        }
    }

    /// What became of one task delivery.
    enum Disposition { case reported, skipped, handedBack, dropped }

    private func handle(_ delivery: StreamConsumer.Delivery) async -> Disposition {
        guard let text = delivery.entry.fields["task"], let task = try? WireJSON.decode(TaskSpec.self, from: text) else {
            await StreamConsumer.deadLetter(delivery, group: CortexNames.Group.masters, reason: "malformed task", context: context)
            return .dropped
        }
        // The task's span continues the run's trace from the phase that queued it; its work items carry it on.
        return await withSpan("task \(role.rawValue) \(task.skill.rawValue)", context: TracePropagation.context(continuing: delivery.entry.fields[TracePropagation.field]),
                              ofKind: .consumer) { span in
            span.attributes["cortex.run.id"] = task.runID
            span.attributes["cortex.task.id"] = task.id
            span.attributes["cortex.master"] = role.rawValue
            span.attributes["cortex.target"] = task.target
            let disposition = await handle(task, delivery: delivery, span: span)
            span.attributes["cortex.task.disposition"] = "\(disposition)"
            return disposition
        }
    }

    private func handle(_ task: TaskSpec, delivery: StreamConsumer.Delivery, span: any Span) async -> Disposition {
        let log = context.logger
        if delivery.redelivered { context.metrics.redelivered(kind: "task") }
        var taskLog = log.forRun(task.runID)
        taskLog[metadataKey: LogKey.taskID] = "\(task.id)"

        // A task reported before (by us or an earlier instance), or of a run that has ended (its working
        // keys archived and deleted), is only acknowledged again.
        let reported = (try? await context.redis.hexists(CortexNames.runResults(task.runID), task.id)) == true
        let runEnded = reported ? false : ((try? await RunState.load(task.runID, redis: context.redis))?.isFinished ?? false)
        if reported || runEnded {
            if runEnded { taskLog.notice("task of a run that has ended: acknowledged, not done") }
            _ = try? await context.redis.pipeline(StreamConsumer.acknowledged(delivery, group: CortexNames.Group.masters))
            return .skipped
        }
        setActive(+1)
        defer { setActive(-1) }
        // A task can outlast the claim timeout (it waits for its workers): without this, a standby replica
        // of this master would claim it as abandoned and do it all again (branches, PRs, handoffs twice).
        let keepAlive = StreamConsumer.keepAlive(delivery, group: CortexNames.Group.masters, consumer: context.instanceID,
                                                 claimIdle: claimIdle, redis: context.liveness, logger: taskLog)
        defer { keepAlive.cancel() }
        let started = Date()
        let (items, shardPlan) = await workItems(for: task, log: taskLog)
        // A redelivered task (its master died) may have items done already: dispatch only the rest.
        // Item ids are derived from the task id, so anything dispatched twice still counts once.
        let done = Set((try? await context.redis.hkeys(CortexNames.taskResults(task.id))) ?? [])
        let toDispatch = items.filter { !done.contains($0.id) }
        taskLog.info("task received; dispatching \(toDispatch.count) work items to pool \(role.pool.rawValue)",
                     metadata: [LogKey.taskAttempt: "\(task.attempt)", LogKey.taskItemsDone: "\(done.count)"])
        do {
            // Each item on its own pool's stream: implementation items go to the implementation pool, whose
            // workers (Redis user cortex-implementation-worker) may charge the model's budget.
            let minID = CortexNames.Retention.minID(olderThan: context.retentionSeconds)
            let traceparent = TracePropagation.current.map { [(TracePropagation.field, $0)] } ?? []
            try await context.redis.run(toDispatch.map {
                .xadd(CortexNames.workStream($0.pool), minID: minID, fields: [("item", $0.wireJSON)] + traceparent)
            })
            await context.redis.awaitReplication()
        } catch {
            taskLog.warning("dispatch failed, the task stays pending for redelivery: \(error)")
            return .dropped
        }
        await context.bus.notify(WorkerSpawn(taskID: task.id, master: role.rawValue, pool: role.pool.rawValue, items: toDispatch.count), runID: task.runID)
        if let spawner {
            for pool in Set(toDispatch.map(\.pool)).sorted(by: { $0.rawValue < $1.rawValue }) { await spawner.afterDispatch(task: task, pool: pool, log: taskLog) }
        }

        let results: [String: WorkResult]
        switch await awaitResults(task: task, expected: items.map(\.id), log: taskLog) {
        case .results(let r): results = r
        case .shutdown: return await handBack(task: task, delivery: delivery, log: taskLog)
        case .runEnded:
            // The coordinator gave up on this task (its run timed out or ended); its items may never come.
            taskLog.warning("the run ended before this task's items did; the task is dropped")
            _ = try? await context.redis.pipeline(StreamConsumer.acknowledged(delivery, group: CortexNames.Group.masters))
            return .dropped
        }
        var report = makeReport(task: task, items: items, results: results, started: started)
        report.shardPlan = shardPlan
        if let notes = await spawner?.reportNotes(taskID: task.id), !notes.isEmpty { report.markdown += notes }
        span.attributes["cortex.task.items"] = items.count
        var handoffs: [Envelope] = []
        if let security { handoffs = await security.review(&report, task: task, log: taskLog) }
        if let monitoring { await monitoring.review(&report, task: task, log: taskLog) }
        if let documentation, DocumentationReview.generates(task) { await documentation.review(&report, task: task, targets: await runTargets(task), log: taskLog) }
        if let llm { report.assessment = await assess(report, task: task, llm: llm, log: taskLog) }
        do {
            try await store(report, handoffs: handoffs, delivery: delivery, log: taskLog)
        } catch {
            // Left pending: redelivered (to us after a restart, or claimed by another instance) and redone.
            taskLog.error("could not store the report\(handoffs.isEmpty ? "" : " and its \(handoffs.count) handoffs") (the task stays pending): \(error)")
            return .dropped
        }
        for handoff in handoffs { context.metrics.messagePublished(channel: handoff.channel, type: handoff.type) }
        await context.bus.notify(MasterReportPublished(taskID: task.id, master: role.rawValue, status: report.status.rawValue, summary: report.summary,
                                                       reason: report.reason), runID: task.runID)
        span.attributes["cortex.task.status"] = report.status.rawValue
        if report.status == .failed { span.setStatus(SpanStatus(code: .error, message: report.reason)) }
        context.metrics.taskFinished(master: role, outcome: report.status.rawValue)
        taskLog.info("task reported: \(report.summary)", metadata: [LogKey.taskStatus: "\(report.status)"])
        return .reported
    }

    /// The task's work items: one per namespace for a cluster-wide skill; otherwise one per shard of the
    /// target (none for an implementation task, a handoff), the test run when allowed, and one
    /// implementation item per requested change (for a worker of the implementation pool).
    private func workItems(for task: TaskSpec, log: Logger) async -> (items: [WorkItem], shardPlan: String?) {
        if task.skill.isClusterWide { return (await clusterItems(task, log: log), nil) }
        if task.skill == .branchTest {
            // One item: the branch's tests against its base's, in copies (opt-in like every test run).
            return ([WorkItem(id: "\(task.id).branch", taskID: task.id, runID: task.runID, master: role, pool: role.pool, skill: .branchTest,
                             target: task.target, shard: 0, shards: 1, priority: task.priority, branch: task.inputs?.branch,
                             allowTestExecution: task.allowTestExecution == true)], nil)
        }
        var shardPlan: String?
        var items = task.skill == .implementation ? [] : (0..<itemsPerTask).map { shard in
            WorkItem(id: "\(task.id).\(shard)", taskID: task.id, runID: task.runID, master: role, pool: role.pool,
                     skill: task.skill, target: task.target, shard: shard, shards: itemsPerTask)
        }
        if task.skill.fileSkill != nil, let placement = await learnedPlacement(task, log: log) {
            for i in items.indices { items[i].pinned = placement.pinned }
            // The item with the most estimated work first: it starts first, and the workers finish together.
            items.sort { (placement.estimate[$0.shard], -$0.shard) > (placement.estimate[$1.shard], -$1.shard) }
            let note = "\(placement.pinned.count) costly files placed by what they cost in \(placement.learnedIn); estimated ms per item "
                + items.map { String(format: "%.0f", placement.estimate[$0.shard]) }.joined(separator: "/")
            shardPlan = note
            log.info("shard plan: \(note)")
        }
        if task.allowTestExecution == true {
            items.append(WorkItem(id: "\(task.id).run", taskID: task.id, runID: task.runID, master: role, pool: role.pool, skill: .testRun,
                                  target: task.target, shard: 0, shards: 1))
        }
        items += (task.instructions ?? []).enumerated().map { i, instruction in
            WorkItem(id: "\(task.id).impl\(i)", taskID: task.id, runID: task.runID, master: role, pool: .implementation, skill: .implementation,
                     target: task.target, shard: 0, shards: 1, instruction: instruction, priority: task.priority)
        }
        return (items, shardPlan)
    }

    /// The placement learned for this task's skill and target (a `file-costs` learning); nil without one,
    /// or when no file stood out. It is stored with the task the first time (SET NX), so a redelivered task
    /// dispatches the same plan even if the learning changed since. A learning or plan that cannot be
    /// read costs the plan only: the items are hashed as always, and the log says why.
    private func learnedPlacement(_ task: TaskSpec, log: Logger) async -> ShardPlan.Placement? {
        let key = CortexNames.taskShardPlan(task.id)
        do {
            if let stored = try await context.redis.get(key) { return try WireJSON.decode(ShardPlan.Placement.self, from: stored) }
            guard let text = try await context.redis.hget(CortexNames.learnings(role.rawValue), FileCosts.learningKey(skill: task.skill, target: task.target)) else { return nil }
            let learning = try WireJSON.decode(Learning.self, from: text)
            guard let costs = try learning.data?.decode(FileCosts.self), var placement = ShardPlan.place(costs, shards: itemsPerTask) else { return nil }
            placement.learnedIn = learning.runID
            let stored = try await context.redis.send(.set(key, try WireJSON.encode(placement), ex: context.retentionSeconds, nx: true)).orThrow()
            if stored.isNull, let first = try await context.redis.get(key) { return try WireJSON.decode(ShardPlan.Placement.self, from: first) }
            return placement
        } catch {
            log.warning("no learned shard plan for \(task.target) (items hashed as usual): \(error)")
            return nil
        }
    }

    /// The report, the handoffs it asks for (recorded with the run and published) and the acknowledgement
    /// in one MULTI/EXEC: the coordinator sees the report only with its handoffs, and a crash leaves
    /// neither, so the task is redone.
    private func store(_ report: MasterReport, handoffs: [Envelope], delivery: StreamConsumer.Delivery, log: Logger) async throws {
        let json = try WireJSON.encode(report)
        var commands: [RedisCommand] = [
            .hset(CortexNames.runResults(report.runID), report.taskID, json),
            .expire(CortexNames.runResults(report.runID), seconds: context.retentionSeconds),
        ]
        for handoff in handoffs {
            commands += [.rpush(CortexNames.runHandoffs(report.runID), handoff.encodedString),
                         .expire(CortexNames.runHandoffs(report.runID), seconds: context.retentionSeconds)]
            commands += MessageBus.commands(for: handoff)
        }
        commands += StreamConsumer.acknowledged(delivery, group: CortexNames.Group.masters)
        try await retryingRedis(log) {
            switch try await context.redis.transaction(commands) {
            case .committed(let replies):
                // Applied (the task is acknowledged); a command that failed inside EXEC is logged, not retried.
                let errors = replies.compactMap { if case .error(let m) = $0 { return m } else { return nil } }
                if !errors.isEmpty { log.error("report stored, but Redis failed \(errors.count) command(s) of its transaction: \(errors.joined(separator: "; "))") }
            case .refused(let refusals): throw RedisError.server(refusals.map(\.reason).joined(separator: "; "))
            }
        }
        await context.redis.awaitReplication()
    }

    enum Awaited { case results([String: WorkResult]), shutdown, runEnded }

    /// Waits for every item's result, woken by the task's result stream, until shutdown begins or the
    /// run ends without them (checked every 10 s: a master must not wait for ever on items that were lost).
    private func awaitResults(task: TaskSpec, expected: [String], log: Logger) async -> Awaited {
        let waiter = context.blockingClient(name: "result-wait", block: .seconds(1))
        defer { waiter.close() }
        var lastSeen = "0"
        var runChecked = ContinuousClock.now
        let wanted = Set(expected)
        while true {
            if Task.isShuttingDownGracefully || Task.isCancelled { return .shutdown }
            if ContinuousClock.now - runChecked >= .seconds(10) {
                runChecked = .now
                if (try? await RunState.load(task.runID, redis: context.redis))?.isFinished == true { return .runEnded }
            }
            do {
                // Results are read and decoded only once there can be enough of them: a task of n items is
                // woken up to once per committed batch, and reading the whole hash at every wake-up cost
                // O(n²) decoding over the task.
                if try await context.redis.send(.hlen(CortexNames.taskResults(task.id))).orThrow().int ?? 0 >= expected.count {
                    let raw = try await context.redis.hgetall(CortexNames.taskResults(task.id))
                    var results: [String: WorkResult] = [:]
                    for (id, text) in raw where wanted.contains(id) {
                        if let r = try? WireJSON.decode(WorkResult.self, from: text) { results[id] = r }
                        else { log.warning("unreadable result for \(id) ignored") }
                    }
                    if results.count == expected.count { return .results(results) }
                }
                let woken = try await waiter.xread(CortexNames.taskResultEvents(task.id), after: lastSeen, block: .seconds(1))
                if let last = woken.last { lastSeen = last.id }
            } catch {
                log.warning("waiting for results: \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Returns an unfinished task to the stream (XADD a copy + XACK, atomically) so another instance,
    /// or this master after a restart, takes it at once instead of after the claim timeout.
    private func handBack(task: TaskSpec, delivery: StreamConsumer.Delivery, log: Logger) async -> Disposition {
        var next = task
        next.attempt += 1
        do {
            try await StreamConsumer.handBack(stream: delivery.stream, group: CortexNames.Group.masters, entryID: delivery.entry.id,
                                              fields: ["task": try WireJSON.encode(next)], redis: context.redis)
            log.info("shutting down mid-task: task handed back to \(delivery.stream)")
            return .handedBack
        } catch {
            // Still pending under our name: XAUTOCLAIM by another instance recovers it after the idle timeout.
            log.warning("could not hand the task back (it stays pending for redelivery): \(error)")
            return .dropped
        }
    }

    /// The cluster partitioned for the catalog workers: one item for the cluster-scoped kinds and one per
    /// namespace (listed here; if that fails, one item takes the whole cluster).
    private func clusterItems(_ task: TaskSpec, log: Logger) async -> [WorkItem] {
        var scopes: [String?] = [nil]
        do {
            if let access = try KubeAccess.configured(context.settings.string(.kubernetes)) {
                let namespaces = try await KubernetesClient(access: access).list("/api/v1/namespaces").compactMap { $0["metadata"]?["name"]?.stringValue }
                scopes += namespaces.sorted().map { Optional($0) }
            }
        } catch {
            log.warning("could not list namespaces (\(error)); one work item takes the whole cluster")
            scopes = [nil]
        }
        let whole = scopes.count == 1
        return scopes.enumerated().map { index, ns in
            WorkItem(id: "\(task.id).\(index)", taskID: task.id, runID: task.runID, master: role, pool: role.pool, skill: task.skill,
                     target: whole ? "\(ClusterSurvey.target)/all" : ClusterSurvey.itemTarget(namespace: ns), shard: index, shards: scopes.count)
        }
    }

    /// The master's LLM step: a short assessment of its findings for the operator, charged to the
    /// master's own budget and the run's. Without budget it ends `denied` with the coordinator's reason;
    /// the findings are reported either way.
    private func assess(_ report: MasterReport, task: TaskSpec, llm: MeteredLLM, log: Logger) async -> MasterReport.Assessment {
        let findings = String(report.markdown.prefix(1200))
        // The master's runbooks and policies first: what the operator wrote down beats what the model guesses.
        let query = "\(report.summary)\n\(findings)"
        let history = await ExecutionHistory.retrieve(target: task.target, excluding: task.runID, query: query, budget: 300, redis: context.redis)
        let known = await CatalogContext.retrieve(catalog: catalog, target: task.target, budget: 300)
        let learned = await LearningStore.retrieve(master: role.rawValue, target: task.target, budget: 200, redis: context.redis)
        let retrieved = await KnowledgeBase.configured(context.settings, agent: role.rawValue)
            .retrieve(query, budget: 700, embeddings: embeddings, redis: context.redis).merged(with: history, budget: 1000)
            .merged(with: known, budget: 1300).merged(with: learned, budget: 1500)
        for problem in retrieved.problems { log.warning("\(problem)") }
        let request = LLMRequest(
            system: "You are the \(role.rawValue) master of Cortex, an operator's assistant for a Kubernetes cluster and its source repositories. Be concrete and brief.",
            messages: [.init(.user, "Target: \(task.target)\nSummary: \(report.summary)\n\nFindings:\n\(findings)\n\n\(retrieved.prompt.isEmpty ? "" : retrieved.prompt + "\n")"
                             + "In at most three sentences: what matters most here, and what should the operator do next?")],
            maxTokens: llmMaxTokens)
        let outcome = await llm.complete(request, runID: task.runID, account: role.rawValue, priority: task.priority, purpose: "\(role.processName) assessment of \(task.id)")
        switch outcome {
        case .done(let response, let charged):
            context.metrics.llmCall(agent: role.rawValue, outcome: "done", tokens: charged)
            return .init(status: "done", model: response.model, text: response.text, tokens: charged, reason: response.usage == nil ? "no usage reported; charged the estimate" : nil,
                         citations: retrieved.chunks.isEmpty ? nil : retrieved.citations, retrievalProblems: retrieved.problems.isEmpty ? nil : retrieved.problems)
        case .denied(let reason):
            context.metrics.llmCall(agent: role.rawValue, outcome: "denied", tokens: 0)
            log.warning("assessment skipped: budget denied: \(reason)")
            return .init(status: "denied", model: llm.client.model, text: nil, tokens: 0, reason: reason)
        case .failed(let reason):
            context.metrics.llmCall(agent: role.rawValue, outcome: "failed", tokens: 0)
            log.warning("assessment failed: \(reason)")
            return .init(status: "failed", model: llm.client.model, text: nil, tokens: 0, reason: reason)
        }
    }

    /// Every target of the task's run (from the run's task list), for steps that look at the whole run.
    private func runTargets(_ task: TaskSpec) async -> [String] {
        let raw = (try? await context.redis.hvals(CortexNames.runTasks(task.runID))) ?? []
        let targets = raw.compactMap { try? WireJSON.decode(TaskSpec.self, from: $0) }.filter { $0.master == role && $0.target != ClusterSurvey.target }.map(\.target)
        return targets.isEmpty ? [task.target] : Array(Set(targets)).sorted()
    }

    private func setActive(_ delta: Int) {
        let n = state.withLock { s -> Int in s.tasksActive += delta; return s.tasksActive }
        context.metrics.tasksActive(master: role, n)
    }

    private func makeReport(task: TaskSpec, items: [WorkItem], results: [String: WorkResult], started: Date) -> MasterReport {
        let ordered = items.compactMap { results[$0.id] }
        state.withLock { s in for r in ordered { s.workersSeen.insert(r.worker) } }
        // Records of every item that produced some (a skipped implementation still says what it would have done).
        let records = ordered.filter { $0.status != .failed }.flatMap { ($0.output.arrayValue ?? []).compactMap(\.objectValue) }
        let summary = task.skill.skill.summarize(records)
        let notDone = ordered.filter { $0.status != .succeeded }
        let status = Outcome.rollUp(ordered.map(\.status))
        var markdown = summary.markdown
        if !notDone.isEmpty {
            markdown += "\n### Work items not done\n\n" + notDone.map { "- `\($0.itemID)` on \($0.worker): \($0.status) — \($0.error ?? "no reason given")" }.joined(separator: "\n") + "\n"
        }
        // The reason names each way items ended short, once ("implementation skipped (no model configured)").
        var reasons: [String] = []
        for outcome in Outcome.allCases where outcome != .succeeded {
            let these = notDone.filter { $0.status == outcome }
            guard let first = these.first else { continue }
            let why = first.error ?? "\(outcome)"
            reasons.append(these.count == 1 && (outcome == .skipped || outcome == .denied) ? why : "\(these.count) of \(ordered.count) items \(outcome): \(why)")
        }
        let headline = notDone.isEmpty ? summary.headline : "\(summary.headline); " + reasons.joined(separator: "; ")
        var report = MasterReport(
            taskID: task.id, runID: task.runID, master: role, instance: context.instanceID, target: task.target, status: status,
            reason: reasons.isEmpty ? nil : reasons.joined(separator: "; "), notChecked: nil, summary: headline, markdown: markdown, details: summary.details,
            items: items.compactMap { item in
                results[item.id].map { r in
                    .init(itemID: r.itemID, pool: item.pool, worker: r.worker, node: r.node, status: r.status, durationMs: r.durationMs, filesExamined: r.filesExamined, error: r.error,
                          filesReused: r.fileCache.flatMap { $0.reused > 0 ? $0.reused : nil })
                }
            },
            startedAt: started, finishedAt: Date()
        )
        // Test suites found but not run: listed as not checked. Running them executes the target's code, so
        // it is the operator's opt-in (--allow-test-execution); left off, the run did what was asked.
        if task.skill == .testSurvey, task.allowTestExecution != true, let cases = summary.details["cases"]?.intValue, cases > 0 {
            report.notChecked("test results (\(cases) test cases found, not run: test execution is not allowed for this target; --allow-test-execution)",
                              degrading: false)
        }
        // Incremental runs: how much came from earlier runs' results, and any trouble with the cache
        // (reported; the files concerned were examined, so the results are complete either way).
        let cacheUses = ordered.compactMap(\.fileCache)
        if !cacheUses.isEmpty {
            var cache = MasterReport.FileCacheSummary(cacheUses)
            let sharded = items.filter { $0.skill.fileSkill != nil }.count
            if cacheUses.count < sharded { cache.items = "\(cacheUses.count) of \(sharded) items" }
            report.fileCache = cache
            report.markdown = "Incremental: \(cache.line).\n\n" + (cache.problems.map { "File cache: \($0).\n\n" } ?? "") + report.markdown
            if cache.unchanged > 0 { report.summary += "; \(cache.line)" }
            if let problems = cache.problems { report.summary += "; \(problems)" }
        }
        let costs = ordered.compactMap(\.costs)
        if !costs.isEmpty { report.costs = FileCosts.merged(costs) }
        // Findings the catalog did not take are findings nobody can query: the report says how many.
        let registrations = ordered.compactMap(\.catalog).filter { $0.assets > 0 }
        let unregistered = registrations.filter { $0.registered < $0.assets }
        if let first = unregistered.first {
            let problem = "catalog: \(unregistered.count) of \(registrations.count) items not registered "
                + "(\(unregistered.reduce(0) { $0 + $1.assets - $1.registered }) assets): \(first.error ?? "unknown error")"
            report.degrade(problem)
            report.summary += "; \(problem)"
        }
        return report
    }
}
