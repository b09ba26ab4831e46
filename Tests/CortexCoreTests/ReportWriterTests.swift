import CortexCore
@testable import CortexOrchestration
import Foundation
import Testing

@Suite struct ReportWriterTests {
    func report(_ master: MasterRole, items: [MasterReport.ItemSummary], status: String = "succeeded") -> MasterReport {
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
        let outcome = RunOutcome(request: request, status: "partial", reason: "incomplete results from security-master",
                                 phases: [(0, "pre-flight", Date(timeIntervalSince1970: 0))], tasks: tasks,
                                 reports: [report(.inventory, items: [ok]), report(.security, items: [buried], status: "partial")],
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
}
