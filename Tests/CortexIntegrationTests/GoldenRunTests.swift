import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// A full run of a fixture repository must produce the same summary.json as the committed one, apart from
/// what differs from run to run (ids, times, durations, which worker did what). It guards refactoring:
/// reshaping the code must not change what a run reports. After an intended change of the report,
/// regenerate with `CORTEX_UPDATE_GOLDEN=1 scripts/test --filter GoldenRunTests` and review the diff.
@Suite(.serialized) struct GoldenRunTests {
    static let golden = SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/golden/full-run-summary.json")

    static let files: [String: String] = [
        "README.md": "# Demo\n",
        "Package.swift": "// swift-tools-version:6.0\n",
        "Sources/App/main.swift": "print(1)\nprint(2)\n",
        "Sources/App/Util.swift": "let x = 1\n",
        "Tests/AppTests/AppTests.swift": "import Testing\n@Test func one() {}\n",
        "requirements.txt": "flask==3.0.0\nrequests==2.28.1\n",
        "billing/pom.xml": """
            <project><modelVersion>4.0.0</modelVersion><dependencies><dependency>
            <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.14.1</version>
            </dependency></dependencies></project>
            """,
        ".github/workflows/ci.yml": "on: pull_request_target\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ github.event.pull_request.title }}\n",
        "ops/rules.yml": "groups:\n- name: demo\n  rules:\n  - alert: DemoDown\n    expr: up == 0\n",
        "deploy/web.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:latest\n        securityContext:\n          privileged: true\n",
    ]

    /// A full run of the fixture on a local suite with two workers: (its target, its final state).
    static func fullRun(_ name: String) async throws -> (target: URL, state: RunState) {
        let target = try temporaryDirectory(name)
        try writeFiles(Self.files, under: target)
        let work = try temporaryDirectory("\(name)-run")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories.merging(["CORTEX_SECURITY_FIX_BRANCHES": "false", "CORTEX_ITEMS_PER_TASK": "3"]) { $1 })
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(90)) { _ in }
        await suite.stop()
        return (target, state)
    }

    @Test func aFullRunReportsWhatTheGoldenSummarySays() async throws {
        let (target, state) = try await Self.fullRun("cortex-golden")
        let text = try String(contentsOfFile: try #require(state.reportDir) + "/" + ReportWriter.summaryJSON, encoding: .utf8)
        let normalized = Self.normalize(try JSONText.parse(Array(text.utf8)), runID: state.runID, target: target.path)
        let rendered = JSONText.pretty(normalized)
        if ProcessInfo.processInfo.environment["CORTEX_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(at: Self.golden.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(rendered.utf8).write(to: Self.golden)
            print("golden summary written to \(Self.golden.path)")
            return
        }
        let expected = try String(contentsOf: Self.golden, encoding: .utf8)
        if rendered != expected {
            let actual = FileManager.default.temporaryDirectory.appendingPathComponent("full-run-summary.actual.json")
            try Data(rendered.utf8).write(to: actual)
            Issue.record("summary.json differs from \(Self.golden.path): diff it against \(actual.path)")
        }
        #expect(state.status == "partial", "the fixture's critical CVE is handed off without a model: \(state.reason ?? "")")
    }

    /// What varies between two runs of the same fixture is replaced by a placeholder; work items and tasks are sorted by id.
    static func normalize(_ value: JSONValue, runID: String, target: String, key: String? = nil) -> JSONValue {
        switch value {
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (k, v) in o {
                switch k {
                case "startedAt", "finishedAt", "requestedAt", "durationMs", "instance", "worker", "node", "checkedAt":
                    out[k] = .string("<\(k)>")
                case "costs":  // what files took to examine: timings, and their order follows them
                    out[k] = .string("<costs>")
                default:
                    out[k] = normalize(v, runID: runID, target: target, key: k)
                }
            }
            return .object(out)
        case .array(let a):
            let items = a.map { normalize($0, runID: runID, target: target) }
            // Items come in the order they finished, tasks in the order they were queued (subtasks that wait on
            // others go when those finish, in whichever order): both are sorted by id.
            if key == "items" { return .array(items.sorted { ($0["itemID"]?.stringValue ?? "") < ($1["itemID"]?.stringValue ?? "") }) }
            if key == "tasks" { return .array(items.sorted { ($0["id"]?.stringValue ?? "") < ($1["id"]?.stringValue ?? "") }) }
            return .array(items)
        case .string(let s):
            return .string(normalizeText(s, runID: runID, target: target))
        default:
            return value
        }
    }

    static func normalizeText(_ s: String, runID: String, target: String) -> String {
        // The checkout's own path (the advisory fixtures live there) differs between clones.
        var t = s.replacingOccurrences(of: runID, with: "<run>").replacingOccurrences(of: target, with: "<target>")
            .replacingOccurrences(of: SecurityMasterTests.root.path, with: "<repo>")
            .replacingOccurrences(of: PathText.lastComponent(target), with: "<target-name>")
        t = t.replacing(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/, with: "<time>")
        t = t.replacing(/\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?( UTC)?/, with: "<time>")
        t = t.replacing(/\d+(\.\d+)? (s|ms)\b/, with: "<duration>")
        t = t.replacing(/worker-[A-Za-z0-9-]+/, with: "<worker>")
        t = t.replacing(/[a-z-]+-master-local/, with: "<instance>")
        return t
    }
}
