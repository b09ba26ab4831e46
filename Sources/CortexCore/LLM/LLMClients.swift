import Foundation
import Logging

/// Which wire format to speak, chosen by configuration.
public enum LLMProvider: String, Sendable, CaseIterable {
    /// No model: LLM steps are skipped and say so.
    case none
    /// The Anthropic Messages API (`POST /v1/messages`).
    case anthropic
    /// Any OpenAI-compatible chat-completions server (`POST /v1/chat/completions`): OpenAI, Ollama, vLLM, llama.cpp's server.
    case openai
}

/// How to reach the model: from CORTEX_LLM_* settings.
public struct LLMConfiguration: Sendable {
    public var provider: LLMProvider
    public var model: String
    public var baseURL: String
    /// Sent as `x-api-key` (Anthropic) or a bearer token (OpenAI-compatible); never logged.
    public var apiKey: String?
    public var timeout: Duration
    public var maxRetries: Int
    /// The longest wait between attempts, whatever Retry-After says.
    public var maxRetryWait: Duration
    /// Output cap per call.
    public var maxTokens: Int

    public init(provider: LLMProvider, model: String, baseURL: String, apiKey: String?, timeout: Duration = .seconds(60),
                maxRetries: Int = 3, maxRetryWait: Duration = .seconds(30), maxTokens: Int = 1024) {
        self.provider = provider
        self.model = model
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.timeout = timeout
        self.maxRetries = maxRetries
        self.maxRetryWait = maxRetryWait
        self.maxTokens = maxTokens
    }

    /// Reads the settings; nil for provider `none`. A provider without a model, or a key file that cannot
    /// be read, is a configuration error naming the setting.
    public static func from(_ settings: SettingValues) throws -> LLMConfiguration? {
        let name = settings.string(.llmProvider)
        guard let provider = LLMProvider(rawValue: name) else {
            throw ConfigurationError("CORTEX_LLM_PROVIDER must be one of \(LLMProvider.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
        }
        guard provider != .none else { return nil }
        guard let model = settings.raw(.llmModel), !model.isEmpty else {
            throw ConfigurationError("CORTEX_LLM_MODEL is required with CORTEX_LLM_PROVIDER=\(provider.rawValue)")
        }
        let key = try settings.secret(.llmAPIKey, file: .llmAPIKeyFile)
        if provider == .anthropic && (key ?? "").isEmpty {
            throw ConfigurationError("CORTEX_LLM_API_KEY (or CORTEX_LLM_API_KEY_FILE) is required with CORTEX_LLM_PROVIDER=anthropic")
        }
        let base = settings.raw(.llmBaseURL) ?? (provider == .anthropic ? "https://api.anthropic.com" : "https://api.openai.com")
        return LLMConfiguration(provider: provider, model: model, baseURL: base, apiKey: key,
                                timeout: try settings.seconds(.llmTimeout), maxRetries: try settings.int(.llmMaxRetries, range: 0...20),
                                maxTokens: try settings.int(.llmMaxTokens, range: 16...200_000))
    }

    /// The client for this configuration.
    public func client(logger: Logger) -> any LLMClient {
        switch provider {
        case .anthropic: return AnthropicClient(configuration: self, logger: logger)
        case .openai, .none: return OpenAICompatibleClient(configuration: self, logger: logger)
        }
    }
}

/// POSTs JSON over libcurl, retrying 429, 5xx (and Anthropic's 529) and connection failures with
/// exponential backoff, honouring Retry-After (seconds or an HTTP date).
struct LLMTransport: Sendable {
    let configuration: LLMConfiguration
    let logger: Logger

    func post(_ url: String, headers: [String: String], body: JSONValue) async throws -> JSONValue {
        var attempt = 0
        while true {
            attempt += 1
            let outcome: Result<HTTPResponse, Error>
            do {
                outcome = .success(try await HTTPClient.request("POST", url: url, headers: headers.merging(["Content-Type": "application/json"]) { $1 },
                                                                body: Array(body.description.utf8), timeout: configuration.timeout,
                                                                redactAll: true))
            } catch {
                outcome = .failure(error)
            }
            var wait: Duration?
            switch outcome {
            case .success(let r) where (200..<300).contains(r.status):
                guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(r.body)) else {
                    throw LLMError("\(url) answered \(r.status) with a body that is not JSON")
                }
                return json
            case .success(let r):
                let message = Self.errorMessage(r)
                guard r.status == 429 || r.status >= 500, attempt <= configuration.maxRetries else {
                    throw LLMError("\(url) answered \(r.status): \(message)", status: r.status, retryable: r.status == 429 || r.status >= 500)
                }
                wait = r.headers["retry-after"].flatMap(Self.retryAfter)
                logger.warning("LLM call answered \(r.status) (\(message)); retry \(attempt) of \(configuration.maxRetries)")
            case .failure(let error):
                guard attempt <= configuration.maxRetries else { throw LLMError("\(error)", retryable: true) }
                logger.warning("LLM call failed (\(error)); retry \(attempt) of \(configuration.maxRetries)")
            }
            let backoff = Duration.milliseconds(250 * (1 << min(attempt - 1, 8)))
            try await Task.sleep(for: min(wait ?? backoff, configuration.maxRetryWait))
        }
    }

    /// The provider's error text (both formats put it at `error.message`), or the raw body's start.
    static func errorMessage(_ r: HTTPResponse) -> String {
        if let json = try? JSONDecoder().decode(JSONValue.self, from: Data(r.body)),
           let message = json["error"]?["message"]?.stringValue ?? json["error"]?.stringValue { return message }
        return String(r.text.prefix(200))
    }

    /// Retry-After as a delay: whole seconds, or an HTTP date.
    static func retryAfter(_ value: String) -> Duration? {
        let v = value.trimmingCharacters(in: .whitespaces)
        // Capped at a day: the header is the server's word, and `Int64(1e300)` would trap.
        if let s = Double(v), s >= 0, s.isFinite { return .milliseconds(Int64(min(s, 86_400) * 1000)) }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = f.date(from: v) else { return nil }
        return .milliseconds(Int64(min(max(0, date.timeIntervalSinceNow), 86_400) * 1000))
    }
}

/// The Anthropic Messages API.
public struct AnthropicClient: LLMClient {
    public let configuration: LLMConfiguration
    let transport: LLMTransport
    public var model: String { configuration.model }
    public static let apiVersion = "2023-06-01"

    public init(configuration: LLMConfiguration, logger: Logger) {
        self.configuration = configuration
        transport = LLMTransport(configuration: configuration, logger: logger)
    }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        var body: [String: JSONValue] = [
            "model": .string(model), "max_tokens": .number(Double(request.maxTokens)),
            "messages": .array(request.messages.map(Self.message)),
        ]
        if let system = request.system { body["system"] = .string(system) }
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map { ["name": .string($0.name), "description": .string($0.description), "input_schema": $0.inputSchema] })
        }
        let json = try await transport.post("\(configuration.baseURL)/v1/messages",
                                            headers: ["x-api-key": configuration.apiKey ?? "", "anthropic-version": Self.apiVersion],
                                            body: .object(body))
        guard let blocks = json["content"]?.arrayValue else { throw LLMError("Anthropic answer without content: \(json.description.prefix(200))") }
        var text = ""
        var calls: [LLMResponse.ToolCall] = []
        for block in blocks {
            switch block["type"]?.stringValue {
            case "text": text += block["text"]?.stringValue ?? ""
            case "tool_use":
                calls.append(.init(id: block["id"]?.stringValue ?? "", name: block["name"]?.stringValue ?? "", input: block["input"] ?? .object([:])))
            default: continue
            }
        }
        var usage: LLMUsage?
        if let u = json["usage"], let input = u["input_tokens"]?.intValue, let output = u["output_tokens"]?.intValue {
            // Cache reads and writes are input tokens too.
            usage = LLMUsage(inputTokens: input + (u["cache_creation_input_tokens"]?.intValue ?? 0) + (u["cache_read_input_tokens"]?.intValue ?? 0),
                             outputTokens: output)
        }
        return LLMResponse(text: text, toolCalls: calls, usage: usage, model: json["model"]?.stringValue ?? model, stopReason: json["stop_reason"]?.stringValue)
    }

    /// A turn as content blocks when it carries tool calls (`tool_use`) or their results (`tool_result`).
    static func message(_ m: LLMRequest.Message) -> JSONValue {
        if m.toolCalls.isEmpty && m.toolResults.isEmpty { return ["role": .string(m.role.rawValue), "content": .string(m.content)] }
        var blocks: [JSONValue] = []
        if !m.content.isEmpty { blocks.append(["type": "text", "text": .string(m.content)]) }
        blocks += m.toolCalls.map { ["type": "tool_use", "id": .string($0.id), "name": .string($0.name), "input": $0.input] }
        blocks += m.toolResults.map { ["type": "tool_result", "tool_use_id": .string($0.callID), "content": .string($0.content), "is_error": .bool($0.isError)] }
        return ["role": .string(m.role.rawValue), "content": .array(blocks)]
    }
}

/// Any OpenAI-compatible chat-completions server.
public struct OpenAICompatibleClient: LLMClient {
    public let configuration: LLMConfiguration
    let transport: LLMTransport
    public var model: String { configuration.model }

    public init(configuration: LLMConfiguration, logger: Logger) {
        self.configuration = configuration
        transport = LLMTransport(configuration: configuration, logger: logger)
    }

    /// `<base>/v1/chat/completions`, or `<base>/chat/completions` when the base already ends in /v1.
    public var url: String { configuration.baseURL.hasSuffix("/v1") ? "\(configuration.baseURL)/chat/completions" : "\(configuration.baseURL)/v1/chat/completions" }

    public func complete(_ request: LLMRequest) async throws -> LLMResponse {
        var messages: [JSONValue] = []
        if let system = request.system { messages.append(["role": "system", "content": .string(system)]) }
        for m in request.messages {
            if !m.toolResults.isEmpty {
                // Each result is its own `tool` message, answering one call by id.
                messages += m.toolResults.map { ["role": "tool", "tool_call_id": .string($0.callID), "content": .string($0.content)] }
            } else if !m.toolCalls.isEmpty {
                messages.append(["role": "assistant", "content": m.content.isEmpty ? .null : .string(m.content), "tool_calls": .array(m.toolCalls.map {
                    ["id": .string($0.id), "type": "function", "function": ["name": .string($0.name), "arguments": .string($0.input.description)]]
                })])
            } else {
                messages.append(["role": .string(m.role.rawValue), "content": .string(m.content)])
            }
        }
        var body: [String: JSONValue] = ["model": .string(model), "max_tokens": .number(Double(request.maxTokens)), "messages": .array(messages)]
        if !request.tools.isEmpty {
            body["tools"] = .array(request.tools.map {
                ["type": "function", "function": ["name": .string($0.name), "description": .string($0.description), "parameters": $0.inputSchema]]
            })
        }
        var headers: [String: String] = [:]
        if let key = configuration.apiKey, !key.isEmpty { headers["Authorization"] = "Bearer \(key)" }
        let json = try await transport.post(url, headers: headers, body: .object(body))
        guard let choice = json["choices"]?[0], let message = choice["message"] else {
            throw LLMError("chat-completions answer without choices: \(json.description.prefix(200))")
        }
        let calls: [LLMResponse.ToolCall] = (message["tool_calls"]?.arrayValue ?? []).map { call in
            let arguments = call["function"]?["arguments"]?.stringValue ?? "{}"
            return .init(id: call["id"]?.stringValue ?? "", name: call["function"]?["name"]?.stringValue ?? "",
                         input: (try? JSONDecoder().decode(JSONValue.self, from: Data(arguments.utf8))) ?? .string(arguments))
        }
        var usage: LLMUsage?
        if let u = json["usage"], let input = u["prompt_tokens"]?.intValue {
            usage = LLMUsage(inputTokens: input, outputTokens: u["completion_tokens"]?.intValue ?? max(0, (u["total_tokens"]?.intValue ?? input) - input))
        }
        return LLMResponse(text: message["content"]?.stringValue ?? "", toolCalls: calls, usage: usage,
                           model: json["model"]?.stringValue ?? model, stopReason: choice["finish_reason"]?.stringValue)
    }
}
