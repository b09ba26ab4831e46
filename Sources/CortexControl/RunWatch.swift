import CortexCore
import CortexOrchestration
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `cortexctl watch` shows of one run, kept from the orchestration channels' events (phases,
/// tasks, items, reports) and a once-a-second read of what events do not carry (worker registry,
/// token accounts, the run's state); rendered as a full-screen view that fits 80×24 and grows with
/// the terminal.
public struct RunWatchModel: Sendable {
    public struct MasterState: Sendable {
        var tasks = 0, items = 0, done = 0, failed = 0
        var status = "waiting"
        var summary = ""
    }
    public struct WorkerState: Sendable {
        var node = "?", status = "?", done = 0, failed = 0
    }

    public var runID: String
    public var goal = ""
    public var status = "queued"
    public var reason: String?
    public var phases: [(phase: Int, name: String, at: Date?)] = []
    public var startedAt = Date()
    public var finishedAt: Date?
    public var masters: [MasterRole: MasterState] = [:]
    public var workers: [String: WorkerState] = [:]
    public var itemsDone = 0, itemsFailed = 0, redelivered = 0
    var startedItems = Set<String>()
    public var budget: [BudgetLedger.Account] = []
    public var findings: [String: Int]?
    /// Why the findings could not be counted (the report is not readable from here), shown instead of counts.
    public var findingsUnavailable: String?
    public var events: [String] = []

    public init(runID: String) { self.runID = runID }

    /// Folds one event of this run into the model.
    public mutating func apply(_ e: Envelope) {
        switch e.type {
        case .PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START:
            if let p = try? e.payload(PhaseStart.self), !phases.contains(where: { $0.phase == p.phase }) {
                if phases.isEmpty { startedAt = e.timestamp }
                phases.append((p.phase, p.name, e.timestamp))
                phases.sort { $0.phase < $1.phase }
                status = "running"
            }
        case .TASK_ASSIGNED:
            if let p = try? e.payload(TaskAssigned.self), let m = MasterRole(rawValue: p.master) { masters[m, default: .init()].tasks += 1; masters[m]?.status = "working" }
        case .WORKER_SPAWN:
            if let p = try? e.payload(WorkerSpawn.self), let m = MasterRole(rawValue: p.master) { masters[m, default: .init()].items += p.items }
        case .TASK_STARTED:
            if let p = try? e.payload(TaskStarted.self) {
                // A second start of the same item is a redelivery (its worker died or gave it up).
                if !startedItems.insert(p.itemID).inserted { redelivered += 1 }
                workers[p.worker, default: .init()].node = p.node
                workers[p.worker]?.status = "busy"
            }
        case .TASK_COMPLETE:
            if let p = try? e.payload(TaskComplete.self) {
                itemsDone += 1
                workers[p.worker, default: .init()].done += 1
                workers[p.worker]?.node = p.node
                workers[p.worker]?.status = "idle"
                if let m = Self.master(of: p.taskID) { masters[m, default: .init()].done += 1 }
            }
        case .TASK_BATCH_COMPLETE:
            // Short items committed together: counted as done; the worker may still be busy with others.
            if let p = try? e.payload(TaskBatchComplete.self) {
                itemsDone += p.itemIDs.count
                workers[p.worker, default: .init()].done += p.itemIDs.count
                workers[p.worker]?.node = p.node
                if let m = Self.master(of: p.taskID) { masters[m, default: .init()].done += p.itemIDs.count }
            }
        case .TASK_FAILED:
            if let p = try? e.payload(TaskFailed.self) {
                itemsFailed += 1
                workers[p.worker, default: .init()].failed += 1
                if let m = Self.master(of: p.taskID) { masters[m, default: .init()].failed += 1 }
            }
        case .MASTER_REPORT:
            if let p = try? e.payload(MasterReportPublished.self), let m = MasterRole(rawValue: p.master) {
                masters[m, default: .init()].status = p.status
                masters[m]?.summary = p.summary
            }
        case .RUN_COMPLETE:
            if let p = try? e.payload(RunComplete.self) { status = p.status; reason = p.reason; finishedAt = e.timestamp }
        case .RUN_FAILED:
            if let p = try? e.payload(RunFailed.self) { status = "failed"; reason = p.reason; finishedAt = e.timestamp }
        default: break
        }
        if let line = EventFormatter.progress(e)?.split(separator: "\n").first {
            events.append(Self.clock(e.timestamp) + " " + line.trimmingCharacters(in: .whitespaces))
            if events.count > 50 { events.removeFirst(events.count - 50) }
        }
    }

    /// Phases the run's state says it reached but whose events came before we listened (watch started
    /// after the run): shown as reached, without a duration.
    public mutating func catchUp(phase: Int?) {
        guard let phase else { return }
        for n in 0...min(phase, 5) where !phases.contains(where: { $0.phase == n }) {
            phases.append((n, n < PhaseStart.names.count ? PhaseStart.names[n] : "phase \(n)", nil))
        }
        phases.sort { $0.phase < $1.phase }
    }

    /// A master's report on one task, as far as the view needs it.
    struct ReportDigest: Sendable {
        var master: MasterRole, status: Outcome, succeeded: Int, items: Int, summary: String
    }
    /// Reports caught up from Redis or the report directory, by task id.
    var reported: [String: ReportDigest] = [:]

    /// What the run's hashes say of each master, for the tasks, items and reports whose events came
    /// before we listened; counts never go below what the events showed. `tasks`: the run's task ids;
    /// `results`: how many items of each task not yet reported have a result (succeeded or failed: only
    /// counted as items, not as done); `reports`: reports not seen before (kept: exact done and failed counts).
    public mutating func catchUp(tasks: [String], results: [String: Int], reports: [MasterReport]) {
        for r in reports {
            reported[r.taskID] = ReportDigest(master: r.master, status: r.status, succeeded: r.items.filter { $0.status == .succeeded }.count,
                                              items: r.items.count, summary: r.summary)
        }
        var assigned: [MasterRole: Int] = [:]
        for id in Set(tasks).union(reported.keys) { if let m = Self.master(of: id) ?? reported[id]?.master { assigned[m, default: 0] += 1 } }
        for (m, n) in assigned {
            masters[m, default: .init()].tasks = max(masters[m]?.tasks ?? 0, n)
            if masters[m]?.status == "waiting" { masters[m]?.status = "working" }
        }
        var finished: [MasterRole: Int] = [:], done: [MasterRole: Int] = [:], failed: [MasterRole: Int] = [:]
        for (id, n) in results where reported[id] == nil { if let m = Self.master(of: id) { finished[m, default: 0] += n } }
        var statuses: [MasterRole: [Outcome]] = [:], summaries: [MasterRole: [String]] = [:]
        for (_, r) in reported.sorted(by: { $0.key < $1.key }) {
            done[r.master, default: 0] += r.succeeded
            failed[r.master, default: 0] += r.items - r.succeeded
            finished[r.master, default: 0] += r.items
            statuses[r.master, default: []].append(r.status)
            summaries[r.master, default: []].append(r.summary)
        }
        for (m, n) in finished {
            var state = masters[m, default: .init()]
            state.done = max(state.done, done[m] ?? 0)
            state.failed = max(state.failed, failed[m] ?? 0)
            state.items = max(state.items, n, state.done + state.failed)
            masters[m] = state
        }
        // A master's status once all its tasks reported: their outcomes rolled up (a failed task is not hidden by another's success).
        for (m, list) in statuses where list.count >= (assigned[m] ?? 0) {
            masters[m, default: .init()].status = Outcome.rollUp(list).rawValue
            masters[m]?.summary = summaries[m, default: []].joined(separator: "; ")
        }
    }

    /// `run-x.security.0` → security.
    static func master(of taskID: String) -> MasterRole? {
        let parts = taskID.split(separator: ".")
        return parts.count >= 3 ? MasterRole(rawValue: String(parts[parts.count - 2])) : nil
    }

    static func clock(_ d: Date) -> String {
        let s = Int(d.timeIntervalSince1970) % 86_400
        return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }

    // MARK: - Rendering

    /// The screen as lines of at most `width` columns, at most `height` of them.
    public func render(width: Int, height: Int, now: Date = Date()) -> [String] {
        let w = max(40, width)
        var out: [String] = []
        let elapsed = (finishedAt ?? now).timeIntervalSince(startedAt)
        out.append(Self.fit("Cortex \(runID)  \(status.uppercased())  \(String(format: "%.1f s", phases.isEmpty ? 0 : elapsed))  goal: \(goal)", w))
        // Phases: done ones with their duration, the current one marked, the rest as dots.
        var line = "Phases "
        for n in 0...5 {
            if let i = phases.firstIndex(where: { $0.phase == n }) {
                let end = i + 1 < phases.count ? phases[i + 1].at : (finishedAt ?? now)
                let current = i == phases.count - 1 && finishedAt == nil
                let took = phases[i].at.flatMap { start in end.map { String(format: " %.1fs", $0.timeIntervalSince(start)) } } ?? ""
                // The current phase (or, at the end, the last) with its name; the others by number, to fit 80 columns.
                let named = current || (finishedAt != nil && i == phases.count - 1) || w >= 140
                line += "\(current ? ">" : "+")\(n)\(named ? " " + phases[i].name : "")\(took)  "
            } else {
                line += ".\(n)  "
            }
        }
        out.append(Self.fit(line, w))
        out.append(Self.fit("MASTER       STATUS      TASKS  ITEMS done/all  FAILED  " + (w >= 100 ? "REPORT" : ""), w))
        for m in MasterRole.allCases {
            let s = masters[m] ?? .init()
            let bar = Self.bar(Double(s.done + s.failed), of: Double(max(1, s.items)), width: 10)
            out.append(Self.fit("\(m.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(s.status.padding(toLength: 10, withPad: " ", startingAt: 0))  \(String(format: "%5d", s.tasks))  \(bar) \(String(format: "%3d/%-3d", s.done, s.items))  \(String(format: "%5d", s.failed))   \(s.summary)", w))
        }
        // Workers by node: one row per node, a cell per worker shaded by the items it finished.
        let nodes = Dictionary(grouping: workers, by: { $0.value.node })
        let most = max(1, workers.values.map(\.done).max() ?? 1)
        out.append(Self.fit("WORKERS BY NODE  items done \(itemsDone)  failed \(itemsFailed)  redelivered \(redelivered)", w))
        for (node, list) in nodes.sorted(by: { $0.key < $1.key }) {
            let cells = list.sorted { $0.key < $1.key }.map { name, s in "\(Self.shade(s.done, of: most))\(s.done)\(s.failed > 0 ? "!\(s.failed)" : "") \(name)" }
            out.append(Self.fit("  \(node.padding(toLength: 14, withPad: " ", startingAt: 0)) " + cells.joined(separator: "  "), w))
        }
        if workers.isEmpty { out.append("  (no item started yet)") }
        // Tokens: the accounts that moved, then the run's and the reserve.
        let accounts = budget.filter { $0.used > 0 || $0.reserved > 0 || $0.name == "run" || $0.name == "reserve" }
        out.append(Self.fit("TOKENS" + (budget.isEmpty ? "  (no budget accounts yet)" : "  \(budget.count) accounts, \(accounts.count) shown"), w))
        for a in accounts.prefix(max(2, height - out.count - 6)) {
            let barWidth = max(10, min(40, w - 50))
            out.append(Self.fit("  \(a.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(Self.bar(Double(a.used), of: Double(max(1, a.limit)), width: barWidth, reserved: Double(a.reserved))) \(a.used)/\(a.limit)\(a.reserved > 0 ? " +\(a.reserved) reserved" : "")", w))
        }
        if let findings {
            out.append(Self.fit("FINDINGS  " + ["critical", "high", "medium", "low"].map { "\($0) \(findings[$0] ?? 0)" }.joined(separator: "  "), w))
        } else if let findingsUnavailable {
            out.append(Self.fit("FINDINGS  not counted: \(findingsUnavailable)", w))
        } else {
            out.append(Self.fit("FINDINGS  (counted from the masters' reports when the run ends)", w))
        }
        if let reason { out.append(Self.fit("reason: \(reason)", w)) }
        out.append(Self.fit("LAST EVENTS", w))
        let room = max(1, height - out.count)
        out += events.suffix(room).map { Self.fit("  " + $0, w) }
        return Array(out.prefix(height))
    }

    static func fit(_ s: String, _ width: Int) -> String { s.count <= width ? s : String(s.prefix(width - 1)) + "…" }

    static func bar(_ value: Double, of total: Double, width: Int, reserved: Double = 0) -> String {
        let filled = min(width, Int((value / total * Double(width)).rounded()))
        let held = min(width - filled, Int((reserved / total * Double(width)).rounded()))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "+", count: held) + String(repeating: ".", count: width - filled - held) + "]"
    }

    static func shade(_ n: Int, of most: Int) -> String {
        let levels = ["░", "▒", "▓", "█"]
        return n == 0 ? " " : levels[min(3, (n * 4 - 1) / most)]
    }
}

/// The terminal side of `cortexctl watch`: the alternate screen while it runs, redrawn at most every
/// 250 ms, restored on exit and on Ctrl-C; plain progress lines when stdout is not a terminal.
public final class RunWatchScreen: Sendable {
    let model: Locked<RunWatchModel>
    let dirty = Locked(true)
    public let interactive: Bool

    public init(runID: String, interactive: Bool = isatty(STDOUT_FILENO) == 1) {
        model = Locked(RunWatchModel(runID: runID))
        self.interactive = interactive
    }

    public func update(_ change: (inout RunWatchModel) -> Void) {
        model.withLock { change(&$0) }
        dirty.withLock { $0 = true }
    }

    /// The task ids whose reports the model has caught up.
    func reportedTasks() -> Set<String> { model.withLock { Set($0.reported.keys) } }

    /// An event of the run: into the model, or, without a terminal, one plain progress line.
    public func handle(_ e: Envelope) {
        update { $0.apply(e) }
        if !interactive, let line = EventFormatter.progress(e) { print(line); fflush(nil) }
    }

    public func enter() {
        guard interactive else { return }
        // Alternate screen, cursor hidden; Ctrl-C restores both before leaving.
        write("\u{1B}[?1049h\u{1B}[?25l")
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            RunWatchScreen.restore()
            FileHandle.standardError.write(Data("cortexctl: watch interrupted (the run goes on; `cortexctl status` shows it)\n".utf8))
            exit(130)
        }
        source.resume()
        Self.interruptSource = source
    }

    /// The Ctrl-C handler's source, kept alive while the screen is up (one screen per process).
    nonisolated(unsafe) static var interruptSource: DispatchSourceSignal?

    /// Redraws when something changed (or always, for elapsed times).
    public func draw(force: Bool = false) {
        guard interactive else { return }
        let changed = dirty.withLock { d -> Bool in let was = d; d = false; return was }
        guard changed || force else { return }
        let (width, height) = Self.size()
        let lines = model.withLock { $0.render(width: width, height: height) }
        write("\u{1B}[H" + lines.map { $0 + "\u{1B}[K" }.joined(separator: "\r\n") + "\u{1B}[J")
    }

    /// Leaves the alternate screen and prints the last frame as plain text (what the run came to).
    public func finish() {
        let lines = model.withLock { $0.render(width: Self.size().width, height: 200) }
        if interactive {
            Self.restore()
            Self.interruptSource?.cancel()
            Self.interruptSource = nil
        }
        print(lines.joined(separator: "\n"))
    }

    static func restore() { FileHandle.standardOutput.write(Data("\u{1B}[?25h\u{1B}[?1049l".utf8)) }

    func write(_ s: String) { FileHandle.standardOutput.write(Data(s.utf8)) }

    static func size() -> (width: Int, height: Int) {
        var ws = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0, ws.ws_row > 0 { return (Int(ws.ws_col), Int(ws.ws_row)) }
        return (80, 24)
    }
}

extension ControlCommands {
    /// `cortexctl watch [RUN]`: follows a run (the latest by default) in the full-screen view until it
    /// ends; returns its final state. Phases it started too late to see are caught up from the run's state.
    public static func watch(bus: MessageBus, runID requested: String?, timeout: Duration) async throws -> RunState {
        let redis = bus.redis
        guard await redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(redis.endpoint)") }
        if let id = requested {
            guard try await RunState.load(id, redis: redis) != nil else { throw CortexError(.notFound, "no run \(id)") }
            return try await follow(bus: bus, runID: id, screen: RunWatchScreen(runID: id), timeout: timeout, subscription: nil)
        }
        // The latest run: live while it goes on, its final frame once it has ended.
        guard let latest = try await redis.zrevrange(CortexNames.runIndex, start: 0, stop: 0).first else {
            throw CortexError(.notFound, "no run yet: start one (cortexctl run, cortexctl up) or name one")
        }
        return try await follow(bus: bus, runID: latest, screen: RunWatchScreen(runID: latest), timeout: timeout, subscription: nil)
    }

    /// Follows `runID` on `screen` (also what `cortexctl up --watch` uses).
    static func follow(bus: MessageBus, runID: String, screen: RunWatchScreen, timeout: Duration,
                       subscription: (RedisSubscriber, EnvelopeStream)?) async throws -> RunState {
        let redis = bus.redis
        screen.enter()
        // What events do not carry, read once a second: the run's state and goal, the workers' nodes, the token accounts.
        let refresher = Task {
            var tick = 0
            while !Task.isCancelled {
                if tick % 4 == 0 {
                    let state = try? await RunState.load(runID, redis: redis)
                    let accounts = (try? await BudgetLedger(redis: redis, runID: runID).accounts()) ?? []
                    let workers = (try? await redis.smembers(CortexNames.workerSet)) ?? []
                    // One round trip for every worker's registry hash.
                    let replies = workers.isEmpty ? [] : ((try? await redis.pipeline(workers.map { .hgetall(CortexNames.workerRegistry($0)) })) ?? [])
                    var registry: [String: [String: String]] = [:]
                    for (w, reply) in zip(workers, replies) { registry[w] = reply.fieldMap }
                    // The tasks, items and reports whose events came before watch listened.
                    // Only reports not read before are fetched: a report carries its findings and can be large.
                    let tasks = (try? await redis.hkeys(CortexNames.runTasks(runID))) ?? []
                    let reportedIDs = Set((try? await redis.hkeys(CortexNames.runResults(runID))) ?? [])
                    let known = screen.reportedTasks()
                    let fresh = Array(reportedIDs.subtracting(known))
                    let texts = fresh.isEmpty ? [] : ((try? await redis.send(["HMGET", CortexNames.runResults(runID)] + fresh.map { $0 as any RedisArgument }).orThrow().array) ?? [])
                    let reports = texts.compactMap { $0.string.flatMap { try? WireJSON.decode(MasterReport.self, from: $0) } }
                    let open = tasks.filter { !reportedIDs.contains($0) }
                    let counts = open.isEmpty ? [] : ((try? await redis.pipeline(open.map { ["HLEN", CortexNames.taskResults($0)] })) ?? [])
                    var results: [String: Int] = [:]
                    for (id, reply) in zip(open, counts) { results[id] = reply.int ?? 0 }
                    screen.update { m in
                        if let state {
                            m.goal = state.goal
                            if m.finishedAt == nil, !state.isFinished { m.status = state.status }
                            if m.phases.isEmpty, let started = state.startedAt { m.startedAt = started }
                            m.catchUp(phase: state.phase)
                        }
                        if !tasks.isEmpty || !reports.isEmpty {
                            m.catchUp(tasks: tasks, results: results, reports: reports)
                        }
                        m.budget = accounts
                        for (w, f) in registry where f["status"] != nil {
                            if m.workers[w] == nil { m.workers[w] = .init() }
                            if let node = f["node"] { m.workers[w]?.node = node }
                            m.workers[w]?.status = f["status"] ?? "?"
                        }
                    }
                }
                screen.draw(force: tick % 4 == 0)
                tick += 1
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let state: RunState
        do {
            state = try await RunClient(bus: bus).follow(runID: runID, subscribedBeforeSubmit: subscription, timeout: timeout) { e in screen.handle(e) }
        } catch {
            refresher.cancel()
            screen.finish()
            throw error
        }
        refresher.cancel()
        let accounts = (try? await BudgetLedger(redis: redis, runID: runID).accounts()) ?? []
        var findings: [JSONValue]?, findingsUnavailable: String?
        if let dir = state.reportDir {
            do { findings = try RunFindings.load(reportDirectory: URL(fileURLWithPath: dir)) } catch {
                findingsUnavailable = (error as? CortexError)?.message ?? "\(error)"
            }
        }
        // The masters' final reports (the run's hashes are archived and deleted when it ends).
        let reports = state.reportDir.flatMap { try? ReportWriter.reports(inReportDirectory: $0) } ?? []
        screen.update { m in
            if !reports.isEmpty { m.catchUp(tasks: reports.map(\.taskID), results: [:], reports: reports) }
            m.status = state.status
            m.reason = state.reason
            m.budget = accounts
            if let findings {
                m.findings = Dictionary(grouping: findings.filter { $0["persona"] == nil }, by: { $0["severity"]?.stringValue ?? "unknown" }).mapValues(\.count)
            }
            m.findingsUnavailable = findingsUnavailable
        }
        screen.finish()
        return state
    }
}
