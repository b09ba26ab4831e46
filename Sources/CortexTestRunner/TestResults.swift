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

    /// V8's own coverage (the JSON files `NODE_V8_COVERAGE` makes every node process write; c8 reads
    /// the same): block ranges with counts per script. A line counts as covered when the innermost
    /// range around its first character ran; blank and `//` comment lines do not count. Only the
    /// repository's files, outside node_modules and test files, are kept; a script run by several
    /// processes is covered where any of them ran it.
    public static func v8(directory: URL, root: URL) throws -> [FileCoverage] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else { return [] }
        let prefixes = Set(["file://" + root.path + "/", "file://" + root.resolvingSymlinksInPath().path + "/"])
        var hitLines: [String: (covered: Set<Int>, total: Int)] = [:]
        for name in names.sorted() where name.hasSuffix(".json") {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any], let scripts = json["result"] as? [[String: Any]] else {
                throw ReportParseError(description: "V8 coverage \(name): no result array")
            }
            for script in scripts {
                guard let url = script["url"] as? String, let prefix = prefixes.first(where: { url.hasPrefix($0) }) else { continue }
                let file = String(url.dropFirst(prefix.count)).removingPercentEncoding ?? String(url.dropFirst(prefix.count))
                guard !isTestOrVendored(file), let source = try? String(contentsOf: root.appendingPathComponent(file), encoding: .utf8) else { continue }
                let ranges = ((script["functions"] as? [[String: Any]]) ?? []).flatMap { ($0["ranges"] as? [[String: Any]]) ?? [] }.compactMap { r -> (start: Int, end: Int, count: Int)? in
                    guard let s = r["startOffset"] as? Int, let e = r["endOffset"] as? Int, let c = r["count"] as? Int else { return nil }
                    return (s, e, c)
                }
                var entry = hitLines[file] ?? ([], 0)
                var lineNumber = 0, offset = 0, total = 0
                // Offsets are UTF-16 code units, as in the script's JavaScript string.
                for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
                    lineNumber += 1
                    defer { offset += line.utf16.count + 1 }
                    let trimmed = line.drop { $0 == " " || $0 == "\t" }
                    guard !trimmed.isEmpty, !trimmed.hasPrefix("//"), trimmed != "\r" else { continue }
                    total += 1
                    let at = offset + (line.utf16.count - trimmed.utf16.count)
                    // The innermost range holding the offset: ranges nest, so the smallest one.
                    let innermost = ranges.filter { $0.start <= at && at < $0.end }.min { ($0.end - $0.start) < ($1.end - $1.start) }
                    if let innermost, innermost.count > 0 { entry.covered.insert(lineNumber) }
                }
                entry.total = total
                hitLines[file] = entry
            }
        }
        return hitLines.sorted { $0.key < $1.key }.map { FileCoverage(file: $0.key, covered: $0.value.covered.count, total: $0.value.total) }
    }

    /// node_modules and test files (test/, tests/, __tests__/, *.test.js, *.spec.js): c8's default exclusions.
    static func isTestOrVendored(_ file: String) -> Bool {
        let parts = file.split(separator: "/")
        if parts.contains(where: { ["node_modules", "test", "tests", "__tests__"].contains($0) }) { return true }
        let name = parts.last ?? ""
        return name.contains(".test.") || name.contains(".spec.")
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
