import CortexControl
import CortexCore
import Foundation
import Testing

/// The committed docs are generated from the code; these fail when one changes without the other.
@Suite struct GeneratedDocsTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func protocolDocMatchesTheCode() throws {
        let committed = try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        #expect(committed == GeneratedDocs.protocolMarkdown(), "regenerate with: cortexctl docs protocol > docs/protocol.md")
        for type in MessageType.allCases {
            #expect(committed.contains("#### \(type.rawValue)\n"))
        }
    }

    /// Every stream and key docs/protocol.md lists is written by some process: a name documented but never
    /// written (like the coordinator inbox that once was) fails here. Written means: the name (or a local bound
    /// to it) is the key of a Redis write command — `.hset(CortexNames.run(id), …)`, `.xadd(…)`, a raw
    /// `["HSET", …]`, the keys of a script — in a source file other than the protocol module, the docs generator
    /// and the benchmarks; the catalog's keys are built by its write scripts from the prefixes CatalogScripts
    /// hands them. (docs/protocol.md is generated from GeneratedDocs.swift, checked above, so its names are read there.)
    @Test func everyDocumentedStreamAndKeyIsWrittenSomewhere() throws {
        let generator = try String(contentsOf: Self.repoRoot.appendingPathComponent("Sources/CortexControl/GeneratedDocs.swift"), encoding: .utf8)
        let section = try #require(generator.components(separatedBy: "## Streams and keys").dropFirst().first?.components(separatedBy: "## Message types").first)
        // Consumer group names (CortexNames.Group) are named in the table too, but are not keys.
        let documented = Set(section.matches(of: /CortexNames\.((?:Catalog\.)?\w+)/).map { String($0.output.1) }.filter { $0 != "Group" })
        #expect(documented.count >= 25, "\(documented.sorted())")
        let catalogPrefix = ["Catalog.asset": "Catalog.assetPrefix", "Catalog.index": "Catalog.indexPrefix", "Catalog.outEdges": "Catalog.outEdgesPrefix",
                             "Catalog.inEdges": "Catalog.inEdgesPrefix", "Catalog.counts": "Catalog.countPrefix"]
        let verbs = "HSET|HSETNX|HINCRBY|HDEL|XADD|SET|RPUSH|LPUSH|SADD|ZADD|EXPIRE|DEL"
        var sources: [(String, String)] = []
        let root = Self.repoRoot.appendingPathComponent("Sources")
        for case let path as String in FileManager.default.enumerator(atPath: root.path)! where path.hasSuffix(".swift") {
            if path.hasPrefix("CortexCore/Protocol/") || path.hasSuffix("GeneratedDocs.swift") || path.hasSuffix("Benchmark.swift") { continue }
            sources.append((path, try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)))
        }
        // Regex construction dominates the run time: each pattern is compiled once.
        var compiled: [String: Regex<AnyRegexOutput>] = [:]
        func regex(_ pattern: String) throws -> Regex<AnyRegexOutput> {
            if let r = compiled[pattern] { return r }
            let r = try Regex(pattern)
            compiled[pattern] = r
            return r
        }
        func written(_ name: String, in path: String, _ text: String) throws -> Bool {
            // A file that does not mention the name cannot write it.
            guard text.contains("CortexNames.\(name)") else { return false }
            let ref = "CortexNames\\.\(NSRegularExpression.escapedPattern(for: name))\\b"
            if path.hasSuffix("CatalogScripts.swift") && name.hasPrefix("Catalog.") && text.contains("CortexNames.\(name)") { return true }
            // A write command whose key is the name, or a local bound to it.
            var keys = [ref]
            for binding in text.matches(of: try regex("let (\\w+) = \(ref)")) { if let v = binding.output[1].substring { keys.append("\(v)\\b") } }
            for key in keys {
                if text.contains(try regex("\"(\(verbs))\",\\s*\(key)")) { return true }
                // The typed command layer: `.hset(key, …)`, `.xadd(key, …)` …
                if text.contains(try regex("\\.(\(verbs.lowercased()))\\(\\s*\(key)")) { return true }
                // A key of a script: `script.run(redis, keys: [key, …])`, `let keys = [key, …]` handed to one.
                if text.contains(try regex("keys(: | = )\\[[^\\]]*\(key)")) { return true }
                // A key of an EVAL: ["EVAL", script, n, key, …] on one statement.
                if text.contains(try regex("\"EVAL\",[^\\]\\n]*\(key)")) { return true }
            }
            return false
        }
        for name in documented.sorted() {
            let used = catalogPrefix[name] ?? name
            let writers = try sources.filter { try written(used, in: $0.0, $0.1) }.map(\.0)
            #expect(!writers.isEmpty, "docs/protocol.md lists CortexNames.\(name), but no process writes it")
        }
    }

    /// The schema is read from the payload types: every example decodes as its type and sends no field the
    /// schema does not name; with every optional set, the keys on the wire are exactly the schema's names
    /// (a CodingKey that disagrees with its property's snake_case name fails here).
    @Test func payloadTypesAndTheirSchemaAgree() throws {
        func check<P: MessagePayload & Equatable>(_ value: P, type: MessageType) throws {
            let keys = Set(value.data.objectValue?.keys.map { $0 } ?? [])
            #expect(keys == Set(type.fields.map(\.name)), "\(type): \(keys.sorted()) vs \(type.fields.map(\.name))")
            let decoded = try Envelope(value, source: "test").payload(P.self)
            #expect(decoded == value)
        }
        for type in MessageType.allCases {
            let keys = Set(type.exampleData.objectValue?.keys.map { $0 } ?? [])
            #expect(keys.isSubset(of: Set(type.fields.map(\.name))) && type.fields.filter(\.required).allSatisfy { keys.contains($0.name) }, "\(type)")
            #expect(!type.fields.isEmpty)
        }
        try check(HandoffRequest(from: "security", to: "development", reason: "r", taskID: "t", target: "/x", advisories: ["A"], branch: "b", priority: "critical"), type: .HANDOFF_REQUEST)
        try check(RunComplete(status: "partial", reportDir: "/r", durationMs: 3, reason: "why"), type: .RUN_COMPLETE)
        try check(RunFailed(reason: "r", reportDir: "/r"), type: .RUN_FAILED)
        try check(TaskFailed(itemID: "i", taskID: "t", worker: "w", reason: "r", status: "skipped"), type: .TASK_FAILED)
        try check(MasterReportPublished(taskID: "t", master: "security", status: "partial", summary: "s", reason: "r"), type: .MASTER_REPORT)
        try check(Escalation(severity: "high", reason: "r", subject: "s"), type: .ESCALATION)
        try check(BudgetDecided(requestID: "r", agent: "a", account: "a", decision: "granted", amount: 1, reason: "r", sources: ["x:1"]), type: .BUDGET_DECISION)
        try check(TaskComplete.example, type: .TASK_COMPLETE)
        try check(MasterDown.example, type: .MASTER_DOWN)
        // The wrong type is refused, not half-read.
        #expect(throws: CortexError.self) { try Envelope(TaskComplete.example, source: "test").payload(TaskFailed.self) }
    }

    @Test func configurationDocMatchesTheCode() throws {
        let committed = try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        #expect(committed == GeneratedDocs.configurationMarkdown(), "regenerate with: cortexctl docs configuration > docs/configuration.md")
    }

    @Test func everyExampleIsAValidEnvelopeAndShellSafe() throws {
        let decoder = EnvelopeDecoder()
        for type in MessageType.allCases {
            let e = GeneratedDocs.example(type)
            #expect(!e.encodedString.contains("'"), "single quotes would break the redis-cli example")
            let decoded = try decoder.decode(e.encoded(), channel: type.channel).get()
            #expect(decoded == e)
        }
    }

    @Test func metricsDocListsEveryMetric() throws {
        let doc = try String(contentsOf: Self.repoRoot.appendingPathComponent("docs/metrics.md"), encoding: .utf8)
        for name in CortexMetrics.help.keys.sorted() {
            #expect(doc.contains("| `\(name)` |"), "docs/metrics.md does not list \(name)")
        }
    }
}
