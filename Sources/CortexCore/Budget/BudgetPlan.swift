/// How a run's token budget is divided: the design's table by default, all of it configurable.
///
/// Each agent (the coordinator and the six masters) has a personal budget and one its workers draw
/// from; the coordinator also holds the emergency reserve. Agent budgets are caps, not shares: the
/// design's own table gives the agents 340,000 out of an active 270,000, so every call also draws on
/// the run's cap (`run` = total less reserve), which is what no run may exceed. Accounts are named
/// `<agent>` and `<agent>:workers`, plus `run` and `reserve`.
public struct BudgetPlan: Sendable, Equatable {
    public var total: Int
    public var reserve: Int
    /// agent -> (personal, workers)
    public var agents: [String: Split]

    public struct Split: Sendable, Equatable {
        public var personal: Int
        public var workers: Int
        public init(_ personal: Int, _ workers: Int) {
            self.personal = personal
            self.workers = workers
        }
    }

    /// The run-wide cap every call draws on besides its agent's accounts.
    public static let runAccount = "run"
    /// The emergency reserve the coordinator holds (outside the run's cap).
    public static let reserveAccount = "reserve"

    /// The agents in report order.
    public static let agentOrder = ["coordinator"] + MasterRole.allCases.map(\.rawValue)

    /// The design's numbers: 295,000 in all, 25,000 in reserve.
    public static let design = BudgetPlan(
        total: 295_000, reserve: 25_000,
        agents: [
            "coordinator": .init(50_000, 30_000), "security": .init(30_000, 15_000), "development": .init(30_000, 20_000),
            "inventory": .init(35_000, 15_000), "cicd": .init(25_000, 20_000), "testing": .init(25_000, 15_000),
            "monitoring": .init(20_000, 10_000),
        ])

    /// The design's plan with overrides: `total`, `reserve`, and `agent=personal+workers,...`.
    public static func configured(total: Int?, reserve: Int?, agents overrides: String?) throws -> BudgetPlan {
        var plan = design
        if let total { plan.total = total }
        if let reserve { plan.reserve = reserve }
        for item in (overrides ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let parts = item.split(separator: "=")
            let numbers = parts.count == 2 ? parts[1].split(separator: "+").compactMap { Int($0) } : []
            guard parts.count == 2, numbers.count == 2, numbers.allSatisfy({ $0 >= 0 }), agentOrder.contains(String(parts[0])) else {
                throw ConfigurationError("CORTEX_BUDGETS entry '\(item)' is not agent=personal+workers (agents: \(agentOrder.joined(separator: ", ")))")
            }
            plan.agents[String(parts[0])] = .init(numbers[0], numbers[1])
        }
        guard plan.total > 0, plan.reserve >= 0, plan.reserve < plan.total else {
            throw ConfigurationError("the reserve (\(plan.reserve)) must be less than the total budget (\(plan.total))")
        }
        return plan
    }

    /// Account name -> limit, for `BudgetLedger.open`.
    public var accounts: [String: Int] {
        var out = ["reserve": reserve, "run": total - reserve]
        for (agent, split) in agents {
            out[agent] = split.personal
            out["\(agent):workers"] = split.workers
        }
        return out
    }
}
