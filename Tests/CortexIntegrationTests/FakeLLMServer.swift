import CortexCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A local HTTP server that speaks the Anthropic Messages and OpenAI chat-completions wire formats, for
/// tests: it records every request and answers from a script (status, headers, body), then with a
/// default success that reports fixed usage.
final class FakeLLMServer: @unchecked Sendable {
    struct Recorded: Sendable {
        var path: String
        var headers: [String: String]
        var body: JSONValue
    }
    struct Reply: Sendable {
        var status: Int
        var headers: [String: String] = [:]
        var body: String
    }

    let recorded = Locked<[Recorded]>([])
    let script = Locked<[Reply]>([])
    /// Runs before each answer (e.g. to take Redis away while a paid call is in flight).
    let beforeReply = Locked<(@Sendable () async -> Void)?>(nil)
    /// Which requests the script answers (by their body); nil: all. The rest get the default answer — e.g.
    /// only the agent's tool-using calls, while the masters' assessments and the planner get prose.
    let scriptFor = Locked<(@Sendable (JSONValue) -> Bool)?>(nil)
    /// Usage the default answer reports; nil leaves usage out.
    let usage = Locked<(input: Int, output: Int)?>((100, 50))
    private var task: Task<Void, Error>?
    private(set) var port = 0

    static let anthropicText = "Rotate the exposed key and pin the base image."

    func start() async throws {
        let router = Router()
        for path in ["/v1/messages", "/v1/chat/completions"] {
            router.post(RouterPath(path)) { [self] request, _ in
                let buffer = try await request.body.collect(upTo: 1 << 20)
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                let body = (try? JSONText.parse(Array(buffer: buffer))) ?? .null
                recorded.withLock { $0.append(Recorded(path: path, headers: headers, body: body)) }
                if let hook = beforeReply.value { await hook() }
                let scriptable = scriptFor.value.map { $0(body) } ?? true
                let scripted = scriptable ? script.withLock { $0.isEmpty ? nil : $0.removeFirst() } : nil
                let reply = scripted ?? Reply(status: 200, body: defaultAnswer(path: path, model: body["model"]?.stringValue ?? "?"))
                var fields = HTTPFields()
                fields[.contentType] = "application/json"
                for (k, v) in reply.headers { if let name = HTTPField.Name(k) { fields[name] = v } }
                return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: reply.body)))
            }
        }
        (task, port) = try await startLocalServer(router, name: "fake LLM server")
    }

    func stop() { task?.cancel() }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    func defaultAnswer(path: String, model: String) -> String {
        let u = usage.value
        if path == "/v1/messages" {
            var answer: JSONValue = ["id": "msg_01", "type": "message", "role": "assistant", "model": .string(model),
                                     "content": [["type": "text", "text": .string(Self.anthropicText)]], "stop_reason": "end_turn"]
            if let u, case .object(var o) = answer {
                o["usage"] = ["input_tokens": .number(Double(u.input)), "output_tokens": .number(Double(u.output))]
                answer = .object(o)
            }
            return answer.description
        }
        var answer: [String: JSONValue] = ["id": "chatcmpl-1", "object": "chat.completion", "model": .string(model),
                                           "choices": [["index": 0, "message": ["role": "assistant", "content": .string(Self.anthropicText)], "finish_reason": "stop"]]]
        if let u { answer["usage"] = ["prompt_tokens": .number(Double(u.input)), "completion_tokens": .number(Double(u.output)), "total_tokens": .number(Double(u.input + u.output))] }
        return JSONValue.object(answer).description
    }
}
