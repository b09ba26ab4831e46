import CortexCore
import Foundation
import Logging
import Tracing

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
    /// Where a settlement goes when Redis stays unreachable after the call (replayed on reconnect).
    public let journal: Journal?
    let metrics: CortexMetrics?

    public init(client: any LLMClient, bus: MessageBus, agent: String, logger: Logger, decisionTimeout: Duration = .seconds(10),
                journal: Journal? = nil, metrics: CortexMetrics? = nil) {
        self.client = client
        self.bus = bus
        self.agent = agent
        self.logger = logger
        self.decisionTimeout = decisionTimeout
        self.journal = journal
        self.metrics = metrics
    }

    /// What one metered call came to.
    public enum Outcome: Sendable {
        case done(LLMResponse, charged: Int)
        case denied(String)
        case failed(String)
    }

    /// Calls the model for `runID`, drawing on `account` (e.g. `security`, or `security:workers` for its workers).
    /// `priority` is the task's: it goes into the budget request when the ledger refuses, and decides
    /// whether the emergency reserve may cover it.
    public func complete(_ request: LLMRequest, runID: String, account: String, priority: TaskPriority = .normal, purpose: String) async -> Outcome {
        let ledger = BudgetLedger(redis: bus.redis, runID: runID)
        let accounts = [account, BudgetPlan.runAccount]
        let estimate = request.estimatedTokens
        var reservation: BudgetLedger.Reservation
        do {
            reservation = try await ledger.reserve(estimate, from: accounts)
        } catch let refusal as BudgetLedger.Refusal {
            logger.notice("budget refused \(estimate) tokens for \(purpose): \(refusal); asking the coordinator")
            let answer = await requestBudget(runID: runID, account: account, amount: estimate, priority: priority.rawValue, reason: "\(purpose): \(refusal)")
            guard answer.granted else { return .denied(answer.reason) }
            do {
                reservation = try await ledger.reserve(estimate, from: accounts)
            } catch {
                return .denied("granted, but the budget was gone again: \(error)")
            }
        } catch {
            return .failed("ledger unavailable: \(error)")
        }
        // The call's span (OpenTelemetry's GenAI names): a child of the task or work item that asked.
        return await withSpan("chat \(client.model)", ofKind: .client) { span in
            span.attributes["gen_ai.operation.name"] = "chat"
            span.attributes["gen_ai.request.model"] = client.model
            span.attributes["gen_ai.request.max_tokens"] = request.maxTokens
            span.attributes["cortex.llm.purpose"] = purpose
            span.attributes["cortex.budget.account"] = account
            span.attributes["cortex.run.id"] = runID
            do {
                let response = try await client.complete(request)
                let charged = response.usage?.total ?? estimate
                if response.usage == nil { logger.notice("the provider reported no usage; charging the estimate of \(estimate) tokens") }
                span.attributes["gen_ai.response.model"] = response.model
                if let usage = response.usage {
                    span.attributes["gen_ai.usage.input_tokens"] = usage.inputTokens
                    span.attributes["gen_ai.usage.output_tokens"] = usage.outputTokens
                }
                span.attributes["cortex.tokens.charged"] = charged
                await settle(reservation, actual: charged, ledger: ledger, purpose: purpose)
                return .done(response, charged: charged)
            } catch {
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: "\(error)"))
                await settle(reservation, actual: 0, ledger: ledger, purpose: purpose)
                return .failed("\(error)")
            }
        }
    }

    /// Commits the usage of a paid call (or releases an unused reservation): retried for a few seconds,
    /// then journaled like every critical write, so usage is never lost and the reservation never leaks.
    func settle(_ reservation: BudgetLedger.Reservation, actual: Int, ledger: BudgetLedger, purpose: String) async {
        var delay = Duration.milliseconds(200)
        var lastError: (any Error)?
        for attempt in 1...4 {
            do {
                guard try await ledger.commit(reservation, actual: actual) else {
                    // The reservation was gone: expired (a day after it was made) or settled by someone else.
                    logger.error("budget reservation \(reservation.id) for \(purpose) no longer exists; \(actual) tokens of usage not recorded")
                    metrics?.budgetSettlement(outcome: "expired")
                    return
                }
                if attempt > 1 { logger.notice("budget settled for \(purpose) after \(attempt) attempts") }
                return
            } catch {
                lastError = error
                if attempt < 4 { try? await Task.sleep(for: delay) }
                delay = delay * 2
            }
        }
        let what = actual > 0 ? "usage of \(actual) tokens" : "release of \(reservation.amount) reserved tokens"
        guard let journal else {
            logger.error("budget \(what) for \(purpose) not recorded and no journal to keep it: \(lastError.map { "\($0)" } ?? "")")
            metrics?.budgetSettlement(outcome: "lost")
            return
        }
        do {
            try await journal.append(ledger.settleCommands(reservation, actual: actual), onlyIfExists: ledger.settleGuard(reservation))
            logger.warning("budget \(what) for \(purpose) journaled for replay (Redis: \(lastError.map { "\($0)" } ?? ""))")
            metrics?.budgetSettlement(outcome: "journaled")
        } catch {
            logger.error("budget \(what) for \(purpose) could not be committed nor journaled: \(error)")
            metrics?.budgetSettlement(outcome: "lost")
        }
    }

    /// Publishes BUDGET_REQUEST and waits for the matching BUDGET_DECISION.
    func requestBudget(runID: String, account: String, amount: Int, priority: String, reason: String) async -> (granted: Bool, reason: String) {
        let request = BudgetBroker.Request(id: UUID().uuidString.lowercased(), runID: runID, agent: agent, account: account, amount: amount,
                                           priority: priority, reason: reason)
        let (subscriber, envelopes) = bus.subscribe([.mastersCoordination])
        defer { subscriber.stop() }
        // Subscribing is part of waiting for the decision: it gets the same bound (a fixed 5 s turned a
        // loaded machine's slow subscription into a denial).
        guard await subscriber.waitUntilSubscribed(timeout: decisionTimeout) else {
            return (false, "could not subscribe for the decision within \(decisionTimeout)")
        }
        do {
            try await bus.publish(request.payload, runID: runID)
        } catch {
            return (false, "could not send the budget request: \(error)")
        }
        let answer = Task { () -> (Bool, String)? in
            for await e in envelopes where e.type == .BUDGET_DECISION {
                guard let decision = try? e.payload(BudgetDecided.self), decision.requestID == request.id else { continue }
                return (decision.granted, decision.reason)
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
