import Foundation

/// Finds secrets in text: known token formats, private keys, and high-entropy values assigned to
/// secret-looking names. A finding never carries the secret itself, only a masked form.
public struct SecretScanner: Sendable {
    public struct Finding: Sendable, Equatable, Codable {
        public var path: String
        public var line: Int
        public var rule: String
        /// The first four characters, then how long the value is: enough to find it, not to use it.
        public var masked: String
    }

    /// Path patterns never scanned (`*` within a segment, `**` across segments): fixtures, vendored code.
    public var allowPaths: [String]

    public init(allowPaths: [String] = ["**/testdata/**", "**/fixtures/**", "**/*.lock", "**/package-lock.json", "**/go.sum"]) {
        self.allowPaths = allowPaths
    }

    static let rules: [(name: String, regex: NSRegularExpression)] = [
        ("aws-access-key-id", #"\b(AKIA|ASIA)[0-9A-Z]{16}\b"#),
        ("github-token", #"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b"#),
        ("github-fine-grained-token", #"\bgithub_pat_[A-Za-z0-9_]{82}\b"#),
        ("slack-token", #"\bxox[baprs]-[A-Za-z0-9-]{10,72}\b"#),
        ("google-api-key", #"\bAIza[0-9A-Za-z_\-]{35}\b"#),
        ("stripe-secret-key", #"\b(sk|rk)_live_[0-9A-Za-z]{24,99}\b"#),
        ("private-key", #"-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----"#),
    ].map { ($0.0, try! NSRegularExpression(pattern: $0.1)) }

    /// `password = "…"`, `API_KEY: …`, `"client_secret": "…"` with a value of 16+ characters.
    /// Groups: 1 the name, 3 the opening quote (if any), 4 the value.
    static let assignment = try! NSRegularExpression(
        pattern: #"(?i)\b([a-z0-9_.-]*(secret|token|passwd|password|api[_-]?key|access[_-]?key|private[_-]?key)[a-z0-9_.-]*)["']?\s*[:=]\s*(["']?)([A-Za-z0-9+/=_\-]{16,})"#)

    /// Whether an assignment's value is a literal secret rather than code (`tokens = config?.maxTokens`),
    /// a location (`API_KEY_FILE=/run/secrets/key`, `token_url: https://...`), or cut short by a character
    /// a secret of these formats does not hold.
    static func literalValue(name: String, quote: String, value: String, after: Character?) -> Bool {
        let lower = name.lowercased()
        if ["file", "path", "dir", "url", "uri", "endpoint"].contains(where: { lower.hasSuffix($0) }) { return false }
        if value.hasPrefix("/") || value.hasPrefix("./") { return false }
        if !quote.isEmpty { return after.map { String($0) == quote } ?? false }
        guard let after else { return true }
        return after == " " || after == "\t" || after == "," || after == ";" || after == "}" || after == "#" || after == "\r"
    }

    /// The findings in `text`, line by line (a line ends at a `\n` that is not part of a `\r\n`, as
    /// `String.split(separator: "\n")` splits): per line, the token rules in their order, then the
    /// assignments whose value no token covers. `SecretScanner+Bytes.swift` finds them in the UTF-8 bytes;
    /// `scanWithPatterns` is the same search with the rules' regular expressions (`SecretScannerTests`
    /// holds the two to the same findings).
    public func scan(path: String, text: String) -> [Finding] {
        guard !allowPaths.contains(where: { Self.matches(path, $0) }) else { return [] }
        var text = text
        return text.withUTF8 { Self.scanBytes(path: path, $0) }
    }

    /// The rules' regular expressions over every line: what `scan` finds, the slow way (NSRegularExpression
    /// on Linux runs at about 1.6 MB/s). `scan` uses it for the few lines its byte matchers leave to it
    /// (those with non-ASCII text near a candidate), and the tests use it as the reference.
    func scanWithPatterns(path: String, text: String) -> [Finding] {
        guard !allowPaths.contains(where: { Self.matches(path, $0) }) else { return [] }
        var findings: [Finding] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            Self.scanLineWithPatterns(String(line), path: path, line: index + 1, into: &findings)
        }
        return findings
    }

    /// One line (a `String`: the patterns run on its UTF-16 view) with the rules' regular expressions.
    static func scanLineWithPatterns(_ s: String, path: String, line: Int, into findings: inout [Finding]) {
        let range = NSRange(s.startIndex..., in: s)
        var covered: [NSRange] = []
        for rule in rules {
            for m in rule.regex.matches(in: s, range: range) {
                covered.append(m.range)
                findings.append(Finding(path: path, line: line, rule: rule.name, masked: mask((s as NSString).substring(with: m.range))))
            }
        }
        for m in assignment.matches(in: s, range: range) {
            let valueRange = m.range(at: 4)
            guard !covered.contains(where: { NSIntersectionRange($0, valueRange).length > 0 }) else { continue }
            let ns = s as NSString
            let value = ns.substring(with: valueRange)
            let end = valueRange.location + valueRange.length
            let after = end < ns.length ? Character(ns.substring(with: NSRange(location: end, length: 1))) : nil
            guard literalValue(name: ns.substring(with: m.range(at: 1)), quote: ns.substring(with: m.range(at: 3)), value: value, after: after),
                  entropy(value) >= 3.5, !looksLikePlaceholder(value) else { continue }
            findings.append(Finding(path: path, line: line, rule: "high-entropy-assignment", masked: mask(value)))
        }
    }

    public static func mask(_ secret: String) -> String { "\(secret.prefix(4))…(\(secret.count) chars)" }

    /// Shannon entropy in bits per character.
    static func entropy(_ s: String) -> Double {
        var counts: [Character: Int] = [:]
        for c in s { counts[c, default: 0] += 1 }
        let n = Double(s.count)
        return counts.values.reduce(0) { $0 - (Double($1) / n) * log2(Double($1) / n) }
    }

    static func looksLikePlaceholder(_ v: String) -> Bool {
        let lower = v.lowercased()
        return ["example", "changeme", "placeholder", "xxxxxxxx", "your_", "dummy"].contains { lower.contains($0) }
    }

    /// Glob match where `**` spans directories and `*` stays within one: `**/` is any run of directories
    /// (none too), `**` any text, `*` any text without `/`, every other character itself. Runs for every
    /// file and allow-list entry, so on the bytes (`GlobPattern`), not with a regular expression per call;
    /// a path holding a line break takes `matchesByRegex` (its `.` and `$` treat line breaks specially).
    static func matches(_ path: String, _ pattern: String) -> Bool {
        if path.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) || path.unicodeScalars.contains(where: { $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }) {
            return matchesByRegex(path, pattern)
        }
        return GlobPattern(pattern).matches(path)
    }

    /// The glob as an anchored regular expression (`**/` as `(.*/)?`, `**` as `.*`, `*` as `[^/]*`): the
    /// definition `matches` follows, and the tests' reference.
    static func matchesByRegex(_ path: String, _ pattern: String) -> Bool {
        var regex = "^"
        var i = pattern.startIndex
        while i < pattern.endIndex {
            let c = pattern[i]
            if c == "*" {
                let next = pattern.index(after: i)
                if next < pattern.endIndex, pattern[next] == "*" {
                    let after = pattern.index(after: next)
                    if after < pattern.endIndex, pattern[after] == "/" { regex += "(.*/)?"; i = pattern.index(after: after); continue }
                    regex += ".*"
                    i = after
                    continue
                }
                regex += "[^/]*"
            } else {
                regex += NSRegularExpression.escapedPattern(for: String(c))
            }
            i = pattern.index(after: i)
        }
        return path.range(of: regex + "$", options: .regularExpression) != nil
    }
}
