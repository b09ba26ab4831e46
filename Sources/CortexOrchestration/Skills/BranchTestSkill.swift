import CortexCore
import Foundation

/// testing: the tests of a branch another subtask produced (placeholder until the skill lands).
public struct BranchTestSkill: WorkSkill {
    public init() {}

    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        throw CortexError(.invalidInput, "branch tests are not built yet")
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        SkillSummary(headline: "branch tests", markdown: "", details: .object([:]))
    }
}
