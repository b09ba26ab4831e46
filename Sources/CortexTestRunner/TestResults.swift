import Foundation

/// One test's outcome.
public struct TestCaseResult: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable { case passed, failed, skipped }
    /// `suite.name` (JUnit classname.name, pytest node id, Go package/Test).
    public var name: String
    public var outcome: Outcome
    public var seconds: Double?
    public var message: String?

    public init(name: String, outcome: Outcome, seconds: Double? = nil, message: String? = nil) {
        self.name = name
        self.outcome = outcome
        self.seconds = seconds
        self.message = message
    }
}

/// Line coverage of one file.
public struct FileCoverage: Sendable, Codable, Equatable {
    public var file: String
    public var covered: Int
    public var total: Int
    public var ratio: Double { total == 0 ? 1 : Double(covered) / Double(total) }

    public init(file: String, covered: Int, total: Int) {
        self.file = file
        self.covered = covered
        self.total = total
    }
}

public struct ReportParseError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// JUnit XML (`<testsuites>` / `<testsuite>` / `<testcase>` with `<failure>`, `<error>`, `<skipped>`),
/// the format pytest, Maven Surefire, Gradle, swift test --xunit-output and most runners write.
/// A small scanner: attributes and child elements are all it needs.
public enum JUnitXML {
    public static func parse(_ xml: String) throws -> [TestCaseResult] {
        guard xml.contains("<testsuite") || xml.contains("<testcase") else { throw ReportParseError(description: "not JUnit XML (no <testsuite>)") }
        var out: [TestCaseResult] = []
        var rest = Substring(xml)
        while let start = rest.range(of: "<testcase") {
            guard let tagEnd = rest.range(of: ">", range: start.upperBound..<rest.endIndex) else { throw ReportParseError(description: "unterminated <testcase") }
            let tag = rest[start.upperBound..<tagEnd.lowerBound]
            let attributes = attributesOf(tag)
            var body: Substring = ""
            if tag.hasSuffix("/") {
                rest = rest[tagEnd.upperBound...]
            } else {
                guard let close = rest.range(of: "</testcase>", range: tagEnd.upperBound..<rest.endIndex) else { throw ReportParseError(description: "unterminated <testcase> \(attributes["name"] ?? "")") }
                body = rest[tagEnd.upperBound..<close.lowerBound]
                rest = rest[close.upperBound...]
            }
            let name = [attributes["classname"], attributes["name"]].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ".")
            var outcome = TestCaseResult.Outcome.passed
            var message: String?
            if let f = body.range(of: "<failure") ?? body.range(of: "<error") {
                outcome = .failed
                if let end = body.range(of: ">", range: f.upperBound..<body.endIndex) { message = attributesOf(body[f.upperBound..<end.lowerBound])["message"] }
            } else if body.contains("<skipped") {
                outcome = .skipped
            }
            out.append(TestCaseResult(name: unescape(name), outcome: outcome, seconds: attributes["time"].flatMap(Double.init), message: message.map(unescape)))
        }
        return out
    }

    static func attributesOf(_ tag: Substring) -> [String: String] {
        var out: [String: String] = [:]
        let regex = try! NSRegularExpression(pattern: #"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*("([^"]*)"|'([^']*)')"#)
        let s = String(tag)
        for m in regex.matches(in: s, range: NSRange(s.startIndex..., in: s)) {
            let key = (s as NSString).substring(with: m.range(at: 1))
            let value = m.range(at: 3).location != NSNotFound ? (s as NSString).substring(with: m.range(at: 3)) : (s as NSString).substring(with: m.range(at: 4))
            out[key] = value
        }
        return out
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&apos;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }
}

/// Coverage reports in the formats the runners write.
public enum CoverageReport {
    /// lcov tracefiles (`SF:`, `DA:line,hits`, `end_of_record`): genhtml, c8/nyc, grcov, llvm-cov export -format=lcov.
    public static func lcov(_ text: String) throws -> [FileCoverage] {
        var out: [FileCoverage] = []
        var file: String?
        var lines: [Int: Int] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("SF:") { file = String(line.dropFirst(3)); lines = [:] }
            else if line.hasPrefix("DA:") {
                let parts = line.dropFirst(3).split(separator: ",")
                guard parts.count >= 2, let n = Int(parts[0]), let hits = Int(parts[1]) else { throw ReportParseError(description: "lcov: bad DA line '\(line)'") }
                lines[n] = max(lines[n] ?? 0, hits)
            } else if line == "end_of_record", let f = file {
                out.append(FileCoverage(file: f, covered: lines.values.filter { $0 > 0 }.count, total: lines.count))
                file = nil
            }
        }
        guard !out.isEmpty || text.isEmpty else { throw ReportParseError(description: "lcov: no records") }
        return out
    }

    /// Cobertura XML (`<class filename=...>` with `<line number= hits=>`): coverage.py xml, JaCoCo converters, gcovr.
    public static func cobertura(_ xml: String) throws -> [FileCoverage] {
        guard xml.contains("<coverage") else { throw ReportParseError(description: "not Cobertura XML (no <coverage>)") }
        var byFile: [String: [Int: Int]] = [:]
        var rest = Substring(xml)
        while let start = rest.range(of: "<class ") {
            guard let tagEnd = rest.range(of: ">", range: start.upperBound..<rest.endIndex) else { break }
            let attributes = JUnitXML.attributesOf(rest[start.upperBound..<tagEnd.lowerBound])
            let end = rest.range(of: "</class>", range: tagEnd.upperBound..<rest.endIndex)?.lowerBound ?? rest.endIndex
            let body = rest[tagEnd.upperBound..<end]
            let file = attributes["filename"] ?? "?"
            var lines = byFile[file] ?? [:]
            var b = body
            while let l = b.range(of: "<line ") {
                guard let e = b.range(of: ">", range: l.upperBound..<b.endIndex) else { break }
                let a = JUnitXML.attributesOf(b[l.upperBound..<e.lowerBound])
                if let n = a["number"].flatMap(Int.init), let hits = a["hits"].flatMap(Int.init) { lines[n] = max(lines[n] ?? 0, hits) }
                b = b[e.upperBound...]
            }
            byFile[file] = lines
            rest = rest[end...]
        }
        return byFile.sorted { $0.key < $1.key }.map { FileCoverage(file: $0.key, covered: $0.value.values.filter { $0 > 0 }.count, total: $0.value.count) }
    }

    /// coverage.py's `coverage json` report (`files.<path>.summary.covered_lines / num_statements`).
    public static func coveragePyJSON(_ json: [String: Any]) throws -> [FileCoverage] {
        guard let files = json["files"] as? [String: Any] else { throw ReportParseError(description: "coverage.py JSON: no files") }
        return files.sorted { $0.key < $1.key }.compactMap { path, value in
            guard let summary = (value as? [String: Any])?["summary"] as? [String: Any],
                  let covered = summary["covered_lines"] as? Int, let total = summary["num_statements"] as? Int else { return nil }
            return FileCoverage(file: path, covered: covered, total: total)
        }
    }

    /// `llvm-cov export` JSON (swift test --enable-code-coverage writes it): `data[0].files[].summary.lines`.
    public static func llvmCovJSON(_ json: [String: Any]) throws -> [FileCoverage] {
        guard let data = (json["data"] as? [[String: Any]])?.first, let files = data["files"] as? [[String: Any]] else {
            throw ReportParseError(description: "llvm-cov export JSON: no data[0].files")
        }
        return files.compactMap { f in
            guard let name = f["filename"] as? String, let lines = (f["summary"] as? [String: Any])?["lines"] as? [String: Any],
                  let count = lines["count"] as? Int, let covered = lines["covered"] as? Int else { return nil }
            return FileCoverage(file: name, covered: covered, total: count)
        }
    }

    /// Go cover profiles (`mode: set|count|atomic`, then `file:l.c,l.c statements count`), by statements.
    public static func goProfile(_ text: String) throws -> [FileCoverage] {
        let lines = text.split(separator: "\n")
        guard let first = lines.first, first.hasPrefix("mode:") else { throw ReportParseError(description: "Go cover profile: no mode line") }
        var blocks: [String: [String: (statements: Int, hit: Bool)]] = [:]
        for line in lines.dropFirst() {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let colon = parts[0].lastIndex(of: ":"), let statements = Int(parts[1]), let count = Int(parts[2]) else {
                throw ReportParseError(description: "Go cover profile: bad line '\(line)'")
            }
            let file = String(parts[0][..<colon]), block = String(parts[0][parts[0].index(after: colon)...])
            let old = blocks[file]?[block]
            blocks[file, default: [:]][block] = (statements, (old?.hit ?? false) || count > 0)
        }
        return blocks.sorted { $0.key < $1.key }.map { file, b in
            FileCoverage(file: file, covered: b.values.filter(\.hit).reduce(0) { $0 + $1.statements }, total: b.values.reduce(0) { $0 + $1.statements })
        }
    }

    /// Reads a coverage file, choosing the parser by its content.
    public static func parse(file: URL) throws -> [FileCoverage] {
        let text = try String(contentsOf: file, encoding: .utf8)
        if text.hasPrefix("mode:") { return try goProfile(text) }
        if text.contains("<coverage") { return try cobertura(text) }
        if text.contains("SF:") { return try lcov(text) }
        if let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] {
            if json["data"] != nil { return try llvmCovJSON(json) }
            if json["files"] != nil { return try coveragePyJSON(json) }
        }
        throw ReportParseError(description: "\(file.lastPathComponent): not a coverage format read here (lcov, Cobertura XML, coverage.py JSON, llvm-cov JSON, Go profile)")
    }
}
