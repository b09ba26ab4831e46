@testable import CortexSecurity
import CortexCore
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
