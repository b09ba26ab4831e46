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
        var chunks: [Chunk] = []
        let docs = root.appendingPathComponent("docs")
        for name in try FileManager.default.contentsOfDirectory(atPath: docs.path).sorted() where name.hasSuffix(".md") {
            chunks += Chunker.markdown(try String(contentsOf: docs.appendingPathComponent(name), encoding: .utf8), source: "docs/\(name)")
        }
        for agent in try FileManager.default.contentsOfDirectory(atPath: knowledge.path).sorted() {
            let dir = knowledge.appendingPathComponent(agent)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".md") {
                chunks += Chunker.markdown(try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8), source: "knowledge/\(agent)/\(name)")
            }
        }
        return chunks
    }

    /// (question, the section that answers it as `source#anchor`; any part of a long section counts).
    static let labelled: [(String, String)] = [
        // The fixture knowledge base.
        ("who holds the pager at night, outside business hours?", "knowledge/common/escalation.md#who-is-on-call"),
        ("what counts as a SEV1 incident", "knowledge/common/escalation.md#severity-levels"),
        ("may we deploy to production on a Friday afternoon or during the holidays", "knowledge/common/escalation.md#change-freeze"),
        ("how quickly must a critical vulnerability be patched", "knowledge/security/cve-policy.md#remediation-deadlines"),
        ("who must sign off a major version bump of a dependency", "knowledge/security/cve-policy.md#dependency-bumps"),
        ("how long can a vulnerability exception from the CISO last", "knowledge/security/cve-policy.md#exceptions"),
        ("a credential leaked in git: rotate it or rewrite history first?", "knowledge/security/cve-policy.md#secrets-in-repositories"),
        ("what must add() in calc.py return", "knowledge/development/calc-conventions.md#arithmetic-functions"),
        ("how should a commit message subject be written", "knowledge/development/calc-conventions.md#commit-messages"),
        ("the shop database has no ready replica, what now", "knowledge/monitoring/alert-runbooks.md#shopdbunavailable"),
        ("web pods keep restarting after an out-of-memory kill", "knowledge/monitoring/alert-runbooks.md#shopwebrestarting"),
        ("TLS certificate about to expire although cert-manager should renew it", "knowledge/monitoring/alert-runbooks.md#certificateexpiring"),
        ("on Mondays, does the cluster audit go before repository scans", "knowledge/coordinator/planning.md#weekly-audits"),
        ("are the archived legacy repositories scanned", "knowledge/coordinator/planning.md#repositories-out-of-scope"),
        // The project's own docs.
        ("how is a goal turned into subtasks with dependencies and routed to experts by learned weights", "docs/architecture.md#plans-and-routing"),
        ("what happens when a worker is OOMKilled in the middle of an item and its checkpoint", "docs/architecture.md#failures-and-recovery-docsreliabilitymd-has-the-measured-table"),
        ("why is no work lost when a consumer crashes before XACK", "docs/architecture.md#why-nothing-is-lost"),
        ("how are token budgets reserved before an LLM call and what is the emergency reserve", "docs/architecture.md#token-budgets-and-llm-calls"),
        ("how do partial, skipped and denied outcomes roll up into the run's status", "docs/outcomes.md#how-outcomes-roll-up"),
        ("what exit status does cortexctl run return for a partial run", "docs/outcomes.md#exit-status-of-cortexctl-run-and-cortexctl-up"),
        ("which priority may draw on the emergency reserve", "docs/outcomes.md#priorities-and-the-emergency-reserve"),
        ("how does the security master split a scan into shards", "docs/security.md#how-a-scan-is-split"),
        ("where does the offline OSV advisory database come from and how is it loaded", "docs/security.md#the-advisory-database"),
        ("how are fix branches pushed and pull requests opened on GitHub", "docs/security.md#fix-branches-and-pull-requests"),
        ("what does the SARIF log contain", "docs/security.md#sarif"),
        ("what limits protect catalog-api from hostile GraphQL clients: depth, cost, page size", "docs/catalog.md#limits-hostile-clients"),
        ("how do bearer tokens for the catalog API work", "docs/catalog.md#tokens"),
        ("how does the cicd master review pipelines for security and speed", "docs/masters.md#cicd-master-pipeline-review"),
        ("how does the testing master run the suites with coverage and detect flaky tests", "docs/masters.md#testing-master-running-the-suites"),
        ("how is the Helm chart verified without a Helm binary or a cluster", "docs/install.md#how-the-chart-is-verified-no-helm-binary-no-cluster-here"),
        ("how many items per second does the durable work queue benchmark reach", "docs/benchmarks.md#durable-work-queue"),
        ("how are the parsers fuzzed with libFuzzer and where is the corpus", "docs/fuzzing.md#corpus"),
        ("which chaos scenarios are in the reliability suite", "docs/reliability.md#scenarios"),
        ("how do I create the Redis ACL users on an external Redis", "docs/redis-acl.md#creating-the-users-on-an-external-redis-70-or-later"),
    ]

    static func hit(_ citation: String, _ expected: String) -> Bool {
        citation == expected || (citation.hasPrefix(expected + "-") && citation.dropFirst(expected.count + 1).allSatisfy(\.isNumber))
    }

    /// BM25 finds the answering section in its top five for at least 80 % of the labelled questions.
    @Test func bm25RecallAtFiveOnTheLabelledSet() throws {
        let chunks = try Self.corpus()
        let index = BM25Index(chunks)
        #expect(Self.labelled.count >= 30)
        // Every expected section exists: a renamed heading must fail here, not count as a miss.
        for (_, expected) in Self.labelled { #expect(chunks.contains { Self.hit($0.citation, expected) }, "no chunk \(expected)") }
        var misses: [String] = []
        for (question, expected) in Self.labelled where !index.search(question, limit: 5).contains(where: { Self.hit($0.chunk.citation, expected) }) {
            misses.append("\(question) → wanted \(expected), got \(index.search(question, limit: 3).map(\.chunk.citation))")
        }
        let recall = Double(Self.labelled.count - misses.count) / Double(Self.labelled.count)
        print("BM25 recall@5 on \(Self.labelled.count) questions over \(chunks.count) chunks: \(String(format: "%.3f", recall))")
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
