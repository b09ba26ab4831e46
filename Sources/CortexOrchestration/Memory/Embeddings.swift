import CortexCore
import Foundation

/// An OpenAI-compatible embeddings endpoint (`POST <base>/v1/embeddings`, which OpenAI, Ollama and vLLM
/// serve): texts in, unit vectors out. Configured by `CORTEX_EMBEDDINGS_URL` and `CORTEX_EMBEDDINGS_MODEL`.
public struct EmbeddingsClient: Sendable {
    public let baseURL: String
    public let model: String
    let apiKey: String?
    let timeout: Duration

    public init(baseURL: String, model: String, apiKey: String? = nil, timeout: Duration = .seconds(30)) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
        self.apiKey = apiKey
        self.timeout = timeout
    }

    /// The endpoint configured for this process, or nil.
    public static func configured(_ settings: SettingValues) throws -> EmbeddingsClient? {
        guard let url = settings.raw(.embeddingsURL), !url.isEmpty else { return nil }
        return EmbeddingsClient(baseURL: url, model: settings.string(.embeddingsModel), apiKey: try settings.secret(.embeddingsAPIKey, file: .embeddingsAPIKeyFile))
    }

    /// One vector per text, normalised to unit length (cosine = dot product); at most 64 texts per request.
    public func embed(_ texts: [String]) async throws -> [[Float]] {
        var out: [[Float]] = []
        for start in stride(from: 0, to: texts.count, by: 64) {
            let batch = Array(texts[start..<min(start + 64, texts.count)])
            let body: JSONValue = ["model": .string(model), "input": .array(batch.map(JSONValue.string))]
            var headers = ["Content-Type": "application/json"]
            if let apiKey { headers["Authorization"] = "Bearer \(apiKey)" }
            let response: HTTPResponse
            do {
                response = try await HTTPClient.request("POST", url: baseURL + "/v1/embeddings", headers: headers, body: Array(body.description.utf8), timeout: timeout)
            } catch {
                throw CortexError(.unreachable, "embeddings endpoint \(baseURL) unreachable: \(error)")
            }
            guard response.status == 200 else {
                throw CortexError(.failed, "embeddings endpoint \(baseURL): HTTP \(response.status): \(response.text.prefix(200))")
            }
            let json = try JSONText.parse(response.text)
            guard let data = json["data"]?.arrayValue, data.count == batch.count else {
                throw CortexError(.invalidInput, "embeddings endpoint \(baseURL) answered \(json["data"]?.arrayValue?.count ?? 0) vectors for \(batch.count) texts")
            }
            let ordered = data.sorted { ($0["index"]?.intValue ?? 0) < ($1["index"]?.intValue ?? 0) }
            for item in ordered {
                guard let values = item["embedding"]?.arrayValue?.compactMap(\.doubleValue), !values.isEmpty else {
                    throw CortexError(.invalidInput, "embeddings endpoint \(baseURL) answered an entry without an embedding")
                }
                out.append(Self.normalised(values.map { Float($0) }))
            }
        }
        return out
    }

    static func normalised(_ v: [Float]) -> [Float] {
        let norm = sqrt(v.reduce(0) { $0 + $1 * $1 })
        return norm > 0 ? v.map { $0 / norm } : v
    }
}

/// BM25 and embeddings together: each ranks the chunks, and the ranks are fused (reciprocal rank fusion,
/// k = 60: score = Σ 1 / (60 + rank)); a chunk needs no shared word to be found, and a shared rare word
/// still counts. Chunk vectors are kept in Redis (`cortex:embeddings:<model>`, by the chunk text's hash)
/// so each text is embedded once; without an endpoint, or when it fails, BM25 alone ranks and the
/// retrieval says why.
public struct HybridRanker: Sendable {
    public let index: BM25Index
    public let embeddings: EmbeddingsClient
    let redis: RedisClient?

    public init(index: BM25Index, embeddings: EmbeddingsClient, redis: RedisClient?) {
        self.index = index
        self.embeddings = embeddings
        self.redis = redis
    }

    /// The best `limit` chunks for `query`, and what went wrong (then the ranking is BM25's alone).
    public func search(_ query: String, limit: Int) async -> (chunks: [Chunk], problems: [String]) {
        let lexical = index.search(query, limit: max(limit, 50)).map(\.chunk)
        let vectors: [[Float]], queryVector: [Float]
        do {
            vectors = try await chunkVectors()
            guard let q = try await embeddings.embed([query]).first else { throw CortexError(.invalidInput, "no vector for the query") }
            queryVector = q
        } catch {
            return (Array(lexical.prefix(limit)), ["embeddings not used (BM25 alone ranked): \(error)"])
        }
        var similarity: [(index: Int, cosine: Float)] = []
        for (i, v) in vectors.enumerated() { similarity.append((i, Self.dot(v, queryVector))) }
        similarity.sort { $0.cosine != $1.cosine ? $0.cosine > $1.cosine : $0.index < $1.index }
        let semantic = similarity.prefix(50).map { index.chunks[$0.index] }
        var scores: [Chunk: Double] = [:]
        for (rank, c) in lexical.enumerated() { scores[c, default: 0] += 1 / Double(60 + rank + 1) }
        for (rank, c) in semantic.enumerated() { scores[c, default: 0] += 1 / Double(60 + rank + 1) }
        let fused = scores.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.citation < $1.key.citation }.map(\.key)
        return (Array(fused.prefix(limit)), [])
    }

    /// Every chunk's vector: from Redis where stored, the rest embedded (in batches) and stored.
    func chunkVectors() async throws -> [[Float]] {
        let key = CortexNames.embeddings(embeddings.model)
        let hashes = index.chunks.map { RepositoryFiles.hash($0.text) }
        var known: [String: [Float]] = [:]
        if let redis {
            let values = try await redis.send(.hmget(key, hashes)).orThrow().array ?? []
            for (h, v) in zip(hashes, values) { if let text = v.string, let vector = Self.decode(text) { known[h] = vector } }
        }
        let missing = index.chunks.indices.filter { known[hashes[$0]] == nil }
        if !missing.isEmpty {
            let computed = try await embeddings.embed(missing.map { index.chunks[$0].title + "\n" + index.chunks[$0].text })
            for (i, v) in zip(missing, computed) { known[hashes[i]] = v }
            if let redis {
                try await redis.run([.hset(key, fields: zip(missing, computed).map { (hashes[$0], Self.encode($1)) })])
            }
        }
        return hashes.map { known[$0] ?? [] }
    }

    /// A vector as base64 of little-endian float32.
    static func encode(_ v: [Float]) -> String {
        var data = Data(capacity: v.count * 4)
        for f in v { withUnsafeBytes(of: f.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data.base64EncodedString()
    }

    static func decode(_ text: String) -> [Float]? {
        guard let data = Data(base64Encoded: text), data.count % 4 == 0, !data.isEmpty else { return nil }
        let bytes = [UInt8](data)
        var out: [Float] = []
        out.reserveCapacity(bytes.count / 4)
        for i in stride(from: 0, to: bytes.count, by: 4) {
            let b0 = UInt32(bytes[i]), b1 = UInt32(bytes[i + 1]) << 8, b2 = UInt32(bytes[i + 2]) << 16, b3 = UInt32(bytes[i + 3]) << 24
            out.append(Float(bitPattern: b0 | b1 | b2 | b3))
        }
        return out
    }

    /// The dot product (the cosine, for unit vectors); 0 for vectors of different lengths.
    static func dot(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return 0 }
        var sum: Float = 0
        for i in a.indices { sum += a[i] * b[i] }
        return sum
    }
}
