import CortexCore
import Foundation

/// One retrievable piece of text: a section (or part of one) of a knowledge-base document, a catalog
/// listing, an earlier run's finding. `citation` is how prompts and reports name it: `source#anchor`.
public struct Chunk: Codable, Sendable, Equatable, Hashable {
    /// Where it came from: a file path relative to its knowledge base (`runbooks/db.md`), `catalog`, `history`.
    public var source: String
    /// The section within the source (a heading's slug, with `-2`, `-3` … for later parts of a long one).
    public var anchor: String
    /// The section's heading (or the source's name).
    public var title: String
    public var text: String

    public init(source: String, anchor: String, title: String, text: String) {
        self.source = source
        self.anchor = anchor
        self.title = title
        self.text = text
    }

    /// `source#anchor`: unique within one index, quoted in prompts and reports.
    public var citation: String { "\(source)#\(anchor)" }
    /// A rough token count (words × 4/3): what the chunk costs in a prompt.
    public var tokens: Int { (Retrieval.words(in: text) * 4 + 2) / 3 }
}

/// Markdown split into chunks by heading, a long section further by paragraphs.
public enum Chunker {
    /// Splits `text` (Markdown) at headings (`#` … `######`, outside code fences); a section longer than
    /// `maxWords` is cut at paragraph boundaries. Each chunk keeps its heading in its text (it is what
    /// the section is about).
    public static func markdown(_ text: String, source: String, maxWords: Int = 180) -> [Chunk] {
        var sections: [(title: String, lines: [String])] = [(PathText.lastComponent(source), [])]
        var fenced = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") { fenced.toggle() }
            if !fenced, line.hasPrefix("#"), let title = heading(line) {
                sections.append((title, [line]))
            } else {
                sections[sections.count - 1].lines.append(line)
            }
        }
        var chunks: [Chunk] = []
        var used: [String: Int] = [:]
        for section in sections {
            let body = section.lines.joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
            guard !body.isEmpty, Retrieval.words(in: body) > 0 else { continue }
            let base = slug(section.title)
            for part in split(body, maxWords: maxWords) {
                let n = used[base, default: 0] + 1
                used[base] = n
                let text = part.hasPrefix("#") || n == 1 ? part : "\(section.title)\n\n\(part)"
                chunks.append(Chunk(source: source, anchor: n == 1 ? base : "\(base)-\(n)", title: section.title, text: text))
            }
        }
        return chunks
    }

    static func heading(_ line: String) -> String? {
        let hashes = line.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes), line.dropFirst(hashes).first == " " else { return nil }
        return String(line.dropFirst(hashes + 1)).trimmingCharacters(in: .whitespaces)
    }

    /// GitHub-style anchor: lower case, letters, digits and `-`.
    static func slug(_ title: String) -> String {
        let s = title.lowercased().map { $0.isLetter || $0.isNumber ? String($0) : ($0 == " " || $0 == "-" ? "-" : "") }.joined()
        let trimmed = s.split(separator: "-").joined(separator: "-")
        return trimmed.isEmpty ? "section" : String(trimmed.prefix(80))
    }

    /// Paragraphs gathered up to `maxWords` per part (a paragraph longer than that is a part of its own).
    static func split(_ body: String, maxWords: Int) -> [String] {
        var parts: [String] = []
        var current: [String] = []
        var words = 0
        for paragraph in body.components(separatedBy: "\n\n") where !paragraph.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let w = Retrieval.words(in: paragraph)
            if words > 0 && words + w > maxWords {
                parts.append(current.joined(separator: "\n\n"))
                current = []
                words = 0
            }
            current.append(paragraph)
            words += w
        }
        if !current.isEmpty { parts.append(current.joined(separator: "\n\n")) }
        return parts
    }
}

/// Okapi BM25 over chunks (k1 1.2, b 0.75), in memory: terms are lower-cased words and numbers, common
/// English words dropped, plural and -ing/-ed endings folded, so "restarts" finds "restarting".
public struct BM25Index: Sendable {
    public let chunks: [Chunk]
    let postings: [String: [(doc: Int, tf: Int)]]
    let lengths: [Int]
    let averageLength: Double
    let k1 = 1.2, b = 0.75

    public init(_ chunks: [Chunk]) {
        self.chunks = chunks
        var postings: [String: [(doc: Int, tf: Int)]] = [:]
        var lengths: [Int] = []
        for (i, chunk) in chunks.enumerated() {
            let terms = Retrieval.terms(chunk.title + " " + chunk.text)
            lengths.append(terms.count)
            var tf: [String: Int] = [:]
            for t in terms { tf[t, default: 0] += 1 }
            for (t, n) in tf { postings[t, default: []].append((i, n)) }
        }
        self.postings = postings
        self.lengths = lengths
        averageLength = lengths.isEmpty ? 1 : max(1, Double(lengths.reduce(0, +)) / Double(lengths.count))
    }

    /// The best `limit` chunks for `query`, best first, with their scores (only chunks sharing a term).
    public func search(_ query: String, limit: Int) -> [(chunk: Chunk, score: Double)] {
        var scores: [Int: Double] = [:]
        let n = Double(chunks.count)
        for term in Set(Retrieval.terms(query)) {
            guard let list = postings[term] else { continue }
            let idf = log(1 + (n - Double(list.count) + 0.5) / (Double(list.count) + 0.5))
            for (doc, tf) in list {
                let f = Double(tf)
                scores[doc, default: 0] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * Double(lengths[doc]) / averageLength))
            }
        }
        return scores.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map { (chunks[$0.key], $0.value) }
    }
}

/// What a caller retrieved before a model call: the chunks, best first, within a token budget, and how
/// they read in a prompt (each under its citation).
public struct Retrieval: Sendable, Equatable {
    public var chunks: [Chunk]
    /// What could not be consulted (a knowledge base that is unreadable, an embeddings endpoint that is down).
    public var problems: [String]

    public init(chunks: [Chunk] = [], problems: [String] = []) {
        self.chunks = chunks
        self.problems = problems
    }

    /// The citations, in order.
    public var citations: [String] { chunks.map(\.citation) }

    /// The context block for a prompt: each chunk under `[citation]`, and the instruction to cite.
    public var prompt: String {
        guard !chunks.isEmpty else { return "" }
        return "Context retrieved for this task (cite the [source#section] you rely on):\n\n"
            + chunks.map { "[\($0.citation)]\n\($0.text)" }.joined(separator: "\n\n") + "\n"
    }

    /// The best chunks for `query` that fit in `budget` tokens together (a chunk that does not fit is
    /// skipped, a smaller later one may still fit).
    public static func select(_ ranked: [Chunk], budget: Int) -> [Chunk] {
        var used = 0
        var out: [Chunk] = []
        for c in ranked where used + c.tokens <= budget {
            out.append(c)
            used += c.tokens
        }
        return out
    }

    static let stopwords: Set<String> = [
        "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i", "if", "in", "into", "is", "it",
        "its", "of", "on", "or", "so", "that", "the", "their", "then", "there", "these", "this", "to", "was", "what", "when", "where",
        "which", "who", "why", "will", "with", "you", "your", "we", "our", "one", "all", "any", "not", "no", "has", "have", "been",
    ]

    /// Lower-cased words and numbers, stopwords dropped, endings folded.
    public static func terms(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        func flush() {
            if !current.isEmpty, !stopwords.contains(current) { out.append(stem(current)) }
            current = ""
        }
        for ch in text.lowercased() {
            if ch.isLetter || ch.isNumber { current.append(ch) } else { flush() }
        }
        flush()
        return out
    }

    /// A light suffix folding: `restarts`/`restarting`/`restarted` → `restart`, `policies` → `policy`.
    static func stem(_ w: String) -> String {
        guard w.count > 4, w.allSatisfy({ $0.isLetter }) else { return w }
        if w.hasSuffix("ies") { return String(w.dropLast(3)) + "y" }
        if w.hasSuffix("ing") && w.count > 5 { return String(w.dropLast(3)) }
        if w.hasSuffix("ed") && w.count > 5 { return String(w.dropLast(2)) }
        if w.hasSuffix("es") && (w.hasSuffix("sses") || w.hasSuffix("xes") || w.hasSuffix("ches") || w.hasSuffix("shes")) { return String(w.dropLast(2)) }
        if w.hasSuffix("s") && !w.hasSuffix("ss") && !w.hasSuffix("us") { return String(w.dropLast()) }
        return w
    }

    /// Words in a text (runs of letters or digits).
    static func words(in text: String) -> Int {
        var n = 0
        var inWord = false
        for ch in text.unicodeScalars {
            let w = CharacterSet.alphanumerics.contains(ch)
            if w && !inWord { n += 1 }
            inWord = w
        }
        return n
    }
}
