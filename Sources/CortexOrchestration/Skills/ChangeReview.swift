import CortexSecurity
import Foundation

/// development (review): deterministic checks of a change's diff — very long additions, new
/// TODO/FIXME/XXX, secrets, and source files changed without any test changed.
public enum ChangeReview {
    public struct Comment: Sendable, Codable, Equatable {
        public var file: String
        public var line: Int?
        public var rule: String
        public var message: String
    }

    static let testPath = try! NSRegularExpression(pattern: #"(^|/)(tests?|Tests|__tests__|spec)/|_test\.(go|py)$|(^|/)test_[^/]+\.py$|\.(test|spec)\.[jt]sx?$|src/test/"#)
    static let docPath = try! NSRegularExpression(pattern: #"\.(md|rst|adoc|txt)$|(^|/)docs?/"#)

    /// Reviews a unified diff (e.g. `git format-patch` output).
    public static func review(_ diff: String) -> [Comment] {
        var comments: [Comment] = []
        var file: String?
        var newLine = 0
        var run = 0, runStart = 0
        var added: [String: [(line: Int, text: String)]] = [:]
        func closeRun() {
            if run > 80, let file { comments.append(Comment(file: file, line: runStart, rule: "long-addition", message: "\(run) lines added in one block: split it into smaller functions")) }
            run = 0
        }
        for raw in diff.components(separatedBy: "\n") {
            if raw.hasPrefix("+++ ") {
                closeRun()
                let path = String(raw.dropFirst(4))
                file = path == "/dev/null" ? nil : (path.hasPrefix("b/") ? String(path.dropFirst(2)) : path)
            } else if raw.hasPrefix("@@") {
                closeRun()
                // @@ -a,b +c,d @@
                if let plus = raw.split(separator: " ").first(where: { $0.hasPrefix("+") }) {
                    newLine = Int(plus.dropFirst().split(separator: ",").first ?? "1") ?? 1
                }
            } else if raw.hasPrefix("+") && !raw.hasPrefix("+++"), let f = file {
                if run == 0 { runStart = newLine }
                run += 1
                added[f, default: []].append((newLine, String(raw.dropFirst())))
                newLine += 1
            } else if raw.hasPrefix("-") && !raw.hasPrefix("---") {
                closeRun()
            } else if raw.hasPrefix(" ") {
                closeRun()
                newLine += 1
            }
        }
        closeRun()
        let scanner = SecretScanner(allowPaths: [])
        for (f, lines) in added.sorted(by: { $0.key < $1.key }) {
            for (n, text) in lines {
                if let r = text.range(of: #"\b(TODO|FIXME|XXX)\b"#, options: .regularExpression) {
                    comments.append(Comment(file: f, line: n, rule: "new-todo", message: "new \(text[r]): track it in an issue rather than in code"))
                }
                for finding in scanner.scan(path: f, text: text) {
                    comments.append(Comment(file: f, line: n, rule: "secret", message: "\(finding.rule) \(finding.masked) added: use a secret store"))
                }
            }
        }
        let files = Array(added.keys) + diff.components(separatedBy: "\n").filter { $0.hasPrefix("--- a/") }.map { String($0.dropFirst(6)) }
        func matches(_ r: NSRegularExpression, _ s: String) -> Bool { r.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil }
        let source = Set(files.filter { !matches(testPath, $0) && !matches(docPath, $0) })
        if !source.isEmpty && !files.contains(where: { matches(testPath, $0) }) {
            comments.append(Comment(file: source.sorted().first!, line: nil, rule: "no-test-change",
                                    message: "\(source.sorted().joined(separator: ", ")) changed but no test did: add or update a test that covers the change"))
        }
        return comments
    }
}
