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
