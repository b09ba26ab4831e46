import Foundation

/// One request to a language model: a system prompt, the conversation, an output cap and optional tools.
public struct LLMRequest: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public enum Role: String, Sendable { case user, assistant }
        public var role: Role
        public var content: String
        /// An assistant turn's tool calls (sent back as the model made them).
        public var toolCalls: [LLMResponse.ToolCall] = []
        /// A user turn's answers to those calls.
        public var toolResults: [ToolResult] = []
        public init(_ role: Role, _ content: String, toolCalls: [LLMResponse.ToolCall] = [], toolResults: [ToolResult] = []) {
            self.role = role
            self.content = content
            self.toolCalls = toolCalls
            self.toolResults = toolResults
        }
    }

    /// What a tool returned for one call.
    public struct ToolResult: Sendable, Equatable {
        public var callID: String
        public var content: String
        public var isError: Bool
        public init(callID: String, content: String, isError: Bool = false) {
            self.callID = callID
            self.content = content
            self.isError = isError
        }
    }

    /// A tool the model may call, with its input as a JSON Schema.
    public struct Tool: Sendable, Equatable {
        public var name: String
        public var description: String
        public var inputSchema: JSONValue
        public init(name: String, description: String, inputSchema: JSONValue) {
            self.name = name
            self.description = description
            self.inputSchema = inputSchema
        }
    }

    public var system: String?
    public var messages: [Message]
    public var maxTokens: Int
    public var tools: [Tool]

    public init(system: String? = nil, messages: [Message], maxTokens: Int, tools: [Tool] = []) {
        self.system = system
        self.messages = messages
        self.maxTokens = maxTokens
        self.tools = tools
    }

    /// A conservative token estimate for reserving budget before the call: the output cap plus the
    /// prompt at one token per three bytes (English runs nearer four), plus a little per message.
    public var estimatedTokens: Int {
        let bytes = (system?.utf8.count ?? 0)
            + messages.reduce(0) { $0 + $1.content.utf8.count + $1.toolResults.reduce(0) { $0 + $1.content.utf8.count } + $1.toolCalls.reduce(0) { $0 + $1.input.description.utf8.count } }
            + tools.reduce(0) { $0 + $1.name.utf8.count + $1.description.utf8.count + $1.inputSchema.description.utf8.count }
        return maxTokens + (bytes + 2) / 3 + 8 * (messages.count + 1)
    }
}

/// Tokens a call consumed, as the provider reported them.
public struct LLMUsage: Sendable, Equatable, Codable {
    public var inputTokens: Int
    public var outputTokens: Int
    public var total: Int { inputTokens + outputTokens }
    public init(inputTokens: Int, outputTokens: Int) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// What the model answered.
public struct LLMResponse: Sendable, Equatable {
    public struct ToolCall: Sendable, Equatable {
        public var id: String
        public var name: String
        public var input: JSONValue
        public init(id: String, name: String, input: JSONValue) {
            self.id = id
            self.name = name
            self.input = input
        }
    }

    public var text: String
    public var toolCalls: [ToolCall]
    /// nil when the provider did not report usage (the caller is then charged the estimate).
    public var usage: LLMUsage?
    public var model: String
    public var stopReason: String?
}

/// A failed call, with whether trying again could help.
public struct LLMError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var status: Int?
    public var retryable: Bool
    public init(_ description: String, status: Int? = nil, retryable: Bool = false) {
        self.description = description
        self.status = status
        self.retryable = retryable
    }
}

/// A language model behind some wire format.
public protocol LLMClient: Sendable {
    /// The model name, for reports.
    var model: String { get }
    func complete(_ request: LLMRequest) async throws -> LLMResponse
}
