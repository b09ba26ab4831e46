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
    /// written (like the coordinator inbox that once was) fails here. "Written" means the name is used
    /// within a Redis write command (or handed to a Lua script that writes) in a source file other than the
    /// protocol module, the docs generator and the benchmarks.
    @Test func everyDocumentedStreamAndKeyIsWrittenSomewhere() throws {
        let generator = try String(contentsOf: Self.repoRoot.appendingPathComponent("Sources/CortexControl/GeneratedDocs.swift"), encoding: .utf8)
        let section = try #require(generator.components(separatedBy: "## Streams and keys").dropFirst().first?.components(separatedBy: "## Message types").first)
        let documented = Set(section.matches(of: /CortexNames\.((?:Catalog\.)?\w+)/).map { String($0.output.1) })
        #expect(documented.count >= 25, "\(documented.sorted())")
        // The catalog's write scripts build keys from these prefixes (CatalogScripts hands them to Lua).
        let catalogPrefix = ["Catalog.asset": "Catalog.assetPrefix", "Catalog.index": "Catalog.indexPrefix", "Catalog.outEdges": "Catalog.outEdgesPrefix",
                             "Catalog.inEdges": "Catalog.inEdgesPrefix", "Catalog.counts": "Catalog.countPrefix"]
        let writes = ["\"HSET\"", "\"HSETNX\"", "\"HINCRBY\"", "\"XADD\"", "\"SET\"", "\"RPUSH\"", "\"LPUSH\"", "\"SADD\"", "\"ZADD\"", "\"EVAL\"",
                      ".xadd(", "scriptKeys", "CatalogScripts"]
        var sources: [(String, String)] = []
        let root = Self.repoRoot.appendingPathComponent("Sources")
        for case let path as String in FileManager.default.enumerator(atPath: root.path)! where path.hasSuffix(".swift") {
            if path.hasPrefix("CortexCore/Protocol/") || path.hasSuffix("GeneratedDocs.swift") || path.hasSuffix("Benchmark.swift") { continue }
            sources.append((path, try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)))
        }
        for name in documented.sorted() {
            let used = catalogPrefix[name] ?? name
            var written: [String] = []
            for (path, text) in sources {
                var rest = text[...]
                while let hit = rest.range(of: "CortexNames.\(used)") {
                    let after = text[hit.upperBound...].first
                    defer { rest = text[hit.upperBound...] }
                    if let after, after.isLetter || after.isNumber { continue }  // runTasks is not run
                    let from = text.index(hit.lowerBound, offsetBy: -300, limitedBy: text.startIndex) ?? text.startIndex
                    let to = text.index(hit.upperBound, offsetBy: 600, limitedBy: text.endIndex) ?? text.endIndex
                    let window = text[from..<to]
                    if writes.contains(where: { window.contains($0) }) || path.hasSuffix("CatalogScripts.swift") { written.append(path) }
                }
            }
            #expect(!written.isEmpty, "docs/protocol.md lists CortexNames.\(name), but no process writes it")
        }
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
