import CortexControl
import CortexCore
@testable import CortexOrchestration
import Foundation
import Testing

@Suite struct ReportWriterTests {
    func report(_ master: MasterRole, items: [MasterReport.ItemSummary], status: Outcome = .succeeded) -> MasterReport {
        MasterReport(taskID: "run-x.\(master.rawValue).0", runID: "run-x", master: master, instance: "\(master.processName)-1", target: "/srv/shop",
                     status: status, summary: "summary of \(master.rawValue)", markdown: "### Section\n", details: .object([:]), items: items,
                     startedAt: Date(timeIntervalSince1970: 0), finishedAt: Date(timeIntervalSince1970: 1))
    }

    @Test func summaryListsMastersDeadLettersAndUnfinishedTasks() throws {
        let request = RunRequest(runID: "run-x", goal: "full-orchestration", targets: ["/srv/shop"], requestedBy: "test")
        let tasks = TaskRouter.decompose(request)
        let ok = MasterReport.ItemSummary(itemID: "run-x.inventory.0.0", pool: .catalog, worker: "w1", node: "n1", status: .succeeded, durationMs: 5, filesExamined: 3, error: nil)
        let buried = MasterReport.ItemSummary(itemID: "run-x.security.0.2", pool: .scan, worker: "w2", node: "n2", status: .failed, durationMs: 0,
                                              filesExamined: 0, error: "dead-lettered after 6 deliveries without completing")
        let outcome = RunOutcome(request: request, status: .partial, reason: "incomplete results from security-master",
                                 phases: [(0, "pre-flight", Date(timeIntervalSince1970: 0))], tasks: tasks,
                                 reports: [report(.inventory, items: [ok]), report(.security, items: [buried], status: .partial)],
                                 startedAt: Date(timeIntervalSince1970: 0), finishedAt: Date(timeIntervalSince1970: 2))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let written = try ReportWriter.write(outcome, to: dir)
        let md = try String(contentsOf: written.appendingPathComponent("summary.md"), encoding: .utf8)
        #expect(md.contains("## Dead-lettered work items"))
        #expect(md.contains("`run-x.security.0.2` (security-master, /srv/shop): dead-lettered after 6 deliveries"))
        #expect(md.contains("Unfinished tasks: `run-x.development.0`"))
        #expect(md.contains("| w1 | n1 | 1 | 5 ms |"))
        #expect(md.contains("PARTIAL"))
        let summary = ReportWriter.executiveSummary(outcome)
        #expect(summary.contains("development-master  NO REPORT (1 task(s) unfinished)"))
        #expect(FileManager.default.fileExists(atPath: written.appendingPathComponent("masters/security-0.json").path))
    }

    /// A report directory that is not readable here (cortex-mcp or cortexctl without the coordinator's
    /// reports volume) is an error, not "no findings"; one whose run ended before any master reported has none.
    @Test func findingsOfAReportDirectoryThatIsNotHereAreAnErrorNotNone() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-findings-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: CortexError.self) { _ = try RunFindings.load(reportDirectory: dir) }
        do { _ = try RunFindings.load(reportDirectory: dir) } catch let error as CortexError {
            #expect(error.message.contains("\(dir.path) is not readable here"), "\(error.message)")
        }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        #expect(try RunFindings.load(reportDirectory: dir).isEmpty)
        let masters = dir.appendingPathComponent("masters")
        try FileManager.default.createDirectory(at: masters, withIntermediateDirectories: true)
        try Data(#"{"master":"security","target":"/srv/shop","details":{"secrets":[{"rule":"aws-access-key","file":"app.env","line":3}]}}"#.utf8)
            .write(to: masters.appendingPathComponent("security.json"))
        let findings = try RunFindings.load(reportDirectory: dir)
        #expect(findings.count == 1 && findings[0]["where"] == "app.env:3" && findings[0]["severity"] == "high", "\(findings)")

        // The watch screen says the findings were not counted, and why, instead of showing zeros.
        var model = RunWatchModel(runID: "run-x")
        model.findingsUnavailable = "the report directory /var/lib/cortex-reports/run-x is not readable here"
        let screen = model.render(width: 160, height: 40).joined(separator: "\n")
        #expect(screen.contains("FINDINGS  not counted: the report directory /var/lib/cortex-reports/run-x is not readable here") && !screen.contains("critical 0"), "\(screen)")
    }
}

@Suite struct BudgetPlanTests {
    @Test func designDefaultsAndOverrides() throws {
        let plan = try BudgetPlan.configured(total: nil, reserve: nil, agents: nil)
        #expect(plan == .design)
        #expect(plan.accounts["development:workers"] == 20_000 && plan.accounts["reserve"] == 25_000)
        #expect(plan.accounts["run"] == 270_000 && plan.accounts.count == 16)
        let custom = try BudgetPlan.configured(total: 400_000, reserve: 50_000, agents: "development=100000+40000, security=10000+5000")
        #expect(custom.agents["development"] == .init(100_000, 40_000))
        #expect(custom.agents["inventory"] == .init(35_000, 15_000))
    }

    @Test func badBudgetsAreClearErrors() {
        #expect(throws: ConfigurationError.self) { try BudgetPlan.configured(total: nil, reserve: nil, agents: "developer=1+2") }
        #expect(throws: ConfigurationError.self) { try BudgetPlan.configured(total: nil, reserve: nil, agents: "development=lots") }
        do {
            _ = try BudgetPlan.configured(total: 20_000, reserve: nil, agents: nil)
            Issue.record("expected an error")
        } catch let e as ConfigurationError {
            #expect(e.description.contains("must be less than the total budget (20000)"))
        } catch { Issue.record("\(error)") }
    }
}
