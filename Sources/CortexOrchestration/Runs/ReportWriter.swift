import CortexCatalog
import CortexCore
import Foundation

/// What the coordinator knows at the end of a run, written as the executive summary and per-master reports.
public struct RunOutcome: Sendable {
    public var request: RunRequest
    /// succeeded, partial or failed (a run is never skipped or denied as a whole).
    public var status: Outcome
    public var reason: String?
    public var phases: [(phase: Int, name: String, startedAt: Date)]
    public var tasks: [TaskSpec]
    public var reports: [MasterReport]
    public var startedAt: Date
    public var finishedAt: Date
    /// The run's token accounts at reconciliation (phase 4); empty when the run ended before phase 2.
    public var budget: [BudgetLedger.Account] = []
    /// The LLM the run used, or nil when none is configured.
    public var model: String?
    /// catalog-api totals when the run started work (phase 2) and after aggregation (phase 4); nil without a catalog.
    public var catalogBefore: CatalogTotals?
    public var catalogAfter: CatalogTotals?
    /// Why the catalog could not be read, when it is configured but was not.
    public var catalogProblem: String?
    /// Handoffs that did not become tasks, each with why.
    public var notHandedOff: [String] = []
    /// The run's plan (subtasks, dependencies, routing decisions, what was not run); nil when the run
    /// ended before it had one.
    public var plan: Plan?
}

/// Writes a run's reports (Markdown and JSON) into `<output>/<run id>/`.
public enum ReportWriter {
    public static let summaryMarkdown = "summary.md"
    public static let summaryJSON = "summary.json"

    /// The masters' reports in a run's `summary.json` (the run's Redis keys are gone once it is archived).
    public static func reports(inReportDirectory dir: String) throws -> [MasterReport] {
        struct Summary: Decodable { var reports: [MasterReport] }
        return try WireJSON.decode(Summary.self, from: String(contentsOfFile: dir + "/" + summaryJSON, encoding: .utf8)).reports
    }

    /// Writes every file and returns the run's report directory.
    public static func write(_ outcome: RunOutcome, to outputDir: URL) throws -> URL {
        // The coordinator refuses such run ids before a run starts; this is the last line of defence.
        guard RunRequest.isValidRunID(outcome.request.runID) else {
            throw CortexError(.invalidInput, "run id '\(outcome.request.runID.prefix(120))' cannot name a report directory")
        }
        let dir = outputDir.appendingPathComponent(outcome.request.runID, isDirectory: true)
        let masters = dir.appendingPathComponent("masters", isDirectory: true)
        try FileManager.default.createDirectory(at: masters, withIntermediateDirectories: true)
        for report in outcome.reports {
            let base = "\(report.master.rawValue)-\(report.taskID.split(separator: ".").last ?? "0")"
            try Data(masterMarkdown(report).utf8).write(to: masters.appendingPathComponent("\(base).md"))
            try Data(WireJSON.encode(report).utf8).write(to: masters.appendingPathComponent("\(base).json"))
            // The security master's SARIF log and fix patch, as files the tools that read them expect.
            if let sarif = report.details["sarif"], sarif != .null {
                try Data(sarif.description.utf8).write(to: masters.appendingPathComponent("\(base).sarif"))
            }
            if let patch = report.details["fix"]?["patch"]?.stringValue {
                try Data(patch.utf8).write(to: masters.appendingPathComponent("\(base).patch"))
            }
            // Generated files a master hands over (the monitoring master's dashboards and rules).
            if let files = report.details["files"]?.objectValue, !files.isEmpty {
                let folder = masters.appendingPathComponent("\(base)-files", isDirectory: true)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for (name, content) in files where !name.contains("/") && !name.hasPrefix(".") {
                    try Data((content.stringValue ?? "").utf8).write(to: folder.appendingPathComponent(name))
                }
            }
        }
        try Data(summaryMarkdownText(outcome).utf8).write(to: dir.appendingPathComponent(summaryMarkdown))
        try Data(summaryJSONText(outcome).utf8).write(to: dir.appendingPathComponent(summaryJSON))
        // The page links every file written above, by its path relative to the run's directory.
        let files = (FileManager.default.subpaths(atPath: dir.path) ?? []).filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: dir.appendingPathComponent(path).path, isDirectory: &isDirectory) && !isDirectory.boolValue && path != ReportHTML.fileName
        }
        try Data(ReportHTML.render(outcome, files: files).utf8).write(to: dir.appendingPathComponent(ReportHTML.fileName))
        return dir
    }

    static func duration(_ from: Date, _ to: Date) -> String {
        String(format: "%.2f s", to.timeIntervalSince(from))
    }

    /// The executive summary (the first section of summary.md), also printed by `cortexctl`.
    public static func executiveSummary(_ o: RunOutcome) -> String {
        var out = "Run \(o.request.runID): \(o.status.rawValue.uppercased()) in \(duration(o.startedAt, o.finishedAt))\n"
        out += "Goal: \(o.request.goal)\nTargets: \(o.request.targets.joined(separator: ", "))\n"
        if let reason = o.reason { out += "Reason: \(reason)\n" }
        // Right after the verdict: what was not checked is what a clean-looking line would hide.
        for r in o.reports { for check in r.notChecked ?? [] { out += "NOT CHECKED (\(r.master.processName), \(RepositoryCheckout.name(of: r.target))): \(check)\n" } }
        for line in o.notHandedOff { out += "\(line.prefix(1).uppercased())\(line.dropFirst())\n" }
        if let plan = o.plan {
            let notRun = plan.subtasks.filter { $0.notRun != nil }
            out += "Plan: \(plan.subtasks.count) subtasks by the \(plan.planner == "model" ? "model" : "rules") (\(plan.rule))"
                + (notRun.isEmpty ? "" : "; not run: \(notRun.map(\.id).joined(separator: ", "))") + "\n"
            for note in plan.notes { out += "Planner: \(note)\n" }
        }
        for master in MasterRole.allCases {
            let reports = o.reports.filter { $0.master == master }
            let assigned = o.tasks.filter { $0.master == master }.count
            if reports.isEmpty {
                out += "  \(master.processName.padding(toLength: 19, withPad: " ", startingAt: 0)) \(assigned == 0 ? "not assigned" : "NO REPORT (\(assigned) task(s) unfinished)")\n"
            }
            for r in reports {
                let workers = Set(r.items.map(\.worker)).count
                out += "  \(master.processName.padding(toLength: 19, withPad: " ", startingAt: 0)) \(r.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(r.summary) [\(r.items.count) items, \(workers) worker\(workers == 1 ? "" : "s")]\n"
            }
        }
        let workers = Set(o.reports.flatMap { $0.items.map { "\($0.worker)@\($0.node)" } })
        out += "Workers used: \(workers.count)\n"
        if let before = o.catalogBefore, let after = o.catalogAfter {
            out += "Catalog: \(before.assets) -> \(after.assets) assets (\(signed(after.assets - before.assets))), "
                + "\(before.relations) -> \(after.relations) relations (\(signed(after.relations - before.relations)))\n"
        } else if let problem = o.catalogProblem {
            out += "Catalog: unavailable (\(problem))\n"
        }
        if let run = o.budget.first(where: { $0.name == BudgetPlan.runAccount }) {
            let limit = run.limit
            let used = run.used
            out += "Tokens: \(used) of \(limit) used" + (o.model == nil ? " (no model configured: LLM steps skipped)" : " (model \(o.model!))") + "\n"
        }
        let assessments = o.reports.compactMap { r in r.assessment.map { (r.master, $0) } }
        if !assessments.isEmpty {
            let by = Dictionary(grouping: assessments, by: { $0.1.status })
            out += "LLM assessments: \(by["done"]?.count ?? 0) done, \(by["denied"]?.count ?? 0) denied, \(by["failed"]?.count ?? 0) failed\n"
            for (master, a) in assessments where a.status != "done" {
                out += "  \(master.processName) \(a.status): \(a.reason ?? "")\n"
            }
        }
        return out
    }

    static func signed(_ n: Int) -> String { n >= 0 ? "+\(n)" : "\(n)" }

    /// The design's "ACTUAL USAGE" table: per agent budget, used, percent and unused, then the total.
    static func budgetMarkdown(_ o: RunOutcome) -> String {
        guard !o.budget.isEmpty else { return "" }
        let byName = Dictionary(uniqueKeysWithValues: o.budget.map { ($0.name, $0) })
        var md = "\n## Token budget\n\n"
        md += o.model == nil ? "No model configured: every LLM step was skipped, so the ledger shows no use.\n\n" : "Model: \(o.model!)\n\n"
        md += "| Agent | Personal | Workers | Budget | Used | Used % | Unused |\n|---|---|---|---|---|---|---|\n"
        var totalBudget = 0, totalUsed = 0
        for agent in BudgetPlan.agentOrder {
            let personal = byName[agent], workers = byName["\(agent):workers"]
            let budget = (personal?.limit ?? 0) + (workers?.limit ?? 0)
            let used = (personal?.used ?? 0) + (workers?.used ?? 0)
            totalBudget += budget
            totalUsed += used
            md += "| \(agent) | \(personal?.limit ?? 0) | \(workers?.limit ?? 0) | \(budget) | \(used) | \(percent(used, budget)) | \(budget - used) |\n"
        }
        let reserve = byName["reserve"], run = byName[BudgetPlan.runAccount]
        md += "| **agents** | | | \(totalBudget) | \(totalUsed) | \(percent(totalUsed, totalBudget)) | \(totalBudget - totalUsed) |\n"
        md += "\nRun cap: \(run?.used ?? 0) of \(run?.limit ?? 0) used (\(percent(run?.used ?? 0, run?.limit ?? 0)) efficiency); agent budgets are caps within it.\n"
        md += "Emergency reserve: \(reserve?.limit ?? 0) held, \(reserve?.used ?? 0) used.\n"
        return md
    }

    static func percent(_ part: Int, _ whole: Int) -> String {
        whole == 0 ? "-" : String(format: "%.0f %%", 100 * Double(part) / Double(whole))
    }

    static func summaryMarkdownText(_ o: RunOutcome) -> String {
        var md = "# Cortex run \(o.request.runID)\n\n## Executive summary\n\n```\n\(executiveSummary(o))```\n\n"
        md += planMarkdown(o)
        md += "## Phases\n\n| Phase | Name | Started | Until next |\n|---|---|---|---|\n"
        for (i, p) in o.phases.enumerated() {
            let end = i + 1 < o.phases.count ? o.phases[i + 1].startedAt : o.finishedAt
            md += "| \(p.phase) | \(p.name) | \(Timestamp.format(p.startedAt)) | \(duration(p.startedAt, end)) |\n"
        }
        md += "\n## Masters\n\n| Master | Target | Status | Result | Items | Report |\n|---|---|---|---|---|---|\n"
        for r in o.reports.sorted(by: { $0.taskID < $1.taskID }) {
            let base = "\(r.master.rawValue)-\(r.taskID.split(separator: ".").last ?? "0")"
            md += "| \(r.master.processName) | \(r.target) | \(r.status) | \(r.summary.replacingOccurrences(of: "|", with: "\\|")) | \(r.items.count) | [\(base).md](masters/\(base).md) |\n"
        }
        let missing = o.tasks.filter { t in !o.reports.contains { $0.taskID == t.id } }
        if !missing.isEmpty {
            md += "\nUnfinished tasks: " + missing.map { "`\($0.id)` (\($0.master.processName))" }.joined(separator: ", ") + "\n"
        }
        let buried = o.reports.flatMap { r in r.items.filter { $0.error?.hasPrefix("dead-lettered") == true }.map { (r, $0) } }
        if !buried.isEmpty {
            md += "\n## Dead-lettered work items\n\nThese kept killing or failing workers and were moved to `\(CortexNames.deadLetters)`:\n\n"
            for (r, item) in buried { md += "- `\(item.itemID)` (\(r.master.processName), \(r.target)): \(item.error ?? "")\n" }
        }
        md += budgetMarkdown(o)
        md += "\n## Work distribution\n\n| Worker | Node | Items | Busy time |\n|---|---|---|---|\n"
        var byWorker: [String: (node: String, items: Int, ms: Int)] = [:]
        for item in o.reports.flatMap(\.items) {
            byWorker[item.worker, default: (item.node, 0, 0)].items += 1
            byWorker[item.worker, default: (item.node, 0, 0)].ms += item.durationMs
        }
        for (w, v) in byWorker.sorted(by: { $0.key < $1.key }) { md += "| \(w) | \(v.node) | \(v.items) | \(v.ms) ms |\n" }
        return md
    }

    /// What each subtask came to: its report's status, why it was not run, or that it is unfinished.
    static func subtaskOutcomes(_ o: RunOutcome) -> [String: String] {
        guard let plan = o.plan else { return [:] }
        var out: [String: String] = [:]
        for s in plan.subtasks {
            let id = s.taskID(in: o.request.runID)
            if let r = o.reports.first(where: { $0.taskID == id }) { out[s.id] = r.status.rawValue }
            else if s.notRun != nil { out[s.id] = "not run" }
            else if o.tasks.contains(where: { $0.id == id }) { out[s.id] = "unfinished" }
            else { out[s.id] = "not dispatched" }
        }
        return out
    }

    /// The plan: who planned it, a table of subtasks in dispatch order, a Mermaid graph, the routing
    /// decisions with the weights they used.
    static func planMarkdown(_ o: RunOutcome) -> String {
        guard let plan = o.plan else { return "" }
        let outcomes = subtaskOutcomes(o)
        var md = "## Plan\n\nPlanned by the \(plan.planner == "model" ? "model (\(o.model ?? "?"))" : "rules") — rule `\(plan.rule)`"
            + (plan.revision > 1 ? ", revision \(plan.revision) (handoffs added subtasks)" : "") + ".\n\n"
        for note in plan.notes { md += "- \(note)\n" }
        if !plan.notes.isEmpty { md += "\n" }
        // Dispatch order first (the order tasks were queued), then what never was.
        let order = o.tasks.map(\.id)
        let sorted = plan.subtasks.sorted { a, b in
            let ia = order.firstIndex(of: a.taskID(in: o.request.runID)) ?? Int.max, ib = order.firstIndex(of: b.taskID(in: o.request.runID)) ?? Int.max
            return ia != ib ? ia < ib : a.id < b.id
        }
        md += "| # | Subtask | Kind | Master | Target | Depends on | Priority | Expert | Outcome |\n|---|---|---|---|---|---|---|---|---|\n"
        for s in sorted {
            let n = order.firstIndex(of: s.taskID(in: o.request.runID)).map { "\($0 + 1)" } ?? "-"
            let outcome = s.notRun.map { "not run: \($0)" } ?? outcomes[s.id] ?? ""
            let cells = [n, "`\(s.id)`", s.kind.rawValue, s.master.processName, RepositoryCheckout.name(of: s.target),
                         s.dependsOn.isEmpty ? "-" : s.dependsOn.joined(separator: ", "), s.priority.rawValue, s.decision?.chosen ?? "-", outcome]
            md += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }.joined(separator: " | ") + " |\n"
        }
        md += "\n```mermaid\n\(plan.mermaid(outcomes: outcomes))\n```\n\n"
        let decisions = sorted.compactMap { s in s.decision.map { (s, $0) } }
        if !decisions.isEmpty {
            md += "### Routing decisions\n\n| Subtask | Dimension | Feature | Chosen | Why | Weights (trials, successes) |\n|---|---|---|---|---|---|\n"
            for (s, d) in decisions {
                let weights = d.candidates.map { "\($0.expert) " + String(format: "%.3f (%.0f, %.0f)", $0.weight, $0.trials, $0.successes) }.joined(separator: "; ")
                md += "| `\(s.id)` | \(d.dimension) | \(d.feature) | \(d.chosen) | \(d.why) | \(weights) |\n"
            }
            md += "\n"
        }
        return md
    }

    static func masterMarkdown(_ r: MasterReport) -> String {
        var md = "# \(r.master.processName): \(r.target)\n\nTask `\(r.taskID)` — \(r.status) — \(r.summary)\n\n"
        md += "Handled by \(r.instance), \(duration(r.startedAt, r.finishedAt)).\n\n\(r.markdown)\n"
        if let a = r.assessment {
            switch a.status {
            case "done":
                md += "### Assessment (\(a.model), \(a.tokens) tokens)\n\n\(a.text ?? "")\n\n"
                if let cited = a.citations, !cited.isEmpty { md += "Retrieved into the prompt: " + cited.map { "`\($0)`" }.joined(separator: ", ") + "\n\n" }
                if let problems = a.retrievalProblems, !problems.isEmpty { md += "Not retrieved: " + problems.joined(separator: "; ") + "\n\n" }
            default: md += "### Assessment\n\nLLM step \(a.status.uppercased()): \(a.reason ?? "")\n\n"
            }
        }
        md += "### Work items\n\n| Item | Worker | Node | Status | Files | Time |\n|---|---|---|---|---|---|\n"
        for i in r.items {
            let files = "\(i.filesExamined)" + (i.filesReused.map { " (+\(MasterReport.FileCacheSummary.grouped($0)) unchanged, from the cache)" } ?? "")
            md += "| \(i.itemID) | \(i.worker) | \(i.node) | \(i.status.rawValue) | \(files) | \(i.durationMs) ms |\n"
        }
        return md
    }

    static func summaryJSONText(_ o: RunOutcome) throws -> String {
        struct Phase: Encodable { var phase: Int; var name: String; var startedAt: Date }
        struct Summary: Encodable {
            var runID: String; var goal: String; var targets: [String]; var status: Outcome; var reason: String?
            var startedAt: Date; var finishedAt: Date; var phases: [Phase]; var tasks: [TaskSpec]; var reports: [MasterReport]
            var model: String?; var budget: [BudgetLedger.Account]
            var catalogBefore: CatalogTotals?; var catalogAfter: CatalogTotals?; var notHandedOff: [String]; var plan: Plan?
        }
        return try WireJSON.encode(Summary(
            runID: o.request.runID, goal: o.request.goal, targets: o.request.targets, status: o.status, reason: o.reason,
            startedAt: o.startedAt, finishedAt: o.finishedAt, phases: o.phases.map { Phase(phase: $0.phase, name: $0.name, startedAt: $0.startedAt) },
            tasks: o.tasks, reports: o.reports, model: o.model,
            budget: o.budget, catalogBefore: o.catalogBefore, catalogAfter: o.catalogAfter, notHandedOff: o.notHandedOff, plan: o.plan))
    }
}
