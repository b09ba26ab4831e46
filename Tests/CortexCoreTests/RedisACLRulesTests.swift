import CortexCore
import Foundation
import Testing

/// The generated Redis ACL rules: complete (every key family granted somewhere), least privilege where the
/// issue promises it, and the chart's copy in step with the code. RedisACLTests runs them on a real server.
struct RedisACLRulesTests {
    @Test func theChartShipsTheGeneratedACLTemplate() throws {
        let committed = try String(contentsOf: PackagingTests.root.appendingPathComponent("charts/cortex/files/redis/users.acl"), encoding: .utf8)
        #expect(committed == RedisACL.chartTemplate, "regenerate: cortexctl docs acl-file > charts/cortex/files/redis/users.acl")
        let doc = try String(contentsOf: PackagingTests.root.appendingPathComponent("docs/redis-acl.md"), encoding: .utf8)
        #expect(doc == RedisACL.markdown(), "regenerate: cortexctl docs acl > docs/redis-acl.md")
        // The chart's start script and Secret know every role (the template's users, one password key each).
        let redis = try String(contentsOf: PackagingTests.root.appendingPathComponent("charts/cortex/templates/_helpers.tpl"), encoding: .utf8)
        #expect(redis.contains(RedisACL.Role.allCases.map(\.rawValue).joined(separator: " ")))
    }

    @Test func everyKeyFamilyIsGrantedToSomeRole() {
        let granted = Set(RedisACL.Role.allCases.flatMap { RedisACL.patterns(for: $0) })
        for family in CortexNames.KeyPattern.allCases where family != .budgetAccount {
            #expect(granted.contains(family.pattern) || family == .catalog && granted.contains(CortexNames.Catalog.allKeys),
                    "\(family.rawValue) (\(family.pattern)) is granted to no role: add it in RedisACL.rules(for:)")
        }
        // Every master's and pool's stream is someone's.
        for master in MasterRole.allCases { #expect(granted.contains(CortexNames.taskStream(master))) }
        for pool in WorkerPool.allCases { #expect(granted.contains(CortexNames.workStream(pool))) }
    }

    @Test func workersHaveNoBudgetKeysAndNoRoleHasAdminCommands() {
        let worker = RedisACL.rules(for: .worker)
        #expect(!worker.keys.contains { $0.pattern.hasPrefix("cortex:budget:") || $0.pattern == "cortex:*" }, "\(worker.keys)")
        #expect(!worker.keys.contains { $0.pattern == CortexNames.workStream(.implementation) })
        let implementer = RedisACL.rules(for: .implementationWorker)
        #expect(implementer.keys.filter { $0.pattern.hasPrefix("cortex:budget:") }.map(\.pattern).sorted()
                == [CortexNames.budgetAccountPattern("development:workers"), CortexNames.budgetAccountPattern("run"), CortexNames.KeyPattern.budgetReservation.pattern].sorted())
        // cortex-mcp submits runs and reads; it reads no catalog (catalog-api does), writes no budget,
        // reads nothing wholesale, and publishes on the system channel only (RUN_REQUESTED).
        let mcp = RedisACL.rules(for: .mcp)
        #expect(!mcp.keys.contains { $0.pattern == "cortex:*" || $0.pattern.hasPrefix("cortex:catalog") }, "\(mcp.keys)")
        #expect(mcp.keys.filter { $0.pattern.hasPrefix("cortex:budget:") }.allSatisfy { $0.access == .read }, "\(mcp.keys)")
        #expect(mcp.channels == [.eventsSystem] && !mcp.commands.contains("subscribe") && !mcp.commands.contains("eval"), "\(mcp.commands)")
        for role in RedisACL.Role.allCases {
            let rules = RedisACL.rules(for: role)
            for forbidden in ["flushall", "flushdb", "config", "keys", "shutdown", "acl", "debug", "module", "script", "scan"] {
                #expect(!rules.commands.contains(forbidden), "\(role.username) has \(forbidden)")
            }
            #expect(rules.commands.allSatisfy { !$0.hasPrefix("@") }, "\(role.username): categories are never granted whole")
            let text = RedisACL.ruleText(for: role, credential: .none)
            #expect(text.hasPrefix("on resetkeys ") && text.contains(" resetchannels ") && text.contains(" -@all +"), "\(text)")
        }
    }
}
