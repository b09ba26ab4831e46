@testable import CortexSecurity
@testable import CortexOrchestration
import CortexCore
import Foundation
import Testing

/// Each ecosystem's version ordering on its documented edge cases, OSV range evaluation, and CVSS v3.
@Suite struct SecurityMatchingTests {
    /// Every version is lower than the next one in the list.
    func ascending(_ e: Ecosystem, _ versions: [String]) {
        for (a, b) in zip(versions, versions.dropFirst()) {
            #expect(e.compare(a, b) == -1, "\(e.rawValue): \(a) < \(b)")
            #expect(e.compare(b, a) == 1, "\(e.rawValue): \(b) > \(a)")
        }
    }

    @Test func semverAsNpmCratesAndSwiftOrderIt() {
        // The SemVer 2.0.0 specification's own precedence example.
        ascending(.npm, ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0", "2.0.0"])
        #expect(Ecosystem.npm.compare("1.0.0+build.5", "1.0.0") == 0)
        ascending(.cratesIO, ["0.9.9", "0.10.0-rc.1", "0.10.0"])
        #expect(Ecosystem.swiftURL.compare("2.62.0", "2.62") == 0)
    }

    @Test func pep440OrderingWithEpochsPrePostDevAndLocal() {
        // PEP 440's example ordering, with its alternative spellings.
        ascending(.PyPI, ["1.0.dev456", "1.0a1", "1.0a2.dev456", "1.0a12.dev456", "1.0a12", "1.0b1.dev456", "1.0b2", "1.0b2.post345.dev456",
                          "1.0b2.post345", "1.0b2-346", "1.0c1.dev456", "1.0c1", "1.0rc2", "1.0c3", "1.0", "1.0+abc.5", "1.0+abc.7", "1.0.post456.dev34", "1.0.post456", "1.1.dev1"])
        #expect(Ecosystem.PyPI.compare("1.0", "1.0.0") == 0)
        #expect(Ecosystem.PyPI.compare("1.0.0-Alpha1", "1.0a1") == 0)
        #expect(Ecosystem.PyPI.compare("1!0.1", "2024.1") == 1, "an epoch beats any release")
    }

    @Test func goModulesWithIncompatibleAndPseudoVersions() {
        ascending(.Go, ["v0.0.0-20191109021931-daa7c04131f5", "v0.0.1", "v1.2.3-pre", "v1.2.3", "v1.10.0"])
        #expect(Ecosystem.Go.compare("v2.0.0+incompatible", "v2.0.0") == 0)
        #expect(Ecosystem.Go.compare("v1.9.1", "1.9.1") == 0)
    }

    @Test func mavenQualifiers() {
        ascending(.Maven, ["1.0-alpha-1", "1.0-beta", "1.0-milestone-1", "1.0-rc-1", "1.0-SNAPSHOT", "1.0", "1.0-sp", "1.0.1", "1.1", "2.0"])
        #expect(Ecosystem.Maven.compare("1.0.RELEASE", "1.0") == 0)
        #expect(Ecosystem.Maven.compare("1-cr1", "1-rc1") == 0)
        #expect(Ecosystem.Maven.compare("2.15.0-rc1", "2.15.0") == -1)
        #expect(Ecosystem.Maven.compare("1.0.0", "1") == 0)
    }

    @Test func rubyGemsPrereleases() {
        ascending(.RubyGems, ["1.0.0.a", "1.0.0.b1", "1.0.0.rc1", "1.0.0", "1.0.1", "1.9", "1.10"])
        #expect(Ecosystem.RubyGems.compare("1.0", "1") == 0)
        #expect(Ecosystem.RubyGems.compare("3.0.0-rc1", "3.0.0") == -1)
    }

    static func record(_ ecosystem: String, _ name: String, ranges: [JSONValue] = [], versions: [String] = [], withdrawn: Bool = false) -> JSONValue {
        var r: [String: JSONValue] = ["id": "GHSA-test", "affected": [["package": ["ecosystem": .string(ecosystem), "name": .string(name)],
                                                                       "ranges": .array(ranges), "versions": .array(versions.map(JSONValue.string))]]]
        if withdrawn { r["withdrawn"] = "2024-01-01T00:00:00Z" }
        return .object(r)
    }

    @Test func osvRangesVersionsAndWithdrawal() {
        let log4j = Self.record("Maven", "org.apache.logging.log4j:log4j-core", ranges: [
            ["type": "ECOSYSTEM", "events": [["introduced": "2.0-beta9"], ["fixed": "2.15.0"]]],
            ["type": "ECOSYSTEM", "events": [["introduced": "2.16.0"], ["fixed": "2.17.1"]]],
        ])
        func hit(_ r: JSONValue, _ e: Ecosystem, _ p: String, _ v: String) -> Bool { OSVMatching.affects(r, ecosystem: e, package: p, version: v) }
        #expect(hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "2.14.1"))
        #expect(hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "2.15.0-rc1"), "a release candidate of the fix is still affected")
        #expect(!hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "2.15.0"))
        #expect(hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "2.16.0"))
        #expect(!hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "2.17.1") && !hit(log4j, .Maven, "org.apache.logging.log4j:log4j-core", "1.2.17"))
        #expect(OSVMatching.lowestFix(log4j, ecosystem: .Maven, package: "org.apache.logging.log4j:log4j-core", version: "2.16.0") == "2.17.1")
        #expect(OSVMatching.lowestFix(log4j, ecosystem: .Maven, package: "org.apache.logging.log4j:log4j-core", version: "2.14.1") == "2.15.0")

        let django = Self.record("PyPI", "django", ranges: [["type": "ECOSYSTEM", "events": [["introduced": "4.2"], ["last_affected": "4.2.7"]]]])
        #expect(hit(django, .PyPI, "Django", "4.2.7") && hit(django, .PyPI, "Django", "4.2rc1") == false && !hit(django, .PyPI, "Django", "4.2.8"))
        let npm = Self.record("npm", "lodash", ranges: [["type": "SEMVER", "events": [["introduced": "0"], ["fixed": "4.17.21"]]]], versions: ["5.0.0-beta.1"])
        #expect(hit(npm, .npm, "lodash", "4.17.20") && !hit(npm, .npm, "lodash", "4.17.21") && hit(npm, .npm, "lodash", "5.0.0-beta.1"))
        #expect(!hit(npm, .npm, "lodash-es", "4.17.20"), "another package")
        let go = Self.record("Go", "golang.org/x/net", ranges: [["type": "SEMVER", "events": [["introduced": "0"], ["fixed": "0.17.0"]]]])
        #expect(hit(go, .Go, "golang.org/x/net", "v0.0.0-20220722155237-a158d28d115b") && !hit(go, .Go, "golang.org/x/net", "v0.17.0"))
        let limited = Self.record("crates.io", "tokio", ranges: [["type": "SEMVER", "events": [["introduced": "1.0.0"], ["limit": "1.8.0"]]]])
        #expect(hit(limited, .cratesIO, "tokio", "1.7.9") && !hit(limited, .cratesIO, "tokio", "1.8.0"))
        #expect(!hit(Self.record("npm", "lodash", ranges: [["type": "SEMVER", "events": [["introduced": "0"]]]], withdrawn: true), .npm, "lodash", "1.0.0"))
        #expect(!hit(Self.record("npm", "x", ranges: [["type": "GIT", "repo": "https://github.com/x/x", "events": [["introduced": "0"]]]]), .npm, "x", "1.0.0"))
    }

    @Test func cvssV3BaseScoresAndTheDesignsSLAs() throws {
        let cases: [(String, Double)] = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),  // Log4Shell
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),   // reflected XSS
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ]
        for (vector, score) in cases { #expect(try CVSS3.baseScore(vector) == score, "\(vector)") }
        #expect(throws: CVSS3.VectorError.self) { try CVSS3.baseScore("CVSS:2.0/AV:N") }
        #expect(throws: CVSS3.VectorError.self) { try CVSS3.baseScore("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H") }
        #expect(CVSS3.Severity(score: 9.8) == .critical && CVSS3.Severity(score: 7.0) == .high && CVSS3.Severity(score: 6.1) == .medium && CVSS3.Severity(score: 3.9) == .low)
        #expect(CVSS3.Severity.allCases.map(\.slaHours) == [4, 24, 72, 168])
    }
}

/// One row per vulnerability (issue 20): real files committed to a git repository, scanned by the
/// workers' `security-scan` skill, matched against real records (Tests/Fixtures/osv and osv-twins, see
/// the NOTICE.md files there) and merged as the security master merges them.
extension SecurityMatchingTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func temporary(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// The GitHub Advisory Database's records and their twins in one directory, as CORTEX_OSV_DB names one.
    static func database(adding extra: [JSONValue] = []) throws -> AdvisoryDatabase {
        let dir = try temporary("osv-db")
        for folder in ["osv", "osv-twins"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent(folder).path) where name.hasSuffix(".json") {
                try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(folder)/\(name)"), to: dir.appendingPathComponent(name))
            }
        }
        for (i, record) in extra.enumerated() { try Data(record.description.utf8).write(to: dir.appendingPathComponent("extra-\(i).json")) }
        return try AdvisoryDatabase.load(dir.path)
    }

    static func record(_ name: String) throws -> JSONValue {
        let folder = name.hasPrefix("GO-") || name == "GHSA-7fj7-39wj-c64f" ? "osv-twins" : "osv"
        return try JSONText.parse(String(contentsOf: fixtures.appendingPathComponent("\(folder)/\(name).json"), encoding: .utf8))
    }

    /// `files` committed to a new git repository and scanned as a worker scans a shard (the files git
    /// lists), then read back as the master reads the merged records.
    static func scan(_ files: [String: String]) throws -> [PackageOccurrence] {
        let root = try temporary("vuln-rows-repo")
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try Git.run(["init", "-q", "-b", "main"], in: root)
        try Git.run(["add", "-A", "--force"], in: root)  // --force: a machine-wide excludesFile may ignore Package.resolved
        try Git.run(["-c", "commit.gpgsign=false", "commit", "-q", "-m", "fixture"], in: root, environment: Git.identity)
        let records = try SecurityScan().examine(root: root, files: try Git.lsFiles(in: root)) { _ in }
        let packages = SecurityScan().summarize(records).details["packages"]?.arrayValue ?? []
        return packages.compactMap { $0.decoded(as: PackageOccurrence.self) }
    }

    /// The rows the security master reported before: one per advisory, package, version and file.
    static func rowsBefore(_ raw: [VulnerabilityFinding]) -> Int {
        Set(raw.map { "\($0.advisory)|\($0.ecosystem)|\($0.package)|\($0.version)|\($0.file ?? "")" }).count
    }

    static let goModule: [String: String] = [
        "auth/go.mod": """
            module example.com/auth

            go 1.21

            require (
            \tgithub.com/dgrijalva/jwt-go v3.2.0+incompatible
            \tgithub.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5
            \tgolang.org/x/crypto v0.17.0
            )

            """,
        // go.sum's shape; the hashes are placeholders of the right form (the parser reads module and version).
        "auth/go.sum": """
            github.com/dgrijalva/jwt-go v3.2.0+incompatible h1:7qlOGliEKZXTDg6OTjfoBKDXWrumCAMpl/TFQ4/5kLM=
            github.com/dgrijalva/jwt-go v3.2.0+incompatible/go.mod h1:E3ru+11k8xSBh+hMPgOLZFKRsKQB2Ffs7q7hbb4b7Ig=
            github.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5 h1:AfbFv9Hbmq+lWqnqTjp6JNt+4ilC4HFhhnEjx1ZeW5w=
            github.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5/go.mod h1:PZOdmYNjlswnwvc7xK1c3pZIxSWjbqZrrr3O2sVJk3g=
            golang.org/x/crypto v0.17.0 h1:r8bRNjWL3GshPW3gkd+RpvzWrZAwPS49OmTGZ/uhM4k=
            golang.org/x/crypto v0.17.0/go.mod h1:gCAAfMLgwOJRpTjQ2zCCt2OcSfYMTeZVSRtQlPC7Nq4=

            """,
        // Another module of the same repository, with the same version: its own row.
        "tools/go.mod": "module example.com/tools\n\ngo 1.21\n\nrequire github.com/dgrijalva/jwt-go v3.2.0+incompatible\n",
    ]

    /// (a) go.mod and go.sum of one module: one finding per vulnerability, both locations; another module
    /// keeps its own row. Before, every (record, file) pair was a row: 10 here, now 3.
    @Test func goModAndGoSumAreOneFindingWithBothLocations() throws {
        let database = try Self.database()
        let raw = database.findings(for: try Self.scan(Self.goModule))
        let rows = VulnerabilityFinding.merged(raw)
        #expect(Self.rowsBefore(raw) == 10, "\(raw.map { "\($0.advisory) \($0.package) \($0.file ?? "")" })")
        #expect(rows.count == 3, "\(rows)")
        let v3 = try #require(rows.first { $0.package == "github.com/dgrijalva/jwt-go" && $0.file == "auth/go.mod" })
        #expect(v3.locations == [.init(file: "auth/go.mod", line: 6), .init(file: "auth/go.sum", line: 1)])
        #expect(v3.line == 6 && v3.lowestFix == nil)
        let v4 = try #require(rows.first { $0.package == "github.com/dgrijalva/jwt-go/v4" })
        #expect(v4.locations == [.init(file: "auth/go.mod", line: 7), .init(file: "auth/go.sum", line: 3)])
        #expect(v4.lowestFix == "4.0.0-preview1" && v4.fixedVersions == ["4.0.0-preview1"])
        let tools = try #require(rows.first { $0.file == "tools/go.mod" })
        #expect(tools.locations == [.init(file: "tools/go.mod", line: 5)] && tools.package == "github.com/dgrijalva/jwt-go")
        // Merging is idempotent and does not depend on the order findings arrive in (database and API together).
        #expect(VulnerabilityFinding.merged(rows + rows) == rows)
        #expect(VulnerabilityFinding.merged(raw.reversed()) == rows)
        // One bump for the module's version, made in go.mod (go.sum is refreshed by `go mod tidy`).
        let plans = SecurityReview.plans(rows)
        #expect(plans.count == 1 && plans[0].files == ["auth/go.mod", "auth/go.sum"] && plans[0].declaringFiles == ["auth/go.mod"], "\(plans)")
        // The report's row names both places.
        let md = SecurityReview.markdown(vulnerabilities: rows, configuration: [], secrets: [], fix: nil, notes: [], reportedAt: Date(timeIntervalSince1970: 0))
        #expect(md.contains("| high | 7.5 | GHSA-w73w-5m7g-f7qc | CVE-2020-26160, GO-2020-0017 | github.com/dgrijalva/jwt-go/v4 | v4.0.0-20191109021931-daa7c04131f5 | Go | 4.0.0-preview1 | auth/go.mod:7, auth/go.sum:3 |"), "\(md)")
        #expect(md.components(separatedBy: "| GHSA-w73w-5m7g-f7qc |").count - 1 == 3, "\(md)")
    }

    /// (b) A GHSA record and its Go vulnerability database twin (which has no severity) are one finding
    /// with every id, rated from the GHSA record: its CVSS vector, else its rating — never "unrated".
    @Test func aliasTwinsAreOneFindingWithTheBestSourcedSeverity() throws {
        let ghsa = try Self.record("GHSA-w73w-5m7g-f7qc"), go = try Self.record("GO-2020-0017")
        let jwt = PackageOccurrence(ecosystem: "Go", name: "github.com/dgrijalva/jwt-go", version: "v3.2.0+incompatible", file: "go.mod", line: 4)
        // The GO- record alone is unrated.
        let alone = AdvisoryDatabase(records: [go], source: "go").findings(for: [jwt])
        #expect(alone.count == 1 && alone[0].severity == .medium && alone[0].severitySource.hasPrefix("unrated"), "\(alone)")

        func rows(_ records: [JSONValue]) -> [VulnerabilityFinding] {
            VulnerabilityFinding.merged(AdvisoryDatabase(records: records, source: "twins").findings(for: [jwt]))
        }
        let both = rows([go, ghsa])
        #expect(both.count == 1, "\(both)")
        let row = try #require(both.first)
        #expect(row.advisory == "GHSA-w73w-5m7g-f7qc" && row.aliases == ["CVE-2020-26160", "GO-2020-0017"])
        #expect(row.records == ["GHSA-w73w-5m7g-f7qc", "GO-2020-0017"])
        #expect(row.severity == .high && row.score == 7.5 && row.severitySource == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N")
        #expect(row.summary == "Authorization bypass in github.com/dgrijalva/jwt-go")
        #expect(row.locations == [.init(file: "go.mod", line: 4)])

        // Without its vector, the GHSA record's rating (database_specific.severity) rates the pair.
        guard case .object(var rated) = ghsa else { Issue.record("not an object"); return }
        rated["severity"] = nil
        let byRating = rows([go, .object(rated)])
        #expect(byRating.count == 1 && byRating[0].severity == .high && byRating[0].score == nil && byRating[0].severitySource == "database rating HIGH", "\(byRating)")

        // Twins through the same CVE alone (neither names the other's id).
        guard case .object(var cveOnly) = go else { Issue.record("not an object"); return }
        cveOnly["aliases"] = ["CVE-2020-26160"]
        #expect(rows([.object(cveOnly), ghsa]).map(\.records) == [["GHSA-w73w-5m7g-f7qc", "GO-2020-0017"]])

        // An advisory that shares no id with them stays its own row.
        let other: JSONValue = ["id": "GO-2099-0001", "aliases": ["CVE-2099-0001"], "summary": "another flaw",
                                "affected": [["package": ["ecosystem": "Go", "name": "github.com/dgrijalva/jwt-go"],
                                              "ranges": [["type": "SEMVER", "events": [["introduced": "0"]]]]]]]
        #expect(rows([go, ghsa, other]).map(\.advisory).sorted() == ["GHSA-w73w-5m7g-f7qc", "GO-2099-0001"])
    }

    /// (c) SARIF: one result per finding, every location, every id.
    @Test func sarifHasOneResultPerFindingWithEveryLocation() throws {
        let rows = VulnerabilityFinding.merged(try Self.database().findings(for: try Self.scan(Self.goModule)))
        let log = SARIFLog.make(vulnerabilities: rows, configuration: [], secrets: [])
        let results = log["runs"]?[0]?["results"]?.arrayValue ?? []
        #expect(results.count == rows.count && rows.count == 3)
        let v4 = try #require(results.first { $0["message"]?["text"]?.stringValue?.hasPrefix("github.com/dgrijalva/jwt-go/v4 ") == true })
        let places = (v4["locations"]?.arrayValue ?? []).map {
            "\($0["physicalLocation"]?["artifactLocation"]?["uri"]?.stringValue ?? ""):\($0["physicalLocation"]?["region"]?["startLine"]?.intValue ?? 0)"
        }
        #expect(places == ["auth/go.mod:7", "auth/go.sum:3"])
        #expect(v4["ruleId"] == "GHSA-w73w-5m7g-f7qc" && v4["properties"]?["aliases"] == ["CVE-2020-26160", "GO-2020-0017"])
        #expect(v4["message"]?["text"]?.stringValue?.contains("GHSA-w73w-5m7g-f7qc (CVE-2020-26160, GO-2020-0017)") == true)
        // One rule for the advisory, however many results use it.
        #expect((log["runs"]?[0]?["tool"]?["driver"]?["rules"]?.arrayValue ?? []).count == 1)
    }

    /// A finding as reports wrote it before `locations` and `records` (one file, one record) still reads.
    @Test func aFindingOfTheEarlierShapeStillReads() throws {
        let old = #"{"advisory":"GHSA-j8r2-6x86-q33q","aliases":["CVE-2023-32681"],"ecosystem":"PyPI","file":"requirements.txt","fixedVersions":["2.31.0"],"line":2,"#
            + #""lowestFix":"2.31.0","package":"requests","score":6.1,"severity":"medium","severitySource":"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N","summary":"","version":"2.28.1"}"#
        let finding = try #require(try JSONText.parse(old).decoded(as: VulnerabilityFinding.self))
        #expect(finding.locations == [.init(file: "requirements.txt", line: 2)] && finding.records == ["GHSA-j8r2-6x86-q33q"] && finding.installedAs == nil)
        #expect(VulnerabilityFinding.merged([finding]) == [finding])
    }

    /// (d) An npm alias (`"legacy-lodash": "npm:lodash@^4.17.20"`) is matched under its real name and
    /// reported as both; its bump keeps the alias.
    @Test func anNpmAliasIsMatchedUnderItsRealName() throws {
        let packageJSON = "{\n  \"name\": \"web\",\n  \"dependencies\": {\n    \"legacy-lodash\": \"npm:lodash@^4.17.20\"\n  }\n}\n"
        let lock = """
            {
              "name": "web",
              "lockfileVersion": 3,
              "requires": true,
              "packages": {
                "": {"name": "web", "dependencies": {"legacy-lodash": "npm:lodash@^4.17.20"}},
                "node_modules/legacy-lodash": {
                  "name": "lodash",
                  "version": "4.17.20",
                  "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz"
                }
              }
            }
            """
        let packages = try Self.scan(["web/package.json": packageJSON, "web/package-lock.json": lock])
        #expect(packages.map { "\($0.name) \($0.installedAs ?? "-") \($0.line ?? 0)" } == ["lodash legacy-lodash 7"])
        let rows = VulnerabilityFinding.merged(try Self.database().findings(for: packages))
        let row = try #require(rows.first)
        #expect(rows.count == 1 && row.advisory == "GHSA-35jh-r3h4-6jhm" && row.package == "lodash" && row.installedAs == ["legacy-lodash"])
        #expect(row.displayName == "lodash (as legacy-lodash)" && row.locations == [.init(file: "web/package-lock.json", line: 7)])
        // Under the installed name (what the scan matched before), nothing matches.
        #expect(try Self.database().findings(for: [PackageOccurrence(ecosystem: "npm", name: "legacy-lodash", version: "4.17.20")]).isEmpty)
        let md = SecurityReview.markdown(vulnerabilities: rows, configuration: [], secrets: [], fix: nil, notes: [], reportedAt: Date(timeIntervalSince1970: 0))
        #expect(md.contains("| lodash (as legacy-lodash) | 4.17.20 | npm | 4.17.21 | web/package-lock.json:7 |"), "\(md)")
        let plan = try #require(SecurityReview.plans(rows).first)
        #expect(plan.installedAs == "legacy-lodash" && plan.declaringFiles == ["web/package.json"])
        #expect(DependencyBump.bump(file: "web/package.json", text: packageJSON, ecosystem: "npm", package: "lodash", from: "4.17.20", to: "4.17.21", installedAs: "legacy-lodash")
                == .edited(packageJSON.replacingOccurrences(of: "npm:lodash@^4.17.20", with: "npm:lodash@^4.17.21"), note: "run `npm install` to refresh package-lock.json"))
    }

    /// (e) A SwiftURL advisory (`github.com/apple/swift-nio`, purl type swift) matches Package.resolved
    /// pins by their clone URL, whatever its scheme, `.git` suffix or case.
    @Test func aSwiftURLAdvisoryMatchesPackageResolvedPins() throws {
        let v2 = """
            {
              "originHash" : "5b2c0e1f",
              "pins" : [
                {
                  "identity" : "swift-log",
                  "kind" : "remoteSourceControl",
                  "location" : "https://github.com/apple/swift-log.git",
                  "state" : {
                    "revision" : "e97a6fcb1ab07462881ac165fdbb37f067e205d5",
                    "version" : "1.5.4"
                  }
                },
                {
                  "identity" : "swift-nio",
                  "kind" : "remoteSourceControl",
                  "location" : "https://github.com/apple/swift-nio.git",
                  "state" : {
                    "revision" : "fc63f0cf4e55a4597407a9fc95b16a2bc44b4982",
                    "version" : "2.41.0"
                  }
                }
              ],
              "version" : 3
            }
            """
        let v1 = """
            {
              "object": {
                "pins": [
                  {
                    "package": "swift-nio",
                    "repositoryURL": "git@github.com:Apple/swift-nio.git",
                    "state": {
                      "branch": null,
                      "revision": "d6e3762e0a5f7ede652559f53623baf11006e17c",
                      "version": "2.39.0"
                    }
                  }
                ]
              },
              "version": 1
            }
            """
        let rows = VulnerabilityFinding.merged(try Self.database().findings(for: try Self.scan(["app/Package.resolved": v2, "legacy/Package.resolved": v1])))
        #expect(rows.map { "\($0.advisory) \($0.version) \($0.lowestFix ?? "-") \($0.locations.map(\.text))" }.sorted() == [
            "GHSA-7fj7-39wj-c64f 2.39.0 2.39.1 [\"legacy/Package.resolved:6\"]",
            "GHSA-7fj7-39wj-c64f 2.41.0 2.42.0 [\"app/Package.resolved:16\"]",
        ])
        // The fixed version itself is not affected.
        #expect(try Self.database().findings(for: [PackageOccurrence(ecosystem: "SwiftURL", name: "https://github.com/apple/swift-nio", version: "2.42.0")]).isEmpty)
        #expect(OSVMatching.affects(try Self.record("GHSA-7fj7-39wj-c64f"), ecosystem: .swiftURL, package: "https://GitHub.com/apple/swift-nio.git", version: "2.41.0"))
    }
}

/// The secret scanner finds known formats and high-entropy assignments, masks them, and honours allow-lists.
@Suite struct SecretScannerTests {
    // Shaped like real credentials, made up for this test (the AWS one is AWS's documented example id).
    static let github = "ghp_" + String(repeating: "aB3dE5fG7h", count: 3) + "K9mN2p"
    static let text = """
        region = eu-west-1
        aws_access_key_id = AKIAIOSFODNN7EXAMPLE
        GITHUB_TOKEN=\(github)
        slack: xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp
        -----BEGIN OPENSSH PRIVATE KEY-----
        db_password: "Zq8#not-base64" and client_secret = "u7Gk2Pq9Lm4Rt6Vx8Bz1Nc3"
        api_key = "changeme-changeme-changeme"
        build_id = 7f3a9c2e4b6d8f0a1c3e5b7d9f1a3c5e
        """

    @Test func findsMasksAndAllowLists() {
        let findings = SecretScanner().scan(path: "deploy/values.yaml", text: Self.text)
        #expect(findings.map { "\($0.line) \($0.rule)" } == [
            "2 aws-access-key-id", "3 github-token", "4 slack-token", "5 private-key", "6 high-entropy-assignment",
        ])
        #expect(findings.first { $0.rule == "github-token" }?.masked == "ghp_…(40 chars)")
        let rendered = findings.map { "\($0)" }.joined()
        #expect(!rendered.contains(Self.github) && !rendered.contains("AKIAIOSFODNN7EXAMPLE") && !rendered.contains("u7Gk2Pq9Lm4Rt6Vx8Bz1Nc3"))
        #expect(SecretScanner().scan(path: "src/testdata/keys.txt", text: Self.text).isEmpty)
        #expect(SecretScanner(allowPaths: ["deploy/*.yaml"]).scan(path: "deploy/values.yaml", text: Self.text).isEmpty)
        #expect(SecretScanner.matches("a/b/c/package-lock.json", "**/package-lock.json") && SecretScanner.matches("package-lock.json", "**/package-lock.json"))
        #expect(!SecretScanner.matches("deploy/x/values.yaml", "deploy/*.yaml"))
    }

    /// Code, file locations and URLs next to a secret-looking name are not secrets; literals are.
    @Test func assignmentsOfCodeAndLocationsAreNotSecrets() {
        let text = """
            self.llmMaxTokens = llmConfiguration?.maxTokens ?? 0
            export CORTEX_LLM_API_KEY_FILE=/run/secrets/anthropic
            token_url: https://auth.example.com/oauth2/token
            let refreshToken = tokenStore.currentRefresh(for: user)
            API_TOKEN=Hq3vR8xN2mK7pL4wT9zB
            client_secret: 'Hq3vR8xN2mK7pL4wT9zB'
            """
        #expect(SecretScanner().scan(path: "src/a.swift", text: text).map { "\($0.line) \($0.rule)" } == ["5 high-entropy-assignment", "6 high-entropy-assignment"])
    }
}
