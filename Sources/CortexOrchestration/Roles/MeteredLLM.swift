import CortexCore
import Foundation
import Logging

/// Every LLM call an agent makes goes through here: an estimate is reserved on the agent's account and
/// the run's before the call (all or nothing, atomically), the real usage is committed after it (the
/// estimate when the provider reports none), and the reservation is released if the call fails. When the
/// ledger refuses, the agent asks the coordinator for budget and waits for the decision.
public struct MeteredLLM: Sendable {
    public let client: any LLMClient
    public let bus: MessageBus
    public let agent: String
    public let logger: Logger
    /// How long to wait for a BUDGET_DECISION before giving up (a missing coordinator must not hang work).
    public let decisionTimeout: Duration

    public init(client: any LLMClient, bus: MessageBus, agent: String, logger: Logger, decisionTimeout: Duration = .seconds(10)) {
        self.client = client
        self.bus = bus
        self.agent = agent
        self.logger = logger
        self.decisionTimeout = decisionTimeout
    }

    /// What one metered call came to.
    public enum Outcome: Sendable {
        case done(LLMResponse, charged: Int)
        case denied(String)
        case failed(String)
    }

    /// Calls the model for `runID`, drawing on `account` (e.g. `security`, or `security:workers` for its workers).
    public func complete(_ request: LLMRequest, runID: String, account: String, priority: String = "normal", purpose: String) async -> Outcome {
        let ledger = BudgetLedger(redis: bus.redis, runID: runID)
        let accounts = [account, BudgetPlan.runAccount]
        let estimate = request.estimatedTokens
        var reservation: BudgetLedger.Reservation
        do {
            reservation = try await ledger.reserve(estimate, from: accounts)
        } catch let refusal as BudgetLedger.Refusal {
            logger.notice("budget refused \(estimate) tokens for \(purpose): \(refusal); asking the coordinator")
            let answer = await requestBudget(runID: runID, account: account, amount: estimate, priority: priority, reason: "\(purpose): \(refusal)")
            guard answer.granted else { return .denied(answer.reason) }
            do {
                reservation = try await ledger.reserve(estimate, from: accounts)
            } catch {
                return .denied("granted, but the budget was gone again: \(error)")
            }
        } catch {
            return .failed("ledger unavailable: \(error)")
        }
        do {
            let response = try await client.complete(request)
            let charged = response.usage?.total ?? estimate
            if response.usage == nil { logger.notice("the provider reported no usage; charging the estimate of \(estimate) tokens") }
            _ = try? await ledger.commit(reservation, actual: charged)
            return .done(response, charged: charged)
        } catch {
            _ = try? await ledger.release(reservation)
            return .failed("\(error)")
        }
    }

    /// Publishes BUDGET_REQUEST and waits for the matching BUDGET_DECISION.
    func requestBudget(runID: String, account: String, amount: Int, priority: String, reason: String) async -> (granted: Bool, reason: String) {
        let request = BudgetBroker.Request(id: UUID().uuidString.lowercased(), runID: runID, agent: agent, account: account, amount: amount,
                                           priority: priority, reason: reason)
        let (subscriber, envelopes) = bus.subscribe([.mastersCoordination])
        defer { subscriber.stop() }
        guard await subscriber.waitUntilSubscribed() else { return (false, "could not subscribe for the decision") }
        do {
            try await bus.publish(.BUDGET_REQUEST, runID: runID, data: request.data)
        } catch {
            return (false, "could not send the budget request: \(error)")
        }
        let answer = Task { () -> (Bool, String)? in
            for await e in envelopes where e.type == .BUDGET_DECISION && e.string("request_id") == request.id {
                return (e.string("decision") == "granted", e.string("reason") ?? "")
            }
            return nil
        }
        let timeout = Task {
            try? await Task.sleep(for: decisionTimeout)
            answer.cancel()
            subscriber.stop()
        }
        defer { timeout.cancel() }
        if let (granted, reason) = await answer.value { return (granted, reason) }
        return (false, "no BUDGET_DECISION within \(decisionTimeout) (is the coordinator running?)")
    }
}
