import Foundation

/// The secret scan on the text's UTF-8 bytes: what `scanWithPatterns` finds with the rules' regular
/// expressions, without running them on every line.
///
/// 1. One pass over the bytes splits the lines and looks for the literals every rule needs before it can
///    match: its token prefix (`AKIA`, `ghp_`, `xoxb-`, `-----BEGIN `, ..., case-sensitive as the patterns
///    are) or, for the assignment rule, a piece of its names (`secret`, `token`, `passw`, `key`, any case).
///    A line without one cannot match and is done.
/// 2. A candidate line of ASCII text goes through hand-written matchers that follow the patterns exactly
///    (ICU's `\b` and `\s` on ASCII, greedy quantifiers with their backtracking, leftmost non-overlapping
///    matches).
/// 3. A line with non-ASCII text is left to the patterns themselves (word boundaries next to letters like
///    `é`, Unicode spaces and case folding are theirs to decide) when it has a candidate literal or a
///    character that case-folds to ASCII letters (`ſ` matches `s` in `(?i)secret`, `K` matches `k`).
///    Such lines are rare, so this costs little and keeps the findings the same by construction.
extension SecretScanner {
    /// A known token format: one of `prefixes`, then `minimum...maximum` bytes of `body` (greedy), with
    /// `\b` before and after when `boundaries`.
    struct TokenRule {
        let name: String
        let prefixes: [[UInt8]]
        let body: [Bool]
        let minimum: Int
        let maximum: Int
        let boundaries: Bool

        init(_ name: String, _ prefixes: [String], _ body: String, _ minimum: Int, _ maximum: Int, boundaries: Bool = true) {
            self.name = name
            self.prefixes = prefixes.map { Array($0.utf8) }
            self.body = byteClass(body)
            self.minimum = minimum
            self.maximum = maximum
            self.boundaries = boundaries
        }
    }

    /// `rules`, in the same order, as byte matchers (`SecretScannerTests` checks they find the same).
    static let tokenRules: [TokenRule] = [
        TokenRule("aws-access-key-id", ["AKIA", "ASIA"], "0-9A-Z", 16, 16),
        TokenRule("github-token", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], "A-Za-z0-9", 36, 36),
        TokenRule("github-fine-grained-token", ["github_pat_"], "A-Za-z0-9_", 82, 82),
        TokenRule("slack-token", ["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"], "A-Za-z0-9-", 10, 72),
        TokenRule("google-api-key", ["AIza"], "0-9A-Za-z_-", 35, 35),
        TokenRule("stripe-secret-key", ["sk_live_", "rk_live_"], "0-9A-Za-z", 24, 99),
        // The optional key type makes six literals; at most one of them can start at a position.
        TokenRule("private-key", ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "].map { "-----BEGIN \($0)PRIVATE KEY-----" }, "", 0, 0, boundaries: false),
    ]

    /// ICU's `\w` on ASCII: letters, digits, `_`.
    static let wordByte = byteClass("A-Za-z0-9_")
    /// ICU's `\s` on ASCII (`\p{WhiteSpace}`): tab, line feed, vertical tab, form feed, carriage return, space.
    static let spaceByte: [Bool] = (0..<256).map { $0 == 0x20 || (0x09...0x0D).contains($0) }
    /// The assignment's name characters, `(?i)[a-z0-9_.-]`.
    static let nameByte = byteClass("a-zA-Z0-9_.-")
    /// The assignment's value characters, `[A-Za-z0-9+/=_\-]`.
    static let valueByte = byteClass("A-Za-z0-9+/=_-")
    /// The names' secret-looking parts (the assignment pattern's group 2, spelled out), lower case.
    static let secretNameParts: [[UInt8]] = ["secret", "token", "passwd", "password", "apikey", "api_key", "api-key", "accesskey", "access_key",
                                             "access-key", "privatekey", "private_key", "private-key"].map { Array($0.utf8) }

    /// Per byte: 1 line feed, 2 not ASCII, 3 may start a candidate literal (see `startsCandidate`), else 0.
    static let byteKinds: [UInt8] = (0..<256).map { (b: Int) -> UInt8 in
        if b == 0x0A { return 1 }
        if b >= 0x80 { return 2 }
        return "AgxsSr-tTpPkK".utf8.contains(UInt8(b)) ? 3 : 0
    }

    static func scanBytes(path: String, _ text: UnsafeBufferPointer<UInt8>) -> [Finding] {
        var findings: [Finding] = []
        guard let bytes = text.baseAddress else { return findings }
        let n = text.count
        var lineStart = 0, line = 1
        var candidate = false, nonASCII = false
        func endLine(_ end: Int) {
            if candidate && !nonASCII {
                scanASCIILine(bytes, lineStart, end, path: path, line: line, into: &findings)
            } else if nonASCII && (candidate || foldsToASCII(bytes, lineStart, end)) {
                let s = String(decoding: UnsafeBufferPointer(start: bytes + lineStart, count: end - lineStart), as: UTF8.self)
                scanLineWithPatterns(s, path: path, line: line, into: &findings)
            }
        }
        byteKinds.withUnsafeBufferPointer { kinds in
            var i = 0
            while i < n {
                switch kinds[Int(bytes[i])] {
                case 0: break
                case 1:
                    // `\r\n` is one Character, which `split(separator: "\n")` does not split.
                    if i == 0 || bytes[i - 1] != 0x0D {
                        endLine(i)
                        lineStart = i + 1
                        line += 1
                        candidate = false
                        nonASCII = false
                    }
                case 2: nonASCII = true
                default: if !candidate && startsCandidate(bytes, i, n) { candidate = true }
                }
                i += 1
            }
        }
        endLine(n)
        return findings
    }

    /// Whether a literal some rule needs starts at `i` (see the type's documentation, step 1).
    @inline(__always)
    static func startsCandidate(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> Bool {
        func at(_ s: StaticString) -> Bool {
            let l = s.utf8CodeUnitCount
            guard i + l <= n else { return false }
            let u = s.utf8Start
            for k in 0..<l where p[i + k] != u[k] { return false }
            return true
        }
        /// Case-insensitive, `s` in lower case.
        func atAnyCase(_ s: StaticString) -> Bool {
            let l = s.utf8CodeUnitCount
            guard i + l <= n else { return false }
            let u = s.utf8Start
            for k in 0..<l where p[i + k] | 0x20 != u[k] { return false }
            return true
        }
        switch p[i] {
        case UInt8(ascii: "A"): return at("AKIA") || at("ASIA") || at("AIza")
        case UInt8(ascii: "g"): return at("ghp_") || at("gho_") || at("ghu_") || at("ghs_") || at("ghr_") || at("github_pat_")
        case UInt8(ascii: "x"): return at("xox")
        case UInt8(ascii: "s"): return at("sk_live_") || atAnyCase("secret")
        case UInt8(ascii: "S"): return atAnyCase("secret")
        case UInt8(ascii: "r"): return at("rk_live_")
        case UInt8(ascii: "-"): return at("-----BEGIN ")
        case UInt8(ascii: "t"), UInt8(ascii: "T"): return atAnyCase("token")
        case UInt8(ascii: "p"), UInt8(ascii: "P"): return atAnyCase("passw")
        case UInt8(ascii: "k"), UInt8(ascii: "K"): return atAnyCase("key")
        default: return false
        }
    }

    /// Characters that case-fold to ASCII letters (`ſ` → s, `K` → k, `ß` → ss, `ﬅ` → st ...): in a
    /// non-ASCII line they can make `(?i)secret` match without the ASCII literal `startsCandidate` looks
    /// for. `SecretScannerTests` checks every character ICU folds onto the names' letters is here.
    static let foldingToASCII: Set<UInt32> = [0x017F, 0x212A, 0x00DF, 0x1E9E, 0x0130, 0xFB00, 0xFB01, 0xFB02, 0xFB03, 0xFB04, 0xFB05, 0xFB06]

    static func foldsToASCII(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        var i = start
        while i < end {
            let b = p[i]
            if b < 0x80 { i += 1; continue }
            // The text is valid UTF-8 (it came from a String): a lead byte and its continuation bytes.
            let length = b >= 0xF0 ? 4 : (b >= 0xE0 ? 3 : 2)
            var scalar = UInt32(b) & (length == 2 ? 0x1F : (length == 3 ? 0x0F : 0x07))
            for k in 1..<length where i + k < end { scalar = scalar << 6 | (UInt32(p[i + k]) & 0x3F) }
            if foldingToASCII.contains(scalar) { return true }
            i += length
        }
        return false
    }

    /// ICU's `\b` at `i` in the line `start..<end`: a word byte on one side only (outside the line counts
    /// as not a word, as the patterns see one line at a time).
    @inline(__always)
    static func boundary(_ p: UnsafePointer<UInt8>, _ i: Int, _ start: Int, _ end: Int) -> Bool {
        let before = i > start && wordByte[Int(p[i - 1])]
        let after = i < end && wordByte[Int(p[i])]
        return before != after
    }

    /// Every rule on one ASCII line, findings in the order `scanLineWithPatterns` gives them.
    static func scanASCIILine(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, path: String, line: Int, into findings: inout [Finding]) {
        func text(_ a: Int, _ b: Int) -> String { String(decoding: UnsafeBufferPointer(start: p + a, count: b - a), as: UTF8.self) }
        var covered: [Range<Int>] = []
        for rule in tokenRules {
            var s = start
            // Leftmost first; after a match the search goes on at its end (matches do not overlap).
            search: while s < end {
                if rule.boundaries && s > start && wordByte[Int(p[s - 1])] { s += 1; continue }
                for prefix in rule.prefixes where s + prefix.count <= end {
                    var same = true
                    for k in 0..<prefix.count where p[s + k] != prefix[k] { same = false; break }
                    guard same else { continue }
                    let bodyStart = s + prefix.count
                    var run = 0
                    while run < rule.maximum && bodyStart + run < end && rule.body[Int(p[bodyStart + run])] { run += 1 }
                    // Greedy, then backtracking one byte at a time until the closing `\b` holds.
                    var length = run
                    while length >= rule.minimum {
                        let e = bodyStart + length
                        if !rule.boundaries || boundary(p, e, start, end) {
                            covered.append(s..<e)
                            findings.append(Finding(path: path, line: line, rule: rule.name, masked: mask(text(s, e))))
                            s = e
                            continue search
                        }
                        length -= 1
                    }
                    break  // the prefixes exclude each other: no other one starts here
                }
                s += 1
            }
        }
        scanAssignments(p, start, end, covered: covered, path: path, line: line, into: &findings, text: text)
    }

    /// The assignment pattern, `(?i)\b([a-z0-9_.-]*(secret|token|...)[a-z0-9_.-]*)["']?\s*[:=]\s*(["']?)([A-Za-z0-9+/=_\-]{16,})`,
    /// on one ASCII line. Its name cannot stop inside a run of name bytes (what follows the name is none),
    /// so a match starts at the first `\b` of such a run or not in that run at all.
    static func scanAssignments(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, covered: [Range<Int>], path: String, line: Int,
                                into findings: inout [Finding], text: (Int, Int) -> String) {
        func isQuote(_ i: Int) -> Bool { i < end && (p[i] == UInt8(ascii: "\"") || p[i] == UInt8(ascii: "'")) }
        var i = start
        while i < end {
            guard nameByte[Int(p[i])] else { i += 1; continue }
            var runEnd = i
            while runEnd < end && nameByte[Int(p[runEnd])] { runEnd += 1 }
            let runStart = i
            i = runEnd
            guard let nameStart = (runStart..<runEnd).first(where: { boundary(p, $0, start, end) }),
                  containsSecretName(p, nameStart, runEnd) else { continue }
            var q = runEnd
            if isQuote(q) { q += 1 }
            while q < end && spaceByte[Int(p[q])] { q += 1 }
            guard q < end, p[q] == UInt8(ascii: ":") || p[q] == UInt8(ascii: "=") else { continue }
            q += 1
            while q < end && spaceByte[Int(p[q])] { q += 1 }
            let quoteStart = q
            if isQuote(q) { q += 1 }
            let valueStart = q
            while q < end && valueByte[Int(p[q])] { q += 1 }
            guard q - valueStart >= 16 else { continue }
            // A match: the next search starts at its end whether or not the checks below keep it.
            i = q
            let value = valueStart..<q
            guard !covered.contains(where: { $0.overlaps(value) }) else { continue }
            let valueText = text(valueStart, q)
            let after = q < end ? Character(Unicode.Scalar(p[q])) : nil
            guard literalValue(name: text(nameStart, runEnd), quote: text(quoteStart, valueStart), value: valueText, after: after),
                  entropy(valueText) >= 3.5, !looksLikePlaceholder(valueText) else { continue }
            findings.append(Finding(path: path, line: line, rule: "high-entropy-assignment", masked: mask(valueText)))
        }
    }

    /// Whether `p[start..<end]` holds one of `secretNameParts`, in any case.
    static func containsSecretName(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
        for part in secretNameParts where part.count <= end - start {
            outer: for s in start...(end - part.count) {
                for k in 0..<part.count {
                    let b = p[s + k]
                    // Only letters fold: `_` and `-` (0x5F, 0x2D) must match as they are.
                    let folded = (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z")) ? b | 0x20 : b
                    if folded != part[k] { continue outer }
                }
                return true
            }
        }
        return false
    }
}

/// A 256-entry membership table for a character class written like a regex's (`a-z`, `0-9`, single
/// characters; a `-` last is itself).
func byteClass(_ spec: String) -> [Bool] {
    var table = [Bool](repeating: false, count: 256)
    let s = Array(spec.utf8)
    var i = 0
    while i < s.count {
        if i + 2 < s.count, s[i + 1] == UInt8(ascii: "-") {
            for b in s[i]...s[i + 2] { table[Int(b)] = true }
            i += 3
        } else {
            table[Int(s[i])] = true
            i += 1
        }
    }
    return table
}
