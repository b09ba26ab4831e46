import Foundation

/// Least privilege in Redis: one ACL user per Cortex role, with exactly the keys, channels and commands
/// the role's code uses, generated from `CortexNames` so a renamed or new key changes its ACL here.
///
/// `cortexctl docs acl` prints the rules (for an external Redis), `cortexctl docs acl-file` the chart's
/// template (`charts/cortex/files/redis/users.acl`, passwords added by the Redis pod's start script);
/// a test keeps the chart's copy in step. Redis 7.0 syntax: `%R~` (read-only) and `%W~` (write-only) key
/// selectors, `&channel` (Redis 7 starts users with no channels), `-@all` then each command.
///
/// Commands inside Lua scripts are checked against the calling user too (keys included), so a script
/// grants nothing: the commands and keys its `redis.call`s use are listed here as well.
public enum RedisACL {
    /// A Redis user, named `cortex-<role>`.
    public enum Role: String, CaseIterable, Sendable {
        /// The coordinator: runs, phases, task routing, liveness of masters and workers, the budget ledger.
        case coordinator
        /// Every domain master (one user for the six): its task stream, registry, work dispatch, its own budget.
        case master
        /// A worker of any pool but `implementation`: work items, results, checkpoints. No budget keys.
        case worker
        /// A worker of the `implementation` pool: a worker that also calls the model, metered on the
        /// development master's workers' account (and the run's), and keeps earlier attempts.
        case implementationWorker = "implementation-worker"
        /// catalog-api: the catalog's keys and its change channel.
        case catalogAPI = "catalog-api"
        /// `cortexctl` from an operator's machine: reads everything, submits runs, publishes messages.
        case `operator`
        /// `cortex-mcp` (the chart's `mcp` Deployment, streamable HTTP): submits runs and reads run state,
        /// liveness and the budget, as `cortexctl run|status|budget` do; nothing else.
        case mcp

        /// The Redis username.
        public var username: String { "cortex-\(rawValue)" }

        /// The Secret key (and file name) that holds this user's password in the chart.
        public var secretKey: String { "redis-password-\(rawValue)" }

        /// Which user a worker serving `pools` needs: the implementation pool calls the model (budget keys).
        public static func worker(serving pools: [WorkerPool]) -> Role {
            pools.contains(.implementation) ? .implementationWorker : .worker
        }

        /// What the role is, for the documentation.
        public var purpose: String {
            switch self {
            case .coordinator: return "coordinator (and `cortexctl` run inside its pod)"
            case .master: return "the six `*-master` processes"
            case .worker: return "`worker` serving any pools but `implementation`"
            case .implementationWorker: return "`worker` serving the `implementation` pool (calls the model: budget keys)"
            case .catalogAPI: return "`catalog-api`"
            case .operator: return "`cortexctl` run by an operator outside the cluster"
            case .mcp: return "`cortex-mcp` (MCP tools: submits runs, reads their state, liveness and the budget)"
            }
        }
    }

    /// How a role may use keys matching a pattern.
    public enum Access: String, Sendable {
        /// `%R~`: read commands only.
        case read
        /// `%W~`: write commands that do not read (SET, HSET, XADD, SADD, DEL, EXPIRE ...).
        case write
        /// `~`: both (HINCRBY, XREADGROUP, keys declared to EVAL, ...).
        case readWrite

        var selector: String {
            switch self {
            case .read: return "%R~"
            case .write: return "%W~"
            case .readWrite: return "~"
            }
        }
    }

    /// One key grant: a glob and the access to it.
    public struct KeyGrant: Sendable, Equatable {
        public var pattern: String
        public var access: Access
        public init(_ pattern: String, _ access: Access) {
            self.pattern = pattern
            self.access = access
        }
    }

    /// Everything one role may do.
    public struct Rules: Sendable, Equatable {
        public var keys: [KeyGrant]
        public var channels: [CortexNames.Channel]
        /// Lowercase command names (`xgroup|create` for one subcommand), sorted.
        public var commands: [String]
    }

    private typealias K = CortexNames.KeyPattern

    /// Every process: reachability, the database in the URL, Sentinel's primary check, replication waits.
    static let connection = ["ping", "select", "role", "wait"]
    /// Publishing a message: PUBLISH plus XADD to the capped history (MessageBus). Journal replay runs the
    /// journaled commands in one EVAL that first SETs the record's marker key; scripts run alone go by
    /// their digest (EVALSHA, loaded once with SCRIPT LOAD: `RedisScript`).
    static let messaging = ["publish", "xadd", "eval", "evalsha", "script|load", "set"]
    /// Reading a stream through its consumer group (StreamConsumer): the group made on start, own pending
    /// entries, idle ones claimed, delivery counts, acknowledgement.
    static let groupConsumer = ["xgroup|create", "xreadgroup", "xautoclaim", "xpending", "xack"]
    /// The budget ledger's scripts (reserve, commit/release, transfer) and its reads.
    static let ledger = ["eval", "hmget", "hincrby", "hset", "expire", "hgetall", "del", "exists", "smembers"]

    /// The rules of `role`.
    public static func rules(for role: Role) -> Rules {
        switch role {
        case .coordinator: return coordinatorRules()
        case .master: return masterRules()
        case .worker: return workerRules(implementation: false)
        case .implementationWorker: return workerRules(implementation: true)
        case .catalogAPI: return catalogAPIRules()
        case .operator: return operatorRules()
        case .mcp: return mcpRules()
        }
    }

    private static var masterStreams: [String] { MasterRole.allCases.map { CortexNames.taskStream($0) } }
    /// Every orchestration role publishes to the history and replays its journal.
    private static var history: [KeyGrant] { [KeyGrant(K.eventHistory.pattern, .write), KeyGrant(K.journalMarker.pattern, .readWrite)] }

    private static func coordinatorRules() -> Rules {
        // The run request stream is consumed; task streams are written (routing) and, for a dead
        // master, claimed and handed back (LivenessMonitor); the liveness script DELs/SREMs forgotten
        // workers and declares the registry, heartbeat and set keys (EVAL: read-write).
        let keys = [
            KeyGrant(K.runRequests.pattern, .readWrite), KeyGrant(K.runIndex.pattern, .readWrite),
            KeyGrant(K.run.pattern, .readWrite),  // the run hash and its activation, tasks, results, handoffs, plan, routed
            // Inside the run glob too, named for the record: the plan and the router's once-per-task guard.
            KeyGrant(K.runPlan.pattern, .readWrite), KeyGrant(K.runRouted.pattern, .readWrite),
            KeyGrant(K.routingWeights.pattern, .readWrite),  // what the router learned (ExpertRouter)
            KeyGrant(K.learnings.pattern, .readWrite),  // what masters learned from fix outcomes (LearningStore)
            KeyGrant(K.targetHistory.pattern, .readWrite),  // what each run found per target (ExecutionHistory)
            KeyGrant(K.embeddings.pattern, .readWrite),  // knowledge-base vectors (HybridRanker), for the model planner
        ] + masterStreams.map { KeyGrant($0, .readWrite) }
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterRegistry($0), .readWrite) }
          // Read to find live instances; written to forget dead ones (LivenessMonitor).
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterInstances($0), .readWrite) }
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterHeartbeatPattern($0), .read) }
          + [
            KeyGrant(K.workerRegistry.pattern, .readWrite), KeyGrant(K.workerHeartbeat.pattern, .readWrite),
            KeyGrant(K.workerSet.pattern, .readWrite),
            KeyGrant(K.budgetAccount.pattern, .readWrite), KeyGrant(K.budgetAccounts.pattern, .readWrite),
            KeyGrant(K.budgetReservation.pattern, .readWrite),
            KeyGrant(K.deadLetters.pattern, .write),
            // Phase 5 archives a finished run's task keys into its report, then unlinks them.
            KeyGrant(K.taskResults.pattern, .readWrite), KeyGrant(K.taskFiles.pattern, .readWrite),
            KeyGrant(K.taskShardPlan.pattern, .readWrite),
            KeyGrant(K.taskDuplicates.pattern, .readWrite), KeyGrant(K.taskResultEvents.pattern, .write),
          ] + history
        return Rules(keys: keys, channels: CortexNames.Channel.orchestration,
                     commands: sorted(connection + messaging + groupConsumer + ledger + [
                        "subscribe", "xclaim", "xrange", "hget", "hkeys", "sadd", "srem", "zadd", "zrevrange", "lrange", "rpush",
                        "xdel", "unlink", "get", "zremrangebyscore",
                        "hsetnx",  // every task is recorded and queued once (RunExecution.queueTaskScript)
                        "hincrbyfloat",  // the router's weights (ExpertRouter.learnScript)
                        "hmget", "hdel",  // learnings (LearningStore)
                        "lpush", "ltrim",  // execution history per target (ExecutionHistory)
                     ]))
    }

    private static func masterRules() -> Rules {
        // Each master reads its task stream, writes its registry and heartbeat, dispatches work items
        // (XADD only: it never reads a work stream), waits for results (read-only) and charges its own
        // budget account and the run's (MeteredLLM).
        let keys = masterStreams.map { KeyGrant($0, .readWrite) }
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterRegistry($0), .write) }
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterInstances($0), .write) }
          + MasterRole.allCases.map { KeyGrant(CortexNames.masterHeartbeatPattern($0), .write) }
          // Read-write for spawn mode: the backlog (XLEN), a dead worker pod's pending items (XPENDING,
          // XRANGE) handed back (XADD, XACK, XDEL) or dead-lettered (WorkerJobSpawner).
          + WorkerPool.allCases.map { KeyGrant(CortexNames.workStream($0), .readWrite) }
          + [
            KeyGrant(K.masterSet.pattern, .write),
            // Spawn mode: its Jobs and OOM counts; live workers of a pool (the spawn rule).
            KeyGrant(K.workerJobs.pattern, .readWrite),
            KeyGrant(K.workerRegistry.pattern, .read), KeyGrant(K.workerHeartbeat.pattern, .read), KeyGrant(K.workerSet.pattern, .read),
            KeyGrant(K.runActivation.pattern, .write), KeyGrant(K.runResults.pattern, .readWrite),
            KeyGrant(K.runTasks.pattern, .read), KeyGrant(K.runHandoffs.pattern, .write),
            // The run's own hash, read to skip a task of a run that has ended (RunState.load). The glob
            // also matches the run's sub-keys: read-only here.
            KeyGrant(K.run.pattern, .read),
            // Written only in spawn mode: the failed result of an item dead-lettered after repeated OOMKills.
            KeyGrant(K.taskResults.pattern, .readWrite), KeyGrant(K.taskResultEvents.pattern, .readWrite),
            KeyGrant(K.deadLetters.pattern, .write),
            KeyGrant(K.targetHistory.pattern, .read),  // earlier runs' findings, before the assessment's model call
            KeyGrant(K.embeddings.pattern, .readWrite),  // knowledge-base vectors (HybridRanker)
            KeyGrant(K.learnings.pattern, .read),  // what the files cost last time, for the shard plan (ShardPlan)
            KeyGrant(K.taskShardPlan.pattern, .readWrite),  // the plan a task's items follow, written once
          ]
          + MasterRole.allCases.map { KeyGrant(CortexNames.budgetAccountPattern($0.rawValue), .readWrite) }
          + [KeyGrant(CortexNames.budgetAccountPattern(BudgetPlan.runAccount), .readWrite), KeyGrant(K.budgetReservation.pattern, .readWrite)]
          + history
        return Rules(keys: keys, channels: [.mastersCoordination, .eventsSystem],
                     commands: sorted(connection + messaging + groupConsumer + ledger + [
                        "subscribe", "xread", "hexists", "hkeys", "hvals", "sadd", "rpush", "xdel", "lrange", "hmget", "hget", "get",
                        "hlen",  // how many of a task's results are in, before reading them
                        "xclaim",  // the keep-alive of a task in progress (XCLAIM ... JUSTID to itself)
                        "multi", "exec",  // the report, its handoffs and the acknowledgement in one transaction
                        "xlen", "xrange", "hsetnx",  // spawn mode (WorkerJobSpawner)
                        "hdel",  // spawn mode: Jobs forgotten after the retention leave the status hash (WorkerJobSpawner.prune)
                     ]))
    }

    private static func workerRules(implementation: Bool) -> Rules {
                let pools = WorkerPool.allCases.filter { implementation || $0 != .implementation }
        var keys = pools.map { KeyGrant(CortexNames.workStream($0), .readWrite) } + [
            KeyGrant(K.deadLetters.pattern, .write),
            // Results are written once (HSETNX) with a TTL, the master woken (XADD): never read here.
            KeyGrant(K.taskResults.pattern, .write), KeyGrant(K.taskResultEvents.pattern, .write),
            KeyGrant(K.taskFiles.pattern, .readWrite), KeyGrant(K.taskDuplicates.pattern, .readWrite),
            KeyGrant(K.checkpoint.pattern, .readWrite),
            KeyGrant(K.workerRegistry.pattern, .readWrite),  // HINCRBY items_done
            KeyGrant(K.workerHeartbeat.pattern, .write), KeyGrant(K.workerSet.pattern, .write),
            // Per-file results kept between runs, their LRU index and byte accounting (FileResultCache).
            KeyGrant(K.fileCache.pattern, .readWrite), KeyGrant(K.fileCacheIndex.pattern, .readWrite),
            KeyGrant(K.fileCacheBytes.pattern, .readWrite),
        ] + history
        var channels: [CortexNames.Channel] = [.workersStatus]
        var commands = connection + messaging + groupConsumer + [
            "xclaim", "hset", "hsetnx", "hincrby", "sadd", "get", "del", "expire", "multi", "exec", "xdel",
            "hmget", "zadd",  // the file cache's lookups and their last-use mark (FileResultCache)
            "exists", "hstrlen", "hget", "hdel", "zrange", "zrem", "unlink",  // the file cache's store script: accounting and eviction
        ]
        if implementation {
            // The agent's model calls: the development master's workers' account and the run's, the
            // reservations; BUDGET_REQUEST / BUDGET_DECISION on the coordination channel.
            let account = CortexNames.workersBudgetAccount(MasterRole.development.rawValue)
            keys += [
                KeyGrant(K.developmentAttempts.pattern, .readWrite),
                KeyGrant(K.targetHistory.pattern, .read),  // earlier runs' findings, in the agent's briefing
                KeyGrant(K.embeddings.pattern, .readWrite),  // knowledge-base vectors (HybridRanker)
                KeyGrant(CortexNames.budgetAccountPattern(account), .readWrite),
                KeyGrant(CortexNames.budgetAccountPattern(BudgetPlan.runAccount), .readWrite),
                KeyGrant(K.budgetReservation.pattern, .readWrite),
            ]
            channels.append(.mastersCoordination)
            commands += ledger + ["subscribe", "lpush", "ltrim", "lrange", "hmget"]
        }
        return Rules(keys: keys, channels: channels, commands: sorted(commands))
    }

    private static func catalogAPIRules() -> Rules {
        // The catalog store's Lua scripts (EVALSHA, loaded once) and pipelines; PUBLISH of changes (no
        // history: too many); the relay subscribes to changes and worker status.
        return Rules(keys: [KeyGrant(K.catalog.pattern, .readWrite)], channels: [.catalogEvents, .workersStatus],
                     commands: sorted(connection + [
                        "publish", "subscribe", "evalsha", "script|load",
                        "hmget", "hget", "hgetall", "hset", "hdel", "hincrby", "exists", "del",
                        "zadd", "zrem", "zcard", "zscore", "zrangebylex",
                     ]))
    }

    private static func operatorRules() -> Rules {
        // cortexctl: status, budget and run state are reads; `run` writes the request (hash, index,
        // stream); `publish` and `events` use any channel. `cortex:run:*` also covers the run's
        // sub-hashes: a glob cannot tell the run hash from them.
        return Rules(keys: [
            KeyGrant("cortex:*", .read),
            KeyGrant(K.runRequests.pattern, .write), KeyGrant(K.runIndex.pattern, .write), KeyGrant(K.run.pattern, .write),
            KeyGrant(K.eventHistory.pattern, .write),
            KeyGrant(K.learnings.pattern, .write),  // cortexctl memory forget
            // cortexctl memory forget: cached file results and their accounting (FileResultCache.forget).
            // (read-write: a script's declared keys need both)
            KeyGrant(K.fileCache.pattern, .readWrite), KeyGrant(K.fileCacheIndex.pattern, .readWrite), KeyGrant(K.fileCacheBytes.pattern, .readWrite),
        ], channels: CortexNames.Channel.allCases,
                     commands: sorted(connection + [
                        "publish", "subscribe", "xadd", "hset", "zadd",
                        "hgetall", "hmget", "hget", "smembers", "exists", "zrevrange", "xrange",
                        "get",  // a run's plan (`cortexctl status <run>`)
                        "hdel",  // cortexctl memory forget
                        "hlen", "zscore", "evalsha", "script|load",  // cortexctl memory show|forget: the file cache
                        "unlink", "zrem", "hincrby",  // its forget script
                     ]))
    }

    private static func mcpRules() -> Rules {
        // cortex-mcp's tools, key by key (the operator's rules cut down to them; no `cortex:*` read: the
        // catalog goes through catalog-api, and checkpoints, file caches, learnings are none of its business):
        // start_run is RunClient.submit (HSET the run hash, ZADD the index, XADD the request stream in one
        // pipeline, WAIT, then RUN_REQUESTED: PUBLISH + XADD to the history); get_run_status is
        // `cortexctl status` (the run hash and its plan, tasks and results; masters' registries, workers'
        // set, registries and heartbeats, spawn-mode Jobs; recent runs); read_budget is `cortexctl budget`
        // (the accounts set and each account); the resources list recent runs. No subscription: over MCP
        // a client polls get_run_status.
        return Rules(keys: [
            KeyGrant(K.runRequests.pattern, .write),
            KeyGrant(K.runIndex.pattern, .readWrite),  // ZADD on submit, ZREVRANGE for recent runs
            KeyGrant(K.run.pattern, .readWrite),  // HSET on submit; the run hash and (same glob) its plan, tasks, results
            KeyGrant(K.eventHistory.pattern, .write),
        ] + MasterRole.allCases.map { KeyGrant(CortexNames.masterRegistry($0), .read) }
          + [
            KeyGrant(K.workerSet.pattern, .read), KeyGrant(K.workerRegistry.pattern, .read), KeyGrant(K.workerHeartbeat.pattern, .read),
            KeyGrant(K.workerJobs.pattern, .read),
            KeyGrant(K.budgetAccounts.pattern, .read), KeyGrant(K.budgetAccount.pattern, .read),
          ], channels: [MessageType.RUN_REQUESTED.channel],
                     commands: sorted(connection + [
                        "hset", "zadd", "xadd", "publish",  // submit
                        "hgetall", "get", "smembers", "exists", "zrevrange", "hmget",  // status, budget, resources
                     ]))
    }

    /// The patterns granted to `role`, for checks (`KeyGrant.pattern` only).
    public static func patterns(for role: Role) -> [String] { rules(for: role).keys.map(\.pattern) }

    private static func sorted(_ commands: [String]) -> [String] { Array(Set(commands)).sorted() }

    /// How the user's password appears in its rule.
    public enum Credential: Sendable {
        /// `>password`.
        case password(String)
        /// `#<sha256 hex>` of the password: an ACL file that must not hold the password itself (the
        /// chart's start script hashes with sha256sum).
        case sha256(String)
        /// No password clause (the chart's template: the Redis pod's start script adds `#<sha256>`).
        case none
    }

    /// The rule text after `user <name>`: `on`, the credential, then keys, channels and commands, each
    /// list reset first so applying it to an existing user replaces what it had.
    public static func ruleText(for role: Role, credential: Credential) -> String {
        ruleText(rules(for: role), credential: credential)
    }

    /// The rule text of any `Rules` (a test's variation of a role's, say).
    public static func ruleText(_ r: Rules, credential: Credential) -> String {
        var parts = ["on"]
        switch credential {
        case .password(let p): parts += ["resetpass", ">\(p)"]
        case .sha256(let h): parts += ["resetpass", "#\(h)"]
        case .none: break
        }
        parts.append("resetkeys")
        parts += r.keys.map { "\($0.access.selector)\($0.pattern)" }
        parts.append("resetchannels")
        parts += r.channels.map { "&\($0.rawValue)" }
        parts.append("-@all")
        parts += r.commands.map { "+\($0)" }
        return parts.joined(separator: " ")
    }

    /// One ACL file line: `user cortex-<role> on ... `.
    public static func userLine(for role: Role, credential: Credential) -> String {
        "user \(role.username) \(ruleText(for: role, credential: credential))"
    }

    /// The `ACL SETUSER` command for `role` (for a test or an operator's script).
    public static func setUser(_ role: Role, password: String) -> RedisCommand {
        .aclSetUser(role.username, rules: ruleText(for: role, credential: .password(password)).split(separator: " ").map(String.init))
    }

    /// The chart's ACL template (`charts/cortex/files/redis/users.acl`): one `user` line per role without a
    /// password; the Redis pod's start script inserts `resetpass #<sha256>` of the role's Secret key after `on`.
    public static var chartTemplate: String {
        "# Generated by `cortexctl docs acl-file` from Sources/CortexCore/Protocol/RedisACL.swift; do not edit by hand.\n"
            + Role.allCases.map { userLine(for: $0, credential: .none) + "\n" }.joined()
    }

    /// A complete ACL file for `passwords` (role -> password, written as `>password`: for a private test
    /// server; roles without one are left out), after the `default` user line given.
    public static func aclFile(passwords: [Role: String], defaultUser: String) -> String {
        ([defaultUser] + Role.allCases.compactMap { role in passwords[role].map { userLine(for: role, credential: .password($0)) } })
            .joined(separator: "\n") + "\n"
    }

    /// `cortexctl docs acl`: the users to create on an external Redis, and why each has what it has.
    public static func markdown() -> String {
        var md = """
        # Cortex Redis users

        _Generated by `cortexctl docs acl` from `Sources/CortexCore/Protocol/RedisACL.swift`; do not edit by hand._

        One Redis user per role, each with only the keys, channels and commands its code uses (Redis 7.0
        ACL syntax: `%R~` read-only keys, `%W~` write-only keys, `~` both, `&` channels). Commands inside
        Cortex's Lua scripts are checked against the same user, so scripts grant nothing extra. No role has
        FLUSHALL, CONFIG, KEYS, SHUTDOWN or any other admin command; only the coordinator, the masters and the
        implementation workers touch `cortex:budget:*`, each only the accounts it draws on.

        Each process names its user in `CORTEX_REDIS_URL` (`redis://cortex-worker@host:6379/0`) and reads
        the password from `CORTEX_REDIS_PASSWORD_FILE`. The chart does this for the bundled Redis
        (`redis.acl: true`, the default) and, with `externalRedis.acl: true`, for yours.

        | Role | User | Used by |
        |---|---|---|

        """
        for role in Role.allCases { md += "| \(role.rawValue) | `\(role.username)` | \(role.purpose) |\n" }
        md += """

        ## Creating the users on an external Redis (7.0 or later)

        Replace each `PASSWORD` (store it under the Secret key named in the comment):

        ```sh

        """
        for role in Role.allCases {
            md += "# Secret key \(role.secretKey)\n"
            md += "redis-cli ACL SETUSER \(role.username) \(ruleText(for: role, credential: .password("PASSWORD")).split(separator: " ").map { shellQuote(String($0)) }.joined(separator: " "))\n"
        }
        md += "redis-cli ACL SAVE   # when the server uses an aclfile; with users in redis.conf, CONFIG REWRITE\n```\n"
        md += "\n## Rules per role\n"
        for role in Role.allCases {
            let r = rules(for: role)
            md += "\n### \(role.username)\n\n\(role.purpose.prefix(1).uppercased() + role.purpose.dropFirst()).\n\n"
            md += "- Keys: " + r.keys.map { "`\($0.access.selector)\($0.pattern)`" }.joined(separator: ", ") + "\n"
            md += "- Channels: " + r.channels.map { "`\($0.rawValue)`" }.joined(separator: ", ") + "\n"
            md += "- Commands: " + r.commands.map { "`\($0)`" }.joined(separator: ", ") + "\n"
        }
        return md
    }

    private static func shellQuote(_ s: String) -> String {
        s.allSatisfy { $0.isLetter || $0.isNumber || "-_+@:/.,=".contains($0) } ? s : "'\(s.replacingOccurrences(of: "'", with: "'\\''"))'"
    }
}
