import CortexCatalog
import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Logging
import Testing

/// Least privilege in Redis, against a real redis-server started with the ACL file `RedisACL` generates:
/// every role can do what its code does, a worker cannot FLUSHALL, CONFIG or write budget keys, a whole
/// run with one Redis user per process succeeds without a single denial, and a permission missing from a
/// worker's user fails the affected work items (and so the run) with the NOPERM reason.
@Suite(.serialized) struct RedisACLTests {
    /// Every role's password in the test's ACL file.
    static let passwords = Dictionary(uniqueKeysWithValues: RedisACL.Role.allCases.map { ($0, "pw-\($0.rawValue)-\(UUID().uuidString.prefix(8))") })
    /// The default user stays open on the private server: the harness (PING on start, SHUTDOWN) and the
    /// tests' own checks (ACL LOG) use it. Every Cortex connection below names its role's user.
    static let defaultUser = "user default on nopass ~* &* +@all"

    /// Writes an ACL file (the generated rules, `override` replacing a role's) and returns its path.
    static func aclFile(in dir: URL, override: (RedisACL.Role, RedisACL.Rules)? = nil) throws -> String {
        var text = RedisACL.aclFile(passwords: passwords, defaultUser: defaultUser)
        if let (role, rules) = override {
            let generated = RedisACL.userLine(for: role, credential: .password(passwords[role]!))
            let changed = "user \(role.username) " + RedisACL.ruleText(rules, credential: .password(passwords[role]!))
            #expect(text.contains(generated))
            text = text.replacingOccurrences(of: generated, with: changed)
        }
        let url = dir.appendingPathComponent("users.acl")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    static func startRedis(_ aclFile: (URL) throws -> String) async throws -> (ProcessSupervisor, LocalRedis) {
        let dir = try temporaryDirectory("cortex-acl-redis")
        let supervisor = try ProcessSupervisor(logDirectory: dir.appendingPathComponent("logs"))
        return (supervisor, try await LocalRedis(supervisor: supervisor, directory: dir, extraArguments: ["--aclfile", try aclFile(dir)]))
    }

    static func url(_ port: Int, _ role: RedisACL.Role) -> String {
        RedisEndpoint(host: "127.0.0.1", port: port, username: role.username, password: passwords[role]!, database: 0).url
    }

    static func endpoint(_ port: Int, _ role: RedisACL.Role) -> RedisEndpoint {
        RedisEndpoint(host: "127.0.0.1", port: port, username: role.username, password: passwords[role]!)
    }

    static func client(_ port: Int, _ role: RedisACL.Role) -> RedisClient {
        RedisClient(endpoint: endpoint(port, role), name: role.rawValue)
    }

    /// One line of CLIENT LIST as its `name=value` fields.
    static func clientFields(_ line: Substring) -> [String: String] {
        var fields: [String: String] = [:]
        for field in line.split(separator: " ") {
            guard let equals = field.firstIndex(of: "=") else { continue }
            fields[String(field[..<equals])] = String(field[field.index(after: equals)...])
        }
        return fields
    }

    static func bus(_ redis: RedisClient) -> MessageBus {
        MessageBus(redis: redis, source: "test", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
    }

    /// Runs a command and fails the test, naming it, unless Redis accepted it.
    @discardableResult
    static func ok(_ redis: RedisClient, _ args: any RedisArgument..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> RedisReply {
        let reply = try await redis.send(args)
        if case .error(let message) = reply {
            Issue.record("\(redis.endpoint.username ?? "?"): \(args.map { String(decoding: $0.redisBytes.prefix(60), as: UTF8.self) }.joined(separator: " ")) was refused: \(message)",
                         sourceLocation: sourceLocation)
        }
        return reply
    }

    /// The NOPERM error text of a command (nil when Redis ran it).
    static func denial(_ redis: RedisClient, _ args: [any RedisArgument]) async throws -> String? {
        let reply = try await redis.send(args)
        return reply.permissionDenied.map { "\($0)" }
    }

    /// What ACL LOG recorded (denials): "<username> <reason> <object>" per entry.
    static func aclLog(_ port: Int) async throws -> [String] {
        let admin = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
        defer { admin.close() }
        return (try await admin.send("ACL", "LOG", "128").orThrow().array ?? []).map { entry in
            let f = entry.array ?? []
            var fields: [String: String] = [:]
            var i = 0
            while i + 1 < f.count { if let k = f[i].string { fields[k] = f[i + 1].string ?? f[i + 1].int.map(String.init) ?? "" }; i += 2 }
            return "\(fields["username"] ?? "?") \(fields["reason"] ?? "?") \(fields["object"] ?? "?")"
        }
    }

    // MARK: (a) every role, its own commands

    @Test func everyRoleCanRunTheCommandsItsCodeUses() async throws {
        let (_, server) = try await Self.startRedis { try Self.aclFile(in: $0) }
        defer { Task { await server.stop() } }
        let port = server.port
        let run = "run-acl-a"

        // The operator (cortexctl run) submits a run: HSET, ZADD, XADD on the request stream, RUN_REQUESTED.
        let operatorRedis = Self.client(port, .operator)
        let runID = try await RunClient(bus: Self.bus(operatorRedis)).submit(RunRequest(runID: run, goal: "inventory", targets: ["/srv/x"], requestedBy: "test"))
        #expect(try await RunState.load(runID, redis: operatorRedis)?.status == "queued")

        // The coordinator: consumes the run stream, opens the ledger, routes a task, reads registries,
        // runs the liveness script, moves budget (the transfer script), publishes on its three channels.
        let coordinator = Self.client(port, .coordinator)
        try await coordinator.ensureGroup(CortexNames.runRequests, group: CortexNames.Group.coordinators)
        let requests = try await coordinator.xreadgroup(group: CortexNames.Group.coordinators, consumer: "c1", streams: [CortexNames.runRequests], count: 10)
        #expect(requests.count == 1)
        try await coordinator.xack(CortexNames.runRequests, group: CortexNames.Group.coordinators, ids: requests.map(\.entry.id))
        let ledger = BudgetLedger(redis: coordinator, runID: run)
        try await ledger.open(["run": 1000, "reserve": 500, "security": 300, "development:workers": 200])
        try await ledger.transfer(100, from: "reserve", to: "run")
        try await Self.ok(coordinator, "HSET", CortexNames.run(run), "status", "running", "phase", 2)
        try await Self.ok(coordinator, "HSET", CortexNames.runTasks(run), "\(run).inventory.0", "{}")
        try await Self.ok(coordinator, "XADD", CortexNames.taskStream(.inventory), "*", "task", "{}")
        try await Self.ok(coordinator, "HGETALL", CortexNames.masterRegistry(.inventory))
        try await Self.ok(coordinator, "SMEMBERS", CortexNames.masterInstances(.inventory))
        try await Self.ok(coordinator, "EXISTS", CortexNames.masterHeartbeat(.inventory, instance: "i1"))
        try await Self.ok(coordinator, "EVAL", "redis.call('EXISTS', KEYS[2]); redis.call('HSET', KEYS[1], 'status', 'lost'); redis.call('DEL', KEYS[1]); return redis.call('SREM', KEYS[3], ARGV[1])",
                          3, CortexNames.workerRegistry("w9"), CortexNames.workerHeartbeat("w9"), CortexNames.workerSet, "w9")
        try await Self.ok(coordinator, "RPUSH", CortexNames.runHandoffs(run), "{}")
        try await Self.ok(coordinator, "LRANGE", CortexNames.runHandoffs(run), 0, -1)
        for channel in CortexNames.Channel.orchestration {
            let type = MessageType.allCases.first { $0.channel == channel }!
            try await Self.bus(coordinator).publish(Envelope(type: type, source: "test", runID: run, data: GeneratedDocs.example(type).data))
        }

        // A master: its task stream through the group, registry and heartbeat, dispatch, results, its budget.
        let master = Self.client(port, .master)
        try await master.ensureGroup(CortexNames.taskStream(.inventory), group: CortexNames.Group.masters)
        let tasks = try await master.xreadgroup(group: CortexNames.Group.masters, consumer: "m1", streams: [CortexNames.taskStream(.inventory)], count: 10)
        #expect(tasks.count == 1)
        try await Self.ok(coordinator, "XPENDING", CortexNames.taskStream(.inventory), CortexNames.Group.masters, "-", "+", 10)
        try await Self.ok(coordinator, "XRANGE", CortexNames.taskStream(.inventory), "-", "+")
        try await Self.ok(master, "HSET", CortexNames.masterRegistry(.inventory), "status", "ready")
        try await Self.ok(master, "SADD", CortexNames.masterInstances(.inventory), "i1")
        try await Self.ok(master, "SADD", CortexNames.masterSet, "inventory")
        try await Self.ok(master, "SET", CortexNames.masterHeartbeat(.inventory, instance: "i1"), "n", "PX", 5000)
        try await Self.ok(master, "HSET", CortexNames.runActivation(run), "inventory", "i1")
        try await Self.ok(master, "XADD", CortexNames.workStream(.catalog), "*", "item", "{}")
        try await Self.ok(master, "HVALS", CortexNames.runTasks(run))
        try await Self.ok(master, "HGETALL", CortexNames.taskResults("\(run).inventory.0"))
        try await Self.ok(master, "HEXISTS", CortexNames.runResults(run), "\(run).inventory.0")
        try await Self.ok(master, "HSET", CortexNames.runResults(run), "\(run).inventory.0", "{}")
        let masterLedger = BudgetLedger(redis: master, runID: run)
        let held = try await masterLedger.reserve(50, from: ["security", "run"])
        #expect(try await masterLedger.commit(held, actual: 40))
        try await StreamConsumer_handBack(master, stream: CortexNames.taskStream(.inventory), entry: tasks[0].entry.id)

        // A worker: its pool through the group, the one-transaction commit, listing, checkpoint, registry.
        let worker = Self.client(port, .worker)
        try await worker.ensureGroup(CortexNames.workStream(.catalog), group: CortexNames.Group.workers)
        let items = try await worker.xreadgroup(group: CortexNames.Group.workers, consumer: "w1", streams: [CortexNames.workStream(.catalog)], count: 10)
        #expect(items.count == 1)
        try await Self.ok(worker, "HSET", CortexNames.workerRegistry("w1"), "status", "idle")
        try await Self.ok(worker, "SADD", CortexNames.workerSet, "w1")
        try await Self.ok(worker, "SET", CortexNames.workerHeartbeat("w1"), "n", "PX", 5000)
        try await Self.ok(worker, "SET", CortexNames.taskFiles("t1"), "[]", "NX", "EX", 60)
        try await Self.ok(worker, "GET", CortexNames.taskFiles("t1"))
        try await Self.ok(worker, "SET", CortexNames.checkpoint("i1"), "{}", "EX", 60)
        try await Self.ok(worker, "XCLAIM", CortexNames.workStream(.catalog), CortexNames.Group.workers, "w1", 0, items[0].entry.id, "JUSTID")
        let done = Envelope(type: .TASK_COMPLETE, source: "test", runID: run, data: GeneratedDocs.example(.TASK_COMPLETE).data)
        let commit: [RedisCommand] = [
            .hsetnx(CortexNames.taskResults("t1"), "i1", "{}"), .expire(CortexNames.taskResults("t1"), seconds: 60),
            .xadd(CortexNames.taskResultEvents("t1"), maxLength: 1000, fields: [("item", "i1")]), .expire(CortexNames.taskResultEvents("t1"), seconds: 60),
            .xack(CortexNames.workStream(.catalog), group: CortexNames.Group.workers, ids: [items[0].entry.id]), .del(CortexNames.checkpoint("i1")),
            .hincrby(CortexNames.workerRegistry("w1"), "items_done", by: 1), .hincrby(CortexNames.taskDuplicates("t1"), "count", by: 1),
        ] + MessageBus.commands(for: done)
        guard case .committed(let replies) = try await worker.transaction(commit) else { Issue.record("the worker's commit was refused"); return }
        #expect(replies.allSatisfy { (try? $0.orThrow()) != nil }, "\(replies)")
        // Journal replay: the journaled commit, in one script that claims the record's marker first.
        try await Self.ok(worker, "EVAL", "redis.call('SET', KEYS[1], '1', 'NX', 'EX', 60); return redis.call('HSETNX', ARGV[1], 'i2', '{}')", 1, CortexNames.journalMarker("r1"), CortexNames.taskResults("t1"))

        // An implementation worker: its own pool, attempts, and the model's metering on its account.
        let implementer = Self.client(port, .implementationWorker)
        try await implementer.ensureGroup(CortexNames.workStream(.implementation), group: CortexNames.Group.workers)
        try await Self.ok(implementer, "LPUSH", CortexNames.developmentAttempts("h1"), "{}")
        try await Self.ok(implementer, "LTRIM", CortexNames.developmentAttempts("h1"), 0, 4)
        try await Self.ok(implementer, "LRANGE", CortexNames.developmentAttempts("h1"), 0, 4)
        let workersLedger = BudgetLedger(redis: implementer, runID: run)
        let hold = try await workersLedger.reserve(30, from: ["development:workers", "run"])
        #expect(try await workersLedger.release(hold))
        #expect(try await Self.denial(implementer, ["HSET", CortexNames.budgetAccount(run, "security"), "limit", 1]) != nil,
                "an implementation worker touches only the development workers' account and the run's")

        // catalog-api: the real store (its Lua scripts, EVALSHA) and its change feed.
        let catalogRedis = Self.client(port, .catalogAPI)
        let store = CatalogStore(clients: [catalogRedis], source: "catalog-api")
        _ = try await store.write([AssetInput(type: .REPOSITORY, name: "shop")], mode: .upsert, by: "test")
        #expect(try await store.list(filter: AssetFilter(), first: 10, after: nil).items.count == 1)
        #expect(try await store.stats().total == 1)

        // Subscriptions: each role to the channels it listens on.
        for (role, channels) in [(RedisACL.Role.coordinator, CortexNames.Channel.orchestration), (.master, [.eventsSystem, .mastersCoordination]),
                                 (.implementationWorker, [.mastersCoordination]), (.catalogAPI, [.catalogEvents, .workersStatus]),
                                 (.operator, CortexNames.Channel.allCases)] as [(RedisACL.Role, [CortexNames.Channel])] {
            let subscriber = RedisSubscriber(endpoint: Self.endpoint(port, role), channels: channels.map(\.rawValue))
            #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(30)), "\(role.username) could not subscribe to \(channels)")
            subscriber.stop()
        }

        // The operator reads status and the ledger (cortexctl status / budget).
        try await Self.ok(operatorRedis, "ZREVRANGE", CortexNames.runIndex, 0, 9)
        #expect(try await BudgetLedger(redis: operatorRedis, runID: run).accounts().count == 4)

        // cortex-mcp (its tools' calls: start_run is RunClient.submit, get_run_status `cortexctl status`,
        // read_budget `cortexctl budget`, the resources the recent runs) under its own user.
        let mcpBus = Self.bus(Self.client(port, .mcp))
        let mcpRun = try await RunClient(bus: mcpBus).submit(RunRequest(runID: "run-acl-mcp", goal: "security", targets: ["/srv/y"], requestedBy: "cortex-mcp@test"))
        #expect(try await RunState.load(mcpRun, redis: mcpBus.redis)?.status == "queued")
        #expect(try await ControlCommands.status(bus: mcpBus, runID: mcpRun).contains("run run-acl-mcp: queued"))
        let overview = try await ControlCommands.status(bus: mcpBus, runID: nil)
        #expect(overview.contains("run-acl-mcp") && overview.contains(run), "\(overview)")
        #expect(try await ControlCommands.budget(bus: mcpBus, runID: run).contains("run \(run)"))
        #expect(try await mcpBus.redis.zrevrange(CortexNames.runIndex, start: 0, stop: 9).contains(mcpRun))

        // The file cache: a worker stores (evicting the older target) and looks up; the operator lists and forgets it.
        let cacheWorker = Self.client(port, .worker)
        let cache = FileResultCache(redis: cacheWorker, maxBytes: 400)
        let record: SkillRecord = ["path": "a.txt", "text": .string(String(repeating: "x", count: 200))]
        let (one, two) = (FileResultCache.Scope(skillVersion: "security-scan@1", target: "/srv/one"), FileResultCache.Scope(skillVersion: "security-scan@1", target: "/srv/two"))
        try await cache.store(one, entries: [("a.txt", "blob", [record])])
        #expect(try await cache.store(two, entries: [("a.txt", "blob", [record])]).evicted == 1)
        #expect(try await cache.lookup(two, files: [("a.txt", "blob")]).hits.count == 1)
        let shown = try await ControlCommands.memoryShow(bus: Self.bus(operatorRedis), master: "security", target: nil)
        #expect(shown.contains("security-scan@1") && shown.contains("/srv/two"), "\(shown)")
        let forgot = try await ControlCommands.memoryForget(bus: Self.bus(operatorRedis), master: "security", target: "/srv/two")
        #expect(forgot.contains("1 cached result set"), "\(forgot)")

        let denials = try await Self.aclLog(port)
        #expect(denials.filter { !$0.hasPrefix("cortex-implementation-worker ") }.isEmpty, "\(denials)")
    }

    // MARK: (b) what a worker must not do

    @Test func aWorkerCannotFlushConfigureOrWriteBudgetKeys() async throws {
        let (_, server) = try await Self.startRedis { try Self.aclFile(in: $0) }
        defer { Task { await server.stop() } }
        let admin = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port))
        defer { admin.close() }
        let run = "run-acl-b"
        try await BudgetLedger(redis: admin, runID: run).open(["run": 1000, "development:workers": 100])
        let worker = Self.client(server.port, .worker)

        for command in [["FLUSHALL"], ["FLUSHDB"], ["CONFIG", "GET", "*"], ["CONFIG", "SET", "appendonly", "no"], ["KEYS", "*"], ["SHUTDOWN", "NOSAVE"], ["ACL", "LIST"]] {
            let denied = try await Self.denial(worker, command)
            #expect(denied?.contains("no permissions to run") == true, "\(command.joined(separator: " ")): \(denied ?? "ran")")
        }
        // Budget keys: not by a command, not inside a script, not through the ledger.
        for command: [any RedisArgument] in [
            ["HSET", CortexNames.budgetAccount(run, "run"), "limit", 999_999],
            ["HINCRBY", CortexNames.budgetAccount(run, "development:workers"), "used", -50],
            ["DEL", CortexNames.budgetAccounts(run)],
            ["EVAL", "return redis.call('HSET', KEYS[1], 'limit', 999999)", 1, CortexNames.budgetAccount(run, "run")],
        ] {
            let denied = try await Self.denial(worker, command)
            #expect(denied?.contains("NOPERM") == true, "\(denied ?? "ran")")
        }
        await #expect(throws: RedisError.self) { _ = try await BudgetLedger(redis: worker, runID: run).reserve(10, from: ["development:workers", "run"]) }
        // The same script body, keys undeclared, is stopped at its redis.call.
        let undeclared = try await worker.send("EVAL", "return redis.call('HSET', ARGV[1], 'limit', 999999)", 0, CortexNames.budgetAccount(run, "run"))
        #expect(undeclared.permissionDenied != nil, "\(undeclared)")
        // Nor the implementation pool's items, nor another role's streams.
        #expect(try await Self.denial(worker, ["XREADGROUP", "GROUP", "workers", "w1", "STREAMS", CortexNames.workStream(.implementation), ">"]) != nil)
        #expect(try await Self.denial(worker, ["XADD", CortexNames.taskStream(.security), "*", "task", "{}"]) != nil)

        // Nothing changed: the ledger is as opened, and every denial is in ACL LOG under the worker's name.
        let accounts = Dictionary(uniqueKeysWithValues: try await BudgetLedger(redis: admin, runID: run).accounts().map { ($0.name, $0) })
        #expect(accounts["run"]?.limit == 1000 && accounts["development:workers"]?.used == 0)
        #expect(try await admin.send("EXISTS", CortexNames.budgetAccounts(run)).int == 1)
        let log = try await Self.aclLog(server.port)
        #expect(log.contains { $0.hasPrefix("cortex-worker command flushall") }, "\(log)")
        #expect(log.contains { $0.hasPrefix("cortex-worker key \(CortexNames.budgetAccount(run, "run"))") }, "\(log)")
        // And no role at all may flush or reconfigure the server.
        for role in RedisACL.Role.allCases {
            let c = Self.client(server.port, role)
            let flush = try await Self.denial(c, ["FLUSHALL"]), config = try await Self.denial(c, ["CONFIG", "GET", "maxmemory"])
            #expect(flush != nil && config != nil, "\(role.username)")
            c.close()
        }
    }

    // MARK: (c) a whole run, one Redis user per process

    @Test func aRunWithOneRedisUserPerProcessSucceeds() async throws {
        let work = try temporaryDirectory("cortex-acl-run")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories, redisArguments: ["--aclfile", try Self.aclFile(in: work)])
        let port = suite.redis.port
        func env(_ role: RedisACL.Role) -> [String: String] { ["CORTEX_REDIS_URL": Self.url(port, role)] }
        try await suite.startCatalog(environment: ["CORTEX_CATALOG_ALLOW_ANONYMOUS": "true"].merging(env(.catalogAPI)) { $1 })
        try suite.startCoordinator(environment: env(.coordinator))
        for role in MasterRole.allCases { try suite.startMaster(role, environment: env(.master)) }
        let pools = WorkerPool.allCases.filter { $0 != .implementation }
        #expect(RedisACL.Role.worker(serving: pools) == .worker)
        try suite.startWorker(pools: pools, environment: env(.worker))
        try suite.startWorker(pools: pools, environment: env(.worker))

        let target = try makeRepository()
        let client = RunClient(bus: Self.bus(Self.client(port, .operator)))
        let runID = try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(90)) { _ in }
        // Every process is connected as its role's user: none as `default` but this check's own connection.
        let admin = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
        let listing = try await admin.pipeline([["CLIENT", "ID"], ["CLIENT", "LIST"]])
        // A connection that has sent nothing yet (`cmd=NULL`) is listed as `default` until its AUTH is
        // read: on a loaded machine a process may be opening one right now. It has run no command.
        let own = "\(listing[0].int ?? -1)"
        let connections = (listing[1].string ?? "").split(separator: "\n").map(Self.clientFields)
            .filter { $0["id"] != own && $0["cmd"] != "NULL" }
        let clients = connections.compactMap { $0["user"] }
        admin.close()
        let denials = try await Self.aclLog(port)
        let logs = suite.supervisor.all.map { "\($0.name): \($0.output().split(separator: "\n").filter { $0.contains("NOPERM") }.prefix(3).joined(separator: " | "))" }
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        #expect(!clients.isEmpty && !clients.contains("default"), "\(clients)\n\(connections.filter { $0["user"] == "default" })")
        #expect(Set(clients).isSuperset(of: ["cortex-coordinator", "cortex-master", "cortex-worker", "cortex-catalog-api", "cortex-operator"]), "\(clients)")
        print("connections by user during the run: \(Dictionary(grouping: clients, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key })")
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)
        let parsed = try WireJSON.decode(Summary.self, from: summary)
        #expect(Set(parsed.reports.map(\.master)) == Set(MasterRole.allCases))
        #expect(parsed.reports.allSatisfy { $0.status == .succeeded }, "\(parsed.reports.map { "\($0.master): \($0.summary)" })")
        let items = parsed.reports.flatMap(\.items)
        #expect(!items.isEmpty && items.allSatisfy { $0.status == .succeeded && ["worker-1", "worker-2"].contains($0.worker) }, "\(items)")
        print("run \(runID): \(parsed.status), \(parsed.reports.count) master reports, \(items.count) work items, ACL LOG entries: \(denials.count)")
        // Not one command was refused anywhere (including those whose failure a process tolerates).
        #expect(denials.isEmpty, "\(denials)\n\(logs.joined(separator: "\n"))")
    }

    // MARK: (c2) the implementation pool: model calls metered under its own user

    /// A development run with an implementation task: the agent's model calls (a scripted model) are
    /// reserved and committed on the ledger by a worker connected as `cortex-implementation-worker`, while
    /// the documentation items go to an ordinary `cortex-worker`. No denial anywhere.
    @Test func theImplementationWorkerMetersModelCallsUnderItsOwnUser() async throws {
        let (state, ledger, denials, _) = try await Self.developmentRun()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let used = ledger.first { $0.name == "development:workers" }?.used ?? 0
        #expect(used == 750, "four agent calls and the review, 150 tokens each: \(ledger)")
        #expect(denials.isEmpty, "\(denials)")
        print("development run \(state.runID): \(state.status); development:workers used \(used) tokens; ACL LOG entries: \(denials.count)")
    }

    /// The same run with the implementation worker's user lacking its budget account: the agent's first
    /// model call is refused by the ledger (NOPERM), and the item fails with that reason.
    @Test func anImplementationWorkerWithoutItsBudgetAccountFailsTheItem() async throws {
        var rules = RedisACL.rules(for: .implementationWorker)
        rules.keys.removeAll { $0.pattern == CortexNames.budgetAccountPattern("development:workers") }
        let (state, _, denials, summary) = try await Self.developmentRun(implementationRules: rules)
        #expect(state.status == "partial", "\(state.status): \(state.reason ?? "")")
        let item = try #require(summary.reports.flatMap(\.items).first { $0.pool == .implementation })
        #expect(item.status == .failed && item.error?.contains("NOPERM") == true, "\(item)")
        #expect(denials.contains { $0.hasPrefix("cortex-implementation-worker key cortex:budget:") }, "\(denials)")
        print("implementation item error without its budget account: \(item.error ?? "")")
    }

    struct Summary: Decodable { var status: String; var reports: [MasterReport] }

    /// A development run (one implementation task) with a scripted model: the implementation pool's worker
    /// as `cortex-implementation-worker` (with `implementationRules` when given), the documentation pool's
    /// as `cortex-worker`. Returns the run, its ledger, ACL LOG and summary.json.
    static func developmentRun(implementationRules: RedisACL.Rules? = nil) async throws -> (RunState, [BudgetLedger.Account], [String], Summary) {
        let llm = FakeLLMServer()
        try await llm.start()
        defer { llm.stop() }
        llm.script.withLock { $0 = (0..<4).map { DevelopmentAgentTests.anthropicReply($0) } }
        // The script is the agent's (its calls carry tools); the coordinator's planner call (the default planner
        // with a model) gets prose, is metered under the coordinator's user, and falls back to the rules.
        llm.scriptFor.withLock { $0 = { body in (body["tools"]?.arrayValue?.count ?? 0) > 0 } }
        let work = try temporaryDirectory("cortex-acl-dev")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_BASE_URL": llm.baseURL, "CORTEX_LLM_MODEL": "claude-test",
            "CORTEX_LLM_API_KEY": "sk-test-acl", "CORTEX_LLM_MAX_TOKENS": "256", "PATH": TestRunnerTests.path, "CORTEX_TEST_TIMEOUT": "120",
        ], redisArguments: ["--aclfile", try Self.aclFile(in: work, override: implementationRules.map { (.implementationWorker, $0) })])
        let port = suite.redis.port
        try suite.startCoordinator(environment: ["CORTEX_REDIS_URL": Self.url(port, .coordinator)])
        try suite.startMaster(.development, environment: ["CORTEX_REDIS_URL": Self.url(port, .master)])
        #expect(RedisACL.Role.worker(serving: [.implementation]) == .implementationWorker)
        try suite.startWorker(pools: [.implementation], environment: ["CORTEX_REDIS_URL": Self.url(port, .implementationWorker)])
        try suite.startWorker(pools: [.documentation], environment: ["CORTEX_REDIS_URL": Self.url(port, .worker)])

        let target = try DevelopmentAgentTests.repository()
        let client = RunClient(bus: Self.bus(Self.client(port, .operator)))
        let request = RunRequest(goal: "development", targets: [target.path], requestedBy: "test", implement: ["Fix add() in calc.py: it subtracts"])
        let state = try await client.follow(runID: try await client.submit(request), timeout: .seconds(120)) { _ in }
        let ledger = try await BudgetLedger(redis: Self.client(port, .operator), runID: request.runID).accounts()
        let denials = try await Self.aclLog(port)
        await suite.stop()
        let summary = try WireJSON.decode(Summary.self, from: try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8))
        return (state, ledger, denials, summary)
    }

    // MARK: (d) a missing permission fails the items it hits, with the reason

    /// A worker user without one key family: `taskFiles` is read while the item runs (the target's listing),
    /// `checkpoint` only in the item's commit (DEL of its checkpoint).
    @Test(arguments: [CortexNames.KeyPattern.taskFiles, .checkpoint])
    func aMissingPermissionFailsTheItemAndTheRunWithTheReason(_ withheld: CortexNames.KeyPattern) async throws {
        var rules = RedisACL.rules(for: .worker)
        let before = rules.keys.count
        rules.keys.removeAll { $0.pattern == withheld.pattern }
        #expect(rules.keys.count == before - 1)
        let work = try temporaryDirectory("cortex-acl-noperm")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         redisArguments: ["--aclfile", try Self.aclFile(in: work, override: (.worker, rules))])
        let port = suite.redis.port
        try suite.startCoordinator(environment: ["CORTEX_REDIS_URL": Self.url(port, .coordinator)])
        try suite.startMaster(.inventory, environment: ["CORTEX_REDIS_URL": Self.url(port, .master)])
        let worker = try suite.startWorker(pools: [.catalog], environment: ["CORTEX_REDIS_URL": Self.url(port, .worker)])

        let client = RunClient(bus: Self.bus(Self.client(port, .operator)))
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: [try makeRepository().path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        let denials = try await Self.aclLog(port)
        let workerLog = worker.output()
        await suite.stop()

        // The run ends (no item redone forever) and is not "succeeded": every item of its one task failed, so
        // the run failed, and the report says why.
        #expect(state.status == "failed", "\(state.status): \(state.reason ?? "")")
        #expect(state.reason?.contains("inventory-master") == true, "\(state.reason ?? "")")
        let summary = try String(contentsOfFile: try #require(state.reportDir) + "/summary.json", encoding: .utf8)
        let report = try #require(try WireJSON.decode(Summary.self, from: summary).reports.first)
        #expect(report.status == .failed, "\(report.summary)")
        let errors = report.items.compactMap(\.error)
        #expect(!errors.isEmpty && errors.count == report.items.count, "\(report.items)")
        // The reason names the refused command and key.
        let expected = withheld == .taskFiles ? ["GET cortex:task:", ":files"] : ["Redis refused the commit", "DEL cortex:checkpoint:"]
        for error in errors {
            #expect(error.contains("NOPERM") && expected.allSatisfy { error.contains($0) }, "\(error)")
        }
        #expect(report.summary.contains("NOPERM"), "\(report.summary)")
        #expect(denials.contains { $0.hasPrefix("cortex-worker key cortex:") }, "\(denials)")
        #expect(workerLog.contains("NOPERM"))
        print("item error with \(withheld.rawValue) withheld: \(errors[0])")
    }
}

/// The masters' hand-back script (XADD a copy + XACK in one EVAL), as StreamConsumer runs it.
private func StreamConsumer_handBack(_ redis: RedisClient, stream: String, entry: String) async throws {
    let script = """
        local args = {'XADD', KEYS[1], '*'}
        for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
        redis.call(unpack(args))
        return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        """
    let reply = try await redis.send("EVAL", script, 1, stream, CortexNames.Group.masters, entry, "task", "{}")
    #expect(reply.int == 1, "\(reply)")
}
