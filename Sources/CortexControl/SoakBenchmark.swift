import CortexCore
import CortexOrchestration
import Foundation
import Logging

/// Many short runs back to back on one local suite, sampling what could grow: Redis's memory and key
/// count, and every daemon's resident memory and open descriptors. A leak shows as a column that keeps
/// rising from sample to sample; bounded state levels off (the event history at its cap, run summaries
/// at the retention).
public enum SoakBenchmark {
    /// One sample, taken after `runs` runs.
    public struct Sample: Sendable {
        public var runs: Int
        public var seconds: Double
        public var redisUsedBytes: Int
        public var redisKeys: Int
        /// Per daemon: resident KiB and open descriptors.
        public var processes: [(name: String, rssKiB: Int, fds: Int)]
        public var failedRuns: Int
    }

    /// Runs `runs` orchestrations of `goal` on a small generated repository, sampling every `every` runs.
    public static func run(runs: Int, every: Int, workers: Int, goal: String, retention: Int?, workDirectory: URL,
                           binDirectory: URL = ExecutableLocator.binDirectory, log: @escaping @Sendable (String) -> Void) async throws -> [Sample] {
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        let target = try makeTarget(in: workDirectory.appendingPathComponent("target"))
        var environment: [String: String] = [:]
        if let retention {
            // The retention must be at least twice the run timeout (the daemons refuse less); a short soak
            // retention therefore shortens the run timeout too, to half of it.
            environment["CORTEX_RETENTION"] = String(retention)
            environment["CORTEX_RUN_TIMEOUT"] = String(max(1, retention / 2))
        }
        let suite = try await LocalSuite(workDirectory: workDirectory, outputDirectory: workDirectory.appendingPathComponent("reports"),
                                         binDirectory: binDirectory, environment: environment)
        do {
            _ = try await suite.startCatalog()
            try suite.startAll(workers: workers)
            let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
            defer { redis.close() }
            let bus = MessageBus(redis: redis, source: "cortex-lab", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "soak"))
            let client = RunClient(bus: bus)
            var samples: [Sample] = []
            var failed = 0
            let started = ContinuousClock.now
            for n in 1...runs {
                let state = try await client.follow(runID: try await client.submit(RunRequest(goal: goal, targets: [target.path], requestedBy: "soak")),
                                                    timeout: .seconds(120)) { _ in }
                if state.status != "succeeded" {
                    failed += 1
                    log("run \(n): \(state.status): \(state.reason ?? "")")
                }
                // The first sample after one run: caches warm, the baseline to compare with.
                if n == 1 || n % every == 0 || n == runs {
                    let sample = try await take(after: n, suite: suite, redis: redis, since: started, failed: failed)
                    samples.append(sample)
                    log("after \(n) runs: redis \(sample.redisUsedBytes / 1024) KiB, \(sample.redisKeys) keys")
                }
                // Reports are what a user keeps; the soak measures the daemons, not the disk.
                if let dir = state.reportDir { try? FileManager.default.removeItem(atPath: dir) }
            }
            await suite.stop()
            return samples
        } catch {
            await suite.stop()
            throw error
        }
    }

    static func take(after runs: Int, suite: LocalSuite, redis: RedisClient, since: ContinuousClock.Instant, failed: Int) async throws -> Sample {
        let info = try await redis.info("memory")
        let used = info.split(separator: "\r\n").first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst("used_memory:".count)) } ?? -1
        let keys = try await redis.send(.dbsize).int ?? -1
        let processes = suite.supervisor.all.filter { !$0.name.hasPrefix("redis") && $0.isRunning }.map { child in
            (name: child.name, rssKiB: residentKiB(child.pid), fds: openDescriptors(child.pid))
        }
        let elapsed = ContinuousClock.now - since
        return Sample(runs: runs, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
                      redisUsedBytes: used, redisKeys: keys, processes: processes, failedRuns: failed)
    }

    /// VmRSS of a process, in KiB (from /proc; -1 when unreadable).
    public static func residentKiB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return -1 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
    }

    /// Open descriptors of a process (from /proc; -1 when unreadable).
    public static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// A small git repository with something for every master: a lockfile, a workflow, a manifest, docs, tests.
    static func makeTarget(in dir: URL) throws -> URL {
        let files = [
            "requirements.txt": "flask==3.0.0\nrequests==2.31.0\n",
            ".github/workflows/ci.yml": "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: make test\n",
            "deploy/app.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app:1.0\n",
            "README.md": "# soak target\n",
            "tests/test_app.py": "def test_ok():\n    assert True\n",
            "app.py": "print('hello')\n",
        ]
        for (path, text) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        return dir
    }

    /// A Markdown table: one row per sample; per daemon group the largest RSS and fd count.
    public static func table(_ samples: [Sample]) -> String {
        func group(_ name: String) -> String {
            if name.hasPrefix("worker") { return "workers" }
            if name.hasSuffix("-master-local") || name.contains("-master") { return "masters" }
            return name
        }
        let groups = ["coordinator", "masters", "workers", "catalog-api"]
        var out = "| runs | s | failed | redis used KiB | keys | " + groups.map { "\($0) RSS MiB (max) | \($0) fds (max)" }.joined(separator: " | ") + " |\n"
        out += "|" + String(repeating: "---:|", count: 5 + groups.count * 2) + "\n"
        for s in samples {
            var cells = ["\(s.runs)", String(format: "%.0f", s.seconds), "\(s.failedRuns)", "\(s.redisUsedBytes / 1024)", "\(s.redisKeys)"]
            for g in groups {
                let members = s.processes.filter { group($0.name) == g }
                cells.append(String(format: "%.1f", Double(members.map(\.rssKiB).max() ?? 0) / 1024))
                cells.append("\(members.map(\.fds).max() ?? 0)")
            }
            out += "| " + cells.joined(separator: " | ") + " |\n"
        }
        return out
    }
}
