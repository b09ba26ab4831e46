import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// The planners and the router, without processes: the rule table, plan validation (closed sets, targets,
/// cycles), the model planner's parsing and fallbacks, and the router's decisions from learned records.
@Suite struct PlanTests {
    static func request(_ goal: String, targets: [String] = ["/repos/shop", "/repos/web"], implement: [String]? = nil) -> RunRequest {
        RunRequest(runID: "run-plan", goal: goal, targets: targets, requestedBy: "test", implement: implement)
    }

    static func edges(_ plan: Plan) -> [String] { plan.subtasks.flatMap { s in s.dependsOn.map { "\($0)->\(s.id)" } } }

    @Test func fixAdvisoryIsAnalyzeImplementTestBranchPerTarget() throws {
        let plan = try #require(RulePlanner.plan(Self.request("Fix CVE-2020-1747 please"), cluster: false))
        #expect(plan.rule == "fix-advisory" && plan.planner == "rules")
        #expect(plan.subtasks.map(\.id) == ["security.0", "development.fix0", "testing.branch0", "security.1", "development.fix1", "testing.branch1"])
        #expect(plan.subtasks.map(\.kind.rawValue) == ["analyze", "implement", "test-branch", "analyze", "implement", "test-branch"])
        #expect(Self.edges(plan) == ["security.0->development.fix0", "development.fix0->testing.branch0", "security.1->development.fix1", "development.fix1->testing.branch1"])
        #expect(plan.subtasks[1].advisories == ["CVE-2020-1747"])
        #expect(plan.rootMasters == [.security])
        #expect(plan.problem(targets: ["/repos/shop", "/repos/web"], cluster: false) == nil)
        #expect(RulePlanner.advisoryIDs(in: "fix ghsa-6757-JP84-gxfx and CVE-2021-44228") == ["GHSA-6757-jp84-gxfx", "CVE-2021-44228"])
    }

    @Test func theOtherRules() throws {
        let implement = try #require(RulePlanner.plan(Self.request("implement a health endpoint", targets: ["/r"]), cluster: false))
        #expect(implement.rule == "implement" && implement.subtasks.map(\.id) == ["development.impl0", "testing.branch0"])
        #expect(implement.subtasks[0].instructions == ["a health endpoint"])
        let document = try #require(RulePlanner.plan(Self.request("document the services", targets: ["/r"]), cluster: false))
        #expect(document.rule == "document" && Self.edges(document) == ["inventory.0->development.0"])
        let audit = try #require(RulePlanner.plan(Self.request("audit the cluster", targets: []), cluster: true))
        #expect(audit.rule == "cluster-audit" && audit.subtasks.map(\.id) == ["inventory.cluster", "security.cluster"])
        #expect(RulePlanner.plan(Self.request("audit the cluster", targets: []), cluster: false)?.subtasks.isEmpty == true)
        // A full orchestration: what reads the catalog (documentation, monitoring) waits for the inventory of its target.
        let full = try #require(RulePlanner.plan(Self.request("full-orchestration", targets: ["/r"]), cluster: false))
        #expect(full.subtasks.count == 6 && Self.edges(full) == ["inventory.0->development.0", "inventory.0->monitoring.0"])
        #expect(full.rootMasters == [.security, .inventory, .cicd, .testing])
        // Masters by name: the routine subtasks, with the dependency only when inventory is named too.
        let named = try #require(RulePlanner.plan(Self.request("security and monitoring", targets: ["/r"]), cluster: false))
        #expect(named.rule == "named-masters" && named.subtasks.map(\.id) == ["security.0", "monitoring.0"] && Self.edges(named).isEmpty)
        #expect(RulePlanner.plan(Self.request("make it better"), cluster: false) == nil)
        #expect(RunRequest(goal: "make it better", targets: ["/r"], requestedBy: "t").problem()?.contains("'fix CVE-…'") == true)
    }

    @Test func validationNamesTheProblem() {
        func plan(_ subtasks: [Subtask]) -> Plan { Plan(planner: "model", rule: "x", subtasks: subtasks) }
        let a = Subtask(id: "security.a", kind: .scan, master: .security, target: "/r", dependsOn: ["testing.c"])
        let b = Subtask(id: "development.b", kind: .implement, master: .development, target: "/r", dependsOn: ["security.a"], instructions: ["x"])
        let c = Subtask(id: "testing.c", kind: .testBranch, master: .testing, target: "/r", dependsOn: ["development.b"])
        #expect(plan([a, b, c]).problem(targets: ["/r"], cluster: false) == "the plan has a cycle: security.a → development.b → testing.c → security.a")
        let wrongMaster = Subtask(id: "monitoring.x", kind: .scan, master: .monitoring, target: "/r")
        #expect(plan([wrongMaster]).problem(targets: ["/r"], cluster: false) == "subtask monitoring.x: the monitoring master cannot scan a repository (scan is done by security)")
        #expect(plan([Subtask(id: "security.a", kind: .scan, master: .security, target: "/elsewhere")]).problem(targets: ["/r"], cluster: false)?
            .contains("is not a target of this run") == true)
        #expect(plan([Subtask(id: "security.a", kind: .scan, master: .security, target: "/r", dependsOn: ["ghost.1"])]).problem(targets: ["/r"], cluster: false)
            == "subtask security.a depends on 'ghost.1', which is not in the plan")
        #expect(plan([Subtask(id: "security/../x", kind: .scan, master: .security, target: "/r")]).problem(targets: ["/r"], cluster: false)?.contains("is not <master>.<name>") == true)
        #expect(plan([]).problem(targets: ["/r"], cluster: false) == "the plan has no subtasks")
    }

    static func answer(_ subtasks: String) -> String { "Here is the plan:\n```json\n{\"subtasks\": [\(subtasks)]}\n```" }

    @Test func theModelsPlanIsParsedAndCheckedAgainstTheClosedSets() throws {
        let request = Self.request("inventory, monitoring", targets: ["/r"])
        let rules = try #require(RulePlanner.plan(request, cluster: false))
        let valid = Self.answer("""
            {"id": "inventory.survey", "kind": "discover", "master": "inventory", "target": "/r"},
            {"id": "monitoring.dash", "kind": "monitor", "master": "monitoring", "target": "/r", "depends_on": ["inventory.survey"], "priority": "high"}
            """)
        let plan = try ModelPlanner.parse(valid, request: request, rules: rules, cluster: false).get()
        #expect(plan.planner == "model" && plan.subtasks.map(\.id) == ["inventory.survey", "monitoring.dash"] && plan.subtasks[1].priority == .high)
        let cycle = Self.answer("""
            {"id": "inventory.a", "kind": "discover", "master": "inventory", "target": "/r", "depends_on": ["monitoring.b"]},
            {"id": "monitoring.b", "kind": "monitor", "master": "monitoring", "target": "/r", "depends_on": ["inventory.a"]}
            """)
        #expect(throws: CortexError.self) { try ModelPlanner.parse(cycle, request: request, rules: rules, cluster: false).get() }
        if case .failure(let e) = ModelPlanner.parse(cycle, request: request, rules: rules, cluster: false) { #expect(e.message.contains("cycle: inventory.a → monitoring.b → inventory.a"), "\(e)") }
        let unknown = Self.answer("""
            {"id": "finance.a", "kind": "discover", "master": "finance", "target": "/r"}
            """)
        if case .failure(let e) = ModelPlanner.parse(unknown, request: request, rules: rules, cluster: false) {
            #expect(e.message.hasPrefix("subtask finance.a names an unknown master 'finance'"), "\(e)")
        } else { Issue.record("an unknown master was accepted") }
        if case .failure(let e) = ModelPlanner.parse("I would start with the inventory.", request: request, rules: rules, cluster: false) {
            #expect(e.message.hasPrefix("the answer holds no JSON object"), "\(e)")
        } else { Issue.record("prose was accepted as a plan") }
    }

    static func records(_ rows: [(String, Double, Double)], feature: String = "repo:shop") -> [ExpertRouter.RecordKey: ExpertRouter.Record] {
        var out: [ExpertRouter.RecordKey: ExpertRouter.Record] = [:]
        for (expert, trials, successes) in rows {
            var r = ExpertRouter.Record()
            r.trials = trials
            r.successes = successes
            out[ExpertRouter.RecordKey(kind: "scan", dimension: "advisories", expert: expert, feature: feature)] = r
        }
        return out
    }

    /// The documented rule: the preferred expert starts with two pseudo-successes, so it keeps the lead
    /// through two failures, ties on the third look (ties go to it), and loses it after three.
    @Test func theRouterSwitchesAfterThreeFailuresOfThePreferredExpert() {
        let subtask = Subtask(id: "security.0", kind: .scan, master: .security, target: "/repos/shop")
        func pick(_ failures: Double) -> RoutingDecision {
            ExpertRouter.decide(subtask, runID: "run-\(Int(failures))", dimension: "advisories", experts: ["osv-api", "offline-db"],
                                records: failures == 0 ? [:] : Self.records([("osv-api", failures, 0)]), exploration: 0)
        }
        #expect(pick(0).chosen == "osv-api" && pick(0).feature == "*")
        #expect(pick(1).chosen == "osv-api" && pick(1).feature == "repo:shop")
        #expect(pick(2).chosen == "osv-api")  // 3/6 = 0.5, a tie with the untried 1/2: the preferred expert keeps it
        let fourth = pick(3)
        #expect(fourth.chosen == "offline-db", "\(fourth)")
        #expect(fourth.candidates.map(\.weight) == [0.429, 0.5])
        // Another target has no history: the record over all targets decides.
        let other = ExpertRouter.decide(Subtask(id: "security.1", kind: .scan, master: .security, target: "/repos/web"), runID: "r", dimension: "advisories",
                                        experts: ["osv-api", "offline-db"], records: Self.records([("osv-api", 3, 0)]), exploration: 0)
        #expect(other.feature == "*" && other.chosen == "osv-api")
        // Exploration is decided by a hash of run and subtask: the same inputs, the same decision.
        let explored = (0..<200).map { i in
            ExpertRouter.decide(subtask, runID: "run-\(i)", dimension: "advisories", experts: ["osv-api", "offline-db"], records: Self.records([("osv-api", 1, 1)]), exploration: 0.1)
        }
        let exploring = explored.filter { $0.why.hasPrefix("exploring") }.count
        #expect((5...40).contains(exploring), "\(exploring) of 200 explored")
        #expect(explored.filter { $0.why.hasPrefix("exploring") }.allSatisfy { $0.chosen == "offline-db" })
    }
}

extension PlanTests {
    /// What the model may not do that the closed sets alone would allow: write where the goal asks for no
    /// change, make several changes in one subtask, test a branch nobody makes, mark work critical, take
    /// the names kept for handoffs.
    @Test func theModelMayNotWriteWhereTheGoalAsksForNoChange() throws {
        let request = Self.request("inventory, monitoring", targets: ["/r"])
        let rules = try #require(RulePlanner.plan(request, cluster: false))
        func problem(_ subtasks: String, _ req: RunRequest? = nil, _ rulePlan: Plan? = nil) -> String? {
            if case .failure(let e) = ModelPlanner.parse(Self.answer(subtasks), request: req ?? request, rules: rulePlan ?? rules, cluster: false) { return e.message }
            return nil
        }
        #expect(problem(#"{"id": "development.x", "kind": "implement", "master": "development", "target": "/r", "instructions": ["rm -rf"]}"#)?
            .hasPrefix("subtask development.x implements a change, but the goal 'inventory, monitoring' asks for none") == true)
        #expect(problem(#"{"id": "inventory.handoff1", "kind": "discover", "master": "inventory", "target": "/r"}"#) == "subtask inventory.handoff1: names starting with 'handoff' are kept for handoffs")
        let fix = Self.request("fix CVE-2020-1747", targets: ["/r"])
        let fixRules = try #require(RulePlanner.plan(fix, cluster: false))
        #expect(problem(#"{"id": "development.x", "kind": "implement", "master": "development", "target": "/r", "instructions": ["a", "b"]}"#, fix, fixRules)?
            .hasPrefix("subtask development.x must make one change") == true)
        #expect(problem(#"{"id": "testing.x", "kind": "test-branch", "master": "testing", "target": "/r"}"#, fix, fixRules)
            == "subtask testing.x tests a branch, but depends on no implement subtask that makes one")
        let critical = try ModelPlanner.parse(Self.answer(#"{"id": "inventory.a", "kind": "discover", "master": "inventory", "target": "/r", "priority": "critical"}"#),
                                              request: request, rules: rules, cluster: false).get()
        #expect(critical.subtasks[0].priority == .high)
        // The model's plan for a fix: analysis, then the change the analysis finds, then its test.
        let fixPlan = try ModelPlanner.parse(Self.answer("""
            {"id": "security.scan", "kind": "analyze", "master": "security", "target": "/r"},
            {"id": "development.bump", "kind": "implement", "master": "development", "target": "/r", "depends_on": ["security.scan"]},
            {"id": "testing.bump", "kind": "test-branch", "master": "testing", "target": "/r", "depends_on": ["development.bump"]}
            """), request: fix, rules: fixRules, cluster: false).get()
        #expect(fixPlan.subtasks[1].advisories == ["CVE-2020-1747"])
    }
}
