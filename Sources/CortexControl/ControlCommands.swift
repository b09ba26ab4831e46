import CortexCore
import CortexOrchestration
import Foundation
import Logging

/// The logic behind `cortexctl`'s subcommands; the executable only parses arguments.
public enum ControlCommands {
    /// A bus for the CLI itself (source `cortexctl`), with logs on stderr-free JSON off.
    /// `passwordFile` (CORTEX_REDIS_PASSWORD_FILE, as the daemons read it) replaces the URL's password, so
    /// `cortexctl` in a pod, or an operator with the `cortex-operator` user, authenticates like the daemons.
    public static func bus(redisURL: String, sentinels: String? = nil, masterName: String = "cortex", passwordFile: String? = nil) throws -> MessageBus {
        var endpoint: RedisEndpoint
        do {
            endpoint = try RedisEndpoint(url: redisURL)
            if let passwordFile, !passwordFile.isEmpty {
                do {
                    endpoint.password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
                } catch { throw ConfigurationError("cannot read the Redis password file \(passwordFile): \(error)") }
            }
            if let sentinels, !sentinels.isEmpty { try endpoint.useSentinels(sentinels, masterName: masterName) }
        } catch { throw ConfigurationError("\(error)") }
        var logger = Logger(label: "cortexctl")
        logger.logLevel = .error
        return MessageBus(redis: RedisClient(endpoint: endpoint, configuration: .init(initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(500))),
                          source: "cortexctl", metrics: CortexMetrics(), decoder: EnvelopeDecoder(maxBytes: 64 * 1024 * 1024), logger: logger)
    }

    /// Resolves target paths to absolute ones and checks they exist.
    public static func resolveTargets(_ targets: [String]) throws -> [String] {
        let list = targets.isEmpty ? [FileManager.default.currentDirectoryPath] : targets
        return try list.map { t in
            if RepositoryCheckout.isRemote(t) { return t }  // cloned by the workers
            let url = URL(fileURLWithPath: t, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
                throw CortexError(.invalidInput, "target \(t) is not a directory")
            }
            return url.path
        }
    }

    /// What `cortexctl run` and `cortexctl up` exit with, so scripts can tell (docs/outcomes.md).
    public enum ExitStatus: Int32, CaseIterable, Sendable {
        /// The run succeeded: every task done and everything checked.
        case succeeded = 0
        /// The run failed (RUN_FAILED): refused, stopped in pre-flight, activation or distribution, or every report failed.
        case failed = 1
        /// cortexctl could not do its job: Redis unreachable, a bad target, no answer within --timeout, a daemon died.
        case error = 2
        /// The run ended partial: something was skipped, denied, failed or not checked (the reason says what).
        case partial = 3
        /// A bad flag or argument (ArgumentParser's usage error).
        case usage = 64

        /// The status for a run that ended.
        public init(_ state: RunState) {
            switch state.outcome {
            case .succeeded?: self = .succeeded
            case .failed?: self = .failed
            case .partial?, .skipped?, .denied?: self = .partial
            case nil: self = .error
            }
        }
    }

    /// The last line `cortexctl run/up` prints for a run that did not succeed: `partial: <reason>`.
    public static func verdict(_ state: RunState) -> String? {
        guard state.outcome != .succeeded else { return nil }
        return "\(state.status): \(state.reason ?? "no reason recorded")"
    }

    /// Submits a run, prints progress until it ends, prints the executive summary; returns the final state.
    /// `watch`: follow it in the full-screen view (`cortexctl watch`) instead of progress lines.
    public static func runAndFollow(bus: MessageBus, goal: String, targets: [String], timeout: Duration, verbose: Bool = false,
                                    allowTestExecution: Bool = false, implement: [String] = [], watch: Bool = false) async throws -> RunState {
        let client = RunClient(bus: bus)
        guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
        let subscription = bus.subscribe(CortexNames.Channel.orchestration)
        _ = await subscription.subscriber.waitUntilSubscribed()
        let request = RunRequest(goal: goal, targets: targets, requestedBy: "cortexctl@\(ProcessIdentity.hostname)",
                                 allowTestExecution: allowTestExecution ? targets : nil, implement: implement.isEmpty ? nil : implement)
        do {
            try await client.submit(request)
        } catch {
            subscription.subscriber.stop()
            throw error
        }
        print("submitted \(request.runID): goal '\(goal)' on \(targets.joined(separator: ", "))")
        let state: RunState
        if watch {
            state = try await follow(bus: bus, runID: request.runID, screen: RunWatchScreen(runID: request.runID), timeout: timeout, subscription: subscription)
        } else {
            state = try await client.follow(runID: request.runID, subscribedBeforeSubmit: subscription, timeout: timeout) { e in
                if verbose { print(EventFormatter.line(e)) } else if let line = EventFormatter.progress(e) { print(line) }
                fflush(nil)  // progress must show as it happens, also when piped
            }
        }
        print("")
        if let dir = state.reportDir, let summary = try? String(contentsOfFile: dir + "/" + ReportWriter.summaryMarkdown, encoding: .utf8) {
            // The executive summary is the fenced block at the top of summary.md.
            let parts = summary.components(separatedBy: "```\n")
            print(parts.count > 1 ? parts[1] : summary, terminator: "")
            print("Report: \(dir)/\(ReportWriter.summaryMarkdown)")
        } else {
            print("Run \(state.runID): \(state.status)\(state.reason.map { " — \($0)" } ?? "")")
        }
        return state
    }

    /// `cortexctl status`: masters, workers, recent runs (or one run).
    /// Spawn mode: each master's worker Jobs with their memory limits and how they ended (none: no section).
    static func workerJobsStatus(redis: RedisClient) async throws -> String {
        var rows: [(MasterRole, WorkerJobRecord)] = []
        for role in MasterRole.allCases {
            for text in try await redis.hgetall(CortexNames.workerJobs(role)).values {
                if let r = try? WireJSON.decode(WorkerJobRecord.self, from: text) { rows.append((role, r)) }
            }
        }
        guard !rows.isEmpty else { return "" }
        var out = "\nWORKER JOB                           MASTER       POOL           MEMORY   NODE             STATE              RESPAWN OF\n"
        for (role, r) in rows.sorted(by: { ($0.0.rawValue, $0.1.createdMs) < ($1.0.rawValue, $1.1.createdMs) }) {
            out += "\(r.job.padding(toLength: 36, withPad: " ", startingAt: 0)) \(role.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(r.pool.padding(toLength: 14, withPad: " ", startingAt: 0)) "
                + "\("\(r.memoryMiB)Mi".padding(toLength: 8, withPad: " ", startingAt: 0)) \((r.node ?? "-").padding(toLength: 16, withPad: " ", startingAt: 0)) "
                + "\(r.state.padding(toLength: 18, withPad: " ", startingAt: 0)) \(r.respawnOf ?? "-")\n"
        }
        return out
    }

    public static func status(bus: MessageBus, runID: String?) async throws -> String {
        let redis = bus.redis
        if let runID {
            guard let s = try await RunState.load(runID, redis: redis) else { throw CortexError(.notFound, "no run \(runID)") }
            return "run \(s.runID): \(s.status), phase \(s.phase.map(String.init) ?? "-")\n  goal: \(s.goal)\n  targets: \(s.targets.joined(separator: ", "))\n" +
                (s.reason.map { "  reason: \($0)\n" } ?? "") + (s.reportDir.map { "  report: \($0)\n" } ?? "") + (try await planStatus(runID, redis: redis))
        }
        let now = epochMilliseconds()
        var out = "MASTER               STATUS   INSTANCE                     TASKS  WORKERS  LAST HEARTBEAT\n"
        for role in MasterRole.allCases {
            let f = try await redis.hgetall(CortexNames.masterRegistry(role))
            let age = f["last_heartbeat"].flatMap(Int.init).map { "\((now - $0) / 1000)s ago" } ?? "never"
            out += "\(role.processName.padding(toLength: 20, withPad: " ", startingAt: 0)) \((f["status"] ?? "absent").padding(toLength: 8, withPad: " ", startingAt: 0)) \((f["instance"] ?? "-").padding(toLength: 28, withPad: " ", startingAt: 0)) \((f["tasks_active"] ?? "0").padding(toLength: 6, withPad: " ", startingAt: 0)) \((f["workers_spawned"] ?? "0").padding(toLength: 8, withPad: " ", startingAt: 0)) \(age)\n"
        }
        out += "\nWORKER               NODE             STATUS   POOLS                          ITEMS  ALIVE\n"
        let workers = try await redis.smembers(CortexNames.workerSet).sorted()
        for w in workers {
            let replies = try await redis.pipeline([.hgetall(CortexNames.workerRegistry(w)), .exists(CortexNames.workerHeartbeat(w))])
            let f = replies[0].fieldMap
            out += "\(w.padding(toLength: 20, withPad: " ", startingAt: 0)) \((f["node"] ?? "-").padding(toLength: 16, withPad: " ", startingAt: 0)) \((f["status"] ?? "-").padding(toLength: 8, withPad: " ", startingAt: 0)) \((f["pools"] ?? "-").padding(toLength: 30, withPad: " ", startingAt: 0)) \((f["items_done"] ?? "0").padding(toLength: 6, withPad: " ", startingAt: 0)) \(replies[1].int == 1 ? "yes" : "no")\n"
        }
        out += try await workerJobsStatus(redis: redis)
        out += "\nRECENT RUNS\n"
        let runs = try await redis.zrevrange(CortexNames.runIndex, start: 0, stop: 9)
        for id in runs {
            if let s = try await RunState.load(id, redis: redis) {
                out += "  \(id)  \(s.status.padding(toLength: 9, withPad: " ", startingAt: 0)) \(s.goal)\(s.reason.map { " — \($0)" } ?? "")\n"
            }
        }
        if runs.isEmpty { out += "  (none)\n" }
        return out
    }

    /// `cortexctl budget`: a run's token accounts as a table (the latest run when none is named).
    public static func budget(bus: MessageBus, runID: String?) async throws -> String {
        let redis = bus.redis
        var latest: String?
        if runID == nil { latest = try await redis.zrevrange(CortexNames.runIndex, start: 0, stop: 0).first }
        guard let run = runID ?? latest else { throw CortexError(.notFound, "no run yet") }
        let accounts = try await BudgetLedger(redis: redis, runID: run).accounts()
        guard !accounts.isEmpty else { throw CortexError(.notFound, "run \(run) has no budget accounts (it ended before phase 2, or does not exist)") }
        let state = try await RunState.load(run, redis: redis)
        var out = "run \(run) (\(state?.status ?? "unknown"))\n"
        out += "ACCOUNT                  LIMIT   RESERVED       USED  AVAILABLE   USED %\n"
        for a in accounts {
            let pct = a.limit == 0 ? "-" : String(format: "%.0f %%", 100 * Double(a.used) / Double(a.limit))
            out += a.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: " %10d %10d %10d %10d %8@\n", a.limit, a.reserved, a.used, a.available, pct)
        }
        return out
    }

    /// Validates and publishes a message given as channel, type and data JSON; returns the envelope sent.
    public static func publish(bus: MessageBus, channel: String, type: String, data: String, runID: String?) async throws -> Envelope {
        guard let ch = CortexNames.Channel(name: channel) else {
            throw CortexError(.invalidInput, "unknown channel '\(channel)'; use one of \(CortexNames.Channel.allCases.map { "\($0.rawValue) (\($0.shortName))" }.joined(separator: ", "))")
        }
        guard let t = MessageType(rawValue: type) else {
            throw CortexError(.invalidInput, "unknown message type '\(type)'; see docs/protocol.md for the list")
        }
        let parsed: JSONValue
        do { parsed = try JSONDecoder().decode(JSONValue.self, from: Data(data.utf8)) } catch {
            throw CortexError(.invalidInput, "--data is not valid JSON: \(data)")
        }
        let envelope = Envelope(type: t, source: "cortexctl", runID: runID, data: parsed)
        if case .failure(let rejection) = bus.decoder.decode(envelope.encoded(), channel: ch) {
            throw CortexError(.refused, "not sent: \(rejection)")
        }
        try await bus.publish(envelope)
        return envelope
    }
}

extension ControlCommands {
    /// A run's plan for `cortexctl status <run>`: who planned it, then one line per subtask with its
    /// dependencies, expert and state (its outcome once the run ended; queued, reported or waiting while it runs).
    static func planStatus(_ runID: String, redis: RedisClient) async throws -> String {
        let replies = try await redis.pipeline([.get(CortexNames.runPlan(runID)), .hgetall(CortexNames.runTasks(runID)), .hgetall(CortexNames.runResults(runID))])
        for reply in replies { _ = try reply.orThrow() }
        guard let text = replies[0].string else { return "  plan: (none stored: the run ended before planning, or its retention passed)\n" }
        let plan = try WireJSON.decode(Plan.self, from: text)
        let queued = Set(replies[1].fieldMap.keys)
        let reported = replies[2].fieldMap.compactMapValues { try? WireJSON.decode(MasterReport.self, from: $0) }
        var out = "  plan: \(plan.subtasks.count) subtasks by the \(plan.planner) (\(plan.rule))\(plan.revision > 1 ? ", revision \(plan.revision)" : "")\n"
        for note in plan.notes { out += "    note: \(note)\n" }
        for s in plan.subtasks {
            let id = s.taskID(in: runID)
            let state = s.outcome.map { o in s.notRun.map { "not run: \($0)" } ?? o }
                ?? s.notRun.map { "not run: \($0)" }
                ?? reported[id].map { $0.status.rawValue }
                ?? (queued.contains(id) ? "queued" : "waiting for \(s.dependsOn.joined(separator: ", "))")
            out += "    \(s.id.padding(toLength: 22, withPad: " ", startingAt: 0)) \(s.kind.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) "
                + "\(s.master.processName.padding(toLength: 19, withPad: " ", startingAt: 0)) \(RepositoryCheckout.name(of: s.target).padding(toLength: 16, withPad: " ", startingAt: 0)) "
                + (s.dependsOn.isEmpty ? "" : "after \(s.dependsOn.joined(separator: ",")) ") + (s.decision.map { "via \($0.chosen) " } ?? "") + "— \(state)\n"
        }
        return out
    }

    /// `cortexctl routing`: what the router learned, one row per (kind, dimension, feature, expert).
    public static func routing(bus: MessageBus) async throws -> String {
        ExpertRouter.table(try await bus.redis.hgetall(CortexNames.routingWeights))
    }
}

extension ControlCommands {
    /// The field `cortexctl memory forget` leaves in a master's learnings hash: with it the hash is never
    /// empty, so the coordinator does not bring the forgotten learnings back from their file.
    public static let forgottenMarker = "_forgotten_at"

    /// What the masters learned (`cortexctl memory show`), filtered by master and target (repository name).
    public static func memoryShow(bus: MessageBus, master: String?, target: String?) async throws -> String {
        let rows = try await learnings(bus: bus, master: master, target: target)
        var out = ""
        if rows.isEmpty { out += "No learnings\(master.map { " of \($0)" } ?? "")\(target.map { " on \($0)" } ?? "").\n" }
        for (m, l) in rows {
            out += "\(m.padding(toLength: 12, withPad: " ", startingAt: 0)) \(l.outcome.padding(toLength: 19, withPad: " ", startingAt: 0)) \(l.key)\n"
            out += "             on \(l.target) in \(l.runID) at \(Timestamp.format(l.learnedAt)): \(l.detail)\n"
        }
        let cached = try await fileCaches(bus: bus, master: master, target: target)
        if !cached.isEmpty {
            out += "\nFile cache (per-file results reused by the next run for unchanged files):\n"
            for c in cached {
                out += "  \(c.skill.padding(toLength: 24, withPad: " ", startingAt: 0)) \(rightAligned(c.files, 7)) files \(rightAligned(c.bytes / 1024, 8)) KiB  "
                    + "last used \(c.lastUsed.map(Timestamp.format) ?? "?")  \(c.target)\n"
            }
        }
        return out
    }

    static func rightAligned(_ n: Int, _ width: Int) -> String {
        let text = String(n)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }

    /// The file cache's result sets, filtered like the learnings: by the master whose skill made them and
    /// by target (its path or URL, or the repository's name).
    static func fileCaches(bus: MessageBus, master: String?, target: String?) async throws -> [FileResultCache.Summary] {
        let skills = master.flatMap(MasterRole.init(rawValue:)).map { [SkillName.builtIn(for: $0).rawValue] }
        return try await FileResultCache.summaries(redis: bus.redis).filter { c in
            let skill = c.skill.split(separator: "@").first.map(String.init) ?? c.skill
            if let skills, !skills.contains(skill) { return false }
            if let target, c.target != target && RepositoryCheckout.name(of: c.target) != target { return false }
            return true
        }
    }

    /// Forgets what the masters learned (`cortexctl memory forget`), filtered like `memoryShow`; returns a line saying how many.
    public static func memoryForget(bus: MessageBus, master: String?, target: String?) async throws -> String {
        let rows = try await learnings(bus: bus, master: master, target: target)
        for (m, group) in Dictionary(grouping: rows, by: { $0.0 }) {
            try await bus.redis.run([.hset(CortexNames.learnings(m), forgottenMarker, Timestamp.format(Date())),
                                     .hdel(CortexNames.learnings(m), group.map { $0.1.key })])
        }
        let cached = try await fileCaches(bus: bus, master: master, target: target)
        try await FileResultCache.forget(redis: bus.redis, keys: cached.map(\.key))
        let files = cached.reduce(0) { $0 + $1.files }
        return "forgot \(rows.count) learning\(rows.count == 1 ? "" : "s") (the coordinator rewrites learnings.json at its next change)"
            + " and \(cached.count) cached result set\(cached.count == 1 ? "" : "s") (\(files) files: the next run examines them again)\n"
    }

    static func learnings(bus: MessageBus, master: String?, target: String?) async throws -> [(String, Learning)] {
        let masters: [String]
        if let master {
            guard MasterRole(rawValue: master) != nil else {
                throw CortexError(.invalidInput, "unknown master '\(master)': use one of \(MasterRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            masters = [master]
        } else {
            masters = MasterRole.allCases.map(\.rawValue)
        }
        var rows: [(String, Learning)] = []
        for m in masters {
            for (key, text) in try await bus.redis.hgetall(CortexNames.learnings(m)).sorted(by: { $0.key < $1.key }) where key != forgottenMarker {
                guard let l = try? WireJSON.decode(Learning.self, from: text) else {
                    throw CortexError(.invalidInput, "\(CortexNames.learnings(m)) field \(key) is not a learning: \(text.prefix(120))")
                }
                if let target, l.target != target && l.target != RepositoryCheckout.name(of: target) { continue }
                rows.append((m, l))
            }
        }
        return rows
    }
}
