import CortexCore
import Foundation

/// The deterministic planner: a goal matched against a table of rules (first match wins), each giving a
/// plan; works without a model. The table (docs/architecture.md, "Plans and routing"):
///
/// | goal | plan, per target |
/// |---|---|
/// | `fix CVE-2021-44228` (CVE-, GHSA-, GO-, PYSEC-, RUSTSEC- ids) | analyze (security) → implement (development) → test-branch (testing) |
/// | `implement <change>` | implement (development) → test-branch (testing) |
/// | `document …` | discover (inventory) → document (development) |
/// | `audit the cluster` | discover the cluster (inventory), audit the cluster (security) |
/// | `full-orchestration`, `full`, `all` | every master's routine subtask; document and monitor after discover |
/// | names masters (`security`, `inventory,testing`) | those masters' routine subtasks; document and monitor after discover when inventory is named |
public enum RulePlanner {
    /// One rule of the table: its name (reported with the plan) and whether a goal matches it.
    public struct Rule: Sendable {
        public var name: String
        public var pattern: String
        let matches: @Sendable (String) -> Bool
    }

    /// The rules, in the order they are tried.
    public static let rules: [Rule] = [
        Rule(name: "fix-advisory", pattern: "fix <advisory id> …", matches: { !advisoryIDs(in: $0).isEmpty && verb($0) == "fix" }),
        Rule(name: "implement", pattern: "implement <change>", matches: { verb($0) == "implement" && words($0).count > 1 }),
        Rule(name: "document", pattern: "document …", matches: { verb($0) == "document" }),
        Rule(name: "cluster-audit", pattern: "audit the cluster", matches: { let w = words($0); return w.first == "audit" && w.contains("cluster") }),
        Rule(name: "full-orchestration", pattern: "full-orchestration | full | all", matches: { isFull($0) }),
        Rule(name: "named-masters", pattern: "one or more master names", matches: { !namedMasters(in: $0).isEmpty }),
    ]

    /// The goals that mean every master.
    public static let fullGoals = ["full-orchestration", "full", "all"]

    /// The rule a goal matches, or nil (the goal is refused).
    public static func rule(for goal: String) -> Rule? { rules.first { $0.matches(goal) } }

    /// The plan for `request` by the first matching rule; nil when no rule matches.
    public static func plan(_ request: RunRequest, cluster: Bool) -> Plan? {
        guard let rule = rule(for: request.goal) else { return nil }
        let targets = Array(request.targets.enumerated())
        var subtasks: [Subtask] = []
        switch rule.name {
        case "fix-advisory":
            let ids = advisoryIDs(in: request.goal)
            for (i, target) in targets {
                subtasks += [
                    Subtask(id: "security.\(i)", kind: .analyze, master: .security, target: target, priority: .high, advisories: ids),
                    Subtask(id: "development.fix\(i)", kind: .implement, master: .development, target: target, dependsOn: ["security.\(i)"],
                            priority: .high, advisories: ids),
                    Subtask(id: "testing.branch\(i)", kind: .testBranch, master: .testing, target: target, dependsOn: ["development.fix\(i)"], priority: .high),
                ]
            }
        case "implement":
            let change = String(request.goal.trimmingCharacters(in: .whitespaces).dropFirst("implement".count)).trimmingCharacters(in: .whitespaces)
            for (i, target) in targets {
                subtasks += [
                    Subtask(id: "development.impl\(i)", kind: .implement, master: .development, target: target, instructions: [change]),
                    Subtask(id: "testing.branch\(i)", kind: .testBranch, master: .testing, target: target, dependsOn: ["development.impl\(i)"]),
                ]
            }
        case "document":
            for (i, target) in targets {
                subtasks += [
                    Subtask(id: "inventory.\(i)", kind: .discover, master: .inventory, target: target),
                    Subtask(id: "development.\(i)", kind: .document, master: .development, target: target, dependsOn: ["inventory.\(i)"],
                            instructions: request.implement),
                ]
            }
        case "cluster-audit":
            if cluster {
                subtasks += [Subtask(id: "inventory.cluster", kind: .discover, master: .inventory, target: ClusterSurvey.target),
                             Subtask(id: "security.cluster", kind: .audit, master: .security, target: ClusterSurvey.target)]
            }
        default:
            subtasks = routine(request, masters: rule.name == "full-orchestration" ? MasterRole.allCases : namedMasters(in: request.goal), cluster: cluster)
        }
        return Plan(planner: "rules", rule: rule.name, subtasks: subtasks)
    }

    /// Each master's routine subtask per target (ids `<master>.<index>`, stable for a resumed run) and, with a
    /// cluster, discovery and audit of it. What reads the catalog (documentation, monitoring) waits for
    /// the inventory of the same target when inventory is in the run: before, it would read an empty catalog.
    static func routine(_ request: RunRequest, masters: [MasterRole], cluster: Bool) -> [Subtask] {
        let kinds: [MasterRole: SubtaskKind] = [.inventory: .discover, .security: .scan, .development: .document, .cicd: .review,
                                                .testing: .test, .monitoring: .monitor]
        var subtasks: [Subtask] = []
        for master in masters {
            for (i, target) in request.targets.enumerated() {
                let readsCatalog = master == .development || master == .monitoring
                subtasks.append(Subtask(id: "\(master.rawValue).\(i)", kind: kinds[master]!, master: master, target: target,
                                        dependsOn: readsCatalog && masters.contains(.inventory) ? ["inventory.\(i)"] : [],
                                        instructions: master == .development ? request.implement : nil))
            }
        }
        if cluster && masters.contains(.inventory) {
            subtasks.append(Subtask(id: "inventory.cluster", kind: .discover, master: .inventory, target: ClusterSurvey.target))
        }
        if cluster && masters.contains(.security) {
            subtasks.append(Subtask(id: "security.cluster", kind: .audit, master: .security, target: ClusterSurvey.target))
        }
        return subtasks
    }

    /// The masters a goal names by name (`security`, `inventory,testing`).
    static func namedMasters(in goal: String) -> [MasterRole] {
        let w = words(goal)
        return MasterRole.allCases.filter { w.contains($0.rawValue) }
    }

    static func isFull(_ goal: String) -> Bool {
        let g = goal.lowercased().trimmingCharacters(in: .whitespaces)
        return fullGoals.contains(g) || g == "full orchestration"
    }

    /// Advisory ids in a goal (`CVE-2021-44228`, `GHSA-jfh8-c2jp-5v3q`, `GO-2022-0969`, `PYSEC-2021-1`, `RUSTSEC-2021-0001`), upper-cased but GHSA's tail.
    public static func advisoryIDs(in goal: String) -> [String] {
        let pattern = #"\b(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|GO-\d{4}-\d{4,}|PYSEC-\d{4}-\d+|RUSTSEC-\d{4}-\d{4})\b"#
        guard let regex = try? NSRegularExpression(pattern: pattern, options: [.caseInsensitive]) else { return [] }
        let ns = goal as NSString
        var out: [String] = []
        for m in regex.matches(in: goal, range: NSRange(location: 0, length: ns.length)) {
            var id = ns.substring(with: m.range)
            id = id.uppercased().hasPrefix("GHSA") ? "GHSA" + id.dropFirst(4).lowercased() : id.uppercased()
            if !out.contains(id) { out.append(id) }
        }
        return out
    }

    static func words(_ goal: String) -> [String] { goal.lowercased().split { !$0.isLetter }.map(String.init) }
    static func verb(_ goal: String) -> String? { words(goal).first }
}
