import Foundation

/// Package ecosystems as OSV names them, each with its own version ordering.
public enum Ecosystem: String, Sendable, CaseIterable, Codable {
    case npm, PyPI, Go, Maven, RubyGems
    case cratesIO = "crates.io"
    case swiftURL = "SwiftURL"

    /// The position in `allCases`: tables indexed by ecosystem use it instead of hashing.
    var ordinal: Int {
        switch self {
        case .npm: return 0
        case .PyPI: return 1
        case .Go: return 2
        case .Maven: return 3
        case .RubyGems: return 4
        case .cratesIO: return 5
        case .swiftURL: return 6
        }
    }

    /// Orders two versions of this ecosystem (-1, 0, 1). Unparseable versions compare as plain strings,
    /// after every parseable one, so a typo never makes a package look fixed.
    public func compare(_ a: String, _ b: String) -> Int { compare(parse(a), parse(b)) }

    /// The version read once by this ecosystem's rules, for `compare(_:_:)` on parsed versions: the
    /// advisory database parses its records' versions when it loads, not on every comparison.
    func parse(_ v: String) -> ParsedVersion {
        switch self {
        case .npm, .cratesIO, .swiftURL: return ParsedVersion(text: v, parsedBy: self, form: .semVer(SemVer.parse(v), v))
        case .Go:
            let base = Self.goBase(v)
            return ParsedVersion(text: v, parsedBy: self, form: .semVer(SemVer.parse(base), base))
        case .PyPI: return ParsedVersion(text: v, parsedBy: self, form: .pep440(PEP440.parse(v).map { ($0, PEP440.key($0)) }))
        case .Maven: return ParsedVersion(text: v, parsedBy: self, form: .maven(MavenVersion.items(v)))
        case .RubyGems: return ParsedVersion(text: v, parsedBy: self, form: .gem(GemVersion.segments(v)))
        }
    }

    /// `compare(_:_:)` on versions this ecosystem parsed (one parsed by another, or by none, is compared
    /// by its text).
    func compare(_ a: ParsedVersion, _ b: ParsedVersion) -> Int {
        guard a.parsedBy == self, b.parsedBy == self else { return compare(a.text, b.text) }
        if let x = a.simple, let y = b.simple { return x.compare(y) }
        return compareForms(a, b)
    }

    /// The orderings on versions this ecosystem parsed, by their parsed forms: `compare(_:_:)` without
    /// its shortcut for simple versions (`ParsedVersion.simple`).
    func compareForms(_ a: ParsedVersion, _ b: ParsedVersion) -> Int {
        switch (self, a.form, b.form) {
        case let (.npm, .semVer(x, s), .semVer(y, t)), let (.cratesIO, .semVer(x, s), .semVer(y, t)), let (.swiftURL, .semVer(x, s), .semVer(y, t)),
             let (.Go, .semVer(x, s), .semVer(y, t)):
            return SemVer.compare(x, s, y, t)
        case let (.PyPI, .pep440(x), .pep440(y)): return PEP440.compare(x, a.text, y, b.text)
        case let (.Maven, .maven(x), .maven(y)): return MavenVersion.compareLists(x, y)
        case let (.RubyGems, .gem(x), .gem(y)): return GemVersion.compare(x, y)
        default: return compare(a.text, b.text)
        }
    }

    /// Go: a leading `v`, and `+incompatible` (build metadata, ignored by ordering); pseudo-versions
    /// (`v0.0.0-20191109021931-daa7c04131f5`) are semver pre-releases and order as such.
    static func goBase(_ v: String) -> String {
        var s = v.hasPrefix("v") ? String(v.dropFirst()) : v
        if let plus = s.firstIndex(of: "+") { s = String(s[..<plus]) }
        return s
    }
}

func sign(_ x: Int) -> Int { x < 0 ? -1 : (x > 0 ? 1 : 0) }

/// A version as its ecosystem's ordering reads it (`Ecosystem.parse`), with the text it came from.
struct ParsedVersion: Sendable {
    enum Form: Sendable {
        /// SemVer (npm, crates.io, SwiftURL, Go after `goBase`): nil when unparseable, and the text the
        /// fallback ordering compares.
        case semVer(SemVer.Parsed?, String)
        /// PEP 440: nil when unparseable, else with its sort key.
        case pep440((PEP440.Parsed, [Double])?)
        case maven([MavenVersion.Item])
        case gem([GemVersion.Segment])
    }

    let text: String
    /// The ecosystem whose rules read it (nil: none did; `Ecosystem.compare` then uses the text).
    let parsedBy: Ecosystem?
    let form: Form
    /// The version as major.minor.patch when that is all of it: a release of at most three numbers,
    /// without epoch, pre-release, post, dev, local or qualifier parts (most versions in advisories and
    /// lockfiles). Each ordering above reads a missing number as 0 and orders two such versions by their
    /// numbers alone, so `Ecosystem.compare` compares these three integers without touching the parsed
    /// form (whose arrays cost retains and releases on every comparison).
    let simple: Simple?

    /// major.minor.patch (missing numbers 0).
    struct Simple: Sendable {
        let major: Int, minor: Int, patch: Int

        /// -1, 0, 1 as the numbers order.
        func compare(_ other: Simple) -> Int {
            if major != other.major { return major < other.major ? -1 : 1 }
            if minor != other.minor { return minor < other.minor ? -1 : 1 }
            if patch != other.patch { return patch < other.patch ? -1 : 1 }
            return 0
        }
    }

    init(text: String, parsedBy: Ecosystem?, form: Form) {
        self.text = text
        self.parsedBy = parsedBy
        self.form = form
        simple = Self.simple(form)
    }

    static func simple(_ form: Form) -> Simple? {
        func numbers(_ n: [Int]) -> Simple? {
            guard n.count <= 3 else { return nil }
            return Simple(major: n.count > 0 ? n[0] : 0, minor: n.count > 1 ? n[1] : 0, patch: n.count > 2 ? n[2] : 0)
        }
        switch form {
        case .semVer(let p?, _) where p.pre.isEmpty:
            return Simple(major: p.major, minor: p.minor, patch: p.patch)
        case .pep440(let k?) where k.0.epoch == 0 && k.0.pre == nil && k.0.post == nil && k.0.dev == nil && k.0.local.isEmpty:
            // PEP 440's key holds the numbers as Doubles: above 2^53 two of them can compare equal there
            // and not here, so such versions take the key's way.
            guard k.0.release.allSatisfy({ $0 <= 1 << 53 }) else { return nil }
            return numbers(k.0.release)
        case .maven(let items):
            var n: [Int] = []
            for item in items {
                guard case .number(let v) = item else { return nil }
                n.append(v)
            }
            return numbers(n)
        case .gem(let segments):
            var n: [Int] = []
            for segment in segments {
                guard case .number(let v) = segment else { return nil }
                n.append(v)
            }
            return numbers(n)
        default:
            return nil
        }
    }
}

/// Semantic Versioning 2.0.0 precedence: major.minor.patch, then pre-release identifiers (numeric
/// compare numerically and before alphanumeric; a release is after its pre-releases); build metadata ignored.
enum SemVer {
    /// `pre`: the pre-release identifiers, each with its value when it reads as a number. The core is
    /// three stored integers, not an array: comparing two versions then touches no heap memory.
    struct Parsed: Sendable {
        var major: Int
        var minor: Int
        var patch: Int
        var pre: [(text: String, number: Int?)]
    }

    static func parse(_ v: String) -> Parsed? { parsePlain(v) ?? parseGeneral(v) }

    /// Any version text: `parse` without the fast path for the plain form.
    static func parseGeneral(_ v: String) -> Parsed? {
        var s = trimmedSpaces(v)
        if s.hasPrefix("v") || s.hasPrefix("=") { s.removeFirst() }
        if let plus = s.firstIndex(of: "+") { s = String(s[..<plus]) }
        var pre: [(text: String, number: Int?)] = []
        if let dash = s.firstIndex(of: "-") {
            pre = s[s.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map { (String($0), Int($0)) }
            s = String(s[..<dash])
        }
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else { return nil }
        var core: [Int] = []
        for p in parts {
            guard let n = Int(p), n >= 0 else { return nil }
            core.append(n)
        }
        while core.count < 3 { core.append(0) }
        return Parsed(major: core[0], minor: core[1], patch: core[2], pre: pre)
    }

    /// The common form, one to three dot-separated ASCII numbers (`1`, `1.2`, `1.2.3`), read from the
    /// bytes without allocating; nil for anything else (a prefix, a pre-release, build metadata, an
    /// empty or overlong part), which `parseGeneral` reads. The matching parses every
    /// package's version, and most are in this form.
    static func parsePlain(_ v: String) -> Parsed? {
        var parts = (0, 0, 0)
        var count = 0, digits = 0, value = 0
        for byte in v.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                // 18 digits always fit an Int; longer parts go to the general path (which rejects overflow).
                guard digits < 18 else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
            case UInt8(ascii: "."):
                guard digits > 0, count < 2 else { return nil }
                if count == 0 { parts.0 = value } else { parts.1 = value }
                count += 1
                digits = 0
                value = 0
            default:
                return nil
            }
        }
        guard digits > 0 else { return nil }
        switch count {
        case 0: parts.0 = value
        case 1: parts.1 = value
        default: parts.2 = value
        }
        return Parsed(major: parts.0, minor: parts.1, patch: parts.2, pre: [])
    }

    static func compare(_ a: String, _ b: String) -> Int { compare(parse(a), a, parse(b), b) }

    /// Parsed versions `x` and `y` of the texts `a` and `b` (nil: unparseable).
    static func compare(_ x: Parsed?, _ a: String, _ y: Parsed?, _ b: String) -> Int {
        guard let x, let y else { return fallback(a, b, x != nil, y != nil) }
        if x.major != y.major { return x.major < y.major ? -1 : 1 }
        if x.minor != y.minor { return x.minor < y.minor ? -1 : 1 }
        if x.patch != y.patch { return x.patch < y.patch ? -1 : 1 }
        if x.pre.isEmpty || y.pre.isEmpty { return x.pre.isEmpty == y.pre.isEmpty ? 0 : (x.pre.isEmpty ? 1 : -1) }
        for i in 0..<min(x.pre.count, y.pre.count) {
            let p = x.pre[i], q = y.pre[i]
            switch (p.number, q.number) {
            case let (m?, n?): if m != n { return m < n ? -1 : 1 }
            case (_?, nil): return -1
            case (nil, _?): return 1
            default: if p.text != q.text { return p.text < q.text ? -1 : 1 }
            }
        }
        return sign(x.pre.count - y.pre.count)
    }
}

/// Parseable versions first; two unparseable ones by their text.
func fallback(_ a: String, _ b: String, _ aOK: Bool, _ bOK: Bool) -> Int {
    if aOK != bOK { return aOK ? -1 : 1 }
    return a == b ? 0 : (a < b ? -1 : 1)
}

/// PEP 440: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local], with its normalizations (alpha, beta, c, pre,
/// preview, -N as post, case-insensitive). Order: dev < pre < release < post; a dev of a pre or post sits
/// just before it; local versions after the public one.
enum PEP440 {
    struct Parsed: Sendable {
        var epoch = 0
        var release: [Int] = []
        var pre: (Int, Int)?  // (0 a, 1 b, 2 rc, number)
        var post: Int?
        var dev: Int?
        var local: [String] = []
    }

    static func parse(_ text: String) -> Parsed? {
        var s = trimmedSpaces(text.lowercased())
        if s.hasPrefix("v") { s.removeFirst() }
        var p = Parsed()
        if let plus = s.firstIndex(of: "+") {
            p.local = s[s.index(after: plus)...].split(whereSeparator: { ".-_".contains($0) }).map(String.init)
            s = String(s[..<plus])
        }
        if let bang = s.firstIndex(of: "!") {
            guard let e = Int(s[..<bang]) else { return nil }
            p.epoch = e
            s = String(s[s.index(after: bang)...])
        }
        var i = s.startIndex
        func number() -> Int? {
            let start = i
            while i < s.endIndex, s[i].isNumber { i = s.index(after: i) }
            return start == i ? nil : Int(s[start..<i])
        }
        func skipSeparator() { if i < s.endIndex, ".-_".contains(s[i]) { i = s.index(after: i) } }
        /// `options` longest first, so "preview" is not read as "pre".
        func word(_ options: [String]) -> String? {
            for o in options where s[i...].hasPrefix(o) {
                i = s.index(i, offsetBy: o.count)
                return o
            }
            return nil
        }
        guard let first = number() else { return nil }
        p.release = [first]
        while i < s.endIndex, s[i] == ".", s.index(after: i) < s.endIndex, s[s.index(after: i)].isNumber {
            i = s.index(after: i)
            // nil when the segment does not fit an Int or its first character only looks like a digit
            // ("1" with a combining mark): such a version is unparseable, not a crash.
            guard let n = number() else { return nil }
            p.release.append(n)
        }
        let save = i
        skipSeparator()
        if let w = word(["preview", "alpha", "beta", "pre", "rc", "a", "b", "c"]) {
            let kind: Int
            switch w {
            case "alpha", "a": kind = 0
            case "beta", "b": kind = 1
            default: kind = 2
            }
            skipSeparator()
            p.pre = (kind, number() ?? 0)
        } else { i = save }
        let save2 = i
        skipSeparator()
        if word(["post", "rev", "r"]) != nil {
            skipSeparator()
            p.post = number() ?? 0
        } else if i > save2, s[s.index(before: i)] == "-", let n = number() {
            p.post = n  // 1.0-1 is 1.0.post1
        } else { i = save2 }
        let save3 = i
        skipSeparator()
        if word(["dev"]) != nil {
            skipSeparator()
            p.dev = number() ?? 0
        } else { i = save3 }
        return i == s.endIndex ? p : nil
    }

    /// A sortable key per PEP 440's rules.
    static func key(_ p: Parsed) -> [Double] {
        var release = p.release
        while release.count > 1 && release.last == 0 { release.removeLast() }
        var k: [Double] = [Double(p.epoch)] + release.map(Double.init) + Array(repeating: 0, count: max(0, 10 - release.count))
        // pre: a dev-only release sorts before any pre-release of it.
        if let pre = p.pre { k += [Double(pre.0), Double(pre.1)] } else if p.dev != nil && p.post == nil { k += [-1, 0] } else { k += [3, 0] }
        k += [p.post.map { Double($0) } ?? -1]
        k += [p.dev.map { Double($0) } ?? Double.infinity]
        return k
    }

    static func compare(_ a: String, _ b: String) -> Int { compare(parse(a).map { ($0, key($0)) }, a, parse(b).map { ($0, key($0)) }, b) }

    /// Parsed versions with their keys, of the texts `a` and `b` (nil: unparseable).
    static func compare(_ px: (Parsed, [Double])?, _ a: String, _ py: (Parsed, [Double])?, _ b: String) -> Int {
        guard let (x, kx) = px, let (y, ky) = py else { return fallback(a, b, px != nil, py != nil) }
        for (u, v) in zip(kx, ky) where u != v { return u < v ? -1 : 1 }
        // Local versions: a public version is before any of its local ones; segments compare numerically when both are numbers.
        if x.local.isEmpty || y.local.isEmpty { return x.local.isEmpty == y.local.isEmpty ? 0 : (x.local.isEmpty ? -1 : 1) }
        for (p, q) in zip(x.local, y.local) where p != q {
            switch (Int(p), Int(q)) {
            case let (m?, n?): return m < n ? -1 : 1
            case (_?, nil): return 1
            case (nil, _?): return -1
            default: return p < q ? -1 : 1
            }
        }
        return sign(x.local.count - y.local.count)
    }
}

/// Maven's ComparableVersion: items split on '.', '-' and digit/letter boundaries; trailing nulls trimmed;
/// qualifiers alpha < beta < milestone < rc (= cr) < snapshot < "" (= ga = final = release) < sp < other
/// (alphabetical); a number is greater than any qualifier.
enum MavenVersion {
    enum Item: Equatable, Sendable { case number(Int), text(String), list([Item]) }

    static let qualifiers = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"]

    static func normalize(_ q: String) -> String {
        switch q {
        case "a": return "alpha"
        case "b": return "beta"
        case "m": return "milestone"
        case "cr": return "rc"
        case "ga", "final", "release": return ""
        default: return q
        }
    }

    static func items(_ v: String) -> [Item] {
        var result: [Item] = []
        var stack: [[Item]] = []
        var current = ""
        var isDigit = false
        func flush() {
            guard !current.isEmpty else { return }
            result.append(isDigit ? .number(Int(current) ?? 0) : .text(normalize(current)))
            current = ""
        }
        for ch in v.lowercased() {
            if ch == "." {
                flush()
            } else if ch == "-" {
                flush()
                stack.append(result)
                result = []
            } else if ch.isNumber {
                if !isDigit && !current.isEmpty { flush() }
                isDigit = true
                current.append(ch)
            } else {
                if isDigit && !current.isEmpty { flush(); stack.append(result); result = [] }
                isDigit = false
                current.append(ch)
            }
        }
        flush()
        func trim(_ list: [Item]) -> [Item] {
            var l = list
            while let last = l.last, last == .number(0) || last == .text("") { l.removeLast() }
            return l
        }
        while let parent = stack.popLast() {
            let child = trim(result)
            result = trim(parent) + (child.isEmpty ? [] : [.list(child)])
        }
        return trim(result)
    }

    static func compareItem(_ a: Item?, _ b: Item?) -> Int {
        switch (a, b) {
        case (nil, nil): return 0
        case (nil, .number(let n)?): return n == 0 ? 0 : -1
        case (nil, .text(let t)?): return -compareText(t, "")
        case (nil, .list(let l)?): return -compareLists(l, [])
        case (.list(let l)?, nil): return compareLists(l, [])
        case (_?, nil): return -compareItem(b, a)  // number or text against nothing: the cases above, mirrored
        case let (.number(m)?, .number(n)?): return sign(m - n)
        case (.number?, _?): return 1
        case (.text?, .number?): return -1
        case let (.text(p)?, .text(q)?): return compareText(p, q)
        case (.text?, .list?): return -1
        case (.list?, .number?): return -1
        case (.list?, .text?): return 1
        case let (.list(p)?, .list(q)?): return compareLists(p, q)
        }
    }

    static func compareText(_ p: String, _ q: String) -> Int {
        func rank(_ s: String) -> (Int, String) {
            if let i = qualifiers.firstIndex(of: s) { return (i, "") }
            return (qualifiers.count, s)
        }
        let (rp, sp) = rank(p), (rq, sq) = rank(q)
        if rp != rq { return rp < rq ? -1 : 1 }
        return sp == sq ? 0 : (sp < sq ? -1 : 1)
    }

    static func compareLists(_ a: [Item], _ b: [Item]) -> Int {
        for i in 0..<max(a.count, b.count) {
            let c = compareItem(i < a.count ? a[i] : nil, i < b.count ? b[i] : nil)
            if c != 0 { return c }
        }
        return 0
    }

    static func compare(_ a: String, _ b: String) -> Int { compareLists(items(a), items(b)) }
}

/// RubyGems' Gem::Version: segments are runs of digits or letters; a letter segment makes a pre-release,
/// ordered before the release; trailing zero segments do not count.
enum GemVersion {
    enum Segment: Sendable, Equatable { case number(Int), text(String) }

    static func segments(_ v: String) -> [Segment] {
        var out: [Segment] = []
        var current = ""
        var digits = true
        func flush() {
            guard !current.isEmpty else { return }
            out.append(digits ? .number(Int(current) ?? 0) : .text(current))
            current = ""
        }
        for ch in trimmedSpaces(v) {
            if ch == "." || ch == "-" {
                flush()
                if ch == "-" { out.append(.text("pre")) }  // RubyGems reads 1.0-1 as 1.0.pre.1
                continue
            }
            let isDigit = ch.isNumber
            if !current.isEmpty && isDigit != digits { flush() }
            digits = isDigit
            current.append(ch)
        }
        flush()
        // Canonical: drop trailing zeros before any letter segment.
        while out.last == .number(0), out.count > 1 { out.removeLast() }
        return out
    }

    static func compare(_ a: String, _ b: String) -> Int { compare(segments(a), segments(b)) }

    static func compare(_ x: [Segment], _ y: [Segment]) -> Int {
        for i in 0..<max(x.count, y.count) {
            let p = i < x.count ? x[i] : .number(0)
            let q = i < y.count ? y[i] : .number(0)
            switch (p, q) {
            case let (.number(m), .number(n)): if m != n { return m < n ? -1 : 1 }
            case (.text, .number): return -1
            case (.number, .text): return 1
            case let (.text(s), .text(t)): if s != t { return s < t ? -1 : 1 }
            }
        }
        return 0
    }
}

/// The string without leading and trailing spaces and tabs; the common case (none) costs two checks.
/// Version parsing runs for every comparison, so Foundation's trimming was most of its cost.
func trimmedSpaces(_ s: String) -> String {
    func space(_ c: Character?) -> Bool { c == " " || c == "\t" }
    guard space(s.first) || space(s.last) else { return s }
    return String(s.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
}
