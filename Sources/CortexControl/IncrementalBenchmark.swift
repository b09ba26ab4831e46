import CortexCore
import CortexOrchestration
import Foundation
import Logging

/// Incremental runs measured: a generated git repository of many files, orchestrated three times on one
/// local suite (every master, the catalog, N workers): first with an empty file cache, then unchanged,
/// then with one lockfile changed in the work tree. Each run's wall time (submit to final state), worker
/// time (the work items' durations added up) and the masters' file counts (unchanged / re-examined).
public enum IncrementalBenchmark {
    public struct Row: Sendable {
        public var label: String
        public var status: String
        public var wallSeconds: Double
        public var workerSeconds: Double
        public var files: Int
        public var unchanged: Int
        public var reexamined: Int
        public var unreadable: Int
        /// Per master: "security 20,000 of 20,000 unchanged".
        public var perMaster: [String]
        public var vulnerabilities: Int
    }

    /// The lockfile the third run changes (a version bump in the work tree, not committed).
    static let changedLockfile = "services/api/requirements.txt"

    /// `repository`: an existing git work tree to orchestrate instead of a generated one (e.g. real
    /// packages committed into one repository); then only the first two runs are made, and it is not changed.
    public static func run(files: Int, workers: Int, goal: String, osvDatabase: String?, catalog: Bool = true, repository: URL? = nil, workDirectory: URL,
                           binDirectory: URL = ExecutableLocator.binDirectory, log: @escaping @Sendable (String) -> Void) async throws -> [Row] {
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        let target: URL
        if let repository {
            guard FileManager.default.fileExists(atPath: repository.appendingPathComponent(".git").path) else {
                throw CortexError(.invalidInput, "--repository \(repository.path) is not a git work tree (no .git)")
            }
            target = repository
        } else {
            target = workDirectory.appendingPathComponent("repository")
            let generated = ContinuousClock.now
            let bytes = try makeRepository(at: target, files: files)
            log("generated \(files) files (\(bytes / 1_048_576) MiB) and committed them in \(seconds(ContinuousClock.now - generated)) s")
        }
        let suite = try await LocalSuite(workDirectory: workDirectory, outputDirectory: workDirectory.appendingPathComponent("reports"),
                                         binDirectory: binDirectory,
                                         environment: ["CORTEX_SECURITY_FIX_BRANCHES": "false"].merging(osvDatabase.map { ["CORTEX_OSV_DB": $0] } ?? [:]) { $1 })
        do {
            if catalog { _ = try await suite.startCatalog() }
            try suite.startAll(workers: workers)
            let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
            defer { redis.close() }
            let bus = MessageBus(redis: redis, source: "cortex-lab", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "bench-incremental"))
            let client = RunClient(bus: bus)
            var rows: [Row] = []
            let labels = ["first (empty cache)", "second (unchanged)"] + (repository == nil ? ["third (one lockfile changed)"] : [])
            for label in labels {
                if rows.count == 2 {
                    let lockfile = target.appendingPathComponent(changedLockfile)
                    let text = try String(contentsOf: lockfile, encoding: .utf8)
                    try Data(text.replacingOccurrences(of: "requests==2.25.0", with: "requests==2.31.0").utf8).write(to: lockfile)
                }
                let started = ContinuousClock.now
                let state = try await client.follow(runID: try await client.submit(RunRequest(goal: goal, targets: [target.path], requestedBy: "bench-incremental")),
                                                    timeout: .seconds(1800)) { _ in }
                let wall = seconds(ContinuousClock.now - started)
                let row = try summarize(label: label, state: state, wall: wall)
                log("\(label): \(row.status)\(state.reason.map { " (\($0))" } ?? "") in \(String(format: "%.2f", wall)) s; " + row.perMaster.joined(separator: "; "))
                rows.append(row)
            }
            await suite.stop()
            return rows
        } catch {
            await suite.stop()
            throw error
        }
    }

    static func summarize(label: String, state: RunState, wall: Double) throws -> Row {
        guard let dir = state.reportDir else { throw CortexError(.failed, "the run \(state.runID) wrote no report: \(state.status) \(state.reason ?? "")") }
        let reports = try ReportWriter.reports(inReportDirectory: dir)
        var row = Row(label: label, status: state.status, wallSeconds: wall, workerSeconds: 0, files: 0, unchanged: 0, reexamined: 0, unreadable: 0,
                      perMaster: [], vulnerabilities: 0)
        for report in reports.sorted(by: { $0.master.rawValue < $1.master.rawValue }) {
            row.workerSeconds += Double(report.items.reduce(0) { $0 + $1.durationMs }) / 1000
            row.vulnerabilities += report.details["vulnerabilities"]?.arrayValue?.count ?? 0
            guard let cache = report.fileCache else { continue }
            row.files += cache.files
            row.unchanged += cache.unchanged
            row.reexamined += cache.reexamined
            row.unreadable += cache.unreadable
            row.perMaster.append("\(report.master.rawValue) \(cache.line) (items \(report.items.map { String(format: "%.2f", Double($0.durationMs) / 1000) }.joined(separator: "/")) s)")
        }
        return row
    }

    /// A git repository of `files` files in the shapes a service monorepo has: source in several languages,
    /// docs, Kubernetes manifests, workflows, tests and a few lockfiles (one of them with a vulnerable pin).
    /// Contents are deterministic (the same repository every time). Returns the bytes written.
    static func makeRepository(at root: URL, files: Int) throws -> Int {
        try? FileManager.default.removeItem(at: root)
        var written = 0
        func write(_ path: String, _ text: String) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let data = Data(text.utf8)
            try data.write(to: url)
            written += data.count
        }
        let fixed: [(String, String)] = [
            ("README.md", "# generated monorepo\n\nServices, libraries and their deployment.\n"),
            (changedLockfile, "flask==2.0.1\nrequests==2.25.0\nPyYAML==5.3\n"),
            ("services/web/package-lock.json", """
            {"name": "web", "lockfileVersion": 3, "packages": {"": {"name": "web"}, "node_modules/lodash": {"version": "4.17.20"}, "node_modules/minimist": {"version": "1.2.5"}}}

            """),
            ("services/worker/go.mod", "module example.com/worker\n\ngo 1.21\n\nrequire golang.org/x/text v0.3.7\n"),
            ("services/worker/go.sum", "golang.org/x/text v0.3.7 h1:olpwvP2KacW1ZWvsR7uQhoyTYvKAupfQrRGBFM352Gk=\n"),
            (".github/workflows/ci.yml", "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n"),
            ("deploy/api.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n    spec:\n      containers:\n        - name: api\n          image: api:1.0\n"),
        ]
        for (path, text) in fixed { try write(path, text) }
        let kinds = ["py", "go", "ts", "swift", "md", "yaml", "java", "rs"]
        for i in 0..<max(0, files - fixed.count) {
            let kind = kinds[i % kinds.count]
            let dir = "packages/pkg\(String(format: "%03d", i / 100))"
            let name = "\(dir)/file\(i).\(kind)"
            var text = ""
            // 1-4 KiB of plausible text per file, different in every file.
            for line in 0..<(30 + (i * 7919) % 90) {
                switch kind {
                case "md": text += "Paragraph \(line) of document \(i): the service keeps its state in Redis and reports to the coordinator.\n"
                case "yaml": text += "key\(line): value-\(i)-\(line)\n"
                default: text += "// \(kind) source \(i), line \(line): let value\(line) = compute(\(i), \(line))\n"
                }
            }
            try write(name, text)
        }
        let git = ["-c", "user.name=bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"]
        for args in [["init", "-q", "-b", "main"], ["add", "-A"], git + ["commit", "-q", "-m", "generated"]] {
            let result = try Subprocess.run("git", ["-C", root.path] + args, timeout: .seconds(600), outputLimit: 16 * 1024 * 1024)
            guard result.succeeded else { throw CortexError(.failed, "git \(args.joined(separator: " ")) failed: \(String(decoding: result.stderr, as: UTF8.self))") }
        }
        return written
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    /// A Markdown table of the runs, with the speed-up of each over the first.
    public static func table(_ rows: [Row]) -> String {
        var out = "| run | status | wall s | worker s | files | unchanged | re-examined | vulnerabilities | wall vs first | worker vs first |\n"
        out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        guard let first = rows.first else { return out }
        for r in rows {
            out += "| \(r.label) | \(r.status) | \(String(format: "%.2f", r.wallSeconds)) | \(String(format: "%.2f", r.workerSeconds)) | \(r.files) | \(r.unchanged) | \(r.reexamined) | \(r.vulnerabilities) | "
                + "\(String(format: "%.1fx", first.wallSeconds / max(r.wallSeconds, 0.001))) | \(String(format: "%.1fx", first.workerSeconds / max(r.workerSeconds, 0.001))) |\n"
        }
        return out
    }
}
