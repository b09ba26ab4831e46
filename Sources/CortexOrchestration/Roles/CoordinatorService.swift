import CortexKubernetes
import CortexCatalog
import CortexCore
import Foundation
import Logging
import Tracing
import ServiceLifecycle

/// The coordinator ("Larry"): takes run requests from the durable run stream and drives each run
/// through phases 0-5, advancing on events rather than timers.
public struct CoordinatorService: RoleService {
    let context: ProcessContext
    let preflightTimeout: Duration
    let activationTimeout: Duration
    let runTimeout: Duration
    let outputDir: URL
    let claimIdle: Duration
    let masterDownTimeout: Duration
    let budgetPlan: BudgetPlan
    /// catalog-api, when configured: totals before and after each run go in the report.
    let catalog: CatalogClient?
    /// The model the masters' LLM steps use (for the report), nil without a provider.
    let llmModel: String?
    let monitor: LivenessMonitor
    let snapshots: CoordinationSnapshots
    /// The LLM planner, when a model is configured and CORTEX_PLANNER allows it; nil: the rules plan alone.
    let modelPlanner: ModelPlanner?
    /// Picks among a master's experts by learned weights (kept in Redis across runs).
    let router: ExpertRouter
    /// What the security master's fixes came to (a bump that failed its tests needs a person), across runs.
    let fixLearnings: LearningStore

    /// A master's learnings (Redis, mirrored to `masters/<master>/learnings.json`).
    func learnings(_ master: MasterRole) -> LearningStore {
        master == .security ? fixLearnings : LearningStore(redis: context.redis, master: master.rawValue, coordinationDirectory: context.coordinationDirectory)
    }
    private let signal = EventSignal()
    private let ready = Locked(false)
    /// The coordinator's subscription, for readiness: ready means it hears the channels right now.
    private let subscription = Locked<RedisSubscriber?>(nil)

    public init(context: ProcessContext) throws {
        self.context = context
        preflightTimeout = try context.settings.seconds(.preflightTimeout)
        activationTimeout = try context.settings.seconds(.activationTimeout)
        runTimeout = try context.settings.seconds(.runTimeout)
        claimIdle = try context.settings.seconds(.claimIdle)
        masterDownTimeout = try context.settings.seconds(.masterDownTimeout)
        let catalog = try CatalogClient(settings: context.settings)
        self.catalog = catalog
        let llmConfiguration = try LLMConfiguration.from(context.settings)
        llmModel = llmConfiguration?.model
        let plannerMode = context.settings.string(.planner)
        guard ["auto", "rules", "model"].contains(plannerMode) else {
            throw ConfigurationError("CORTEX_PLANNER / --planner must be auto, rules or model, got '\(plannerMode)'")
        }
        if plannerMode == "model" && llmConfiguration == nil {
            throw ConfigurationError("CORTEX_PLANNER=model needs a model: set CORTEX_LLM_PROVIDER (or use auto or rules)")
        }
        modelPlanner = try plannerMode == "rules" ? nil : llmConfiguration.map {
            ModelPlanner(llm: MeteredLLM(client: $0.client(logger: context.logger), bus: context.bus, agent: "coordinator", logger: context.logger,
                                         decisionTimeout: try context.settings.seconds(.budgetRequestTimeout), journal: context.journal, metrics: context.metrics),
                         maxTokens: $0.maxTokens, model: $0.model, knowledge: KnowledgeBase.configured(context.settings, agent: "coordinator"),
                         embeddings: try EmbeddingsClient.configured(context.settings), catalog: catalog)
        }
        let exploration = context.settings.string(.routingExploration)
        guard let share = Double(exploration), (0...1).contains(share) else {
            throw ConfigurationError("CORTEX_ROUTING_EXPLORATION / --routing-exploration must be a number from 0 to 1, got '\(exploration)'")
        }
        router = ExpertRouter(redis: context.redis, exploration: share)
        fixLearnings = LearningStore(redis: context.redis, master: MasterRole.security.rawValue, coordinationDirectory: context.coordinationDirectory)
        budgetPlan = try BudgetPlan.configured(
            total: context.settings.raw(.budgetTotal) == nil ? nil : try context.settings.int(.budgetTotal),
            reserve: context.settings.raw(.budgetReserve) == nil ? nil : try context.settings.int(.budgetReserve),
            agents: context.settings.raw(.budgets))
        monitor = LivenessMonitor(context: context)
        snapshots = CoordinationSnapshots(directory: context.coordinationDirectory, logger: context.logger)
        outputDir = URL(fileURLWithPath: context.settings.string(.outputDir)).standardizedFileURL
    }

    public func readiness() async -> Readiness {
        guard ready.value else { return .notReady(["coordinator starting"]) }
        if let s = subscription.value, !s.isSubscribed {
            return .notReady(["coordinator not subscribed to \(CortexNames.Channel.orchestration.map(\.rawValue).joined(separator: ", ")) (Redis unreachable or resubscribing)"])
        }
        return .ready
    }

    public func run() async throws {
        let log = context.logger
        let (subscriber, events) = context.bus.subscribe(CortexNames.Channel.orchestration)
        defer { subscriber.stop() }
        subscription.withLock { $0 = subscriber }
        let reader = context.blockingClient(name: "run-reader", block: .seconds(1))
        defer { reader.close() }
        var consumer = StreamConsumer(redis: reader, group: CortexNames.Group.coordinators, consumer: context.instanceID,
                                      streams: [CortexNames.runRequests], claimIdle: claimIdle)
        try await retryingRedis(log) { try await consumer.prepare() }
        // Learnings Redis lost come back from their file; a corrupt file is rebuilt (never a crash, never trusted).
        do {
            for master in MasterRole.allCases {
                try await retryingRedis(log) { if let what = try await learnings(master).restore() { log.notice("\(what)") } }
            }
        } catch {
            log.error("learnings of security not restored (runs go on without them): \(error)")
        }
        if !(await subscriber.waitUntilSubscribed(timeout: .seconds(10))) {
            // It goes on subscribing in the background; readiness says so until it has.
            log.warning("not subscribed to the coordination channels after 10 s; starting anyway, not ready until subscribed")
        }
        ready.withLock { $0 = true }
        context.metrics.phase(-1)
        log.info("coordinator ready; waiting for run requests on \(CortexNames.runRequests)")

        await withTaskGroup(of: Void.self) { group in
            group.addTask { [monitor] in await monitor.run() }
            let broker = BudgetBroker(redis: context.redis, bus: context.bus, metrics: context.metrics, logger: log)
            group.addTask { [signal] in
                for await envelope in events {
                    if let escalation = try? envelope.payload(Escalation.self) {
                        log.warning("ESCALATION from \(envelope.source): \(escalation.reason)", metadata: [LogKey.severity: "\(escalation.severity)"])
                    }
                    if envelope.type == .HANDOFF_REQUEST, let runID = envelope.runID {
                        // Kept with the run: its execution turns each into a task or reports it (phase 3). The
                        // sender recorded it already (atomically with its report); this copy is for one
                        // published by hand. Off the event loop: a Redis outage must not hold up other messages.
                        Task { await recordHandoff(envelope, runID: runID) }
                    }
                    if envelope.type == .BUDGET_REQUEST {
                        // Decided off the event loop: a slow decision must not hold up other messages.
                        Task { await broker.handle(envelope) }
                    }
                    await signal.fire()
                }
            }
            await consumer.consume(context: context, operation: "reading run requests") { await handle($0) }
            group.cancelAll()
        }
        log.info("coordinator stopped")
    }

    private func handle(_ delivery: StreamConsumer.Delivery) async {
        guard let text = delivery.entry.fields["request"], let request = try? WireJSON.decode(RunRequest.self, from: text) else {
            await StreamConsumer.deadLetter(delivery, group: CortexNames.Group.coordinators, reason: "malformed run request", context: context)
            return
        }
        // A run id that could escape the report directory or collide with task ids is never used as a key.
        guard RunRequest.isValidRunID(request.runID) else {
            await StreamConsumer.deadLetter(delivery, group: CortexNames.Group.coordinators,
                                            reason: "invalid run id '\(request.runID.prefix(120))'", context: context)
            return
        }
        let cluster = (try? KubeAccess.configured(context.settings.string(.kubernetes))) != nil
        if let problem = request.problem(cluster: cluster) {
            await refuse(request, reason: problem, delivery: delivery)
            return
        }
        if let state = try? await RunState.load(request.runID, redis: context.redis), state.isFinished {
            _ = try? await context.redis.pipeline(StreamConsumer.acknowledged(delivery, group: CortexNames.Group.coordinators))
            return
        }
        let execution = RunExecution(service: self, request: request)
        let finished = await execution.execute()
        if finished {
            // Acknowledged only once the run ended: a coordinator stopped mid-run gets it again and resumes.
            try? await retryingRedis(context.logger) {
                try await context.redis.run(StreamConsumer.acknowledged(delivery, group: CortexNames.Group.coordinators))
            }
        }
    }

    /// The coordinator's copy of a handoff it heard, retried while Redis is unreachable; a refusal is logged
    /// at error (the sender's own record still stands).
    private func recordHandoff(_ envelope: Envelope, runID: String) async {
        // A run that ended has no use for it (and its keys are archived): not recorded.
        if let state = try? await RunState.load(runID, redis: context.redis), state.isFinished { return }
        do {
            try await retryingRedis(context.logger) {
                try await context.redis.run([
                    .rpush(CortexNames.runHandoffs(runID), envelope.encodedString),
                    .expire(CortexNames.runHandoffs(runID), seconds: context.retentionSeconds),
                ])
            }
        } catch {
            context.logger.error("could not record the handoff \(envelope.id) from \(envelope.source): \(error)", metadata: [LogKey.runID: "\(runID)"])
        }
    }

    /// A run request that cannot run: recorded as a failed run with the reason (so `cortexctl status` and
    /// whoever follows it see why), announced with RUN_FAILED, and acknowledged.
    private func refuse(_ request: RunRequest, reason: String, delivery: StreamConsumer.Delivery) async {
        context.logger.error("run request refused: \(reason)", metadata: [LogKey.runID: "\(request.runID)"])
        do {
            try await context.redis.run([
                .hset(CortexNames.run(request.runID), ["status": "failed", "reason": "refused: \(reason)", "goal": String(request.goal.prefix(2000)),
                                                      "finished_at": Timestamp.format(Date())]),
                .expire(CortexNames.run(request.runID), seconds: context.retentionSeconds),
            ] + StreamConsumer.acknowledged(delivery, group: CortexNames.Group.coordinators))
        } catch {
            context.logger.warning("could not record the refusal (the request stays pending and is refused again): \(error)")
            return
        }
        await context.bus.notify(RunFailed(reason: "refused: \(reason)", reportDir: ""), runID: request.runID)
        context.metrics.runFinished(outcome: "failed")
    }

    /// Re-checks `condition` whenever an event arrives (and at least every second) until it holds or `timeout` passes.
    func waitUntil(timeout: Duration, _ condition: () async throws -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if (try? await condition()) == true { return true }
            // On SIGTERM the run is left unacknowledged: the next coordinator resumes it.
            if Task.isCancelled || Task.isShuttingDownGracefully { return false }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return false }
            await signal.wait(timeout: min(left, .seconds(1)))
        }
    }
}

/// One run, phase by phase.
struct RunExecution {
    let service: CoordinatorService
    let request: RunRequest
    var context: ProcessContext { service.context }
    var runID: String { request.runID }
    /// The process's logger with the run's id on every line.
    var log: Logger { context.logger.forRun(runID) }
    var ledger: BudgetLedger { BudgetLedger(redis: context.redis, runID: runID) }

    final class Progress: @unchecked Sendable {  // touched by one task only
        var phases: [(phase: Int, name: String, startedAt: Date)] = []
        var tasks: [TaskSpec] = []
        var catalogBefore: CatalogTotals?
        var catalogAfter: CatalogTotals?
        var catalogProblem: String?
        /// Tasks that could not be queued (a handoff), with why: they fail instead of being waited for.
        var failedTasks: [String: String] = [:]
        /// Handoffs that were not turned into tasks, with why ("not handed off: …").
        var notHandedOff: [String] = []
        /// Anything else the run could not do or read, for the reason (a partial run).
        var problems: [String] = []
        /// The tasks whose reports phase 3 waits for (handoffs add to them).
        var ids: Set<String> = []
        /// Masters down past their limit while phase 3 waited on them, with since when.
        var abandoned: [(MasterRole, Date)] = []
        /// How many handoff records were read, and the message ids seen (each handoff counts once).
        var handoffsSeen = 0
        var handoffIDs: Set<String> = []
        /// The run's plan: what is done, in which order, by whom (revised when handoffs add subtasks).
        var plan = Plan(planner: "rules", rule: "", subtasks: [])
        /// Whether the run reads a cluster (CORTEX_KUBERNETES configured and reachable).
        var cluster = false
        /// The reports read so far, by task id (dependencies' outputs; the router's lessons).
        var reports: [String: MasterReport] = [:]
        /// Reports that could not be decoded: their dependents are not run.
        var unreadable: Set<String> = []
        /// Handoffs folded into a subtask that already does what they ask, by subtask id.
        var handoffsFor: [String: [HandoffRequest]] = [:]
        /// The run's span and the current phase's (tracing on); tasks queued in a phase are its children.
        var runSpan: (any Span)?
        var phaseSpan: (any Span)?
    }

    static let phaseNames = PhaseStart.names
    /// At most this many bytes of subtask lines go in a RUN_PLAN message (it must stay under the default
    /// message size limit, 256 KiB, with room to spare).
    static let planBytesPublished = 100_000

    /// How a phase ended: on to the next, stopped by shutdown (the run resumes on redelivery), or the run failed.
    enum Step {
        case proceed
        case interrupted
        case failed(String)
    }

    /// Runs every phase inside the run's span (one trace per run: a resumed run continues the trace its
    /// first coordinator started, recorded in the run's hash); returns false only when shutdown
    /// interrupted the run (it resumes on redelivery).
    func execute() async -> Bool {
        let earlier = (try? await context.redis.hget(CortexNames.run(runID), TracePropagation.field)) ?? nil
        return await withSpan("run", context: TracePropagation.context(continuing: earlier)) { span in
            span.attributes["cortex.run.id"] = runID
            span.attributes["cortex.run.goal"] = request.goal
            if earlier != nil { span.attributes["cortex.run.resumed"] = true }
            let progress = Progress()
            progress.runSpan = span
            defer { progress.phaseSpan?.end() }
            let finished = await executePhases(progress)
            if !finished { span.attributes["cortex.run.interrupted"] = true }
            return finished
        }
    }

    private func executePhases(_ progress: Progress) async -> Bool {
        let started = Date()
        log.info("run started", metadata: [LogKey.runGoal: "\(request.goal)", LogKey.runTargets: "\(request.targets.joined(separator: ","))"])
        await recordStart(started)
        progress.cluster = clusterConfigured(progress)
        // Budgets before the plan: a model planner's call is metered on the coordinator's account.
        await openBudgets(progress)
        let plan: Plan
        switch await makePlan(progress) {
        case .success(let made): plan = made
        case .failure(let problem):
            if Task.isShuttingDownGracefully { return false }
            return await finish(status: .failed, reason: "no plan: \(problem.message)", progress: progress, started: started)
        }
        progress.plan = plan
        if plan.subtasks.isEmpty {
            let why = plan.rule == "cluster-audit" ? "the goal is about the cluster, but no cluster is configured (CORTEX_KUBERNETES)" : "the plan has no subtasks (no targets?)"
            return await finish(status: .failed, reason: "no plan: \(why)", progress: progress, started: started)
        }
        var active: [MasterRole] = []
        for step in [{ await preflight(plan, &active, progress) }, { await activate(active, progress) }, { await distribute(progress) }] {
            switch await step() {
            case .proceed: continue
            case .interrupted: return false
            case .failed(let reason): return await finish(status: .failed, reason: reason, progress: progress, started: started)
            }
        }
        let allReported = await awaitReports(progress)
        if Task.isShuttingDownGracefully && !allReported { return false }
        // A run that ends without every report (timeout, a master down) may have handoffs nobody read yet:
        // they are reported, never dropped.
        if !allReported { await takeHandoffs(progress, queue: false) }
        let (status, reason, reports, budget) = await aggregate(progress)
        return await finish(status: status, reason: reason, progress: progress, started: started, reports: reports, budget: budget)
    }

    /// The run's hash and its place in the index. Best effort: while Redis is away the run waits in
    /// pre-flight anyway, and every phase writes its state again.
    private func recordStart(_ started: Date) async {
        _ = try? await context.redis.pipeline([
            .hset(CortexNames.run(runID), ["status": RunStatus.running.rawValue, "goal": request.goal, "targets": (try? WireJSON.encode(request.targets)) ?? "[]",
                                           "started_at": Timestamp.format(started), "coordinator": context.instanceID]),
        ] + (TracePropagation.current.map { [.hsetnx(CortexNames.run(runID), TracePropagation.field, $0)] } ?? []) + [
            .expire(CortexNames.run(runID), seconds: context.retentionSeconds),
            .zadd(CortexNames.runIndex, score: epochMilliseconds(request.requestedAt), runID),
            // The index lists what Redis still holds: runs older than the retention are gone.
            .zremrangebyscore(CortexNames.runIndex, min: "-inf", max: "(\(epochMilliseconds() - context.retentionSeconds * 1000)"),
        ])
    }

    /// Phase 0, pre-flight: every master of the plan should be up (all six for a full orchestration). The
    /// run waits for them up to the pre-flight timeout; it fails when a master of a first subtask (one that
    /// depends on nothing) is still missing, and goes on without one needed only later — that master's
    /// subtasks are then not run, and the report says so. `active` gets the masters that are up.
    private func preflight(_ plan: Plan, _ active: inout [MasterRole], _ progress: Progress) async -> Step {
        await enter(0, progress)
        var missing: [String] = []
        let needed = plan.masters
        let mastersUp = await service.waitUntil(timeout: service.preflightTimeout) {
            missing = try await missingMasters(needed)
            return missing.isEmpty
        }
        if Task.isShuttingDownGracefully { return .interrupted }
        active = needed.filter { !missing.contains($0.processName) }
        if mastersUp { return .proceed }
        let roots = plan.rootMasters.map(\.processName)
        guard missing.allSatisfy({ !roots.contains($0) }) else {
            return .failed("pre-flight: masters not registered after \(service.preflightTimeout): \(missing.joined(separator: ", "))")
        }
        log.warning("pre-flight: \(missing.joined(separator: ", ")) not registered after \(service.preflightTimeout); their subtasks will not run unless they come up")
        return .proceed
    }

    /// Whether the run reads a cluster: CORTEX_KUBERNETES set and usable (a configured cluster that
    /// cannot be used is a problem of the run, not a silent repositories-only run).
    private func clusterConfigured(_ progress: Progress) -> Bool {
        do {
            return try KubeAccess.configured(context.settings.string(.kubernetes)) != nil
        } catch {
            log.warning("CORTEX_KUBERNETES=\(context.settings.string(.kubernetes)) but no cluster access: \(error); the run inventories repositories only")
            progress.problems.append("cluster not checked: CORTEX_KUBERNETES=\(context.settings.string(.kubernetes)) but no cluster access: \(error)")
            return false
        }
    }

    /// Phase 1, master activation: every needed master acknowledges MASTER_ACTIVATION_START.
    private func activate(_ needed: [MasterRole], _ progress: Progress) async -> Step {
        await enter(1, progress)
        await context.bus.notify(MasterActivationStart(masters: needed.map(\.rawValue)), runID: runID)
        var unacknowledged: [String] = []
        let activated = await service.waitUntil(timeout: service.activationTimeout) {
            let acked = Set(try await context.redis.hkeys(CortexNames.runActivation(runID)))
            unacknowledged = needed.map(\.rawValue).filter { !acked.contains($0) }
            return unacknowledged.isEmpty
        }
        if Task.isShuttingDownGracefully { return .interrupted }
        return activated ? .proceed : .failed("master activation: no MASTER_ACTIVATION_ACK after \(service.activationTimeout) from \(unacknowledged.joined(separator: ", "))")
    }

    /// Phase 2, work distribution: the plan's first subtasks (those that depend on nothing) go to their
    /// masters' streams; the rest follow in phase 3 as their dependencies succeed.
    private func distribute(_ progress: Progress) async -> Step {
        await enter(2, progress)
        // The catalog's baseline, before any worker registers anything for this run.
        await readCatalog(progress, before: true)
        // A resumed run finds its queued tasks recorded: they are not queued again.
        if let recorded = try? await context.redis.hgetall(CortexNames.runTasks(runID)) {
            for (id, text) in recorded where !progress.ids.contains(id) {
                guard let task = try? WireJSON.decode(TaskSpec.self, from: text) else { continue }
                progress.ids.insert(id)
                progress.tasks.append(task)
            }
        }
        // A resumed run reads its handoffs first: a subtask one added gets it back before it is dispatched.
        await takeHandoffs(progress)
        if let failure = await dispatchReady(progress) { return .failed("work distribution: \(failure)") }
        return .proceed
    }

    /// The run's ledger, opened once (a resumed run keeps the ledger it had).
    private func openBudgets(_ progress: Progress) async {
        do {
            try await retryingRedis(log) {
                if try await !context.redis.exists(CortexNames.budgetAccounts(runID)) { try await ledger.open(service.budgetPlan.accounts, retentionSeconds: context.retentionSeconds) }
            }
        } catch {
            log.error("could not open the run's token budgets: \(error)")
            // Every model call of the run is refused without them.
            if service.llmModel != nil { progress.problems.append("the run's token budgets could not be opened (model calls are refused): \(error)") }
        }
    }

    /// Phase 3, parallel execution: masters fan out to workers; we wait for every task's report, queueing
    /// each subtask of the plan once its dependencies succeeded (handoffs add subtasks meanwhile). Returns false when the wait ended without every report: the run timed out, a
    /// master stayed down past its limit (`progress.abandoned`), or shutdown began.
    private func awaitReports(_ progress: Progress) async -> Bool {
        await enter(3, progress)
        var sampled = ContinuousClock.now - .seconds(10)
        return await service.waitUntil(timeout: service.runTimeout) {
            // The ledger, live, for the token dashboard and the 90 % alert (at most every 2 s).
            if ContinuousClock.now - sampled >= .seconds(2) {
                sampled = .now
                if let accounts = try? await ledger.accounts() { exportTokens(accounts, live: true) }
            }
            // Reports first, handoffs after: a report's handoffs are stored in the same transaction, so every
            // handoff of a report seen here is read below (read the other way round, a report landing in
            // between would end the wait with its handoffs unread).
            let reported = Set(try await context.redis.hkeys(CortexNames.runResults(runID)))
            await readNewReports(reported, progress)
            // Handoffs (a critical CVE that needs a code change) become subtasks of this run, or are reported as not handed off.
            await takeHandoffs(progress)
            await dispatchReady(progress)
            if progress.ids.isSubset(of: reported) && pendingSubtasks(progress).isEmpty { return true }
            // A master that stays down longer than the limit ends the wait: a partial report beats a hang.
            let waitingOn = Set(progress.tasks.filter { !reported.contains($0.id) }.map(\.master))
            progress.abandoned = service.monitor.downSince.value
                .filter { waitingOn.contains($0.key) && Date().timeIntervalSince($0.value) * 1000 >= Double(service.masterDownTimeout / .milliseconds(1)) }
                .map { ($0.key, $0.value) }.sorted { $0.0.rawValue < $1.0.rawValue }
            return !progress.abandoned.isEmpty
        }
    }

    /// Phase 4, aggregation. Whatever could not be done, read or checked goes into the reason: the run is
    /// `succeeded` only when every task reported succeeded and nothing on the way was lost.
    private func aggregate(_ progress: Progress) async -> (Outcome, String?, [MasterReport], [BudgetLedger.Account]) {
        await enter(4, progress)
        let reports = await readReports(progress)
        let missingTasks = progress.tasks.filter { t in !reports.contains { $0.taskID == t.id } && progress.failedTasks[t.id] == nil }
        // Subtasks still waiting when the run ended (a timeout, a master down) were not run either.
        for s in pendingSubtasks(progress) {
            if let i = progress.plan.subtasks.firstIndex(where: { $0.id == s.id }) {
                progress.plan.subtasks[i].notRun = "the run ended before its dependencies (\(s.dependsOn.joined(separator: ", "))) finished"
            }
        }
        for i in progress.plan.subtasks.indices {
            let s = progress.plan.subtasks[i], id = s.taskID(in: runID)
            progress.plan.subtasks[i].outcome = reports.first { $0.taskID == id }?.status.rawValue
                ?? (s.notRun != nil ? "not run" : progress.failedTasks[id] != nil ? Outcome.failed.rawValue : "unfinished")
        }
        await storePlan(progress, publish: false)
        await learnFromFixes(progress, reports: reports)
        await learnFileCosts(progress, reports: reports)
        await learnFromTestRuns(reports)
        await learnRepositoryMetadata(reports)
        await recordHistory(reports)
        var reasons: [String] = []
        // What the masters said first: it is what an operator acts on.
        for r in reports.sorted(by: { $0.taskID < $1.taskID }) where r.status != .succeeded {
            reasons.append("\(r.reason ?? r.status.rawValue) (\(r.master.processName))")
        }
        for (id, why) in progress.failedTasks.sorted(by: { $0.key < $1.key }) { reasons.append("\(id) failed: \(why)") }
        if !progress.abandoned.isEmpty {
            reasons.append(progress.abandoned.map { "\($0.0.processName) down since \(Timestamp.format($0.1)) and not back within \(service.masterDownTimeout)" }.joined(separator: "; ")
                + "; unfinished: " + missingTasks.map(\.id).joined(separator: ", "))
        } else if !missingTasks.isEmpty {
            reasons.append("no report after \(service.runTimeout) from " + missingTasks.map { $0.master.processName }.joined(separator: ", "))
        }
        for s in progress.plan.subtasks { if let why = s.notRun { reasons.append("not run: \(s.id) (\(s.kind.rawValue) on \(RepositoryCheckout.name(of: s.target))): \(why)") } }
        reasons += progress.notHandedOff + progress.problems
        // Workers register before they commit a result, so every report in hand is in the catalog too.
        await readCatalog(progress, before: false)
        var budget: [BudgetLedger.Account] = []
        do {
            try await retryingRedis(log) { budget = try await ledger.accounts() }
            exportTokens(budget, live: false)
        } catch {
            log.error("could not read the run's token ledger: \(error)")
            reasons.append("the token ledger could not be read: \(error)")
        }
        let everyReportFailed = !reports.isEmpty && reports.allSatisfy { $0.status == .failed } && missingTasks.isEmpty && progress.failedTasks.isEmpty
        let status: Outcome = reasons.isEmpty ? .succeeded : (everyReportFailed ? .failed : .partial)
        return (status, reasons.isEmpty ? nil : reasons.joined(separator: "; "), reports, budget)
    }

    /// The reports of this run's tasks; one that cannot be read is a problem of the run, not a silent gap.
    private func readReports(_ progress: Progress) async -> [MasterReport] {
        var reports: [MasterReport] = []
        do {
            var raw: [String: String] = [:]
            try await retryingRedis(log) { raw = try await context.redis.hgetall(CortexNames.runResults(runID)) }
            for (id, text) in raw where progress.ids.contains(id) {
                do { reports.append(try WireJSON.decode(MasterReport.self, from: text)) } catch {
                    log.warning("unreadable report for \(id): \(error)")
                    progress.problems.append("the report of \(id) is unreadable: \(error)")
                }
            }
        } catch {
            log.error("could not read the masters' reports: \(error)")
            progress.problems.append("the masters' reports could not be read: \(error)")
        }
        return reports
    }

    /// Records a task with its run (HSETNX) and queues it on its master's stream only if it was not recorded
    /// before; sets the run's task count; the task list expires with the run's retention (ARGV[5]). The
    /// entry carries the queueing phase's `traceparent` (ARGV[6], empty with tracing off).
    static let queueTaskScript = RedisScript("""
        if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('EXPIRE', KEYS[1], ARGV[5])
        if ARGV[6] ~= '' then
            redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'task', ARGV[2], 'traceparent', ARGV[6])
        else
            redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'task', ARGV[2])
        end
        redis.call('HSET', KEYS[3], 'tasks', ARGV[4])
        return 1
        """)

    /// Reads the handoffs recorded with the run since the last read (the sender records each atomically with its
    /// report; this coordinator records what it hears). One per message id, placed in the plan (`place`): a
    /// handoff to the development master becomes an implement subtask, one to the testing master the test
    /// of that subtask's branch; any other is reported in the run's reason as "not handed off: …", never dropped.
    private func takeHandoffs(_ progress: Progress, queue: Bool = true) async {
        let handoffs: [String]
        do {
            handoffs = try await context.redis.lrange(CortexNames.runHandoffs(runID), start: progress.handoffsSeen, stop: -1)
        } catch {
            log.warning("could not read the run's handoffs (read again on the next event): \(error)")
            return
        }
        for text in handoffs {
            progress.handoffsSeen += 1
            guard let envelope = try? EnvelopeDecoder().decode(Array(text.utf8), channel: .mastersCoordination).get(),
                  let handoff = try? envelope.payload(HandoffRequest.self) else {
                progress.notHandedOff.append("not handed off: an unreadable handoff record (\(text.prefix(120)))")
                continue
            }
            guard progress.handoffIDs.insert(envelope.id).inserted else { continue }
            guard queue else {
                progress.notHandedOff.append("not handed off: \(envelope.source) → \(handoff.to) on \(RepositoryCheckout.name(of: handoff.target ?? "")): the run ended before it could be queued")
                continue
            }
            _ = await place(handoff, from: envelope, progress)
        }
    }

    /// Per agent (its own account and its workers'): the budget and what is spent; at reconciliation
    /// (`live` false) the used tokens are also added to `cortex_tokens_used_total`.
    private func exportTokens(_ accounts: [BudgetLedger.Account], live: Bool) {
        for agent in BudgetPlan.agentOrder {
            let mine = accounts.filter { $0.name == agent || $0.name == "\(agent):workers" }
            let limit = mine.reduce(0) { $0 + $1.limit }, used = mine.reduce(0) { $0 + $1.used }
            context.metrics.tokensSpent(agent: agent, budget: limit, spent: used + (live ? mine.reduce(0) { $0 + $1.reserved } : 0))
            if !live { context.metrics.tokens(agent: agent, budget: limit, used: used) }
        }
    }

    /// Reads catalog-api's totals (when one is configured) for the report's before / after line.
    private func readCatalog(_ progress: Progress, before: Bool) async {
        guard let catalog = service.catalog else { return }
        do {
            let totals = try await catalog.totals()
            if before { progress.catalogBefore = totals } else { progress.catalogAfter = totals }
        } catch {
            progress.catalogProblem = "\(error)"
            log.warning("could not read the catalog's totals: \(error)")
        }
    }

    private func enter(_ phase: Int, _ progress: Progress) async {
        progress.phases.append((phase, Self.phaseNames[phase], Date()))
        progress.phaseSpan?.end()
        if let run = progress.runSpan {
            let span = InstrumentationSystem.tracer.startAnySpan("phase \(phase) \(Self.phaseNames[phase])", context: run.context)
            span.attributes["cortex.run.id"] = runID
            span.attributes["cortex.phase"] = phase
            progress.phaseSpan = span
        }
        await snapshot(progress, status: RunStatus.running.rawValue, phase: phase)
        context.metrics.phase(phase)
        _ = try? await context.redis.send(.hset(CortexNames.run(runID), "phase", phase))
        await context.bus.notify(PhaseStart(phase: phase), runID: runID)
        log.info("phase \(phase) \(Self.phaseNames[phase])")
    }

    /// The file copies of the run's state in the coordination directory, readable while Redis is not.
    private func snapshot(_ progress: Progress, status: String, phase: Int, reports: [MasterReport] = []) async {
        let acks = (try? await context.redis.hgetall(CortexNames.runActivation(runID))) ?? [:]
        service.snapshots.write(runID: runID, request: request, status: status, phase: phase, phases: progress.phases,
                                activation: acks, tasks: progress.tasks, reports: reports)
    }

    private func missingMasters(_ needed: [MasterRole]) async throws -> [String] {
        let replies = try await context.redis.pipeline(needed.map { .hgetall(CortexNames.masterRegistry($0)) })
        let now = epochMilliseconds()
        let timeoutMs = Int(context.heartbeatTimeout / .milliseconds(1))
        return zip(needed, replies).compactMap { role, reply in
            let f = reply.fieldMap
            let fresh = f["last_heartbeat"].flatMap(Int.init).map { now - $0 <= timeoutMs } ?? false
            return (f["status"] != ProcessStatus.stopped.rawValue && fresh) ? nil : role.processName
        }
    }

    /// Phase 5: reports, run state, RUN_COMPLETE / RUN_FAILED.
    private func finish(status: Outcome, reason: String?, progress: Progress, started: Date, reports: [MasterReport] = [],
                        budget: [BudgetLedger.Account] = []) async -> Bool {
        var status = status, reason = reason
        await enter(5, progress)
        defer {
            progress.runSpan?.attributes["cortex.run.outcome"] = status.rawValue
            if status != .succeeded { progress.runSpan?.setStatus(SpanStatus(code: .error, message: reason ?? status.rawValue)) }
        }
        let outcome = RunOutcome(request: request, status: status, reason: reason, phases: progress.phases, tasks: progress.tasks,
                                 reports: reports.sorted { $0.taskID < $1.taskID }, startedAt: started, finishedAt: Date(),
                                 budget: budget, model: service.llmModel, catalogBefore: progress.catalogBefore, catalogAfter: progress.catalogAfter,
                                 catalogProblem: progress.catalogProblem, notHandedOff: progress.notHandedOff,
                                 plan: progress.plan.subtasks.isEmpty ? nil : progress.plan)
        var reportDir = ""
        do {
            reportDir = try ReportWriter.write(outcome, to: service.outputDir).path
        } catch {
            // Nobody can read what the run found: not a clean result, whatever the masters said.
            log.error("could not write the report under \(service.outputDir.path): \(error)")
            if status == .succeeded { status = .partial }
            reason = [reason, "the report could not be written under \(service.outputDir.path): \(error)"].compactMap { $0 }.joined(separator: "; ")
        }
        let durationMs = Int(outcome.finishedAt.timeIntervalSince(started) * 1000)
        await snapshot(progress, status: status.rawValue, phase: 5, reports: outcome.reports)
        // The run's working keys go into its report (before the run is marked finished, so whoever sees
        // it finished finds the archive), and out of Redis once it is marked finished (a coordinator that
        // stops in between resumes the run with its keys intact). Without a report they stay, with their TTL.
        var archivedKeys: [String] = []
        if !reportDir.isEmpty {
            do {
                let written = try await RunArchive.write(runID: runID, taskIDs: progress.tasks.map(\.id), redis: context.redis,
                                                         to: URL(fileURLWithPath: reportDir))
                archivedKeys = written.keys
                log.info("archived \(written.archived) keys of the run into \(RunArchive.fileName)")
            } catch {
                log.warning("could not archive the run's keys (they expire after \(context.retentionSeconds) s): \(error)")
            }
        }
        var marked = false
        try? await retryingRedis(log) {
            try await context.redis.run([
                .hset(CortexNames.run(runID), ["status": status.rawValue, "reason": reason ?? "", "report_dir": reportDir,
                                               "finished_at": Timestamp.format(outcome.finishedAt)]),
                .expire(CortexNames.run(runID), seconds: context.retentionSeconds),
            ])
            marked = true
        }
        if marked && !archivedKeys.isEmpty {
            do {
                try await RunArchive.delete(archivedKeys, redis: context.redis)
            } catch {
                log.warning("archived keys not deleted (they expire after \(context.retentionSeconds) s): \(error)")
            }
        }
        if status == .failed {
            await context.bus.notify(RunFailed(reason: reason ?? "failed", reportDir: reportDir), runID: runID)
            log.error("run failed: \(reason ?? "")")
        } else {
            await context.bus.notify(RunComplete(status: status.rawValue, reportDir: reportDir, durationMs: durationMs, reason: reason), runID: runID)
            log.info("run \(status) in \(durationMs) ms; report in \(reportDir)\(reason.map { " — \($0)" } ?? "")")
        }
        context.metrics.runFinished(outcome: status.rawValue)
        context.metrics.phase(-1)
        return true
    }
}

/// The rule plan of a goal as tasks (no model, no routing): what `cortexctl` and the tests use to see
/// which masters and tasks a goal means. The coordinator itself works from the plan (`RunPlanning`).
public enum TaskRouter {
    /// The masters a goal's rule plan names.
    public static func masters(for goal: String) -> [MasterRole] {
        RulePlanner.plan(RunRequest(runID: "r", goal: goal, targets: ["."], requestedBy: "-"), cluster: false)?.masters ?? []
    }

    /// The goals that mean every master.
    public static var fullGoals: [String] { RulePlanner.fullGoals }

    /// True when a rule of the planner's table matches the goal: anything else is refused rather than
    /// silently run as a full orchestration.
    public static func isKnownGoal(_ goal: String) -> Bool { RulePlanner.rule(for: goal) != nil }

    /// The rule plan's subtasks as tasks, whatever their dependencies (ids `<run>.<master>.<name>`).
    public static func decompose(_ request: RunRequest, cluster: Bool = false) -> [TaskSpec] {
        (RulePlanner.plan(request, cluster: cluster)?.subtasks ?? []).compactMap { s in
            s.kind.skill(master: s.master, target: s.target).map { skill in
                TaskSpec(id: s.taskID(in: request.runID), runID: request.runID, master: s.master, skill: skill, target: s.target, priority: s.priority,
                         attempt: 1, allowTestExecution: s.master == .testing ? (request.allowTestExecution ?? []).contains(s.target) : nil,
                         instructions: s.instructions)
            }
        }
    }
}
