@testable import CortexSecurity
import CortexCore
import Foundation
import Testing

/// The security scan's fast paths against their definitions (issue 22): the byte secret scanner against
/// the rules' regular expressions, the glob matcher against its regular expression, and the advisory
/// database's parsed records against the JSON walk of `OSVMatching`. Same findings, in the same order.
@Suite struct FastPathEquivalenceTests {
    /// A seeded generator (SplitMix64): every run makes the same inputs, so a difference can be replayed.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func expectSameSecrets(_ text: String, path: String = "src/a.txt", _ comment: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        let scanner = SecretScanner(allowPaths: [])
        let fast = scanner.scan(path: path, text: text), reference = scanner.scanWithPatterns(path: path, text: text)
        #expect(fast == reference, "\(comment()) text: \(text.debugDescription)", sourceLocation: sourceLocation)
    }

    /// The secret tests' texts and every file of the test fixtures and of the sources (which hold
    /// secret-shaped strings in tests of their own and rule definitions).
    @Test func byteScannerFindsWhatThePatternsFindInTheRepository() throws {
        expectSameSecrets(SecretScannerTests.text)
        let fm = FileManager.default
        var files = 0, findings = 0
        for folder in ["Tests", "Sources", "docs", "charts"] {
            let walker = fm.enumerator(at: Self.root.appendingPathComponent(folder), includingPropertiesForKeys: [.isRegularFileKey])
            while let url = walker?.nextObject() as? URL {
                guard let data = fm.contents(atPath: url.path), data.count < 2 * 1024 * 1024, !data.prefix(8000).contains(0) else { continue }
                let text = String(decoding: data, as: UTF8.self)
                expectSameSecrets(text, path: url.path, url.path)
                findings += SecretScanner(allowPaths: []).scan(path: url.path, text: text).count
                files += 1
            }
        }
        // The comparison means something only if the corpus holds findings of its own.
        #expect(files > 300 && findings > 10, "\(files) files, \(findings) findings")
    }

    /// Lines made of the rules' literals, names, separators, quotes, random runs, every ASCII byte and some
    /// non-ASCII text (letters, combining marks, Unicode spaces, characters that case-fold to ASCII), in
    /// LF and CRLF files: the two scanners agree on every one.
    @Test func byteScannerFindsWhatThePatternsFindOnGeneratedText() {
        var rng = Seeded(state: 22)
        let literals = ["AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xoxb-", "xoxp-", "xox", "AIza", "sk_live_", "rk_live_",
                        "-----BEGIN ", "RSA ", "OPENSSH ", "PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----"]
        let names = ["password", "PASSWD", "secret", "Client_Secret", "token", "refreshToken", "api_key", "API-KEY", "apikey", "access_key", "AccessKey",
                     "private-key", "db.password", "x-api-key", "token_url", "API_KEY_FILE", "keyPath", "sec_ret", "tok", "ſecret", "toKen", "paßwd"]
        let separators = ["=", ":", " = ", ": ", "\t=\t", "\"=", "'", "\"", " ", "\u{0B}:", "==", "=:", "\u{A0}=", "\u{2003}:"]
        let odd = ["é", "\u{301}", "ſ", "K", "ß", "…", "—", "日本", "\u{200D}", "\u{AD}", "\u{85}", "\u{2028}", "🙂"]
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let valueChars = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
        func run(_ chars: [Character], _ lengths: ClosedRange<Int>) -> String { String((0..<Int.random(in: lengths, using: &rng)).map { _ in chars.randomElement(using: &rng)! }) }
        func piece() -> String {
            switch Int.random(in: 0..<12, using: &rng) {
            case 0, 1: return literals.randomElement(using: &rng)!
            case 2, 3: return names.randomElement(using: &rng)!
            case 4, 5: return separators.randomElement(using: &rng)!
            case 6: return run(alphabet, 1...100)
            case 7: return run(valueChars, 10...40)
            case 8: return String(UnicodeScalar(UInt8.random(in: 0...127, using: &rng)))
            case 9: return odd.randomElement(using: &rng)!
            case 10: return ["\n", "\r\n", "\r", "\n\n"].randomElement(using: &rng)!
            default: return [".", "-", "_", "/", ",", ";", "}", "#", "(", ")", "changeme", "example", "./", "/run/"].randomElement(using: &rng)!
            }
        }
        for i in 0..<4000 {
            let text = (0..<Int.random(in: 1...24, using: &rng)).map { _ in piece() }.joined()
            expectSameSecrets(text, "generated text \(i)")
        }
        // Shaped to match: every rule, at the edges of its lengths, next to word and non-word characters.
        for i in 0..<3000 {
            let token: String
            switch i % 7 {
            case 0: token = ["AKIA", "ASIA"].randomElement(using: &rng)! + run(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 15...17)
            case 1: token = ["ghp_", "ghs_"].randomElement(using: &rng)! + run(alphabet, 35...37)
            case 2: token = "github_pat_" + run(alphabet + ["_"], 81...83)
            case 3: token = "xoxb-" + run(alphabet + ["-"], 8...75)
            case 4: token = "AIza" + run(alphabet + ["_", "-"], 34...36)
            case 5: token = "sk_live_" + run(alphabet, 22...101)
            default: token = names.randomElement(using: &rng)! + separators.randomElement(using: &rng)! + ["", "\"", "'"].randomElement(using: &rng)! + run(valueChars, 14...30)
            }
            let before = ["", " ", "x", "_", "-", ".", "é", "\"", "=", "token="].randomElement(using: &rng)!
            let after = ["", " ", "x", "_", "-", ".", "é", "\"", "'", ",", "\r", "\r\nb"].randomElement(using: &rng)!
            expectSameSecrets(before + token + after + (Bool.random(using: &rng) ? "\n" + before + token : ""), "shaped text \(i)")
        }
    }

    /// Every character that case-folds onto letters of the assignment's names (so `(?i)secret` can match
    /// it without the ASCII literal the byte scanner looks for) is one the scanner hands to the patterns.
    @Test func charactersFoldingToNameLettersAreKnown() throws {
        var pieces = Set<String>()
        for word in ["secret", "token", "passwd", "password", "api_key", "api-key", "apikey", "access_key", "access-key", "accesskey", "private_key", "private-key", "privatekey"] {
            let chars = Array(word)
            for length in 1...3 {
                for start in 0...(chars.count - length) { pieces.insert(String(chars[start..<(start + length)])) }
            }
        }
        let regex = try NSRegularExpression(pattern: "(?i)^(?:" + pieces.sorted().map(NSRegularExpression.escapedPattern(for:)).joined(separator: "|") + ")$")
        var folding: Set<UInt32> = []
        for value in UInt32(0x80)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value), scalar.properties.changesWhenCaseFolded else { continue }
            let s = String(scalar)
            if regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil { folding.insert(value) }
        }
        #expect(!folding.isEmpty)
        #expect(folding.subtracting(SecretScanner.foldingToASCII).isEmpty, "not handed to the patterns: \(folding.subtracting(SecretScanner.foldingToASCII).map { String(format: "U+%04X", $0) })")
    }

    /// The allow-list's globs on the bytes match what their regular expressions match.
    @Test func globMatchesItsRegularExpression() {
        let patterns = ["**/testdata/**", "**/fixtures/**", "**/*.lock", "**/package-lock.json", "**/go.sum", "deploy/*.yaml", "*", "**", "a/**/b", "**/",
                        "a*b*c", "*.json", "x/**", "**/a/**/b/*.c", "", "é/**", "a.b", "[x]/*"]
        let paths = ["", "a", "go.sum", "x/go.sum", "x/go.sumy", "testdata", "testdata/a", "a/testdata/b/c", "src/testdata", "a/b", "a/x/b", "a/x/y/b", "ab",
                     "deploy/values.yaml", "deploy/x/values.yaml", "deploy/.yaml", "axbyc", "abc", "a/b/c", "x.json", "d/x.json", "é/a", "é", "a.b", "axb",
                     "[x]/y", "x/y/a/q/b/z.c", "a/b/z.c", "/", "//", "a/", "fixtures/x", "yarn.lock", "x/Cargo.lock", "package-lock.json", "a/package-lock.json.bak"]
        for pattern in patterns {
            for path in paths {
                #expect(SecretScanner.matches(path, pattern) == SecretScanner.matchesByRegex(path, pattern), "\(path) against \(pattern)")
            }
        }
    }

    // MARK: - Advisory matching

    /// `findings(for:)` on the parsed records gives what walking every record's JSON gives, on the
    /// fixtures' real records and on generated ones in every ecosystem's version syntax (odd versions,
    /// `0`, `last_affected`, `limit`, explicit versions, GIT ranges, several packages, withdrawn records).
    @Test func parsedRecordsMatchLikeTheirJSON() throws {
        var records: [JSONValue] = []
        for folder in ["osv", "osv-twins", "osv-critical"] {
            let dir = Self.root.appendingPathComponent("Tests/Fixtures/\(folder)")
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".json") {
                records.append(try JSONText.parse(String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)))
            }
        }
        var rng = Seeded(state: 5)
        let syntax: [Ecosystem: [String]] = [
            .npm: ["1.0.0", "1.2.3", "1.2.3-beta.1", "1.2.3-beta.2", "1.2.3-rc.1", "2.0.0", "0.0.1", "v1.2.3", "=1.2.3", "1.2", "1.2.3+build", "not-a-version", "1.2.3-01", "1.2.3--1"],
            .PyPI: ["1.0", "1.0.0", "1.0a1", "1.0b2", "1.0rc1", "1.0.post1", "1.0.dev1", "1!0.5", "1.0+local.1", "2.0", "1.0-1", "1.0.PREVIEW2", "v2.1", "junk"],
            .Go: ["v1.0.0", "v1.2.3", "v1.2.3+incompatible", "v0.0.0-20191109021931-daa7c04131f5", "v2.0.0", "1.2.3", "v1.2.4-pre"],
            .Maven: ["1.0", "1.0.0", "1.0-alpha1", "1.0-beta", "1.0-rc1", "1.0-SNAPSHOT", "1.0-sp1", "1.0.1", "2.0.Final", "1.0-ga", "1-1"],
            .cratesIO: ["0.1.0", "0.2.0", "1.0.0-alpha", "1.0.0", "1.0.1"],
            .RubyGems: ["1.0", "1.0.0", "1.0.rc1", "1.0-1", "1.1", "2.0.0.beta", "2.0"],
            .swiftURL: ["1.0.0", "2.40.0", "2.41.0", "2.42.0", "3.0.0-beta.1"],
        ]
        let names: [Ecosystem: [String]] = [
            .npm: ["left-pad", "lodash"], .PyPI: ["Py_Yaml", "py-yaml", "requests"], .Go: ["golang.org/x/net", "github.com/a/b"],
            .Maven: ["org.x:y", "org.x:z"], .cratesIO: ["serde"], .RubyGems: ["rack"],
            .swiftURL: ["github.com/apple/swift-nio", "https://github.com/Apple/swift-nio.git"],
        ]
        let ecosystems = Ecosystem.allCases
        for i in 0..<600 {
            var affected: [JSONValue] = []
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let eco = ecosystems.randomElement(using: &rng)!
                let versions = syntax[eco]!
                func v() -> JSONValue { .string(Int.random(in: 0..<8, using: &rng) == 0 ? "0" : versions.randomElement(using: &rng)!) }
                var ranges: [JSONValue] = []
                for _ in 0..<Int.random(in: 0...2, using: &rng) {
                    var events: [JSONValue] = [.object(["introduced": v()])]
                    for _ in 0..<Int.random(in: 0...2, using: &rng) {
                        events.append(.object([["fixed", "last_affected", "limit", "introduced"].randomElement(using: &rng)!: v()]))
                    }
                    if Int.random(in: 0..<10, using: &rng) == 0 { events.append(.object(["introduced": v(), "fixed": v()])) }
                    ranges.append(.object(["type": .string(["ECOSYSTEM", "SEMVER", "GIT"].randomElement(using: &rng)!), "events": .array(events)]))
                }
                var entry: [String: JSONValue] = ["package": .object(["ecosystem": .string(eco.rawValue + (Bool.random(using: &rng) ? "" : ":extra")),
                                                                      "name": .string(names[eco]!.randomElement(using: &rng)!)]),
                                                  "ranges": .array(ranges)]
                if Bool.random(using: &rng) { entry["versions"] = .array((0..<3).map { _ in v() }) }
                affected.append(.object(entry))
            }
            var record: [String: JSONValue] = ["id": .string("GEN-\(i)"), "aliases": .array([.string("CVE-\(i)"), .string("GEN-\(i)")]), "summary": .string("generated \(i)"),
                                               "affected": .array(affected)]
            if i % 3 == 0 { record["severity"] = .array([.object(["type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"])]) }
            if i % 5 == 0 { record["database_specific"] = .object(["severity": "moderate"]) }
            if i % 50 == 0 { record["withdrawn"] = "2026-01-01T00:00:00Z" }
            records.append(.object(record))
        }
        let db = AdvisoryDatabase(records: records, source: "generated")
        var packages: [PackageOccurrence] = [
            PackageOccurrence(ecosystem: "SwiftURL", name: "https://github.com/apple/swift-nio.git", version: "2.41.0", file: "Package.resolved", line: 16),
            PackageOccurrence(ecosystem: "PyPI", name: "PyYAML", version: "5.3", file: "requirements.txt", line: 1),
            PackageOccurrence(ecosystem: "Go", name: "github.com/dgrijalva/jwt-go", version: "v3.2.0+incompatible", file: "go.mod", line: 6),
        ]
        for eco in ecosystems {
            for name in names[eco]! {
                for version in syntax[eco]! + ["0"] { packages.append(PackageOccurrence(ecosystem: eco.rawValue, name: name, version: version, file: "f", line: 1)) }
            }
        }
        let fast = db.findings(for: packages)
        var reference: [VulnerabilityFinding] = []
        for package in packages {
            guard let eco = Ecosystem(rawValue: package.ecosystem) else { continue }
            for record in records where record["id"]?.stringValue != nil {
                if let f = AdvisoryDatabase.finding(record, package: package, ecosystem: eco) { reference.append(f) }
            }
        }
        #expect(fast.count > 200, "\(fast.count) findings")
        #expect(fast.count == reference.count)
        for (a, b) in zip(fast, reference) where a != b { Issue.record("\(a)\n!=\n\(b)") }
    }

    /// The byte parser of plain versions (`1`, `1.2`, `1.2.3`) reads what the general SemVer parser reads,
    /// and leaves everything else (prefixes, pre-releases, empty or overlong parts) to it.
    @Test func plainSemVerParsesLikeTheGeneralPath() {
        var samples = ["0", "1", "1.2", "1.2.3", "01.002.0003", "10.20.30", "1.2.3.4", "1.", ".1", "1..2", "", ".", "v1.2.3", "=1.2.3", " 1.2.3",
                       "1.2.3 ", "1.2.3-rc.1", "1.2.3+build", "1.2.3-", "١.٢.٣", "1.2.3\u{301}", "999999999999999999.1.1", "9999999999999999999.1.1",
                       "99999999999999999999999.0.0", "-1.2.3", "+1.2.3", "1.+2.3", "1.2.x"]
        var rng = Seeded(state: 22)
        let alphabet = Array("0123456789.-+v ")
        for _ in 0..<2000 { samples.append(String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })) }
        for text in samples {
            let fast = SemVer.parse(text), general = SemVer.parseGeneral(text)
            #expect((fast == nil) == (general == nil), "\(text.debugDescription)")
            guard let fast, let general else { continue }
            let fastCore: [Int] = [fast.major, fast.minor, fast.patch], generalCore: [Int] = [general.major, general.minor, general.patch]
            #expect(fastCore == generalCore, "\(text.debugDescription)")
            #expect(fast.pre.map(\.text) == general.pre.map(\.text) && fast.pre.map(\.number) == general.pre.map(\.number), "\(text.debugDescription)")
        }
    }

    /// Versions that are major.minor.patch and nothing more (`ParsedVersion.simple`) compare by those
    /// three numbers exactly as each ecosystem's ordering compares their parsed forms.
    @Test func simpleVersionsCompareLikeTheirParsedForms() {
        var samples = ["0", "1", "1.0", "1.0.0", "1.2", "1.2.3", "v1.2.3", "01.2.3", "2.0", "10.0.1", "0.0.1", "1.2.3.4", "1.0a1", "1.0-rc1", "1.0.rc1",
                       "1.2.3-beta.1", "1!1.0", "1.0.post1", "1.0+local", "1.0-SNAPSHOT", "1.0-1", "2.0.Final", "1.0-ga", " 1.2 ", "x",
                       "9007199254740993", "9007199254740992", "9007199254740993.0.1", "99999999999999999999", "v1.2.3+incompatible", "1.2.3+build"]
        var rng = Seeded(state: 7)
        for _ in 0..<200 {
            let parts = (0..<Int.random(in: 1...4, using: &rng)).map { _ in String(Int.random(in: 0...12, using: &rng)) }
            samples.append(parts.joined(separator: "."))
        }
        var simplePairs = 0
        for eco in Ecosystem.allCases {
            let parsed = samples.map { eco.parse($0) }
            for a in parsed where a.simple != nil {
                for b in parsed where b.simple != nil {
                    simplePairs += 1
                    #expect(eco.compare(a, b) == eco.compareForms(a, b), "\(eco.rawValue): \(a.text) vs \(b.text)")
                }
            }
        }
        #expect(simplePairs > 100_000)
    }

    /// `Ecosystem.ordinal`, which the advisory index is laid out by, is each ecosystem's place in `allCases`.
    @Test func ecosystemOrdinalsArePlacesInAllCases() {
        #expect(Ecosystem.allCases.map(\.ordinal) == Array(Ecosystem.allCases.indices))
    }

    /// A version parsed by one ecosystem and compared by another is compared by its text, as the other
    /// ecosystem orders it (a record's entry of another ecosystem gives fixed versions too).
    @Test func versionsParsedByAnotherEcosystemCompareByTheirText() {
        let samples = ["0", "1.0", "1.0.0", "v1.0.0", "1.0.0-rc.1", "1.0a1", "1.0.post1", "1.0-SNAPSHOT", "1.0.rc1", "1.0-1", "x", "v1.2.3+incompatible"]
        for eco in Ecosystem.allCases {
            for other in Ecosystem.allCases where other != eco {
                for a in samples {
                    for b in samples { #expect(eco.compare(other.parse(a), other.parse(b)) == eco.compare(a, b), "\(eco.rawValue) on \(other.rawValue)'s: \(a) vs \(b)") }
                }
            }
        }
    }
}
