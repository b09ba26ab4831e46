import CortexControl
import Foundation
import Testing

/// The short chaos suite (the same code as `scripts/chaos --short`): every scenario must end with the
/// run completed, nothing lost and nothing counted twice — and must prove its fault happened while the
/// run was in flight and had its effect, so a scenario whose fault missed the run fails.
@Suite(.serialized) struct ChaosTests {
    @Test(arguments: ChaosSuite.Scenario.allCases)
    func shortScenario(_ scenario: ChaosSuite.Scenario) async throws {
        let work = try temporaryDirectory("cortex-chaos")
        let rows = try await ChaosSuite.run([scenario], options: .init(full: false, workDirectory: work, binDirectory: binDirectory))
        let row = try #require(rows.first)
        let table = ChaosSuite.table(rows)
        #expect(row.run == "succeeded", "\(table)")
        #expect(row.submitted > 0)
        #expect(row.lost == 0)
        #expect(row.countedTwice == 0)
        #expect(row.completed == row.submitted, "\(row.failures)")
        #expect(!row.faults.hasPrefix("0 ×"), "no fault was injected")

        // In flight: the first fault strictly before the run was seen finished (ordering only, no timing).
        let injected = !row.faultsAt.isEmpty
        let inFlight = row.inFlight
        #expect(injected, "no fault instant recorded\n\(table)")
        #expect(inFlight, "the fault came after the run completed\n\(table)")
        // Effect: the scenario's decisive evidence counter (see docs/reliability.md) is above zero.
        let decisive = row.decisive
        let evidence = row.evidence[decisive] ?? 0
        let tookEffect = row.faultTookEffect
        #expect(!decisive.isEmpty)
        #expect(tookEffect, "\(decisive) = \(evidence): the fault had no effect on the run\n\(table)")
        try? FileManager.default.removeItem(at: work)
    }
}
