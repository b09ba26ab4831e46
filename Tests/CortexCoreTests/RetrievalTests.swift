import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// Retrieval before every model call: Markdown chunking, BM25 ranking on a labelled set of questions over
/// the project's own docs and a fixture knowledge base, budgets and citations, and knowledge bases that
/// cannot be read.
@Suite struct RetrievalTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let knowledge = root.appendingPathComponent("Tests/Fixtures/knowledge")

    /// Every chunk of docs/*.md (source `docs/<file>`) and of the fixture knowledge base (`knowledge/<agent>/<file>`).
    static func corpus() throws -> [Chunk] {
        try KnowledgeBase.chunks(of: root.appendingPathComponent("docs"), source: "docs", recursive: false)
            + KnowledgeBase.chunks(of: knowledge, source: "knowledge")
    }

    /// (question, the section that answers it as `source#anchor`; any part of a long section counts).
    /// (question, the section that answers it as `source#anchor`; any part of a long section counts), from
    /// Tests/Fixtures/retrieval/labelled.json (the embeddings test reads the same set).
    static var labelled: [(String, String)] {
        get throws {
            struct Pair: Decodable { var question: String; var answer: String }
            let data = try Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/retrieval/labelled.json"))
            return try JSONDecoder().decode([Pair].self, from: data).map { ($0.question, $0.answer) }
        }
    }

    static func hit(_ citation: String, _ expected: String) -> Bool {
        citation == expected || (citation.hasPrefix(expected + "-") && citation.dropFirst(expected.count + 1).allSatisfy(\.isNumber))
    }

    /// BM25 finds the answering section in its top five for at least 80 % of the labelled questions.
    @Test func bm25RecallAtFiveOnTheLabelledSet() throws {
        let chunks = try Self.corpus()
        let index = BM25Index(chunks)
        let labelled = try Self.labelled
        #expect(labelled.count >= 30)
        // Every expected section exists: a renamed heading must fail here, not count as a miss.
        for (_, expected) in labelled { #expect(chunks.contains { Self.hit($0.citation, expected) }, "no chunk \(expected)") }
        var misses: [String] = []
        for (question, expected) in labelled where !index.search(question, limit: 5).contains(where: { Self.hit($0.chunk.citation, expected) }) {
            misses.append("\(question) → wanted \(expected), got \(index.search(question, limit: 3).map(\.chunk.citation))")
        }
        let recall = Double(labelled.count - misses.count) / Double(labelled.count)
        print("BM25 recall@5 on \(labelled.count) questions over \(chunks.count) chunks: \(String(format: "%.3f", recall))")
        for m in misses { print("  miss: \(m)") }
        #expect(recall >= 0.8, "\(misses)")
    }

    @Test func markdownIsChunkedByHeadingOutsideCodeFences() {
        let text = "# Title\n\nIntro.\n\n## Runbook\n\n```sh\n# not a heading\nkubectl get pods\n```\n\n## Runbook\n\nAgain.\n"
        let chunks = Chunker.markdown(text, source: "kb/a.md")
        #expect(chunks.map(\.citation) == ["kb/a.md#title", "kb/a.md#runbook", "kb/a.md#runbook-2"])
        #expect(chunks[1].text.contains("# not a heading") && chunks[1].text.contains("kubectl get pods"))
        // A long section is cut at paragraphs, each part under its heading.
        let long = "## Big\n\n" + (0..<6).map { "Paragraph \($0) " + String(repeating: "word ", count: 60) }.joined(separator: "\n\n")
        let parts = Chunker.markdown(long, source: "kb/b.md", maxWords: 150)
        #expect(parts.count == 3 && parts.map(\.anchor) == ["big", "big-2", "big-3"] && parts[1].text.hasPrefix("Big\n\nParagraph 2"), "\(parts.map(\.anchor))")
    }

    @Test func theBudgetBoundsWhatIsRetrievedAndEveryChunkIsCited() {
        let kb = KnowledgeBase(root: Self.knowledge, agent: "security")
        let all = kb.retrieve("critical vulnerability patched deadline dependency bump", budget: 10_000)
        #expect(all.problems.isEmpty && all.citations.first == "knowledge/security/cve-policy.md#remediation-deadlines", "\(all.citations)")
        // Only the agent's own directory and common/: no monitoring runbook in the security master's prompt.
        #expect(!all.citations.contains { $0.hasPrefix("knowledge/monitoring/") })
        let small = kb.retrieve("critical vulnerability patched deadline dependency bump", budget: 60)
        #expect(small.chunks.reduce(0) { $0 + $1.tokens } <= 60 && !small.chunks.isEmpty && small.chunks.count < all.chunks.count)
        #expect(small.prompt.contains("[\(small.citations[0])]\n") && small.prompt.hasPrefix("Context retrieved for this task (cite the [source#section] you rely on)"))
    }

    /// A knowledge base that is missing or has an unreadable file is reported with the retrieval; the rest is used.
    @Test func anUnreadableKnowledgeBaseIsReportedAndTheRestUsed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-kb-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("testing"), withIntermediateDirectories: true)
        try Data("# Flaky tests\n\nQuarantine a flaky test after three failures in a week.\n".utf8).write(to: dir.appendingPathComponent("testing/flaky.md"))
        try Data([0xFF, 0xFE, 0x00, 0xC3]).write(to: dir.appendingPathComponent("testing/broken.md"))
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = KnowledgeBase(root: dir, agent: "testing").retrieve("flaky test quarantine", budget: 500)
        #expect(r.citations == ["knowledge/testing/flaky.md#flaky-tests"], "\(r.citations)")
        #expect(r.problems.count == 1 && r.problems[0].contains("broken.md is unreadable"), "\(r.problems)")
        let missing = KnowledgeBase(root: dir.appendingPathComponent("nowhere"), agent: "security").retrieve("anything", budget: 500)
        #expect(missing.chunks.isEmpty && missing.problems.first?.contains("neither security/ nor common/ exists") == true, "\(missing.problems)")
        // Without a configured knowledge base there is nothing to retrieve and nothing to report.
        #expect(KnowledgeBase(root: nil, agent: "security").retrieve("anything", budget: 500) == Retrieval())
    }
}
