import CortexControl
import Foundation
import Testing

/// The short chaos suite (the same code as `scripts/chaos --short`): every scenario must end with the
/// run completed, nothing lost and nothing counted twice.
@Suite(.serialized) struct ChaosTests {
    @Test(arguments: ChaosSuite.Scenario.allCases)
    func shortScenario(_ scenario: ChaosSuite.Scenario) async throws {
        let work = try temporaryDirectory("cortex-chaos")
        let rows = try await ChaosSuite.run([scenario], options: .init(full: false, workDirectory: work, binDirectory: binDirectory))
        let row = try #require(rows.first)
        #expect(row.run == "succeeded", "\(ChaosSuite.table(rows))")
        #expect(row.submitted > 0)
        #expect(row.lost == 0)
        #expect(row.countedTwice == 0)
        #expect(row.completed == row.submitted, "\(row.failures)")
        #expect(!row.faults.hasPrefix("0 ×"), "no fault was injected")
        try? FileManager.default.removeItem(at: work)
    }
}
