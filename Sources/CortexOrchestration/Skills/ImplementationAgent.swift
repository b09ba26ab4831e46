import CortexCore
import CortexSecurity
import CortexTestRunner
import Foundation
import Logging

/// One line of an agent's transcript: what the model said or called, and what the tool answered.
public struct TranscriptEntry: Sendable, Codable, Equatable {
    public var step: Int
    /// `model`, `tool` or `budget`.
    public var kind: String
    public var name: String?
    public var input: String?
    public var output: String
}

/// How an implementation task ended.
public struct AgentResult: Sendable, Codable, Equatable {
    /// finished, budget (a budget request was denied), step-limit, ended (the model stopped calling tools), failed.
    public var status: String
    public var summary: String
    public var steps: Int
    public var tokens: Int
    public var transcript: [TranscriptEntry]
    public var reason: String?
    public var testsRan = false
    public var testsPassed: Bool?
    public var testSummary: String?
}

/// The tools of an implementation agent, acting only inside its working copy: paths are resolved and
/// must stay inside it; a diff may not touch files outside it, `.git/`, or CI configuration unless the
/// task allows CI changes.
public struct AgentWorkspace: Sendable {
    public let root: URL
    public let allowCIChanges: Bool
    public let testRunner: TestRunner

    public init(root: URL, allowCIChanges: Bool = false, testRunner: TestRunner) {
        self.root = root.resolvingSymlinksInPath()
        self.allowCIChanges = allowCIChanges
        self.testRunner = testRunner
    }

    public struct Refusal: Error, CustomStringConvertible { public var description: String }

    static let ciPaths = [".github/workflows/", ".gitlab-ci.yml", ".circleci/", "Jenkinsfile", ".ci/", "azure-pipelines.yml"]

    /// A relative path inside the working copy, or a refusal saying why not.
    func resolve(_ path: String) throws -> URL {
        guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else { throw Refusal(description: "\(path): only paths inside the working copy") }
        let url = root.appendingPathComponent(path).resolvingSymlinksInPath()
        guard url.path == root.path || url.path.hasPrefix(root.path + "/") else { throw Refusal(description: "\(path) leads outside the working copy") }
        guard !url.path.hasPrefix(root.path + "/.git/") && url.path != root.path + "/.git" else { throw Refusal(description: "\(path): .git is not a file the agent edits or reads") }
        return url
    }

    func listFiles(_ sub: String?) throws -> String {
        let base = try resolve(sub ?? ".")
        let files = (try? Git.lsFiles(in: root)) ?? []
        let prefix = base.path == root.path ? "" : String(base.path.dropFirst(root.path.count + 1)) + "/"
        let shown = files.filter { prefix.isEmpty || $0.hasPrefix(prefix) }
        return shown.prefix(500).joined(separator: "\n") + (shown.count > 500 ? "\n(\(shown.count - 500) more)" : "")
    }

    func readFile(_ path: String, start: Int?, end: Int?) throws -> String {
        let url = try resolve(path)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw Refusal(description: "\(path): no such file") }
        guard !data.prefix(8000).contains(0) else { throw Refusal(description: "\(path) is binary") }
        let lines = String(decoding: data, as: UTF8.self).components(separatedBy: "\n")
        let from = max(1, start ?? 1), to = min(lines.count, end ?? lines.count)
        guard from <= to else { return "" }
        let text = (from...to).map { "\($0): \(lines[$0 - 1])" }.joined(separator: "\n")
        return String(text.prefix(40_000))
    }

    func search(_ pattern: String) throws -> String {
        let regex: NSRegularExpression
        do { regex = try NSRegularExpression(pattern: pattern) } catch { throw Refusal(description: "not a regular expression: \(pattern)") }
        var hits: [String] = []
        for file in (try? Git.lsFiles(in: root)) ?? [] {
            guard let text = try? String(contentsOf: root.appendingPathComponent(file), encoding: .utf8) else { continue }
            for (i, line) in text.components(separatedBy: "\n").enumerated() where regex.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)) != nil {
                hits.append("\(file):\(i + 1): \(line.prefix(200))")
                if hits.count >= 100 { return hits.joined(separator: "\n") + "\n(stopped at 100 matches)" }
            }
        }
        return hits.isEmpty ? "no match" : hits.joined(separator: "\n")
    }

    /// The paths a unified diff touches (from its `---`/`+++`/`diff --git` headers).
    static func paths(in diff: String) -> [String] {
        var out: [String] = []
        for line in diff.components(separatedBy: "\n") {
            var p: Substring?
            if line.hasPrefix("--- ") || line.hasPrefix("+++ ") { p = line.dropFirst(4) }
            guard var path = p.map(String.init) else { continue }
            if let tab = path.firstIndex(of: "\t") { path = String(path[..<tab]) }
            if path == "/dev/null" { continue }
            if path.hasPrefix("a/") || path.hasPrefix("b/") { path = String(path.dropFirst(2)) }
            if !out.contains(path) { out.append(path) }
        }
        return out
    }

    func applyDiff(_ diff: String) throws -> String {
        let touched = Self.paths(in: diff)
        guard !touched.isEmpty else { throw Refusal(description: "no file headers (--- a/path, +++ b/path) in the diff") }
        for path in touched {
            _ = try resolve(path)
            if !allowCIChanges, Self.ciPaths.contains(where: { path == $0 || path.hasPrefix($0) }) {
                throw Refusal(description: "\(path) is CI configuration: changing it needs the task's allowance (allowCIChanges)")
            }
        }
        let patch = root.appendingPathComponent(".cortex-agent.patch")
        try Data((diff.hasSuffix("\n") ? diff : diff + "\n").utf8).write(to: patch)
        defer { try? FileManager.default.removeItem(at: patch) }
        do {
            _ = try Git.run(["apply", "--check", "--recount", patch.lastPathComponent], in: root)
            _ = try Git.run(["apply", "--recount", patch.lastPathComponent], in: root)
        } catch {
            throw Refusal(description: "the diff does not apply: \(error)")
        }
        return "applied to \(touched.joined(separator: ", "))"
    }

    func runTests() -> (summary: String, passed: Bool?) {
        let frameworks = TestRunner.detect(root: root)
        guard !frameworks.isEmpty else { return ("no test framework detected", nil) }
        var parts: [String] = []
        var passed = true
        for f in frameworks {
            let run = testRunner.runFramework(f, root: root)
            try? FileManager.default.removeItem(at: root.appendingPathComponent(".cortex-test-results"))
            parts.append("\(f.rawValue): \(run.passed) passed, \(run.failed) failed" + (run.timedOut ? " (timed out)" : "")
                         + (run.failed > 0 ? "; failing: " + run.tests.filter { $0.outcome == .failed }.map(\.name).prefix(10).joined(separator: ", ") : ""))
            if run.failed > 0 || run.timedOut || run.notRun != nil || (run.tests.isEmpty && run.exitCode != 0) { passed = false }
        }
        return (parts.joined(separator: "; "), passed)
    }
}

/// The implementation agent's loop: the model gets the task and its context, calls tools until it
/// calls `finish`, runs out of budget (after a budget request, through `MeteredLLM`), or reaches the
/// step limit. Every call is metered; every tool call and its result go to the transcript.
public struct ImplementationAgent: Sendable {
    let llm: MeteredLLM
    let runID: String
    let account: String
    /// The task's priority, for every call's budget request.
    let priority: TaskPriority
    public var maxSteps: Int
    public var maxTokens: Int

    public init(llm: MeteredLLM, runID: String, account: String, priority: TaskPriority = .normal, maxSteps: Int = 20, maxTokens: Int = 2048) {
        self.llm = llm
        self.runID = runID
        self.account = account
        self.priority = priority
        self.maxSteps = maxSteps
        self.maxTokens = maxTokens
    }

    static let tools: [LLMRequest.Tool] = [
        .init(name: "list_files", description: "List the repository's files (optionally under a directory).",
              inputSchema: ["type": "object", "properties": ["path": ["type": "string", "description": "a directory, relative to the repository root"]]]),
        .init(name: "read_file", description: "Read a file, with line numbers (optionally a range of lines).",
              inputSchema: ["type": "object", "properties": ["path": ["type": "string"], "start_line": ["type": "integer"], "end_line": ["type": "integer"]], "required": ["path"]]),
        .init(name: "search", description: "Search the repository's files for a regular expression; answers file:line: text.",
              inputSchema: ["type": "object", "properties": ["pattern": ["type": "string"]], "required": ["pattern"]]),
        .init(name: "apply_diff", description: "Apply a unified diff (git format, paths relative to the repository root) to the working copy.",
              inputSchema: ["type": "object", "properties": ["diff": ["type": "string"]], "required": ["diff"]]),
        .init(name: "run_tests", description: "Run the repository's test suites and get pass/fail counts.",
              inputSchema: ["type": "object", "properties": [:]]),
        .init(name: "finish", description: "End the task with a summary of what changed and why.",
              inputSchema: ["type": "object", "properties": ["summary": ["type": "string"]], "required": ["summary"]]),
    ]

    static let system = """
        You are an implementation worker of Cortex, a DevOps agent system. You change a repository to do one task. \
        Work only through the tools: read before you change, change with apply_diff (unified diffs), run the tests, \
        and call finish with a short summary of what you changed. Keep changes minimal.
        """

    public func run(task: String, context: String, workspace: AgentWorkspace, log: Logger) async -> AgentResult {
        var messages = [LLMRequest.Message(.user, "Task: \(task)\n\nContext:\n\(context)")]
        var transcript: [TranscriptEntry] = []
        var tokens = 0
        var testsRan = false, testsPassed: Bool?, testSummary: String?
        for step in 1...maxSteps {
            let request = LLMRequest(system: Self.system, messages: messages, maxTokens: maxTokens, tools: Self.tools)
            switch await llm.complete(request, runID: runID, account: account, priority: priority, purpose: "implementation step \(step)") {
            case .denied(let reason):
                transcript.append(TranscriptEntry(step: step, kind: "budget", output: "budget denied: \(reason)"))
                return AgentResult(status: "budget", summary: "stopped: no budget for step \(step)", steps: step - 1, tokens: tokens, transcript: transcript,
                                   reason: reason, testsRan: testsRan, testsPassed: testsPassed, testSummary: testSummary)
            case .failed(let reason):
                transcript.append(TranscriptEntry(step: step, kind: "model", output: "the model call failed: \(reason)"))
                return AgentResult(status: "failed", summary: "stopped: the model call failed", steps: step - 1, tokens: tokens, transcript: transcript,
                                   reason: reason, testsRan: testsRan, testsPassed: testsPassed, testSummary: testSummary)
            case .done(let response, let charged):
                tokens += charged
                if !response.text.isEmpty { transcript.append(TranscriptEntry(step: step, kind: "model", output: String(response.text.prefix(2000)))) }
                guard !response.toolCalls.isEmpty else {
                    return AgentResult(status: "ended", summary: response.text.isEmpty ? "the model stopped without calling finish" : String(response.text.prefix(500)),
                                       steps: step, tokens: tokens, transcript: transcript, testsRan: testsRan, testsPassed: testsPassed, testSummary: testSummary)
                }
                messages.append(LLMRequest.Message(.assistant, response.text, toolCalls: response.toolCalls))
                var results: [LLMRequest.ToolResult] = []
                var finished: String?
                for call in response.toolCalls {
                    var output: String
                    var isError = false
                    do {
                        switch call.name {
                        case "list_files": output = try workspace.listFiles(call.input["path"]?.stringValue)
                        case "read_file": output = try workspace.readFile(call.input["path"]?.stringValue ?? "", start: call.input["start_line"]?.intValue, end: call.input["end_line"]?.intValue)
                        case "search": output = try workspace.search(call.input["pattern"]?.stringValue ?? "")
                        case "apply_diff": output = try workspace.applyDiff(call.input["diff"]?.stringValue ?? "")
                        case "run_tests":
                            let r = try await BlockingExecutor.offload("cortex-agent-tests") { workspace.runTests() }
                            (testsRan, testsPassed, testSummary) = (true, r.passed, r.summary)
                            output = r.summary
                        case "finish":
                            finished = call.input["summary"]?.stringValue ?? ""
                            output = "done"
                        default:
                            throw AgentWorkspace.Refusal(description: "no tool named \(call.name)")
                        }
                    } catch {
                        output = "error: \(error)"
                        isError = true
                    }
                    transcript.append(TranscriptEntry(step: step, kind: "tool", name: call.name, input: String(call.input.description.prefix(2000)), output: String(output.prefix(2000))))
                    log.info("agent step \(step): \(call.name) -> \(isError ? "error" : "ok")")
                    results.append(.init(callID: call.id, content: output, isError: isError))
                }
                if let finished {
                    return AgentResult(status: "finished", summary: finished, steps: step, tokens: tokens, transcript: transcript,
                                       testsRan: testsRan, testsPassed: testsPassed, testSummary: testSummary)
                }
                messages.append(LLMRequest.Message(.user, "", toolResults: results))
            }
        }
        return AgentResult(status: "step-limit", summary: "stopped after \(maxSteps) steps without finish", steps: maxSteps, tokens: tokens,
                           transcript: transcript, testsRan: testsRan, testsPassed: testsPassed, testSummary: testSummary)
    }
}
