import Prometheus

/// Every Prometheus metric a Cortex process exports, defined once (the registry traps on conflicting labels).
///
/// docs/metrics.md lists them; dashboards and alert rules only use names from here.
public final class CortexMetrics: Sendable {
    /// The process's one registry, served on /metrics.
    public let registry = PrometheusCollectorRegistry()
    private let nodesSeen = Locked<Set<String>>([])
    /// Counters and histograms of the per-message and per-item paths, fetched from the registry once per
    /// label set: each fetch re-validates the metric name and labels (2 % of a worker's time under load).
    private let hotCounters = Locked<[String: Counter]>([:])
    private let hotHistograms = Locked<[String: ValueHistogram]>([:])

    private func counter(_ key: String, _ make: () -> Counter) -> Counter {
        if let c = hotCounters.withLock({ $0[key] }) { return c }
        let c = make()
        hotCounters.withLock { $0[key] = c }
        return c
    }

    public init() {
        // Pre-create the label sets people alert on, so they read 0 rather than "no data".
        for reason in RejectionReason.allCases { _ = registry.makeCounter(descriptor: d("cortex_messages_rejected_total"), labels: [("reason", reason.rawValue)]) }
        _ = registry.makeCounter(descriptor: d("cortex_subscription_interruptions_total"))
        redisConnected(false)
        for decision in ["granted", "denied"] { _ = registry.makeCounter(descriptor: d("cortex_budget_requests_total"), labels: [("decision", decision)]) }
    }

    /// Every metric name with its help text (docs/metrics.md lists each; a test checks).
    public static let help: [String: String] = [
        "cortex_messages_received_total": "Valid channel messages received, by channel and type.",
        "cortex_messages_rejected_total": "Channel messages refused (malformed, oversized, unknown type...), by reason.",
        "cortex_messages_published_total": "Channel messages published, by channel and type.",
        "cortex_messages_dropped_total": "Channel messages received but not delivered to this process's reader, by channel and reason (buffer_full: the reader was too far behind; the buffer holds at most 10,000 messages or 64 MiB).",
        "cortex_subscription_interruptions_total": "Times a live subscription broke and was re-established; messages published meanwhile were not received.",
        "cortex_subscription_buffered_bytes": "Bytes of received channel messages waiting for this process's reader, by subscribed channels (sampled when messages arrive).",
        "cortex_redis_connected": "1 while this process reaches Redis, else 0.",
        "cortex_redis_errors_total": "Redis commands that failed, by operation.",
        "cortex_phase": "The coordinator's current phase (0-5; -1 when idle).",
        "cortex_runs_total": "Runs finished, by outcome (succeeded, partial, failed).",
        "cortex_tasks_total": "Tasks finished by masters, by master and outcome.",
        "cortex_tasks_active": "Tasks a master is working on now.",
        "cortex_work_items_total": "Work items finished by workers, by pool and outcome.",
        "cortex_work_item_seconds": "Time a worker spent on a work item, by pool.",
        "cortex_stream_redeliveries_total": "Stream entries processed again after a consumer died or handed them back, by stream kind.",
        "cortex_journal_records_total": "Local journal records, by event (appended, replayed, duplicate, corrupt, refused).",
        "cortex_dead_letters_total": "Stream entries moved to the dead-letter stream, by reason.",
        "cortex_worker_jobs": "Spawn mode: a master's worker Jobs by state (pending, running, succeeded, failed, oom_killed, evicted, node_lost, deadline_exceeded, deleted).",
        "cortex_worker_oom_total": "Spawn mode: worker Job containers a master saw OOMKilled, by pool (each answered by a respawn with 1.5x the memory).",
        "cortex_duplicate_results_total": "Work item results committed a second time and ignored (the item had been redone after a redelivery).",
        "cortex_checkpoints_total": "Work item checkpoints, by event (saved, resumed, unreadable).",
        "cortex_file_cache_files_total": "Files of file-sharded work items by how the file cache served them: reused (unchanged since an earlier run, not read), examined, unreadable (an entry of the wrong shape, examined again).",
        "cortex_file_cache_evictions_total": "Cached per-file result sets (one skill version on one target) evicted, least recently used first, to keep the file cache under CORTEX_FILE_CACHE_MAX_MB.",
        "cortex_tokens_budget": "A run's token budget per agent account (latest run), by agent.",
        "cortex_tokens_spent": "Tokens used or reserved in the current (else the latest) run, per agent account, sampled by the coordinator every 2 s while a run works.",
        "cortex_masters_live": "Live instances of each master (heartbeat key present), as the coordinator sees them.",
        "cortex_workers_live": "Live workers serving each pool (every pool listed, zero included), as the coordinator sees them.",
        "cortex_workers_by_node": "Live workers on each node, as the coordinator sees them.",
        "cortex_tokens_used_total": "LLM tokens used, by agent account, as reconciled at the end of each run.",
        "cortex_catalog_request_seconds": "catalog-api HTTP request latency, by route template, method and status.",
        "cortex_catalog_graphql_seconds": "catalog-api GraphQL operation latency, by operation type and root field.",
        "cortex_catalog_assets": "Assets in the catalog, by type (read from Redis at each scrape).",
        "cortex_catalog_writes_total": "Asset writes by outcome (created, updated, unchanged) and relations added.",
        "cortex_catalog_subscribers": "Live catalog subscribers on this replica, by transport (websocket, sse).",
        "cortex_catalog_event_listeners": "Live event streams on this replica (one per GraphQL subscription or SSE client).",
        "cortex_catalog_requests_refused_total": "catalog-api requests refused by a limit, by reason (tokens, nesting, depth, cost, fragment_cycle, concurrency, timeout, result_size, header_timeout).",
        "cortex_catalog_graphql_executions_total": "catalog-api GraphQL queries and mutations executed, by path: fast (catalog-api's own executor for asset, assets and lineage reads) or library (GraphQLSwift's execution, fallbacks included).",
        "cortex_catalog_graphql_documents_total": "catalog-api GraphQL documents by how they were had: cached (parsed and validated before, taken from the document cache) or parsed.",
        "cortex_catalog_registrations_total": "Work items whose discoveries a worker sent to catalog-api, by outcome (ok, failed).",
        "cortex_budget_requests_total": "Budget requests decided by the coordinator, by decision (granted, denied).",
        "cortex_llm_calls_total": "LLM calls by agent and outcome (done, denied, failed).",
        "cortex_llm_tokens_total": "LLM tokens charged to the ledger by agent (the provider's usage, or the estimate when it reports none).",
        "cortex_vulnerabilities": "Vulnerable dependencies the security master found in its latest scan of each target, summed, by severity (critical, high, medium, low).",
        "cortex_liveness_check_failures_total": "Liveness checks the coordinator could not complete, by what was checked (workers, a master); the others still ran.",
        "cortex_liveness_events_total": "Liveness changes seen by the coordinator, by event (worker_lost, master_down, master_up, tasks_held, tasks_handed_back).",
    ]

    private func d(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: Self.help[name] ?? "")
    }

    public func messageReceived(channel: CortexNames.Channel, type: MessageType) {
        counter("received\u{0}\(type.rawValue)") {
            registry.makeCounter(descriptor: d("cortex_messages_received_total"), labels: [("channel", channel.rawValue), ("type", type.rawValue)])
        }.increment()
    }

    public func messageDropped(channel: String, reason: String) {
        registry.makeCounter(descriptor: d("cortex_messages_dropped_total"), labels: [("channel", channel), ("reason", reason)]).increment()
    }

    public func subscriptionInterrupted() {
        registry.makeCounter(descriptor: d("cortex_subscription_interruptions_total")).increment()
    }

    public func subscriptionBuffered(channels: String, bytes: Int) {
        registry.makeGauge(descriptor: d("cortex_subscription_buffered_bytes"), labels: [("channels", channels)]).set(to: Double(bytes))
    }

    public func messageRejected(_ reason: RejectionReason) {
        registry.makeCounter(descriptor: d("cortex_messages_rejected_total"), labels: [("reason", reason.rawValue)]).increment()
    }

    public func messagePublished(channel: CortexNames.Channel, type: MessageType) {
        counter("published\u{0}\(type.rawValue)") {
            registry.makeCounter(descriptor: d("cortex_messages_published_total"), labels: [("channel", channel.rawValue), ("type", type.rawValue)])
        }.increment()
    }

    public func redisConnected(_ up: Bool) {
        registry.makeGauge(descriptor: d("cortex_redis_connected")).set(to: up ? 1.0 : 0.0)
    }

    public func redisError(operation: String) {
        registry.makeCounter(descriptor: d("cortex_redis_errors_total"), labels: [("operation", operation)]).increment()
    }

    public func phase(_ n: Int) {
        registry.makeGauge(descriptor: d("cortex_phase")).set(to: Double(n))
    }

    public func runFinished(outcome: String) {
        registry.makeCounter(descriptor: d("cortex_runs_total"), labels: [("outcome", outcome)]).increment()
    }

    public func taskFinished(master: MasterRole, outcome: String) {
        registry.makeCounter(descriptor: d("cortex_tasks_total"), labels: [("master", master.rawValue), ("outcome", outcome)]).increment()
    }

    public func tasksActive(master: MasterRole, _ n: Int) {
        registry.makeGauge(descriptor: d("cortex_tasks_active"), labels: [("master", master.rawValue)]).set(to: Double(n))
    }

    public func workItemFinished(pool: WorkerPool, outcome: String, seconds: Double) {
        counter("items\u{0}\(pool.rawValue)\u{0}\(outcome)") {
            registry.makeCounter(descriptor: d("cortex_work_items_total"), labels: [("pool", pool.rawValue), ("outcome", outcome)])
        }.increment()
        let key = pool.rawValue
        let histogram = hotHistograms.withLock { $0[key] } ?? {
            let h = registry.makeValueHistogram(descriptor: d("cortex_work_item_seconds"), labels: [("pool", pool.rawValue)], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600])
            hotHistograms.withLock { $0[key] = h }
            return h
        }()
        histogram.record(seconds)
    }

    public func redelivered(kind: String) {
        registry.makeCounter(descriptor: d("cortex_stream_redeliveries_total"), labels: [("kind", kind)]).increment()
    }

    public func journal(event: String) {
        registry.makeCounter(descriptor: d("cortex_journal_records_total"), labels: [("event", event)]).increment()
    }

    public func livenessCheckFailed(what: String) {
        registry.makeCounter(descriptor: d("cortex_liveness_check_failures_total"), labels: [("what", what)]).increment()
    }

    public func deadLettered(reason: String) {
        registry.makeCounter(descriptor: d("cortex_dead_letters_total"), labels: [("reason", reason)]).increment()
    }

    /// Spawn mode: how many of a master's worker Jobs are in each state (pending, running, succeeded, failed, oom_killed, ...).
    public func workerJobs(master: MasterRole, state: String, _ n: Int) {
        registry.makeGauge(descriptor: d("cortex_worker_jobs"), labels: [("master", master.rawValue), ("state", state)]).set(to: Double(n))
    }

    /// Spawn mode: a worker Job's container was OOMKilled.
    public func workerOOM(master: MasterRole, pool: String) {
        registry.makeCounter(descriptor: d("cortex_worker_oom_total"), labels: [("master", master.rawValue), ("pool", pool)]).increment()
    }

    public func duplicateResult() {
        registry.makeCounter(descriptor: d("cortex_duplicate_results_total")).increment()
    }

    public func checkpoint(event: String) {
        registry.makeCounter(descriptor: d("cortex_checkpoints_total"), labels: [("event", event)]).increment()
    }

    /// Files of file-sharded items by how the file cache served them (reused, examined, unreadable).
    public func fileCache(skill: String, result: String, by n: Int) {
        guard n > 0 else { return }
        registry.makeCounter(descriptor: d("cortex_file_cache_files_total"), labels: [("skill", skill), ("result", result)]).increment(by: Int64(n))
    }

    /// Cached result sets evicted to keep the file cache under its bound.
    public func fileCacheEvictions(by n: Int) {
        registry.makeCounter(descriptor: d("cortex_file_cache_evictions_total")).increment(by: Int64(n))
    }

    public func liveness(event: String, by n: Int = 1) {
        registry.makeCounter(descriptor: d("cortex_liveness_events_total"), labels: [("event", event)]).increment(by: Int64(n))
    }

    public func tokens(agent: String, budget: Int, used: Int) {
        registry.makeGauge(descriptor: d("cortex_tokens_budget"), labels: [("agent", agent)]).set(to: Double(budget))
        registry.makeCounter(descriptor: d("cortex_tokens_used_total"), labels: [("agent", agent)]).increment(by: Int64(used))
    }

    /// The run's budget and what is used or reserved so far, per agent account (live, during a run).
    public func tokensSpent(agent: String, budget: Int, spent: Int) {
        registry.makeGauge(descriptor: d("cortex_tokens_budget"), labels: [("agent", agent)]).set(to: Double(budget))
        registry.makeGauge(descriptor: d("cortex_tokens_spent"), labels: [("agent", agent)]).set(to: Double(spent))
    }

    public func mastersLive(master: MasterRole, _ n: Int) {
        registry.makeGauge(descriptor: d("cortex_masters_live"), labels: [("master", master.rawValue)]).set(to: Double(n))
    }

    public func workersLive(pool: String, _ n: Int) {
        registry.makeGauge(descriptor: d("cortex_workers_live"), labels: [("pool", pool)]).set(to: Double(n))
    }

    /// Nodes seen before and now without workers are set to 0, so the heatmap shows them empty.
    public func workersByNode(_ counts: [String: Int]) {
        let all = nodesSeen.withLock { seen -> Set<String> in seen.formUnion(counts.keys); return seen }
        for node in all {
            registry.makeGauge(descriptor: d("cortex_workers_by_node"), labels: [("node", node)]).set(to: Double(counts[node] ?? 0))
        }
    }

    static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

    public func catalogRequest(route: String, method: String, status: Int, seconds: Double) {
        registry.makeValueHistogram(descriptor: d("cortex_catalog_request_seconds"),
                                    labels: [("route", route), ("method", method), ("status", String(status))],
                                    buckets: Self.latencyBuckets).record(seconds)
    }

    public func catalogGraphQL(operation: String, field: String, seconds: Double) {
        registry.makeValueHistogram(descriptor: d("cortex_catalog_graphql_seconds"), labels: [("operation", operation), ("field", field)],
                                    buckets: Self.latencyBuckets).record(seconds)
    }

    public func catalogAssets(type: String, count: Int) {
        registry.makeGauge(descriptor: d("cortex_catalog_assets"), labels: [("type", type)]).set(to: Double(count))
    }

    public func catalogWrites(created: Int, updated: Int, unchanged: Int, relations: Int) {
        for (outcome, n) in [("created", created), ("updated", updated), ("unchanged", unchanged), ("relation_added", relations)] where n > 0 {
            registry.makeCounter(descriptor: d("cortex_catalog_writes_total"), labels: [("outcome", outcome)]).increment(by: Int64(n))
        }
    }

    public func catalogSubscribers(transport: String, delta: Int) {
        registry.makeGauge(descriptor: d("cortex_catalog_subscribers"), labels: [("transport", transport)]).increment(by: Double(delta))
    }

    public func budgetRequest(decision: String) {
        registry.makeCounter(descriptor: d("cortex_budget_requests_total"), labels: [("decision", decision)]).increment()
    }

    public func llmCall(agent: String, outcome: String, tokens: Int) {
        registry.makeCounter(descriptor: d("cortex_llm_calls_total"), labels: [("agent", agent), ("outcome", outcome)]).increment()
        if tokens > 0 { registry.makeCounter(descriptor: d("cortex_llm_tokens_total"), labels: [("agent", agent)]).increment(by: Int64(tokens)) }
    }

    public func catalogListeners(_ n: Int) {
        registry.makeGauge(descriptor: d("cortex_catalog_event_listeners")).set(to: Double(n))
    }

    /// A request catalog-api refused by a limit (`by: 0` creates the series at zero).
    public func catalogRefused(reason: String, by n: Int = 1) {
        registry.makeCounter(descriptor: d("cortex_catalog_requests_refused_total"), labels: [("reason", reason)]).increment(by: Int64(n))
    }

    /// A paid model call's budget settlement that could not be committed at once: `journaled` (replayed on
    /// reconnect) or `lost` (no journal, or the journal could not be written).
    public func budgetSettlement(outcome: String) {
        registry.makeCounter(descriptor: d("cortex_budget_settlements_deferred_total"), labels: [("outcome", outcome)]).increment()
    }

    /// A counter of GraphQL executions on one path (`fast`, `library`), made once and kept by the caller:
    /// it is bumped per request, and each registry lookup re-validates the name and labels.
    public func catalogExecutionCounter(path: String) -> @Sendable () -> Void {
        let counter = registry.makeCounter(descriptor: d("cortex_catalog_graphql_executions_total"), labels: [("path", path)])
        return { counter.increment() }
    }

    /// A counter of GraphQL documents by outcome (`cached`, `parsed`), made once and kept by the caller.
    public func catalogDocumentCounter(outcome: String) -> @Sendable () -> Void {
        let counter = registry.makeCounter(descriptor: d("cortex_catalog_graphql_documents_total"), labels: [("outcome", outcome)])
        return { counter.increment() }
    }

    public func catalogRegistration(outcome: String) {
        registry.makeCounter(descriptor: d("cortex_catalog_registrations_total"), labels: [("outcome", outcome)]).increment()
    }

    /// The Prometheus text exposition of every metric.
    public func vulnerabilities(severity: String, count: Int) {
        registry.makeGauge(descriptor: d("cortex_vulnerabilities"), labels: [("severity", severity)]).set(to: Double(count))
    }

    public func exposition() -> String { registry.emitToString() }
}
