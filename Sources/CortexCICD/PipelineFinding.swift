import Foundation
import Yams

/// One thing to change in a CI pipeline, with where it is and, when the change is mechanical, the patch.
public struct PipelineFinding: Sendable, Codable, Equatable {
    public var file: String
    public var line: Int?
    public var job: String?
    public var step: String?
    /// The step's 0-based index in the job's `steps:` (what zizmor's routes and GitHub's logs count).
    public var stepIndex: Int?
    /// `security` or `speed`.
    public var category: String
    public var rule: String
    /// critical, high, medium, low or info.
    public var severity: String
    /// How sure the rule is that this is real: high, medium or low (zizmor's scale). Nil for rules
    /// whose finding is a fact of the file (speed findings).
    public var confidence: String?
    /// Who the finding is for, on zizmor's scale: nil or `regular` for everyone, `pedantic` for
    /// style and hygiene, `auditor` for an audit that wants every lead. Reports list regular ones and count the rest.
    public var persona: String?
    public var message: String
    /// A unified diff that `git apply` takes, when the fix is mechanical.
    public var patch: String?
    /// What to do when there is no patch (e.g. look up a commit SHA).
    public var suggestion: String?
    /// For speed findings: the estimated saving and how it was estimated.
    public var saving: String?
    /// Set when the workflow acknowledges the finding with a `# zizmor: ignore[<rule>]` (or
    /// `# cortex: ignore[<rule>]`) comment within what it covers: the comment and its line. Reports
    /// count such findings apart instead of listing them.
    public var ignoredBy: String?
    /// For speed findings: what the change can cost (what stops being guaranteed), and why it is safe here.
    public var risk: String?

    public init(file: String, line: Int?, job: String? = nil, step: String? = nil, stepIndex: Int? = nil, category: String, rule: String, severity: String,
                confidence: String? = nil, persona: String? = nil, message: String, patch: String? = nil, suggestion: String? = nil, saving: String? = nil, risk: String? = nil) {
        self.file = file
        self.line = line
        self.job = job
        self.step = step
        self.stepIndex = stepIndex
        self.category = category
        self.rule = rule
        self.severity = severity
        self.confidence = confidence
        self.persona = persona
        self.message = message
        self.patch = patch
        self.suggestion = suggestion
        self.saving = saving
        self.risk = risk
    }
}

/// A pipeline file that is not valid YAML (or not a pipeline), with the line the parser stopped at.
public struct PipelineParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Parsing with line numbers (Yams' node API keeps each node's mark).
enum PipelineYAML {
    static func compose(_ text: String, file: String) throws -> Node {
        do {
            guard let node = try Yams.compose(yaml: text) else { throw PipelineParseError(file: file, line: nil, message: "empty file") }
            guard node.mapping != nil else { throw PipelineParseError(file: file, line: node.mark?.line, message: "not a mapping at the top level") }
            return node
        } catch let e as YamlError {
            switch e {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
                throw PipelineParseError(file: file, line: mark.line, message: "invalid YAML: \(problem)")
            default:
                throw PipelineParseError(file: file, line: nil, message: "invalid YAML: \(e)")
            }
        }
    }
}

extension Node {
    /// The value for a key compared as text (so `on:` is found even where YAML 1.1 would read it as true).
    func value(_ key: String) -> Node? {
        mapping?.first { $0.key.string == key }?.value
    }

    /// Key/value pairs of a mapping, in file order.
    var pairs: [(key: String, value: Node)] {
        mapping?.map { ($0.key.string ?? "", $0.value) } ?? []
    }

    var line: Int? { mark?.line }
}

/// Unified diffs built from line edits of the original text, so every patch applies with `git apply`.
enum Patch {
    /// Inserts `lines` after line `after` (1-based; 0 inserts at the top).
    static func insert(file: String, text: String, after: Int, lines: [String]) -> String {
        edit(file: file, text: text, start: after + 1, remove: 0, add: lines)
    }

    /// Replaces `remove` lines starting at `start` (1-based) with `add`.
    static func edit(file: String, text: String, start: Int, remove: Int, add: [String]) -> String {
        let original = text.components(separatedBy: "\n")
        // Lines the analysis counted differently from "\n" (a line-break character the caller did not
        // normalise) would index past the end: no patch rather than a crash.
        guard start >= 1, remove >= 0, start - 1 + remove <= original.count else { return "" }
        let contextBefore = max(1, start - 3)
        let lastRemoved = start + remove - 1
        let contextAfter = min(original.count - (text.hasSuffix("\n") ? 1 : 0), lastRemoved + 3)
        var body: [String] = []
        for n in contextBefore..<start where n - 1 < original.count { body.append(" " + original[n - 1]) }
        for n in start..<(start + remove) { body.append("-" + original[n - 1]) }
        for l in add { body.append("+" + l) }
        if lastRemoved + 1 <= contextAfter { for n in (lastRemoved + 1)...contextAfter { body.append(" " + original[n - 1]) } }
        let oldCount = (start - contextBefore) + remove + max(0, contextAfter - lastRemoved)
        let newCount = (start - contextBefore) + add.count + max(0, contextAfter - lastRemoved)
        return "--- a/\(file)\n+++ b/\(file)\n@@ -\(contextBefore),\(oldCount) +\(contextBefore),\(newCount) @@\n" + body.joined(separator: "\n") + "\n"
    }

    /// The leading spaces of a line.
    static func indent(_ text: String, line: Int) -> String {
        let lines = text.components(separatedBy: "\n")
        guard line >= 1, line <= lines.count else { return "" }
        return String(lines[line - 1].prefix { $0 == " " })
    }
}
