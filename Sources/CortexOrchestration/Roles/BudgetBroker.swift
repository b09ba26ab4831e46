import CortexCore
import Foundation
import Logging

/// The coordinator's side of budget requests (the design's failure scenario 4): an agent whose call the
/// ledger refused asks on cortex:masters:coordination; the broker decides from the request's priority,
/// the reserve left and the other agents' unused budget, moves budget with `BudgetLedger.transfer`, and
/// answers BUDGET_DECISION with the reason.
public struct BudgetBroker: Sendable {
    public let redis: RedisClient
    public let bus: MessageBus
    public let metrics: CortexMetrics
    public let logger: Logger

    public init(redis: RedisClient, bus: MessageBus, metrics: CortexMetrics, logger: Logger) {
        self.redis = redis
        self.bus = bus
        self.metrics = metrics
        self.logger = logger
    }

    /// A request as it travels in BUDGET_REQUEST.
    public struct Request: Sendable, Equatable {
        public var id: String
        public var runID: String
        public var agent: String
        /// The account that refused (the agent's own, e.g. `security`, or its workers', `security:workers`).
        public var account: String
        public var amount: Int
        /// low, normal, high or critical; only high and critical may draw on the emergency reserve.
        public var priority: String
        public var reason: String

        public init(id: String, runID: String, agent: String, account: String, amount: Int, priority: String, reason: String) {
            self.id = id
            self.runID = runID
            self.agent = agent
            self.account = account
            self.amount = amount
            self.priority = priority
            self.reason = reason
        }

        public init?(_ e: Envelope) {
            guard let runID = e.runID, let p = try? e.payload(BudgetRequested.self), p.amount > 0 else { return nil }
            self.init(id: p.requestID, runID: runID, agent: p.agent, account: p.account, amount: p.amount, priority: p.priority, reason: p.reason)
        }

        /// The request as BUDGET_REQUEST carries it.
        public var payload: BudgetRequested {
            BudgetRequested(requestID: id, agent: agent, account: account, amount: amount, priority: priority, reason: reason)
        }
    }

    public struct Decision: Sendable, Equatable {
        public var granted: Bool
        public var amount: Int
        public var reason: String
        /// Where the tokens came from: `account:amount` each.
        public var sources: [String]

        /// The decision as BUDGET_DECISION carries it, answering `request`.
        public func payload(answering request: Request) -> BudgetDecided {
            BudgetDecided(requestID: request.id, agent: request.agent, account: request.account, decision: granted ? "granted" : "denied",
                          amount: amount, reason: reason, sources: sources)
        }
    }

    static let reservePriorities: Set<String> = ["high", "critical"]

    /// Decides and moves budget, everything checked before anything moves. The account's own cap first:
    /// raised from other agents' unused budget, the largest first (the run and reserve accounts are never
    /// donors), and — for high or critical work only — what they cannot cover from the emergency reserve,
    /// which raises the run's cap by the same (the reserve lies outside it). Then the run's cap: only the
    /// reserve can raise it, and only for high or critical work. Every reason names the priority.
    public func decide(_ r: Request) async -> Decision {
        let ledger = BudgetLedger(redis: redis, runID: r.runID)
        func deny(_ reason: String) -> Decision { Decision(granted: false, amount: 0, reason: reason, sources: []) }
        let accounts: [BudgetLedger.Account]
        do { accounts = try await ledger.accounts() } catch { return deny("ledger unreadable: \(error) (\(r.priority) work)") }
        guard let target = accounts.first(where: { $0.name == r.account }) else { return deny("no budget account '\(r.account)' in run \(r.runID) (\(r.priority) work)") }
        guard let run = accounts.first(where: { $0.name == BudgetPlan.runAccount }) else { return deny("run \(r.runID) has no run account (\(r.priority) work)") }
        let reserve = accounts.first { $0.name == BudgetPlan.reserveAccount }
        let mayUseReserve = Self.reservePriorities.contains(r.priority)
        let kept = "the emergency reserve is kept for high or critical work (this is \(r.priority))"

        let accountShort = max(0, r.amount - target.available)
        let donors = accounts.filter { ![r.account, BudgetPlan.runAccount, BudgetPlan.reserveAccount].contains($0.name) && $0.available > 0 }
            .sorted { ($0.available, $1.name) > ($1.available, $0.name) }
        let unused = donors.reduce(0) { $0 + $1.available }
        let accountFromReserve = max(0, accountShort - unused)
        if accountFromReserve > 0 && !mayUseReserve {
            return deny("\(r.account) has \(target.available) tokens left and the other agents \(unused) unused, \(accountShort) needed; \(kept)")
        }
        // What the reserve gives the account already raised the run's cap by as much.
        let runShort = max(0, r.amount - run.available - accountFromReserve)
        if runShort > 0 && !mayUseReserve {
            return deny("the run's budget has \(run.available) of \(run.limit) tokens left; \(kept)")
        }
        let fromReserve = accountFromReserve + runShort
        if fromReserve > 0 && (reserve?.available ?? 0) < fromReserve {
            return deny("\(r.account) has \(target.available) tokens left, the other agents \(unused) unused, the run \(run.available) and the emergency reserve "
                        + "\(reserve?.available ?? 0): \(fromReserve) more needed from the reserve for \(r.priority) work")
        }
        var sources: [String] = []
        do {
            var fromDonors = accountShort - accountFromReserve
            for donor in donors where fromDonors > 0 {
                let take = min(fromDonors, donor.available)
                try await ledger.transfer(take, from: donor.name, to: r.account)
                sources.append("\(donor.name):\(take)")
                fromDonors -= take
            }
            if accountFromReserve > 0 {
                try await ledger.grantFromReserve(accountFromReserve, to: r.account)
                sources.append("\(BudgetPlan.reserveAccount):\(accountFromReserve)")
            }
            if runShort > 0 {
                try await ledger.transfer(runShort, from: BudgetPlan.reserveAccount, to: BudgetPlan.runAccount)
                sources.append("\(BudgetPlan.reserveAccount):\(runShort)")
            }
        } catch {
            // Another agent spent the budget between our read and the transfer: the transfer refused atomically.
            return deny("budget moved while deciding: \(error) (\(r.priority) work)")
        }
        let reason = (sources.isEmpty ? "\(r.account) and the run already have \(r.amount) tokens available" : "moved " + sources.joined(separator: ", "))
            + " for \(r.priority) work"
        return Decision(granted: true, amount: r.amount, reason: reason, sources: sources)
    }

    /// Decides one BUDGET_REQUEST envelope and publishes the BUDGET_DECISION.
    public func handle(_ envelope: Envelope) async {
        guard let request = Request(envelope) else {
            logger.warning("BUDGET_REQUEST without a usable run, account or amount ignored", metadata: [LogKey.messageID: "\(envelope.id)"])
            return
        }
        let decision = await decide(request)
        metrics.budgetRequest(decision: decision.granted ? "granted" : "denied")
        logger.notice("budget request of \(request.account) for \(request.amount) tokens (\(request.priority)) \(decision.granted ? "granted" : "denied"): \(decision.reason)", metadata: [
            LogKey.runID: "\(request.runID)", LogKey.budgetAgent: "\(request.agent)", LogKey.budgetAccount: "\(request.account)",
            LogKey.budgetAmount: "\(request.amount)", LogKey.budgetPriority: "\(request.priority)", LogKey.budgetReason: "\(decision.reason)",
        ])
        await bus.notify(decision.payload(answering: request), runID: request.runID)
    }
}
