import CortexCore
import CortexKubernetes
import CortexTestRunner
import Foundation
import Logging

/// A run's plan at work: made (or loaded, for a resumed run), stored and published; each subtask queued
/// once everything it depends on has succeeded, with their outputs as its inputs and its expert chosen by
/// the router; a subtask whose dependency did not succeed, or whose master is not running, is not run
/// and says why; handoffs add subtasks; every routed report teaches the router.
extension RunExecution {
    /// The plan of this run: the one stored with it when the run resumes, else a new one (the model's when
    /// configured and valid, else the rules'), stored and published. Fails when no rule matches the goal, or
    /// when a stored plan cannot be read (planning again could queue the same work under other ids).
    func makePlan(_ progress: Progress) async -> Result<Plan, CortexError> {
        var stored: RedisReply = .null
        do {
            try await retryingRedis(log) { stored = try await context.redis.send(.get(CortexNames.runPlan(runID))).orThrow() }
        } catch {
            return .failure(CortexError(.unreachable, "the run's stored plan could not be read: \(error)"))
        }
        if let text = stored.string {
            do {
                let plan = try WireJSON.decode(Plan.self, from: text)
                log.info("resuming with the stored plan (revision \(plan.revision), \(plan.subtasks.count) subtasks)")
                return .success(plan)
            } catch {
                return .failure(CortexError(.invalidInput, "the run's stored plan (\(CortexNames.runPlan(runID))) is unreadable: \(error)"))
            }
        }
        guard var plan = RulePlanner.plan(request, cluster: progress.cluster) else { return .failure(CortexError(.invalidInput, RunRequest.unknownGoal(request.goal))) }
        if let planner = service.modelPlanner {
            plan = await planner.plan(request, rules: plan, cluster: progress.cluster, log: log)
        }
        progress.plan = plan
        await storePlan(progress, publish: true)
        return .success(plan)
    }

    /// The plan into Redis (`cortex:run:<id>:plan`, with the run's retention) and, when it changed shape
    /// (made, or extended by a handoff), announced with RUN_PLAN. Best effort while Redis is away: the plan
    /// lives in the run's memory too and is written again on the next change.
    func storePlan(_ progress: Progress, publish: Bool) async {
        let plan = progress.plan
        do {
            try await context.redis.run([.set(CortexNames.runPlan(runID), try WireJSON.encode(plan), ex: context.retentionSeconds)])
        } catch {
            log.warning("could not store the run's plan (written again on its next change): \(error)")
        }
        guard publish else { return }
        var lines: [String] = []
        var bytes = 0
        for s in plan.subtasks {
            let line = "\(s.id) \(s.kind.rawValue) \(s.master.rawValue) \(s.target)" + (s.dependsOn.isEmpty ? "" : " after \(s.dependsOn.joined(separator: ","))")
            bytes += line.utf8.count + 4
            if bytes > Self.planBytesPublished { break }
            lines.append(line)
        }
        // A plan over many targets would not fit in one message: the rest is in the stored plan.
        if plan.subtasks.count > lines.count { lines.append("… \(plan.subtasks.count - lines.count) more subtasks in \(CortexNames.runPlan(runID))") }
        await context.bus.notify(RunPlanPublished(planner: plan.planner, rule: plan.rule, revision: plan.revision, subtasks: lines,
                                                  notes: plan.notes.isEmpty ? nil : plan.notes), runID: runID)
        log.info("plan r\(plan.revision) by \(plan.planner) (\(plan.rule)): \(lines.joined(separator: "; "))")
    }

    /// The subtasks neither queued, nor failed, nor known not to run.
    func pendingSubtasks(_ progress: Progress) -> [Subtask] {
        progress.plan.subtasks.filter { s in
            let id = s.taskID(in: runID)
            return !progress.ids.contains(id) && progress.failedTasks[id] == nil && s.notRun == nil
        }
    }

    /// Reads the reports that arrived since the last look (`reported`: the results hash's keys) into the
    /// run's memory, and teaches the router from each routed one.
    func readNewReports(_ reported: Set<String>, _ progress: Progress) async {
        let fresh = reported.filter { progress.ids.contains($0) && progress.reports[$0] == nil }.sorted()
        guard !fresh.isEmpty else { return }
        guard let replies = try? await context.redis.pipeline(fresh.map { .hget(CortexNames.runResults(runID), $0) }) else { return }
        for (id, reply) in zip(fresh, replies) {
            guard let text = reply.string else { continue }
            guard let report = try? WireJSON.decode(MasterReport.self, from: text) else {
                // Not a dependency anyone can build on: its dependents are not run, and phase 4 names it.
                progress.unreadable.insert(id)
                continue
            }
            progress.reports[id] = report
            await learn(from: report, progress)
        }
    }

    /// One routed subtask's outcome, into the router's weights (once per task, also across a resume).
    private func learn(from report: MasterReport, _ progress: Progress) async {
        guard let subtask = progress.plan.subtasks.first(where: { $0.taskID(in: runID) == report.taskID }), let decision = subtask.decision else { return }
        let findings = report.details["vulnerabilities"]?.arrayValue?.count ?? 0
        // The workers' time on it (the report's own timestamps are to the second).
        let ms = report.items.reduce(0) { $0 + $1.durationMs }
        do {
            let learned = try await service.router.learn(runID: runID, taskID: report.taskID, subtask: subtask, decision: decision, outcome: report.status,
                                                         milliseconds: ms, findings: findings, tokens: report.assessment?.tokens ?? 0,
                                                         retentionSeconds: context.retentionSeconds)
            if learned { log.info("router learned: \(decision.chosen) for \(subtask.kind.rawValue) on \(ExpertRouter.feature(of: subtask.target)) \(report.status)") }
        } catch {
            log.warning("the router could not learn from \(report.taskID) (the weights miss this outcome): \(error)")
        }
    }

    /// Queues every subtask whose dependencies have all succeeded; marks those that cannot run. Returns
    /// an error message when queueing failed in a way retrying will not fix (phase 2 fails the run on it).
    @discardableResult
    func dispatchReady(_ progress: Progress) async -> String? {
        var changed = false
        var ready: [(index: Int, task: TaskSpec)] = []
        var readyIndices: Set<Int> = []
        var masters: [MasterRole: MasterStatus?] = [:]
        // Subtasks by id, for the dependency checks (a plan over many targets has thousands).
        let index = Dictionary(progress.plan.subtasks.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        // Until nothing changes: a subtask not run makes its dependents not run too.
        var again = true
        while again {
            again = false
            for i in progress.plan.subtasks.indices {
                let s = progress.plan.subtasks[i]
                let id = s.taskID(in: runID)
                guard s.notRun == nil, !progress.ids.contains(id), progress.failedTasks[id] == nil, !readyIndices.contains(i) else { continue }
                switch dependencyState(s, progress, index: index) {
                case .waiting: continue
                case .blocked(let why):
                    progress.plan.subtasks[i].notRun = why
                    log.warning("subtask \(s.id) not run: \(why)")
                    changed = true
                    again = true
                case .ready:
                    // The masters of the first subtasks were checked in pre-flight; a later one is checked when due.
                    if masters[s.master] == nil { masters[s.master] = await masterStatus(s.master) }
                    // Redis did not answer: decided on the next pass.
                    guard let status = masters[s.master] ?? nil else { continue }
                    if !s.dependsOn.isEmpty && !status.running {
                        // A master seen a moment ago may be restarting: it gets the master-down limit to come back.
                        if status.mayComeBack { continue }
                        progress.plan.subtasks[i].notRun = "\(s.master.processName) not running"
                        changed = true
                        again = true
                        continue
                    }
                    switch await task(for: s, progress, experts: status.experts) {
                    case .success(let task):
                        ready.append((i, task))
                        readyIndices.insert(i)
                        if let d = task.expert.flatMap({ _ in progress.plan.subtasks[i].decision }) { log.info("routed \(s.id) to \(d.chosen) (\(d.why))") }
                        changed = true
                    case .failure(let why):
                        progress.plan.subtasks[i].notRun = why.message
                        changed = true
                        again = true
                    }
                }
            }
        }
        var fatal: String?
        if !ready.isEmpty {
            let minID = CortexNames.Retention.minID(olderThan: context.retentionSeconds)
            do {
                let calls = try ready.enumerated().map { n, r -> (keys: [String], args: [any RedisArgument]) in
                    (keys: [CortexNames.runTasks(runID), CortexNames.taskStream(r.task.master), CortexNames.run(runID)],
                     args: [r.task.id, try WireJSON.encode(r.task), minID, progress.tasks.count + n + 1, context.retentionSeconds,
                            TracePropagation.traceparent(of: progress.phaseSpan?.context) ?? ""])
                }
                // One script per task: recorded and queued together, once (a retry after a lost reply, or a
                // coordinator resuming the run, finds it recorded and queues nothing).
                var replies: [RedisReply] = []
                try await retryingRedis(log) { replies = try await Self.queueTaskScript.runPipelined(context.redis, calls: calls) }
                await context.redis.awaitReplication()
                var refused: [String] = []
                for (r, reply) in zip(ready, replies) {
                    do {
                        _ = try reply.orThrow()
                        progress.ids.insert(r.task.id)
                        progress.tasks.append(r.task)
                        await context.bus.notify(TaskAssigned(taskID: r.task.id, master: r.task.master.rawValue, target: r.task.target), runID: runID)
                    } catch {
                        refused.append("\(r.task.id): \(error)")
                        notQueued(r, progress, error)
                    }
                }
                // Each refused task fails alone (and its dependents are not run); the others go on.
                if !refused.isEmpty { log.error("could not queue \(refused.joined(separator: "; "))") }
            } catch {
                // Not waited for: each subtask fails with why (and its dependents are not run).
                for r in ready { notQueued(r, progress, error) }
                fatal = "could not queue \(ready.map(\.task.id).joined(separator: ", ")): \(error)"
            }
        }
        if changed { await storePlan(progress, publish: false) }
        return fatal
    }

    /// A subtask Redis refused to queue: it fails with why instead of being waited for (its dependents are not run).
    private func notQueued(_ r: (index: Int, task: TaskSpec), _ progress: Progress, _ error: any Error) {
        let what = description(of: progress.plan.subtasks[r.index], progress)
        log.error("\(what) could not be queued as \(r.task.id): \(error)")
        progress.failedTasks[r.task.id] = "\(what) could not be queued: \(error)"
    }

    /// "the handoff security-master → development on shop" for a subtask a handoff added, else "the subtask".
    func description(of s: Subtask, _ progress: Progress) -> String {
        guard let origin = s.origin, origin.hasPrefix("handoff from ") else { return "the subtask" }
        let sender = String(origin.dropFirst("handoff from ".count))
        let from = progress.plan.subtask(sender)?.master.processName ?? sender
        return "the handoff \(from) → \(s.master.rawValue) on \(RepositoryCheckout.name(of: s.target))"
    }

    enum DependencyState { case waiting, ready, blocked(String) }

    /// Whether a subtask's dependencies let it run: all succeeded (ready), one did not (blocked, with why),
    /// or some have not reported yet (waiting). A subtask a handoff added needs only its sender's report:
    /// the sender asked for it whatever its own outcome.
    func dependencyState(_ s: Subtask, _ progress: Progress, index: [String: Int]? = nil) -> DependencyState {
        var waiting = false
        for d in s.dependsOn {
            let found = index.map { $0[d].map { progress.plan.subtasks[$0] } } ?? progress.plan.subtask(d)
            guard let dep = found else { return .blocked("depends on \(d), which is not in the plan") }
            let depID = dep.taskID(in: runID)
            if dep.notRun != nil { return .blocked("depends on \(d), which was not run") }
            if let failed = progress.failedTasks[depID] { return .blocked("depends on \(d), which failed: \(failed)") }
            if progress.unreadable.contains(depID) { return .blocked("depends on \(d), whose report is unreadable") }
            guard let report = progress.reports[depID] else { waiting = true; continue }
            let askedByIt = s.origin == "handoff from \(d)"
            if report.status != .succeeded && !askedByIt {
                return .blocked("depends on \(d) (\(dep.master.processName)), which ended \(report.status.rawValue)" + (report.reason.map { ": \($0)" } ?? ""))
            }
        }
        return waiting ? .waiting : .ready
    }

    /// Whether a master is running (fresh heartbeat, not stopped), whether one that is not was seen recently
    /// enough to be waited for (within the master-down limit: a restart, an upgrade), and the experts it offers.
    struct MasterStatus { var running: Bool; var mayComeBack: Bool; var experts: [String: [String]] }

    /// The master's registry, read; nil when Redis did not answer (the caller decides again later).
    func masterStatus(_ role: MasterRole) async -> MasterStatus? {
        let fields: [String: String]
        do { fields = try await context.redis.hgetall(CortexNames.masterRegistry(role)) } catch {
            log.warning("could not read \(role.processName)'s registry (decided on the next pass): \(error)")
            return nil
        }
        let age = fields["last_heartbeat"].flatMap(Int.init).map { epochMilliseconds() - $0 }
        let fresh = age.map { $0 <= Int(context.heartbeatTimeout / .milliseconds(1)) } ?? false
        let running = fresh && fields["status"] != ProcessStatus.stopped.rawValue
        return MasterStatus(running: running, mayComeBack: !running && (age.map { $0 < Int(service.masterDownTimeout / .milliseconds(1)) } ?? false),
                            experts: MasterExperts.parse(fields["experts"] ?? ""))
    }

    /// The task for a subtask that is due: its skill, its inputs from what its dependencies produced, its
    /// expert; or why it cannot run (an advisory its analysis did not find, a branch nobody published).
    func task(for s: Subtask, _ progress: Progress, experts: [String: [String]]) async -> Result<TaskSpec, CortexError> {
        guard let skill = s.kind.skill(master: s.master, target: s.target) else {
            return .failure(CortexError(.invalidInput, "the \(s.master.rawValue) master cannot \(s.kind.rawValue) \(s.target)"))
        }
        let deps = s.dependsOn.compactMap { progress.plan.subtask($0) }
        let depReports = deps.compactMap { progress.reports[$0.taskID(in: runID)] }
        var task = TaskSpec(id: s.taskID(in: runID), runID: runID, master: s.master, skill: skill, target: s.target, priority: s.priority, attempt: 1,
                            allowTestExecution: s.master == .testing ? (request.allowTestExecution ?? []).contains(s.target) : nil,
                            instructions: s.instructions)
        let handoffs = progress.handoffsFor[s.id] ?? []
        switch s.kind {
        case .implement:
            var instructions = s.instructions ?? []
            var advisories: [String] = []
            var fixes: [String] = []
            if let wanted = s.advisories, !wanted.isEmpty, let analysis = depReports.first(where: { $0.master == .security }) {
                let found = (analysis.details["vulnerabilities"]?.arrayValue ?? []).filter { v in
                    let ids = [v["advisory"]?.stringValue].compactMap { $0 } + (v["aliases"]?.arrayValue ?? []).compactMap(\.stringValue)
                    return ids.contains { id in wanted.contains { $0.caseInsensitiveCompare(id) == .orderedSame } }
                }
                guard !found.isEmpty else {
                    let total = analysis.details["vulnerabilities"]?.arrayValue?.count ?? 0
                    return .failure(CortexError(.notFound, "\(s.dependsOn.joined(separator: ", ")) found none of \(wanted.joined(separator: ", ")) in "
                        + "\(RepositoryCheckout.name(of: s.target)) (\(total) other vulnerabilit\(total == 1 ? "y" : "ies") matched): nothing to fix"))
                }
                // A fix that failed its tests before is not tried again: it needs a person (learnings).
                let keys = found.flatMap { v in
                    ([v["advisory"]?.stringValue].compactMap { $0 }).map {
                        Learning.fixKey(ecosystem: v["ecosystem"]?.stringValue ?? "?", package: v["package"]?.stringValue ?? "?", advisory: $0)
                    }
                }
                do {
                    let known = try await service.fixLearnings.get(keys)
                    if let blocked = keys.compactMap({ known[$0] }).first(where: { $0.outcome == "needs-human-review" }) {
                        return .failure(CortexError(.refused, "needs human review: \(blocked.detail); not tried again (cortexctl memory forget --master security to retry)"))
                    }
                } catch {
                    log.warning("the security learnings could not be read (the fix is tried): \(error)")
                }
                fixes = keys
                // One change (one agent run) for everything the analysis found of what the goal names; the
                // security master's fix branch and its handoffs are context for it, not more changes.
                var change: [String] = []
                for v in found {
                    let ids = ([v["advisory"]?.stringValue].compactMap { $0 } + (v["aliases"]?.arrayValue ?? []).compactMap(\.stringValue))
                    advisories += ids.filter { !advisories.contains($0) }
                    let package = v["package"]?.stringValue ?? "?", version = v["version"]?.stringValue ?? "?"
                    // Every file of the module that pins it (go.mod and go.sum); reports older than `locations` have `file`.
                    let pinned = (v["locations"]?.arrayValue ?? []).compactMap { $0["file"]?.stringValue }
                    let files = pinned.isEmpty ? [v["file"]?.stringValue].compactMap { $0 } : pinned
                    change.append("Fix \(ids.joined(separator: " / ")) in \(RepositoryCheckout.name(of: s.target)): upgrade the \(v["ecosystem"]?.stringValue ?? "") package "
                        + "\(package) from \(version) to \(v["lowestFix"]?.stringValue ?? "a version without the vulnerability")"
                        + (files.isEmpty ? "" : " in \(files.joined(separator: " and "))") + ", and keep the tests passing.")
                }
                if let branch = analysis.details["fix"]?["branch"]?.stringValue, analysis.details["fix"]?["commit"]?.stringValue != nil {
                    change.append("The security master's fix branch for it: \(branch).")
                }
                change += handoffs.map { "The security master's handoff: \($0.reason)." }
                instructions.append(change.joined(separator: " "))
            } else {
                // A handoff is a change of its own.
                for h in handoffs {
                    instructions.append(h.reason + ((h.advisories ?? []).isEmpty ? "" : ". Advisories: \((h.advisories ?? []).joined(separator: ", "))")
                                        + (h.branch.map { ". The security master's fix branch: \($0)" } ?? ""))
                    advisories += (h.advisories ?? []).filter { !advisories.contains($0) }
                }
            }
            guard !instructions.isEmpty else { return .failure(CortexError(.invalidInput, "nothing to implement: no instructions and no advisories")) }
            task.instructions = instructions
            task.inputs = TaskInputs(advisories: advisories.isEmpty ? nil : advisories, from: s.dependsOn)
            if !fixes.isEmpty { task.inputs?.fixes = fixes }
        case .testBranch:
            let branches = depReports.flatMap { r in (r.details["implementations"]?.arrayValue ?? []).compactMap { $0["branch"]?.stringValue } }
            guard let branch = branches.first else {
                return .failure(CortexError(.notFound, "\(s.dependsOn.joined(separator: ", ")) published no branch to test (the agent changed nothing)"))
            }
            // One branch per test-branch subtask: testing the first of several would report the others as tested.
            guard branches.count == 1 else {
                return .failure(CortexError(.invalidInput, "\(s.dependsOn.joined(separator: ", ")) published \(branches.count) branches (\(branches.joined(separator: ", "))); "
                    + "a test-branch subtask tests one: plan one implement subtask per change"))
            }
            task.inputs = TaskInputs(branch: branch, from: s.dependsOn)
        default:
            if !s.dependsOn.isEmpty { task.inputs = TaskInputs(from: s.dependsOn) }
        }
        // More than one way to do it: the router picks, and the plan keeps the decision with its weights.
        if let dimension = ExpertRouter.dimension(of: s.kind), let offered = experts[dimension.name] {
            do {
                if let decision = try await service.router.decide(s, runID: runID, available: offered) {
                    task.expert = decision.chosen
                    if let i = progress.plan.subtasks.firstIndex(where: { $0.id == s.id }) { progress.plan.subtasks[i].decision = decision }
                }
            } catch {
                log.warning("routing \(s.id): the weights could not be read (\(error)); the master's default is used")
            }
        }
        return .success(task)
    }

    /// A handoff read from the run's list, placed in the plan: folded into a subtask that already does what
    /// it asks (the fix plan's implement and test-branch after the analysis that sent it), or added as new
    /// subtasks (implement after its sender; test-branch after that implement), or reported as not handed off.
    func place(_ handoff: HandoffRequest, from envelope: Envelope, _ progress: Progress) async -> Bool {
        let target = handoff.target ?? ""
        let what = "\(envelope.source) → \(handoff.to) on \(RepositoryCheckout.name(of: target))"
        // The sender's subtask, when the handoff names one of this run (one published by hand may not): the
        // new subtask comes after it.
        let sourceID = handoff.taskID.flatMap { id in id.hasPrefix("\(runID).") ? String(id.dropFirst(runID.count + 1)) : nil }
        let source = sourceID.flatMap { progress.plan.subtask($0) }
        guard request.targets.contains(target) else {
            progress.notHandedOff.append("not handed off: \(what): not a target of this run")
            return false
        }
        let kind: SubtaskKind
        switch handoff.to {
        case MasterRole.development.rawValue: kind = .implement
        case MasterRole.testing.rawValue: kind = .testBranch
        default:
            progress.notHandedOff.append("not handed off: \(what): the \(handoff.to) master takes no handoffs")
            return false
        }
        // The implement subtasks after the sender on this target (the plan's, and those earlier handoffs added).
        let origin = "handoff from \(source?.id ?? envelope.source)"
        let implements = progress.plan.subtasks.filter { s in
            s.kind == .implement && s.target == target && (source.map { s.dependsOn.contains($0.id) } ?? (s.origin == origin))
        }
        // Only a subtask still to be dispatched can take the handoff in: one already queued, not run or failed
        // would leave it undone (a critical CVE must not vanish because the planned fix was skipped).
        func open(_ s: Subtask) -> Bool {
            let id = s.taskID(in: runID)
            if case .blocked = dependencyState(s, progress) { return false }
            return s.notRun == nil && !progress.ids.contains(id) && progress.failedTasks[id] == nil
        }
        if kind == .implement, let existing = implements.first(where: open) {
            progress.handoffsFor[existing.id, default: []].append(handoff)
            log.info("handoff \(what) folded into \(existing.id)")
            return true
        }
        // The test of the branch the sender's latest implement subtask makes (a handoff's own is the latest).
        if kind == .testBranch, let impl = implements.last,
           let existing = progress.plan.subtasks.first(where: { $0.kind == .testBranch && $0.dependsOn.contains(impl.id) }) {
            progress.handoffsFor[existing.id, default: []].append(handoff)
            log.info("handoff \(what) folded into \(existing.id)")
            return true
        }
        let master: MasterRole = kind == .implement ? .development : .testing
        // Not running and not expected back: not handed off. Unknown (Redis did not answer) or restarting: the
        // subtask is added, and its dispatch decides.
        if let status = await masterStatus(master), !status.running && !status.mayComeBack {
            progress.notHandedOff.append("not handed off: \(what): \(master.processName) not running")
            return false
        }
        let n = progress.handoffIDs.count
        let subtask: Subtask
        if kind == .implement {
            subtask = Subtask(id: "development.handoff\(n)", kind: .implement, master: .development, target: target, dependsOn: source.map { [$0.id] } ?? [],
                              priority: handoff.priority.flatMap(TaskPriority.init(rawValue:)) ?? .high, origin: origin)
        } else {
            guard let impl = implements.last else {
                progress.notHandedOff.append("not handed off: \(what): there is no branch to test (the handoff to development was not taken)")
                return false
            }
            subtask = Subtask(id: "testing.handoff\(n)", kind: .testBranch, master: .testing, target: target, dependsOn: [impl.id],
                              priority: handoff.priority.flatMap(TaskPriority.init(rawValue:)) ?? .high, origin: origin)
        }
        // A resumed run reads its handoffs again: the subtask is in the stored plan already, and gets its handoff back.
        guard progress.plan.subtask(subtask.id) == nil else {
            progress.handoffsFor[subtask.id, default: []].append(handoff)
            return true
        }
        progress.plan.subtasks.append(subtask)
        progress.handoffsFor[subtask.id, default: []].append(handoff)
        progress.plan.revision += 1
        log.info("handoff \(what) became subtask \(subtask.id)")
        await storePlan(progress, publish: true)
        return true
    }
}

/// The experts a master offers, as its registry's `experts` field writes them: `advisories=osv-api,offline-db`
/// (dimensions separated by `;`).
public enum MasterExperts {
    public static func format(_ experts: [String: [String]]) -> String {
        experts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.joined(separator: ","))" }.joined(separator: ";")
    }

    public static func parse(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for part in text.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { continue }
            out[kv[0]] = kv[1].split(separator: ",").map(String.init)
        }
        return out
    }
}

extension RunExecution {
    /// What each fix of this run came to, learned for the next runs: a change whose own tests or whose
    /// branch's tests failed `needs-human-review` (the next run does not try it again); a change whose
    /// branch passed its tests is `fixed`. A fix that did not run to a verdict (no model, budget denied,
    /// the agent gave up) teaches nothing. A learning that cannot be stored is logged; the run's outcome
    /// does not change (it did what it did).
    func learnFromFixes(_ progress: Progress, reports: [MasterReport]) async {
        let byTask = Dictionary(reports.map { ($0.taskID, $0) }, uniquingKeysWith: { a, _ in a })
        var learned: [Learning] = []
        for task in progress.tasks where task.skill == .implementation {
            guard let keys = task.inputs?.fixes, !keys.isEmpty, let report = byTask[task.id] else { continue }
            let subtaskID = String(task.id.dropFirst(runID.count + 1))
            let branchTest = progress.plan.subtasks.first { $0.kind == .testBranch && $0.dependsOn.contains(subtaskID) }
            let tested = branchTest.flatMap { byTask[$0.taskID(in: runID)] }
            let outcome: String, detail: String
            if report.status == .partial, let reason = report.reason, reason.contains("its tests failed") {
                (outcome, detail) = ("needs-human-review", "the automatic change in \(runID) failed its tests (\(reason.prefix(300)))")
            } else if let tested, tested.status != .succeeded, tested.status != .skipped, tested.status != .denied {
                (outcome, detail) = ("needs-human-review", "the automatic change in \(runID) did not pass the tests of its branch (\((tested.reason ?? tested.status.rawValue).prefix(300)))")
            } else if report.status == .succeeded, tested?.status == .succeeded {
                (outcome, detail) = ("fixed", "the automatic change in \(runID) passed the tests of its branch")
            } else {
                continue
            }
            learned += keys.map { Learning(key: $0, kind: "fix-outcome", outcome: outcome, detail: detail, target: RepositoryCheckout.name(of: task.target), runID: runID) }
        }
        guard !learned.isEmpty else { return }
        do {
            try await retryingRedis(log) { try await service.fixLearnings.record(learned) }
            log.info("learned: \(learned.map { "\($0.key) \($0.outcome)" }.joined(separator: "; "))")
        } catch {
            log.error("could not record what this run's fixes came to (the next run will not know): \(error)")
        }
    }
}

extension RunExecution {
    /// What examining each target's files cost, learned per master, skill and target for the next run's
    /// shard plan. Only from a task whose items examined at least half of its files: a run served mostly
    /// from the file cache measures the cache, not the files, and keeps the earlier learning.
    func learnFileCosts(_ progress: Progress, reports: [MasterReport]) async {
        let skills = Dictionary(progress.tasks.map { ($0.id, $0.skill) }, uniquingKeysWith: { a, _ in a })
        for (master, group) in Dictionary(grouping: reports, by: \.master) {
            let learned = group.compactMap { r -> Learning? in
                guard let costs = r.costs, costs.files > 0, let skill = skills[r.taskID], skill.fileSkill != nil else { return nil }
                if let cache = r.fileCache, cache.reexamined * 2 < cache.files { return nil }
                let top = costs.heavy.first.map { "; costliest \($0.path) (\(String(format: "%.0f", $0.ms)) ms)" } ?? ""
                return Learning(key: FileCosts.learningKey(skill: skill, target: r.target), kind: "file-costs", outcome: "measured",
                                detail: "\(skill.rawValue): \(costs.files) files in \(String(format: "%.0f", costs.ms)) ms\(top)",
                                target: RepositoryCheckout.name(of: r.target), runID: runID, data: JSONValue.of(costs))
            }
            guard !learned.isEmpty else { continue }
            do {
                try await retryingRedis(log) { try await service.learnings(master).record(learned) }
            } catch {
                log.error("could not record what \(master.rawValue)'s files cost (the next run shards by hash alone): \(error)")
            }
        }
    }

    /// What the testing master's suite runs showed, learned per target: each framework's duration and
    /// counts (`suite|<framework>|<target hash>`), and every test that failed and then passed when run
    /// again (`flaky|<target hash>|<test>`, with how many runs saw it flaky). The testing master's next
    /// assessment retrieves them; `cortexctl memory show --master testing` lists them.
    func learnFromTestRuns(_ reports: [MasterReport]) async {
        let store = service.learnings(.testing)
        var learned: [Learning] = []
        var flakyKeys: [(key: String, test: String, target: String, framework: String)] = []
        for report in reports where report.master == .testing {
            let runs = (report.details["runs"]?.arrayValue ?? []).compactMap { $0.decoded(as: FrameworkRun.self) }
            let target = RepositoryCheckout.name(of: report.target)
            let hash = RepositoryFiles.hash(report.target)
            for run in runs where !run.timedOut {
                learned.append(Learning(key: "suite|\(run.framework.rawValue)|\(hash)", kind: "suite-duration", outcome: "measured",
                                        detail: "\(run.framework.rawValue) on \(target): \(run.passed) passed, \(run.failed) failed, \(run.flaky.count) flaky in \(String(format: "%.1f", run.seconds)) s",
                                        target: target, runID: runID,
                                        data: ["framework": .string(run.framework.rawValue), "seconds": .number(run.seconds), "passed": .number(Double(run.passed)),
                                               "failed": .number(Double(run.failed)), "flaky": .number(Double(run.flaky.count))]))
                flakyKeys += run.flaky.map { ("flaky|\(hash)|\($0)", $0, target, run.framework.rawValue) }
            }
        }
        guard !learned.isEmpty else { return }
        do {
            // A test seen flaky again counts up: one flaky run is noise, five are a test to fix.
            let known = try await store.get(flakyKeys.map(\.key))
            for f in flakyKeys {
                let seen = (known[f.key]?.data?["runs"]?.intValue ?? 0) + 1
                learned.append(Learning(key: f.key, kind: "flaky-test", outcome: "flaky",
                                        detail: "\(f.test) (\(f.framework)) on \(f.target) failed, then passed when run again; flaky in \(seen) run\(seen == 1 ? "" : "s")",
                                        target: f.target, runID: runID, data: ["test": .string(f.test), "runs": .number(Double(seen))]))
            }
            try await retryingRedis(log) { try await store.record(learned) }
        } catch {
            log.error("could not record what the test runs showed (the next run will not know): \(error)")
        }
    }

    /// Which repositories say who owns them and how they ship (inventory's census: CODEOWNERS / OWNERS,
    /// Helm charts, Dockerfiles), learned per target (`metadata|<target hash>`), so the next assessment
    /// knows, and `cortexctl memory show --master inventory` lists it. Only from a census that succeeded:
    /// a partial one cannot say a file is absent.
    func learnRepositoryMetadata(_ reports: [MasterReport]) async {
        let learned = reports.filter { $0.master == .inventory && $0.status == .succeeded && $0.details["languages"] != nil }.map { r -> Learning in
            let found = (r.details["metadata"]?.arrayValue ?? []).compactMap { m -> (String, String)? in
                guard let kind = m["kind"]?.stringValue, let path = m["path"]?.stringValue else { return nil }
                return (kind, path)
            }
            let byKind = Dictionary(grouping: found, by: \.0).mapValues { $0.map(\.1).sorted() }
            let owners = byKind["owners"] ?? []
            let detail = "\(RepositoryCheckout.name(of: r.target)): " + [
                owners.isEmpty ? "no owners file (CODEOWNERS, OWNERS)" : "owners in \(owners.prefix(5).joined(separator: ", "))",
                (byKind["helm-chart"] ?? []).isEmpty ? "no Helm chart" : "Helm charts \(byKind["helm-chart"]!.prefix(5).joined(separator: ", "))",
                (byKind["container-image"] ?? []).isEmpty ? "no Dockerfile" : "Dockerfiles \(byKind["container-image"]!.prefix(5).joined(separator: ", "))",
            ].joined(separator: "; ")
            return Learning(key: "metadata|\(RepositoryFiles.hash(r.target))", kind: "repository-metadata", outcome: owners.isEmpty ? "no-owners" : "owned",
                            detail: detail, target: RepositoryCheckout.name(of: r.target), runID: runID,
                            data: .object(byKind.mapValues { .array($0.map(JSONValue.string)) }))
        }
        guard !learned.isEmpty else { return }
        do {
            try await retryingRedis(log) { try await service.learnings(.inventory).record(learned) }
        } catch {
            log.error("could not record which repositories have owners and charts (the next run will not know): \(error)")
        }
    }

    /// The run's reports into their targets' execution histories, once per run (a resumed run that
    /// aggregates again adds nothing): what the next model call about those targets retrieves.
    func recordHistory(_ reports: [MasterReport]) async {
        guard !reports.isEmpty else { return }
        do {
            let first = try await context.redis.send(.hsetnx(CortexNames.run(runID), "history_recorded", "1")).orThrow()
            guard first.int == 1 else { return }
            try await context.redis.run(try ExecutionHistory.commands(for: reports, retentionSeconds: context.retentionSeconds))
        } catch {
            log.warning("the run's reports are not in the targets' execution history (the next runs will not see them): \(error)")
        }
    }
}
