/// A path glob as the secret scanner's allow-list writes them: `**/` is any run of directories (none
/// too), `**` any text, `*` any text without `/`, every other character itself; the whole path must match.
///
/// Matched on the UTF-8 bytes by walking the set of path positions the pattern can have reached, so the
/// cost is (pattern length x path length) whatever the path holds: paths come from the scanned
/// repository, and a backtracking matcher over several `*` could be made to take very long.
struct GlobPattern {
    enum Token {
        case literal([UInt8])
        /// `*`: any bytes but `/`.
        case star
        /// `**` not followed by `/`: any bytes.
        case anything
        /// `**/`: nothing, or any bytes ending in `/`.
        case directories
    }

    let tokens: [Token]

    init(_ pattern: String) {
        let p = Array(pattern.utf8)
        var tokens: [Token] = []
        var literal: [UInt8] = []
        func flush() {
            if !literal.isEmpty { tokens.append(.literal(literal)); literal = [] }
        }
        var i = 0
        while i < p.count {
            if p[i] == UInt8(ascii: "*") {
                flush()
                if i + 1 < p.count, p[i + 1] == UInt8(ascii: "*") {
                    if i + 2 < p.count, p[i + 2] == UInt8(ascii: "/") { tokens.append(.directories); i += 3 } else { tokens.append(.anything); i += 2 }
                } else {
                    tokens.append(.star)
                    i += 1
                }
            } else {
                literal.append(p[i])
                i += 1
            }
        }
        flush()
        self.tokens = tokens
    }

    func matches(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            let n = bytes.count
            // reached[i]: the tokens so far can have matched exactly bytes[0..<i].
            var reached = [Bool](repeating: false, count: n + 1)
            var next = [Bool](repeating: false, count: n + 1)
            reached[0] = true
            for token in tokens {
                for j in 0...n { next[j] = false }
                switch token {
                case .literal(let l):
                    if l.count <= n {
                        for i in 0...(n - l.count) where reached[i] {
                            var same = true
                            for k in 0..<l.count where bytes[i + k] != l[k] { same = false; break }
                            if same { next[i + l.count] = true }
                        }
                    }
                case .star:
                    var open = false
                    for j in 0...n {
                        if reached[j] { open = true }
                        next[j] = open
                        if j < n, bytes[j] == UInt8(ascii: "/") { open = false }
                    }
                case .anything:
                    var open = false
                    for j in 0...n {
                        if reached[j] { open = true }
                        next[j] = open
                    }
                case .directories:
                    var open = false
                    for j in 0...n {
                        next[j] = reached[j] || (open && j > 0 && bytes[j - 1] == UInt8(ascii: "/"))
                        if reached[j] { open = true }
                    }
                }
                swap(&reached, &next)
                if !reached.contains(true) { return false }
            }
            return reached[n]
        }
    }
}
