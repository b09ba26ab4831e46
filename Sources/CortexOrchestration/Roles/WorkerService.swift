import CortexCatalog
import CortexCore
import CortexSecurity
import CortexTestRunner
import CortexKubernetes
import Foundation
import Logging
import ServiceLifecycle

/// A worker process: serves one or more pools, runs each work item's skill and commits the result
/// idempotently, reporting start / progress / finish on cortex:workers:status.
public struct WorkerService: RoleService {
    let context: ProcessContext
    let pools: [WorkerPool]
    let claimIdle: Duration
    let maxDeliveries: Int
    /// How often a long item saves its progress.
    let checkpointEvery: Duration
    private let registered = Locked(false)
    /// catalog-api, when configured: each item's findings are registered there.
    let catalog: CatalogClient?
    /// The model for implementation items, metered on the development master's workers' account; nil without a provider.
    let llm: MeteredLLM?
    let llmMaxTokens: Int
    let publisher: BranchPublisher
    private let listings = Locked<[(task: String, files: [String])]>([])

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
        self.maxDeliveries = try context.settings.int(.maxDeliveries, range: 1...1000)
        self.checkpointEvery = .seconds(1)
        self.catalog = try CatalogClient(settings: context.settings)
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
        var itemLog = log
        itemLog[metadataKey: "cortex.item.id"] = "\(item.id)"
        itemLog[metadataKey: "cortex.run.id"] = "\(item.runID)"
        if delivery.redelivered { context.metrics.redelivered(kind: "work-item") }
        if let deliveries = delivery.deliveries, deliveries > maxDeliveries {
            await bury(item, delivery: delivery, deliveries: deliveries, log: itemLog)
            return
        }
        await context.bus.notify(.TASK_STARTED, runID: item.runID, data: [
            "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID),
            "node": .string(context.nodeName), "pool": .string(item.pool.rawValue),
        ])
        let started = ContinuousClock.now
        var result = WorkResult(itemID: item.id, taskID: item.taskID, worker: workerID, node: context.nodeName,
                                status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        let keepAlive = StreamConsumer.keepAlive(delivery, group: CortexNames.Group.workers, consumer: workerID, claimIdle: claimIdle, redis: context.redis, logger: itemLog)
        defer { keepAlive.cancel() }
        do {
            let (records, examined, resumedFrom) = try await examine(item, redelivered: delivery.redelivered, log: itemLog)
            result.output = .array(records.map { .object($0) })
            result.filesExamined = examined
            result.resumedFrom = resumedFrom
        } catch let ended as ItemEndedShort {
            result.status = ended.outcome
            result.error = ended.reason
            result.output = .array(ended.records.map { .object($0) })
            result.filesExamined = ended.examined
        } catch {
            result.status = .failed
            result.error = "\(error)"
        }
        if result.status == .succeeded, let catalog, let records = result.output.arrayValue {
            result.catalog = await register(records.compactMap(\.objectValue), item: item, in: catalog, log: itemLog)
        }
        result.durationMs = Int((ContinuousClock.now - started) / .milliseconds(1))
        result.finishedAtMs = epochMilliseconds()
        await commit(result, item: item, delivery: delivery, log: itemLog)
        context.metrics.workItemFinished(pool: item.pool, outcome: result.status.rawValue, seconds: Double(result.durationMs) / 1000)
    }

    /// Registers the item's findings in the catalog (one idempotent GraphQL batch). A catalog that is down
    /// costs the catalog entries, not the item's findings: the result is committed either way, says how
    /// many assets were not registered and why (the master's report counts them), and the next run
    /// registers them again. Nil when the item had nothing for the catalog.
    private func register(_ records: [SkillRecord], item: WorkItem, in catalog: CatalogClient, log: Logger) async -> WorkResult.CatalogRegistration? {
        let (assets, relations) = SkillCatalog.entries(skill: item.skill, target: item.target, records: records, worker: workerID)
        guard !assets.isEmpty || !relations.isEmpty else { return nil }
        do {
            let summary = try await catalog.upsert(assets, relations: relations)
            context.metrics.catalogRegistration(outcome: "ok")
            log.debug("registered in the catalog", metadata: ["cortex.catalog.created": "\(summary.created)", "cortex.catalog.updated": "\(summary.updated)"])
            return .init(assets: assets.count, registered: assets.count)
        } catch {
            context.metrics.catalogRegistration(outcome: "failed")
            log.warning("could not register \(assets.count) assets in the catalog: \(error)")
            return .init(assets: assets.count, registered: 0, error: String("\(error)".prefix(300)))
        }
    }

    /// Runs the item's skill file by file, saving a checkpoint (progress plus records so far) at most
    /// every `checkpointEvery`, and resuming from the last one when the item was started before.
    /// Returns the records, how many files this attempt examined, and where it resumed (if it did).
    private func examine(_ item: WorkItem, redelivered: Bool, log: Logger) async throws -> ([SkillRecord], Int, Int?) {
        if item.skill == .clusterDiscovery { return try await discoverCluster(item, log: log) }
        if item.skill == .clusterAudit { return try await auditCluster(item, log: log) }
        if item.skill == .testRun { return try await BlockingExecutor.offload("cortex-test-run") { [self] in try runTests(item, log: log) } }
        if item.skill == .implementation { return try await implement(item, log: log) }
        let root = try await checkout(item)
        let files = try await listing(for: item).filter { RepositoryFiles.shard(of: $0, shards: item.shards) == item.shard }
        let skill = item.skill.skill
        var records: [SkillRecord] = []
        var next = 0
        var resumedFrom: Int?
        // Only an item delivered before can have a checkpoint: a first delivery skips the lookup.
        if redelivered, let checkpoint = try await loadCheckpoint(item, files: files, log: log) {
            records = checkpoint.records
            next = checkpoint.next
            resumedFrom = next
            context.metrics.checkpoint(event: "resumed")
            log.info("resuming from checkpoint at file \(next) of \(files.count)")
        }
        var lastSaved = ContinuousClock.now
        for index in next..<files.count {
            records += try skill.examine(root: root, files: [files[index]]) { _ in }
            if ContinuousClock.now - lastSaved >= checkpointEvery && index + 1 < files.count {
                records = skill.compact(records)
                try await saveCheckpoint(item, Checkpoint(next: index + 1, fileCount: files.count, lastPath: files[index], records: records), log: log)
                await context.bus.notify(.TASK_PROGRESS, runID: item.runID, data: [
                    "item_id": .string(item.id), "worker": .string(workerID), "done": .number(Double(index + 1)), "total": .number(Double(files.count)),
                ])
                lastSaved = .now
            }
        }
        return (skill.compact(records), files.count - next, resumedFrom)
    }

    /// The item's target as a local directory (a git URL is cloned shallowly, once per task on this worker).
    private func checkoutBlocking(_ item: WorkItem) throws -> URL {
        try RepositoryCheckout.localPath(for: item.target, task: item.taskID, workDirectory: context.coordinationDirectory)
    }

    /// The same from async code: a clone runs on a thread of its own, not on the cooperative pool.
    private func checkout(_ item: WorkItem) async throws -> URL {
        guard RepositoryCheckout.isRemote(item.target) else { return URL(fileURLWithPath: item.target) }
        return try await BlockingExecutor.offload("cortex-clone") { [self] in try checkoutBlocking(item) }
    }

    /// One scope of the cluster through the Kubernetes API, registered in the catalog in batches (an item
    /// redone after a crash registers the same assets again, which changes nothing). Records: per asset
    /// type how many were found here, and what could not be listed.
    private func discoverCluster(_ item: WorkItem, log: Logger) async throws -> ([SkillRecord], Int, Int?) {
        guard let access = try KubeAccess.configured(context.settings.string(.kubernetes) == "off" ? "off" : "on") else {
            throw ConfigurationError("cluster discovery was asked for but CORTEX_KUBERNETES is off on this worker")
        }
        let started = ContinuousClock.now
        let scope: ClusterDiscovery.Scope
        if let ns = ClusterSurvey.namespace(of: item.target) { scope = .namespace(ns) } else { scope = item.target == ClusterSurvey.target ? .clusterScoped : .all }
        let result = try await ClusterDiscovery(client: KubernetesClient(access: access), discoveredBy: workerID).discover(scope)
        var changes: [SkillRecord] = []
        if let catalog {
            // What the catalog held for this scope before: the difference is what changed since the last run.
            let before = try await previousInventory(scope, catalog: catalog)
            let now = Dictionary(result.assets.filter { before.types.contains($0.type) }.map { ($0.resolvedID, $0.health?.status ?? .UNKNOWN) }) { a, _ in a }
            for (id, status) in now.sorted(by: { $0.key < $1.key }) {
                if let old = before.health[id] {
                    if old != status { changes.append(["change": "health", "id": .string(id), "from": .string(old.rawValue), "to": .string(status.rawValue)]) }
                } else if !before.health.isEmpty {
                    changes.append(["change": "appeared", "id": .string(id)])
                }
            }
            for id in before.health.keys.sorted() where now[id] == nil {
                try await catalog.delete(id)
                changes.append(["change": "disappeared", "id": .string(id)])
            }
            // Assets first, then edges, each in batches the catalog accepts; a batch is all or nothing.
            for chunk in stride(from: 0, to: result.assets.count, by: 1000) {
                _ = try await catalog.upsert(Array(result.assets[chunk..<min(chunk + 1000, result.assets.count)]))
            }
            for chunk in stride(from: 0, to: result.relations.count, by: 2000) {
                _ = try await catalog.upsert([], relations: Array(result.relations[chunk..<min(chunk + 2000, result.relations.count)]))
            }
            context.metrics.catalogRegistration(outcome: "ok")
        }
        let ms = Int((ContinuousClock.now - started) / .milliseconds(1))
        let scopeName: String
        switch scope {
        case .all: scopeName = "(all)"
        case .clusterScoped: scopeName = "(cluster)"
        case .namespace(let ns): scopeName = ns
        }
        var records: [SkillRecord] = Dictionary(grouping: result.assets, by: { $0.type.rawValue }).map { type, assets in
            ["scope": .string(scopeName), "type": .string(type), "count": .number(Double(assets.count)), "worker": .string(workerID),
             "node": .string(context.nodeName), "duration_ms": .number(Double(ms))]
        }
        records += changes
        for s in result.skipped {
            records.append(["skipped": .string(s.resource), "reason": .string(s.reason)])
            log.warning("not listable, skipped: \(s.resource): \(s.reason)")
        }
        log.info("discovered \(result.assets.count) assets and \(result.relations.count) edges in \(scopeName)")
        return (records, result.assets.count, nil)
    }

    /// One namespace's workloads (all namespaces' when one item takes the whole cluster) read through the
    /// API and audited. Objects a controller owns (a Deployment's ReplicaSets and Pods, a CronJob's Jobs)
    /// are audited through their owner, once. Records: the findings, how many objects, what was not listable.
    private func auditCluster(_ item: WorkItem, log: Logger) async throws -> ([SkillRecord], Int, Int?) {
        guard let access = try KubeAccess.configured(context.settings.string(.kubernetes) == "off" ? "off" : "on") else {
            throw ConfigurationError("the cluster audit was asked for but CORTEX_KUBERNETES is off on this worker")
        }
        let namespace = ClusterSurvey.namespace(of: item.target)
        // The cluster-scoped item has no workloads to audit.
        if namespace == nil && item.target == ClusterSurvey.target { return ([["audited": 0]], 0, nil) }
        let client = KubernetesClient(access: access)
        let kinds: [(kind: String, base: String, resource: String)] = [
            ("Deployment", "/apis/apps/v1", "deployments"), ("StatefulSet", "/apis/apps/v1", "statefulsets"), ("DaemonSet", "/apis/apps/v1", "daemonsets"),
            ("ReplicaSet", "/apis/apps/v1", "replicasets"), ("CronJob", "/apis/batch/v1", "cronjobs"), ("Job", "/apis/batch/v1", "jobs"), ("Pod", "/api/v1", "pods"),
        ]
        var findings: [ConfigFinding] = []
        var records: [SkillRecord] = []
        var audited = 0
        for k in kinds {
            let path = namespace.map { "\(k.base)/namespaces/\($0)/\(k.resource)" } ?? "\(k.base)/\(k.resource)"
            do {
                for object in try await client.list(path) {
                    if let owners = object["metadata"]?["ownerReferences"]?.arrayValue, !owners.isEmpty { continue }
                    guard var fields = object.objectValue else { continue }
                    fields["kind"] = .string(k.kind)  // list items do not carry their kind
                    audited += 1
                    findings += KubernetesAudit.audit(.object(fields))
                }
            } catch let e as KubernetesClient.APIError {
                records.append(["skipped": .string(path), "reason": .string(e.forbidden ? "forbidden: \(e.message)" : "\(e.status) \(e.message)")])
                log.warning("not listable, skipped: \(path): \(e.message)")
            }
        }
        records.append(["audited": .number(Double(audited)), "config": .array(findings.map(JSONValue.of))])
        log.info("audited \(audited) workloads in \(namespace ?? "(all namespaces)"): \(findings.count) findings")
        return (records, audited, nil)
    }

    /// The target's test suites, run by `TestRunner` in a copy of the repository (only dispatched when the
    /// run request allowed it for this target). Records: one per framework, with the least-covered files
    /// and when each last changed.
    private func runTests(_ item: WorkItem, log: Logger) throws -> ([SkillRecord], Int, Int?) {
        let root = try checkoutBlocking(item)
        let runner = TestRunner(timeout: Double(try context.settings.int(.testTimeout, range: 10...86_400)),
                                workDirectory: context.coordinationDirectory.appendingPathComponent("test-runs"))
        let result = try runner.run(repository: root)
        defer { try? FileManager.default.removeItem(at: result.copy) }
        var records: [SkillRecord] = []
        for run in result.runs {
            // The least-covered files, with when they last changed: untested code that moves is the risk.
            let least = run.coverage.filter { $0.total > 0 }.sorted { ($0.ratio, $0.file) < ($1.ratio, $1.file) }.prefix(10).map { c -> JSONValue in
                var entry: [String: JSONValue] = ["file": .string(c.file), "covered": .number(Double(c.covered)), "total": .number(Double(c.total))]
                if let changed = runner.lastChange(of: c.file, in: result.copy) { entry["changed"] = .string(Timestamp.format(changed)) }
                return .object(entry)
            }
            records.append(["kind": "test-run", "run": JSONValue.of(run), "least_covered": .array(Array(least))])
            log.info("\(run.framework.rawValue): \(run.passed) passed, \(run.failed) failed, \(run.flaky.count) flaky in \(Int(run.seconds)) s")
        }
        if result.frameworks.isEmpty { records.append(["kind": "test-run", "none": true]) }
        return (records, result.runs.count, nil)
    }

    /// One implementation task: the agent works in a clone on branch `cortex/dev/<run>/<item>`; a
    /// change is committed (tests run if the agent did not), reviewed, and published like a fix branch
    /// (fetched into a local target; pushed with a pull request when GitHub is configured). Without a
    /// model the task is skipped and says so.
    private func implement(_ item: WorkItem, log: Logger) async throws -> ([SkillRecord], Int, Int?) {
        let instruction = item.instruction ?? ""
        var record: SkillRecord = ["kind": "implementation", "instruction": .string(instruction), "item": .string(item.id)]
        guard let llm else {
            record["status"] = "skipped"
            record["summary"] = "skipped: no model configured (CORTEX_LLM_PROVIDER); this task would have run"
            throw ItemEndedShort(outcome: .skipped, reason: "implementation skipped (no model configured)", records: [record], examined: 0)
        }
        let source = try await checkout(item)
        let work = context.coordinationDirectory.appendingPathComponent("dev").appendingPathComponent(item.id.replacingOccurrences(of: "/", with: "_"))
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = try await Git.runAsync(["clone", "--quiet", "--no-hardlinks", "--", source.path, work.path], in: work.deletingLastPathComponent())
        let branch = "cortex/dev/\(item.runID)/\(item.id.split(separator: ".").last ?? "impl")"
        _ = try await Git.runAsync(["checkout", "--quiet", "-b", branch], in: work)
        let testRunner = TestRunner(timeout: Double(try context.settings.int(.testTimeout, range: 10...86_400)),
                                    workDirectory: context.coordinationDirectory.appendingPathComponent("test-runs"))
        let workspace = AgentWorkspace(root: work, testRunner: testRunner)
        let taskHash = RepositoryFiles.hash(instruction + "|" + item.target)
        let context = await agentContext(instruction: instruction, workspace: workspace, taskHash: taskHash, target: item.target)
        let agent = ImplementationAgent(llm: llm, runID: item.runID, account: "development:workers", priority: item.priority ?? .normal,
                                        maxTokens: max(256, llmMaxTokens))
        var result = await agent.run(task: instruction, context: context, workspace: workspace, log: log)
        // A ledger this worker's Redis user may not write (NOPERM) is a deployment error, not a failed attempt.
        if let reason = result.reason, RedisError.mentionsPermissionDenial(reason) { throw RedisError.server(reason) }

        // Not knowing whether the agent changed anything is a failure of the item, not "no change": the
        // copy is kept for a person to look at.
        let changed: String
        do {
            changed = try await Git.runAsync(["status", "--porcelain"], in: work)
        } catch {
            throw Git.Failure(description: "could not read the agent's changes in \(work.path) (kept for inspection): \(error)")
        }
        var notPublished: String?
        if !changed.isEmpty {
            if !result.testsRan {
                let r = try await BlockingExecutor.offload("cortex-test-run") { workspace.runTests() }
                (result.testsRan, result.testsPassed, result.testSummary) = (true, r.passed, r.summary)
            }
            _ = try await Git.runAsync(["add", "-A"], in: work)
            let subject = String((result.summary.split(separator: "\n").first.map(String.init) ?? instruction).prefix(72))
            let identity = ["GIT_AUTHOR_NAME": "Cortex development-master", "GIT_AUTHOR_EMAIL": "cortex-development@localhost",
                            "GIT_COMMITTER_NAME": "Cortex development-master", "GIT_COMMITTER_EMAIL": "cortex-development@localhost"]
            _ = try await Git.runAsync(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m",
                             "\(subject)\n\nTask: \(instruction)\n\n\(result.summary)\n\nTests: \(result.testSummary ?? "not run")\nMade by Cortex development-master in run \(item.runID)."],
                            in: work, environment: identity)
            let patch = try await Git.runAsync(["format-patch", "-1", "--stdout", "HEAD"], in: work, trim: false)
            record["commit"] = .string(try await Git.runAsync(["rev-parse", "HEAD"], in: work))
            record["branch"] = .string(branch)
            record["patch"] = .string(patch)
            record["review"] = .array(ChangeReview.review(patch).map(JSONValue.of))
            // The model's review of the same diff, when there is budget for it (metered like every call).
            let reviewRequest = LLMRequest(system: "You review code changes. Be specific: file, line, problem, fix. At most five comments; say LGTM if there is nothing.",
                                           messages: [.init(.user, "Task: \(instruction)\n\nDiff:\n\(patch.prefix(12_000))")], maxTokens: max(256, llmMaxTokens))
            switch await llm.complete(reviewRequest, runID: item.runID, account: "development:workers", priority: item.priority ?? .normal, purpose: "review of \(item.id)") {
            case .done(let response, _): record["model_review"] = .string(response.text)
            case .denied(let reason): record["model_review"] = .string("not reviewed by the model: budget denied (\(reason))")
            case .failed(let reason): record["model_review"] = .string("not reviewed by the model: \(reason)")
            }
            do {
                let published = try await publisher.publish(clone: work, target: item.target, branch: branch, title: "cortex: \(subject)",
                                                            body: "Task: \(instruction)\n\n\(result.summary)\n\nTests: \(result.testSummary ?? "not run")")
                record["location"] = .string(published.location)
                if let pr = published.pullRequest { record["pull_request"] = .string(pr) }
                if !published.notes.isEmpty { record["notes"] = .array(published.notes.map(JSONValue.string)) }
            } catch {
                record["notes"] = .array([.string("not published: \(error)")])
                notPublished = "\(error)"
            }
        } else {
            try? FileManager.default.removeItem(at: work)
        }
        record["status"] = .string(result.status)
        record["summary"] = .string(result.summary)
        record["result"] = JSONValue.of(result)
        // The attempt, for the next attempt at the same task.
        let attempt: JSONValue = ["run": .string(item.runID), "status": .string(result.status), "summary": .string(String(result.summary.prefix(500))),
                                  "tests": .string(result.testSummary ?? "not run")]
        _ = try? await self.context.redis.pipeline([
            ["LPUSH", CortexNames.developmentAttempts(taskHash), attempt.description], ["LTRIM", CortexNames.developmentAttempts(taskHash), 0, 4],
            ["EXPIRE", CortexNames.developmentAttempts(taskHash), self.context.retentionSeconds],
        ])
        log.info("implementation \(item.id): \(result.status) in \(result.steps) steps, \(result.tokens) tokens")
        // Only a change the agent finished, whose tests (when run) passed, is a succeeded implementation.
        switch result.status {
        case "finished" where notPublished != nil:
            // The change exists only in this worker's copy (kept): nobody downstream can see it.
            throw ItemEndedShort(outcome: .partial, reason: "implementation made, but not published: \(notPublished ?? "")", records: [record], examined: 1)
        case "finished" where result.testsPassed == false:
            throw ItemEndedShort(outcome: .partial, reason: "implementation made, but its tests failed: \(result.testSummary ?? "")", records: [record], examined: 1)
        case "finished": return ([record], 1, nil)
        case "budget":
            throw ItemEndedShort(outcome: .denied, reason: "implementation stopped by its budget after \(result.steps) step\(result.steps == 1 ? "" : "s"): \(result.reason ?? "denied")", records: [record], examined: 1)
        case "step-limit":
            throw ItemEndedShort(outcome: .failed, reason: "implementation hit its step limit (\(result.steps) steps) without finishing", records: [record], examined: 1)
        case "ended":
            throw ItemEndedShort(outcome: .failed, reason: "implementation ended without the agent calling finish", records: [record], examined: 1)
        default:
            throw ItemEndedShort(outcome: .failed, reason: "implementation failed: \(result.reason ?? result.summary)", records: [record], examined: 1)
        }
    }

    /// What the agent gets before acting: the files the task names, the repository's catalog assets,
    /// and earlier attempts at the same task.
    private func agentContext(instruction: String, workspace: AgentWorkspace, taskHash: String, target: String) async -> String {
        var parts: [String] = []
        let files = (try? Git.lsFiles(in: workspace.root)) ?? []
        let named = files.filter { f in instruction.contains(f) || instruction.contains(PathText.lastComponent(f)) && PathText.lastComponent(f).count > 3 }
        for f in named.prefix(5) {
            if let text = try? workspace.readFile(f, start: nil, end: 200) { parts.append("File \(f) (first 200 lines):\n\(text)") }
        }
        parts.append("Repository files (\(files.count)):\n" + files.prefix(200).joined(separator: "\n"))
        if let catalog {
            let repo = RepositoryCheckout.name(of: target)
            if let assets = try? await catalog.assets(filter: AssetFilter(label: "cortex.io/repository=\(repo)")), !assets.isEmpty {
                parts.append("Catalog assets of this repository:\n" + assets.prefix(30).map { "\($0.type.rawValue) \($0.id) (\($0.health.rawValue))" }.joined(separator: "\n"))
            }
        }
        if let earlier = try? await self.context.redis.send("LRANGE", CortexNames.developmentAttempts(taskHash), 0, 4).orThrow().array?.compactMap(\.string), !earlier.isEmpty {
            parts.append("Earlier attempts at this task (newest first):\n" + earlier.joined(separator: "\n"))
        }
        return parts.joined(separator: "\n\n")
    }

    /// The catalog's assets of the kinds a scope owns (a namespace's objects; the cluster-scoped nodes and
    /// namespaces), with their health. Empty on the first inventory of the scope.
    private func previousInventory(_ scope: ClusterDiscovery.Scope, catalog: CatalogClient) async throws -> (types: Set<AssetType>, health: [String: HealthStatus]) {
        let namespaced: Set<AssetType> = [.DEPLOYMENT, .STATEFULSET, .DAEMONSET, .REPLICASET, .JOB, .CRONJOB, .POD, .SERVICE, .INGRESS, .PERSISTENT_VOLUME_CLAIM, .HELM_RELEASE]
        var found: [(id: String, type: AssetType, health: HealthStatus)] = []
        let types: Set<AssetType>
        switch scope {
        case .all: return ([], [:])
        case .clusterScoped:
            types = [.NODE, .NAMESPACE]
            for t in types { found += try await catalog.assets(filter: AssetFilter(type: t)) }
        case .namespace(let ns):
            types = namespaced
            found = try await catalog.assets(filter: AssetFilter(namespace: ns)).filter { namespaced.contains($0.type) }
        }
        return (types, Dictionary(found.map { ($0.id, $0.health) }) { a, _ in a })
    }

    /// The target's file list for the item's task: from this worker's cache, else the listing the task's
    /// first worker stored in Redis, else walked here and stored (SET NX) for the others. Every item of
    /// a task shards the same listing, and a worker started mid-task does not walk a large tree again.
    private func listing(for item: WorkItem) async throws -> [String] {
        if let cached = listings.withLock({ $0.first { $0.task == item.taskID }?.files }) { return cached }
        let key = CortexNames.taskFiles(item.taskID)
        var files: [String]?
        // Redis away: walked here. A permission this worker's Redis user lacks (NOPERM) fails the item.
        if let text = try await context.redis.sendUnlessDenied("GET", key)?.string {
            files = try? WireJSON.decode([String].self, from: text)
        }
        if files == nil {
            let root = try await checkout(item)
            let walked = try await BlockingExecutor.offload("cortex-listing") { try RepositoryFiles.list(root: root) }
            let stored = try await context.redis.sendUnlessDenied("SET", key, try WireJSON.encode(walked), "NX", "EX", context.retentionSeconds)
            if stored?.isNull == true, let text = try await context.redis.sendUnlessDenied("GET", key)?.string {
                files = try? WireJSON.decode([String].self, from: text)  // another worker stored it first: use theirs
            }
            files = files ?? walked
        }
        let result = files ?? []
        listings.withLock { cache in
            cache.insert((item.taskID, result), at: 0)
            if cache.count > 4 { cache.removeLast() }
        }
        return result
    }

    /// A skill's progress through one item, kept in Redis so a worker killed mid-item is not starting over.
    struct Checkpoint: Codable {
        var next: Int
        var fileCount: Int
        var lastPath: String?
        var records: [[String: JSONValue]]
    }

    private func loadCheckpoint(_ item: WorkItem, files: [String], log: Logger) async throws -> Checkpoint? {
        guard let text = try await context.redis.sendUnlessDenied("GET", CortexNames.checkpoint(item.id))?.string else { return nil }
        guard let checkpoint = try? WireJSON.decode(Checkpoint.self, from: text) else {
            context.metrics.checkpoint(event: "unreadable")
            log.warning("checkpoint of \(item.id) is not a checkpoint (\(text.prefix(80))); starting the item over")
            return nil
        }
        // The listing must be the one the checkpoint was taken on, or its position means nothing.
        guard checkpoint.fileCount == files.count, checkpoint.next > 0, checkpoint.next <= files.count,
              checkpoint.lastPath == files[checkpoint.next - 1] else {
            context.metrics.checkpoint(event: "unreadable")
            log.warning("checkpoint of \(item.id) does not match the target's files any more; starting the item over")
            return nil
        }
        return checkpoint
    }

    private func saveCheckpoint(_ item: WorkItem, _ checkpoint: Checkpoint, log: Logger) async throws {
        do {
            try await context.redis.send("SET", CortexNames.checkpoint(item.id), try WireJSON.encode(checkpoint), "EX", Self.checkpointTTL).orThrow()
            context.metrics.checkpoint(event: "saved")
        } catch let error as RedisError where error.isPermissionDenied {
            throw error  // a missing permission is a configuration error, not lost progress
        } catch {
            log.debug("checkpoint not saved: \(error)")  // only progress is at stake
        }
    }

    static let checkpointTTL = 24 * 3600

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

    /// Writes the result once (HSETNX: an item finished again after a redelivery changes nothing), wakes
    /// the master, acknowledges and announces TASK_COMPLETE / TASK_FAILED, all in one round trip — so the
    /// announcement never runs ahead of the commit. While Redis is unreachable the same commands go to
    /// the journal and are applied on reconnect. The round trip is one MULTI/EXEC: a command this worker's
    /// Redis user may not run (NOPERM) aborts all of it, and the item is committed again as failed with the
    /// reason, without the refused commands (`omitting`: command and key), so its task can finish.
    private func commit(_ result: WorkResult, item: WorkItem, delivery: StreamConsumer.Delivery, log: Logger, extra: [RedisCommand] = [],
                        omitting refused: [[String]] = []) async {
        let encoded: String
        do { encoded = try WireJSON.encode(result) } catch { log.error("cannot encode result: \(error)"); return }
        let announcement: Envelope = result.status == .succeeded
            ? Envelope(type: .TASK_COMPLETE, source: context.processName, runID: item.runID, data: [
                "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID),
                "node": .string(context.nodeName), "duration_ms": .number(Double(result.durationMs)),
            ])
            : Envelope(type: .TASK_FAILED, source: context.processName, runID: item.runID, data: [
                "item_id": .string(item.id), "task_id": .string(item.taskID), "worker": .string(workerID), "reason": .string(result.error ?? "failed"),
                "status": .string(result.status.rawValue),
            ])
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
                    ["HINCRBY", CortexNames.taskDuplicates(item.taskID), "count", 1],
                    ["EXPIRE", CortexNames.taskDuplicates(item.taskID), context.retentionSeconds],
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
            log.info("work item done", metadata: ["cortex.item.files": "\(result.filesExamined)", "cortex.item.ms": "\(result.durationMs)"])
        } else {
            log.warning("work item \(result.status): \(result.error ?? "")")
        }
    }
}

/// An item that ran but did not succeed (skipped, denied, partial or failed), with what it produced:
/// thrown by a skill step so the result keeps both its records and its honest outcome.
struct ItemEndedShort: Error {
    var outcome: Outcome
    var reason: String
    var records: [SkillRecord]
    var examined: Int
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
