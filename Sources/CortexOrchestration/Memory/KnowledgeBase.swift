import CortexCore
import Foundation

/// An agent's knowledge base: the Markdown files (runbooks, policies) under `CORTEX_KNOWLEDGE_DIR/<agent>/`
/// and `CORTEX_KNOWLEDGE_DIR/common/`, chunked and indexed (BM25) once, and again when a file changes.
/// Retrieval before a model call takes the best chunks within a token budget; a file that cannot be read
/// is reported with the retrieval and the rest is used.
public final class KnowledgeBase: Sendable {
    /// The configured root (nil: no knowledge base).
    public let root: URL?
    /// `coordinator`, `security`, … (the directory under the root).
    public let agent: String
    private let cache = Locked<(signature: String, index: BM25Index, problems: [String])?>(nil)

    public init(root: URL?, agent: String) {
        self.root = root
        self.agent = agent
    }

    /// The knowledge base configured by `CORTEX_KNOWLEDGE_DIR` for `agent`, one per process and agent (its
    /// index is built once and kept while the files do not change).
    public static func configured(_ settings: SettingValues, agent: String) -> KnowledgeBase {
        let dir = settings.raw(.knowledgeDir).flatMap { $0.isEmpty ? nil : $0 }
        let root = dir.map { URL(fileURLWithPath: $0).standardizedFileURL }
        let key = "\(root?.path ?? "-")|\(agent)"
        return shared.withLock { all in
            if let kb = all[key] { return kb }
            let kb = KnowledgeBase(root: root, agent: agent)
            all[key] = kb
            return kb
        }
    }

    private static let shared = Locked<[String: KnowledgeBase]>([:])

    /// The directories searched: the agent's own and the shared one.
    var directories: [URL] { root.map { [$0.appendingPathComponent(agent), $0.appendingPathComponent("common")] } ?? [] }

    /// The best chunks for `query` within `budget` tokens (at most `limit`), and what could not be read.
    public func retrieve(_ query: String, budget: Int, limit: Int = 8) -> Retrieval {
        guard root != nil else { return Retrieval() }
        let (index, problems) = load()
        let ranked = index.search(query, limit: limit).map(\.chunk)
        return Retrieval(chunks: Retrieval.select(ranked, budget: budget), problems: problems)
    }

    /// The same, ranked by BM25 and the embeddings together when an endpoint is configured (`HybridRanker`,
    /// vectors kept in `redis`); an endpoint that fails is reported and BM25 ranks alone.
    public func retrieve(_ query: String, budget: Int, limit: Int = 8, embeddings: EmbeddingsClient?, redis: RedisClient?) async -> Retrieval {
        guard root != nil else { return Retrieval() }
        guard let embeddings else { return retrieve(query, budget: budget, limit: limit) }
        let (index, problems) = load()
        let (ranked, more) = await HybridRanker(index: index, embeddings: embeddings, redis: redis).search(query, limit: limit)
        return Retrieval(chunks: Retrieval.select(ranked, budget: budget), problems: problems + more)
    }

    /// The index, rebuilt when the files' sizes or modification times change.
    func load() -> (BM25Index, [String]) {
        let files = markdownFiles()
        let signature = files.map { "\($0.path):\($0.size):\($0.modified)" }.joined(separator: "|")
        if let cached = cache.value, cached.signature == signature { return (cached.index, cached.problems) }
        var chunks: [Chunk] = []
        var problems: [String] = []
        if let root, !directories.contains(where: { FileManager.default.fileExists(atPath: $0.path) }) {
            problems.append("knowledge base \(root.path): neither \(agent)/ nor common/ exists")
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file.path), let text = String(data: data, encoding: .utf8) else {
                problems.append("knowledge base file \(file.path) is unreadable (not UTF-8 text, or no permission)")
                continue
            }
            chunks += Chunker.markdown(text, source: "knowledge/" + file.relative)
        }
        let index = BM25Index(chunks)
        cache.withLock { $0 = (signature, index, problems) }
        return (index, problems)
    }

    /// Every chunk of the Markdown files in `directory` (and below it, unless not `recursive`), sources named
    /// `<source>/<relative path>`, in path order: a directory of documents indexed the way knowledge bases are.
    public static func chunks(of directory: URL, source: String, recursive: Bool = true) throws -> [Chunk] {
        let fm = FileManager.default
        let base = directory.standardizedFileURL.path
        var paths: [String] = []
        if recursive {
            guard let walker = fm.enumerator(atPath: base) else { throw CortexError(.notFound, "\(base) is not a directory") }
            for case let p as String in walker where p.hasSuffix(".md") { paths.append(p) }
        } else {
            paths = try fm.contentsOfDirectory(atPath: base).filter { $0.hasSuffix(".md") }
        }
        var out: [Chunk] = []
        for p in paths.sorted() {
            out += Chunker.markdown(try String(contentsOfFile: base + "/" + p, encoding: .utf8), source: "\(source)/\(p)")
        }
        return out
    }

    struct File { var path: String; var relative: String; var size: Int; var modified: Double }

    /// Every `.md` file under the agent's and the shared directory, sorted (at most 5,000, of at most 1 MiB each).
    func markdownFiles() -> [File] {
        guard let root else { return [] }
        var out: [File] = []
        let fm = FileManager.default
        for dir in directories {
            guard let walker = fm.enumerator(at: dir, includingPropertiesForKeys: [.fileSizeKey, .contentModificationDateKey, .isRegularFileKey]) else { continue }
            for case let url as URL in walker where url.pathExtension.lowercased() == "md" {
                let values = try? url.resourceValues(forKeys: [.fileSizeKey, .contentModificationDateKey, .isRegularFileKey])
                guard values?.isRegularFile == true, let size = values?.fileSize, size <= 1 << 20 else { continue }
                let path = url.standardizedFileURL.path
                let relative = path.hasPrefix(root.path + "/") ? String(path.dropFirst(root.path.count + 1)) : url.lastPathComponent
                out.append(File(path: path, relative: relative, size: size, modified: values?.contentModificationDate?.timeIntervalSince1970 ?? 0))
                if out.count >= 5_000 { break }
            }
        }
        return out.sorted { $0.relative < $1.relative }
    }
}
