import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Logging
import Testing

/// LLM clients against a local server speaking the providers' wire formats, and every call metered on
/// the ledger, with budget requests decided by the coordinator's broker.
@Suite(.serialized) struct LLMAndBudgetTests {
    static let logger = Logger(label: "test")
    static let key = "sk-test-secret-key-0042"

    /// A generous request timeout: a timed-out request is retried and takes the next scripted answer, so on a
    /// loaded machine a short one made the scripted tests fail for the wrong reason.
    static func configuration(_ server: FakeLLMServer, _ provider: LLMProvider, retries: Int = 3) -> LLMConfiguration {
        LLMConfiguration(provider: provider, model: "test-model", baseURL: server.baseURL, apiKey: key, timeout: .seconds(30),
                         maxRetries: retries, maxRetryWait: .seconds(5), maxTokens: 200)
    }

    static let request = LLMRequest(
        system: "You are terse.", messages: [.init(.user, "Assess: 3 critical CVEs in openssl.")], maxTokens: 200,
        tools: [.init(name: "open_ticket", description: "Open a ticket", inputSchema: ["type": "object", "properties": ["title": ["type": "string"]]])])

    @Test func anthropicMessagesWireFormat() async throws {
        let server = FakeLLMServer()
        try await server.start()
        defer { server.stop() }
        server.script.withLock { $0 = [.init(status: 200, body: #"""
            {"id":"msg_1","type":"message","role":"assistant","model":"test-model-2026","stop_reason":"tool_use",
             "content":[{"type":"text","text":"Patch first."},{"type":"tool_use","id":"toolu_1","name":"open_ticket","input":{"title":"Patch openssl"}}],
             "usage":{"input_tokens":120,"output_tokens":30,"cache_read_input_tokens":7}}
            """#)] }
        let response = try await Self.configuration(server, .anthropic).client(logger: Self.logger).complete(Self.request)
        #expect(response.text == "Patch first." && response.model == "test-model-2026" && response.stopReason == "tool_use")
        #expect(response.toolCalls == [.init(id: "toolu_1", name: "open_ticket", input: ["title": "Patch openssl"])])
        #expect(response.usage == LLMUsage(inputTokens: 127, outputTokens: 30))
        let sent = try #require(server.recorded.value.first)
        #expect(sent.path == "/v1/messages")
        #expect(sent.headers["x-api-key"] == Self.key && sent.headers["anthropic-version"] == "2023-06-01")
        #expect(sent.body["model"] == "test-model" && sent.body["max_tokens"] == 200 && sent.body["system"] == "You are terse.")
        #expect(sent.body["messages"] == [["role": "user", "content": "Assess: 3 critical CVEs in openssl."]])
        #expect(sent.body["tools"]?[0]?["name"] == "open_ticket" && sent.body["tools"]?[0]?["input_schema"]?["type"] == "object")
    }

    @Test func openAICompatibleWireFormat() async throws {
        let server = FakeLLMServer()
        try await server.start()
        defer { server.stop() }
        server.script.withLock { $0 = [.init(status: 200, body: #"""
            {"id":"c1","object":"chat.completion","model":"llama3.1:8b","choices":[{"index":0,"finish_reason":"tool_calls",
             "message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"open_ticket","arguments":"{\"title\":\"Patch openssl\"}"}}]}}],
             "usage":{"prompt_tokens":80,"completion_tokens":12,"total_tokens":92}}
            """#)] }
        let response = try await Self.configuration(server, .openai).client(logger: Self.logger).complete(Self.request)
        #expect(response.toolCalls == [.init(id: "call_1", name: "open_ticket", input: ["title": "Patch openssl"])])
        #expect(response.usage == LLMUsage(inputTokens: 80, outputTokens: 12) && response.model == "llama3.1:8b")
        let sent = try #require(server.recorded.value.first)
        #expect(sent.path == "/v1/chat/completions" && sent.headers["authorization"] == "Bearer \(Self.key)")
        #expect(sent.body["messages"] == [["role": "system", "content": "You are terse."], ["role": "user", "content": "Assess: 3 critical CVEs in openssl."]])
        #expect(sent.body["tools"]?[0]?["type"] == "function" && sent.body["tools"]?[0]?["function"]?["parameters"]?["type"] == "object")
        // A server that reports no usage: the response says so (the caller is charged the estimate).
        server.usage.withLock { $0 = nil }
        #expect(try await Self.configuration(server, .openai).client(logger: Self.logger).complete(Self.request).usage == nil)
    }

    @Test func retriesHonourRetryAfterAndClientErrorsAreNot() async throws {
        let server = FakeLLMServer()
        try await server.start()
        defer { server.stop() }
        let overloaded = #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        server.script.withLock { $0 = [.init(status: 429, headers: ["Retry-After": "1"], body: overloaded), .init(status: 529, body: overloaded)] }
        let started = ContinuousClock.now
        let response = try await Self.configuration(server, .anthropic).client(logger: Self.logger).complete(Self.request)
        #expect(response.text == FakeLLMServer.anthropicText && server.recorded.value.count == 3)
        #expect(ContinuousClock.now - started >= .seconds(1), "Retry-After: 1 was honoured")

        server.script.withLock { $0 = [.init(status: 400, body: #"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#)] }
        do {
            _ = try await Self.configuration(server, .anthropic).client(logger: Self.logger).complete(Self.request)
            Issue.record("a 400 was accepted")
        } catch let e as LLMError {
            #expect(e.status == 400 && !e.retryable && e.description.contains("max_tokens: too large"))
            #expect(!e.description.contains(Self.key))
        }
        #expect(server.recorded.value.count == 4, "a client error is not retried")

        server.script.withLock { $0 = [.init(status: 500, body: "oops"), .init(status: 500, body: "oops")] }
        await #expect(throws: LLMError.self) { try await Self.configuration(server, .anthropic, retries: 1).client(logger: Self.logger).complete(Self.request) }
        #expect(server.recorded.value.count == 6, "one retry, then the error")

        // Malformed answers are errors that say what was wrong, not crashes or empty successes.
        server.script.withLock { $0 = [.init(status: 200, body: "{\"content\": [tru"), .init(status: 200, body: #"{"id":"x","object":"chat.completion"}"#)] }
        do {
            _ = try await Self.configuration(server, .anthropic).client(logger: Self.logger).complete(Self.request)
            Issue.record("malformed JSON was accepted")
        } catch let e as LLMError { #expect(e.description.hasSuffix("answered 200 with a body that is not JSON")) }
        do {
            _ = try await Self.configuration(server, .openai).client(logger: Self.logger).complete(Self.request)
            Issue.record("an answer without choices was accepted")
        } catch let e as LLMError { #expect(e.description.hasPrefix("chat-completions answer without choices")) }
    }

    @Test func configurationErrorsNameTheSetting() throws {
        func config(_ env: [String: String]) throws -> LLMConfiguration? {
            try LLMConfiguration.from(try SettingValues(arguments: [], environment: env, settings: Setting.all))
        }
        #expect(try config([:]) == nil)
        #expect(throws: ConfigurationError.self) { try config(["CORTEX_LLM_PROVIDER": "gpt"]) }
        #expect(throws: ConfigurationError("CORTEX_LLM_MODEL is required with CORTEX_LLM_PROVIDER=openai")) { try config(["CORTEX_LLM_PROVIDER": "openai"]) }
        #expect(throws: ConfigurationError("CORTEX_LLM_API_KEY (or CORTEX_LLM_API_KEY_FILE) is required with CORTEX_LLM_PROVIDER=anthropic")) {
            try config(["CORTEX_LLM_PROVIDER": "anthropic", "CORTEX_LLM_MODEL": "m"])
        }
        let ollama = try #require(try config(["CORTEX_LLM_PROVIDER": "openai", "CORTEX_LLM_MODEL": "llama3.1:8b", "CORTEX_LLM_BASE_URL": "http://ollama:11434/v1"]))
        #expect(OpenAICompatibleClient(configuration: ollama, logger: Self.logger).url == "http://ollama:11434/v1/chat/completions")
    }

    // MARK: the broker

    static func ledger(_ redis: RedisClient, _ limits: [String: Int]) async throws -> (BudgetLedger, String) {
        let runID = "run-broker-\(UUID().uuidString.prefix(6))"
        let ledger = BudgetLedger(redis: redis, runID: runID)
        try await ledger.open(limits)
        return (ledger, runID)
    }

    static func broker(_ redis: RedisClient) -> BudgetBroker {
        BudgetBroker(redis: redis, bus: MessageBus(redis: redis, source: "coordinator", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: logger),
                     metrics: CortexMetrics(), logger: logger)
    }

    @Test func brokerMovesUnusedBudgetAndKeepsTheReserveForUrgentWork() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.stop() } }
        let redis = RedisClient(endpoint: server.endpoint)
        defer { redis.close() }
        let broker = Self.broker(redis)
        let (ledger, runID) = try await Self.ledger(redis, ["security": 100, "development": 600, "testing": 300, "run": 2000, "reserve": 1000])
        func request(_ account: String, _ amount: Int, _ priority: String = "normal") -> BudgetBroker.Request {
            .init(id: UUID().uuidString, runID: runID, agent: account, account: account, amount: amount, priority: priority, reason: "test")
        }
        func limits() async throws -> [String: Int] { Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0.limit) }) }

        // The account is short by 700: taken from the agent with the most unused budget, then the next.
        var d = await broker.decide(request("security", 800))
        #expect(d.granted && d.sources == ["development:600", "testing:100"], "\(d)")
        #expect(try await limits() == ["security": 800, "development": 0, "testing": 200, "run": 2000, "reserve": 1000])
        // Nobody has 500 unused any more: denied, and nothing moved.
        d = await broker.decide(request("security", 1300))
        #expect(!d.granted && d.reason == "security has 800 tokens left and the other agents 200 unused, 500 needed; the emergency reserve is kept for high or critical work (this is normal)")
        #expect(try await limits()["security"] == 800)
        // The run's cap is spent: normal work is refused, urgent work gets the reserve.
        let r = try await ledger.reserve(1900, from: ["run"])
        d = await broker.decide(request("testing", 150))
        #expect(!d.granted && d.reason.contains("the emergency reserve is kept for high or critical work (this is normal)"))
        d = await broker.decide(request("testing", 150, "critical"))
        #expect(d.granted && d.sources == ["reserve:50"], "\(d)")
        let after = try await limits()
        #expect(after["run"] == 2050 && after["reserve"] == 950)
        _ = try await ledger.release(r)
        // Past its own cap with nobody to lend, critical work is granted from the reserve (which raises the
        // run's cap by the same), high work too; normal work is refused, and the reason says why.
        d = await broker.decide(request("security", 1100))
        #expect(!d.granted && d.reason.hasSuffix("(this is normal)"), "\(d)")
        d = await broker.decide(request("security", 1100, "critical"))
        #expect(d.granted && d.sources == ["testing:200", "reserve:100"] && d.reason == "moved testing:200, reserve:100 for critical work", "\(d)")
        let granted = try await limits()
        #expect(granted["security"] == 1100 && granted["reserve"] == 850 && granted["run"] == 2150 && granted["testing"] == 0, "\(granted)")
        d = await broker.decide(request("nobody", 1))
        #expect(!d.granted && d.reason.hasPrefix("no budget account 'nobody'"))
    }

    /// Everything is checked before anything moves, and reserve tokens are counted once: what the reserve
    /// gives an agent's cap raises the run's cap by the same, so the run is only topped up for the rest.
    @Test func brokerGrantsUrgentWorkFromTheReserveOnceAndRefusesNormalWork() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.stop() } }
        let redis = RedisClient(endpoint: server.endpoint)
        defer { redis.close() }
        let broker = Self.broker(redis)
        let (ledger, runID) = try await Self.ledger(redis, ["security": 100, "testing": 0, "run": 1000, "reserve": 1000])
        func request(_ amount: Int, _ priority: String) -> BudgetBroker.Request {
            .init(id: UUID().uuidString, runID: runID, agent: "security", account: "security", amount: amount, priority: priority, reason: "test")
        }
        func limits() async throws -> [String: Int] { Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0.limit) }) }
        let held = try await ledger.reserve(900, from: [BudgetPlan.runAccount])  // the run has 100 left
        // Both caps short by 200: one reserve grant of 200 raises both (not 200 to the run and 200 more).
        var d = await broker.decide(request(300, "critical"))
        #expect(d.granted && d.sources == ["reserve:200"] && d.reason == "moved reserve:200 for critical work", "\(d)")
        #expect(try await limits() == ["security": 300, "testing": 0, "run": 1200, "reserve": 800])
        // The run short by more than the account: the account's part, then the run's rest.
        let more = try await ledger.reserve(200, from: [BudgetPlan.runAccount])  // the run has 100 left, security 300
        d = await broker.decide(request(500, "high"))
        #expect(d.granted && d.sources == ["reserve:200", "reserve:200"], "\(d)")
        #expect(try await limits() == ["security": 500, "testing": 0, "run": 1600, "reserve": 400])
        // More than the reserve holds: denied, and nothing moved.
        d = await broker.decide(request(1500, "critical"))
        #expect(!d.granted && d.reason.hasSuffix("more needed from the reserve for critical work"), "\(d)")
        #expect(try await limits() == ["security": 500, "testing": 0, "run": 1600, "reserve": 400])
        // Normal work never gets the reserve, for either cap.
        d = await broker.decide(request(600, "normal"))
        #expect(!d.granted && d.reason.hasSuffix("(this is normal)"), "\(d)")
        #expect(try await limits()["reserve"] == 400)
        _ = try await ledger.release(held)
        _ = try await ledger.release(more)
    }

    @Test func everyCallIsMeteredAndABudgetRequestIsAnswered() async throws {
        let server = try await PrivateRedis.start()
        defer { Task { await server.stop() } }
        let llmServer = FakeLLMServer()
        try await llmServer.start()
        defer { llmServer.stop() }
        let redis = RedisClient(endpoint: server.endpoint)
        defer { redis.close() }
        let bus = MessageBus(redis: redis, source: "security-master", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Self.logger)
        let (ledger, runID) = try await Self.ledger(redis, ["security": 100, "coordinator": 5000, "run": 10_000, "reserve": 1000])
        let client = Self.configuration(llmServer, .anthropic).client(logger: Self.logger)
        // No coordinator answering yet: the request times out into a clear denial, and nothing is charged.
        let lonely = MeteredLLM(client: client, bus: bus, agent: "security", logger: Self.logger, decisionTimeout: .milliseconds(500))
        guard case .denied(let why) = await lonely.complete(Self.request, runID: runID, account: "security", purpose: "test") else {
            Issue.record("expected a denial"); return
        }
        #expect(why.hasPrefix("no BUDGET_DECISION within"))
        #expect(llmServer.recorded.value.isEmpty)

        // A broker answering on cortex:masters:coordination, as the coordinator does.
        let broker = Self.broker(redis)
        let (subscriber, envelopes) = bus.subscribe([.mastersCoordination])
        defer { subscriber.stop() }
        #expect(await subscriber.waitUntilSubscribed(timeout: .seconds(60)), "the broker could not subscribe")
        let coordinator = Task { for await e in envelopes where e.type == .BUDGET_REQUEST { await broker.handle(e) } }
        defer { coordinator.cancel() }
        // The wait ends when the decision arrives; its bound only has to outlast a loaded CI machine (a full
        // parallel suite on 2 cores once took more than 5 s to get the broker's answer out).
        let llm = MeteredLLM(client: client, bus: bus, agent: "security", logger: Self.logger, decisionTimeout: .seconds(60))
        guard case .done(let response, let charged) = await llm.complete(Self.request, runID: runID, account: "security", purpose: "test") else {
            Issue.record("expected the call to go through after the grant"); return
        }
        #expect(response.text == FakeLLMServer.anthropicText && charged == 150)
        var accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["security"]?.used == 150 && accounts["run"]?.used == 150 && accounts["run"]?.reserved == 0)
        #expect(accounts["security"]?.limit == Self.request.estimatedTokens, "granted exactly the estimate it asked for")

        // A provider that reports no usage is charged the estimate; a failed call is released.
        llmServer.usage.withLock { $0 = nil }
        guard case .done(_, let estimate) = await llm.complete(Self.request, runID: runID, account: "coordinator", purpose: "test") else {
            Issue.record("expected done"); return
        }
        #expect(estimate == Self.request.estimatedTokens)
        llmServer.script.withLock { $0 = [.init(status: 400, body: #"{"error":{"message":"bad"}}"#)] }
        guard case .failed = await llm.complete(Self.request, runID: runID, account: "coordinator", purpose: "test") else {
            Issue.record("expected failed"); return
        }
        accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["coordinator"]?.used == estimate && accounts["coordinator"]?.reserved == 0)
        #expect(accounts["run"]?.used == 150 + estimate && accounts["run"]?.reserved == 0)
    }

    /// A paid call's usage survives Redis going away right after the call: the commit is retried, then
    /// journaled; on replay the usage is charged once and the reservation does not leak. (On the main of
    /// 2026-12-01 the commit was `try?`-ed away: the usage was lost and the tokens stayed reserved.)
    @Test func usageOfAPaidCallIsJournaledWhenRedisIsGoneAndChargedOnReplay() async throws {
        let dir = try temporaryDirectory("cortex-ledger-journal")
        let supervisor = try ProcessSupervisor(logDirectory: dir.appendingPathComponent("logs"))
        let server = try await LocalRedis(supervisor: supervisor, directory: dir.appendingPathComponent("redis"), appendOnly: true)
        defer { Task { await server.stop() } }
        let llmServer = FakeLLMServer()
        try await llmServer.start()
        defer { llmServer.stop() }
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: server.port),
                                configuration: .init(connectTimeout: .milliseconds(300), initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(200)))
        defer { redis.close() }
        let metrics = CortexMetrics()
        let bus = MessageBus(redis: redis, source: "security-master", metrics: metrics, decoder: EnvelopeDecoder(), logger: Self.logger)
        let (ledger, runID) = try await Self.ledger(redis, ["security": 5000, "run": 10_000, "reserve": 1000])
        let journal = Journal(directory: dir, name: "security-master-test", logger: Self.logger, metrics: metrics)
        let llm = MeteredLLM(client: Self.configuration(llmServer, .anthropic).client(logger: Self.logger), bus: bus, agent: "security",
                             logger: Self.logger, journal: journal, metrics: metrics)
        // Redis dies while the model answers: the tokens are spent, and the ledger cannot be told.
        llmServer.beforeReply.withLock { $0 = { await server.kill() } }
        guard case .done(_, let charged) = await llm.complete(Self.request, runID: runID, account: "security", purpose: "test") else {
            Issue.record("expected the call itself to succeed"); return
        }
        #expect(charged == 150)
        #expect(await journal.pendingCount() == 1)
        #expect(metric(metrics.exposition(), #"cortex_budget_settlements_deferred_total{outcome="journaled"}"#) == 1)
        try await server.restart()
        #expect(await eventually { await redis.ping() })
        // Before replay the tokens are still held; replay settles them once, a second replay changes nothing.
        #expect(try await ledger.accounts().first { $0.name == "security" }?.reserved == Self.request.estimatedTokens)
        let first = await journal.replay(redis: redis)
        #expect(first.applied == 1, "\(first)")
        var accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["security"]?.used == 150 && accounts["security"]?.reserved == 0, "\(String(describing: accounts["security"]))")
        #expect(accounts["run"]?.used == 150 && accounts["run"]?.reserved == 0, "\(String(describing: accounts["run"]))")

        // A settlement that landed although its reply was lost (journaled anyway) is not charged twice.
        let landed = try await ledger.reserve(200, from: ["security", BudgetPlan.runAccount])
        #expect(try await ledger.commit(landed, actual: 120))
        try await journal.append(ledger.settleCommands(landed, actual: 120), onlyIfExists: ledger.settleGuard(landed))
        let again = await journal.replay(redis: redis)
        #expect(again.applied == 0 && again.duplicates == 1, "\(again)")
        #expect(metric(metrics.exposition(), #"cortex_journal_records_total{event="obsolete"}"#) == 1)
        accounts = Dictionary(uniqueKeysWithValues: try await ledger.accounts().map { ($0.name, $0) })
        #expect(accounts["security"]?.used == 270 && accounts["security"]?.reserved == 0, "\(String(describing: accounts["security"]))")
    }
}
