import CortexCore
import CortexOrchestration
import Foundation

/// The durable work queue measured end to end: enqueue (XADD) -> worker (XREADGROUP, skill) ->
/// result committed (HSETNX) -> ack (XACK), with real worker processes on a private redis-server.
public enum QueueBenchmark {
    public struct Row: Sendable {
        public var workers: Int
        public var items: Int
        public var throughput: Double
        public var backlogP50: Double
        public var backlogP99: Double
        public var pacedRate: Double
        public var pacedP50: Double
        public var pacedP99: Double
    }

    public struct Result: Sendable {
        public var rows: [Row]
        public var xaddPerSecond: Double?
        public var xaddCommand: String
    }

    /// Runs the benchmark for each worker count; `items` per count in the bulk phase.
    public static func run(workerCounts: [Int] = [1, 2, 4], items: Int = 3000, workDirectory: URL, binDirectory: URL = ExecutableLocator.binDirectory,
                           log: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        var rows: [Row] = []
        var xadd: Double?
        let xaddCommand = "redis-benchmark -p PORT -n 200000 -c 50 -q XADD cortex:bench:xadd '*' item x"
        for n in workerCounts {
            let dir = workDirectory.appendingPathComponent("bench-\(n)-\(UUID().uuidString.prefix(6))")
            // Logs at notice: the benchmark measures the queue, not the log volume of per-item info lines.
            let suite = try await LocalSuite(workDirectory: dir, outputDirectory: dir.appendingPathComponent("reports"), binDirectory: binDirectory,
                                             environment: ["CORTEX_LOG_LEVEL": "notice"])
            let target = dir.appendingPathComponent("target")
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            try Data("# bench\n".utf8).write(to: target.appendingPathComponent("README.md"))
            for _ in 0..<n { try suite.startWorker(pools: [.catalog]) }
            let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
            defer { redis.close() }
            // Wait for every worker to register, so start-up is not measured.
            while (try await redis.send(.scard(CortexNames.workerSet)).int ?? 0) < n { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(300))

            log("\(n) worker(s): bulk \(items) items")
            let bulk = try await measure(redis: redis, task: "bench-\(n)-bulk", count: items, target: target, interval: nil)
            let rate = Double(items) / bulk.seconds
            let pacedCount = min(600, max(100, Int(rate)))
            log("\(n) worker(s): \(pacedCount) items paced at half the measured rate")
            let paced = try await measure(redis: redis, task: "bench-\(n)-paced", count: pacedCount, target: target, interval: .nanoseconds(Int64(2e9 / rate)))
            rows.append(Row(workers: n, items: items, throughput: rate, backlogP50: percentile(bulk.latencies, 0.5), backlogP99: percentile(bulk.latencies, 0.99),
                            pacedRate: paced.enqueuedPerSecond, pacedP50: percentile(paced.latencies, 0.5), pacedP99: percentile(paced.latencies, 0.99)))
            if xadd == nil { xadd = redisBenchmarkXADD(port: suite.redis.port) }
            await suite.stop(grace: .seconds(5))
        }
        return Result(rows: rows, xaddPerSecond: xadd, xaddCommand: xaddCommand)
    }

    /// Enqueues `count` items (all at once, or one every `interval` on a fixed schedule) and waits for
    /// every result. Latency of an item: its stream entry id's millisecond time (recorded from XADD's reply:
    /// workers delete processed entries) to the worker's commit time. Returns the rate at which the items
    /// were actually enqueued too (paced: the schedule's rate unless the driver fell behind it).
    static func measure(redis: RedisClient, task: String, count: Int, target: URL, interval: Duration?) async throws -> (seconds: Double, latencies: [Double], enqueuedPerSecond: Double) {
        let stream = CortexNames.workStream(.catalog)
        let items = (0..<count).map { i in
            WorkItem(id: "\(task).\(i)", taskID: task, runID: "bench", master: .inventory, pool: .catalog,
                     skill: .languageCensus, target: target.path, shard: 0, shards: 1)
        }
        var enqueued: [String: Int] = [:]
        func entryMilliseconds(_ reply: RedisReply) throws -> Int {
            guard let id = try reply.orThrow().string, let ms = Int(id.split(separator: "-")[0]) else { throw RedisError.unexpectedReply("XADD returned \(reply)") }
            return ms
        }
        let started = Date()
        let clock = ContinuousClock()
        let begin = clock.now
        if let interval {
            for (i, item) in items.enumerated() {
                let due = begin + interval * i
                if clock.now < due { try await Task.sleep(until: due, clock: clock) }
                enqueued[item.id] = try entryMilliseconds(try await redis.send(.xadd(stream, fields: [("item", item.wireJSON)])))
            }
        } else {
            for batch in stride(from: 0, to: items.count, by: 500) {
                let slice = items[batch..<min(batch + 500, items.count)]
                let replies = try await redis.pipeline(slice.map { .xadd(stream, fields: [("item", $0.wireJSON)]) })
                for (item, reply) in zip(slice, replies) { enqueued[item.id] = try entryMilliseconds(reply) }
            }
        }
        let enqueueSeconds = max((clock.now - begin) / .seconds(1), 0.001)
        while (try await redis.send(.hlen(CortexNames.taskResults(task))).int ?? 0) < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        let results = try await redis.hgetall(CortexNames.taskResults(task)).values.compactMap { try? WireJSON.decode(WorkResult.self, from: $0) }
        let latencies = results.compactMap { r -> Double? in
            guard let done = r.finishedAtMs, let start = enqueued[r.itemID] else { return nil }
            return Double(done - start)
        }
        guard latencies.count == count else { throw RedisError.unexpectedReply("\(latencies.count) of \(count) results could be matched with their entries") }
        let last = results.compactMap(\.finishedAtMs).max() ?? epochMilliseconds()
        return (max(Double(last) / 1000 - started.timeIntervalSince1970, 0.001), latencies, Double(count) / enqueueSeconds)
    }

    static func percentile(_ xs: [Double], _ p: Double) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
    }

    /// redis-benchmark's XADD rate on the same server (nil if redis-benchmark is not installed).
    static func redisBenchmarkXADD(port: Int) -> Double? {
        guard let tool = ExecutableLocator.system("redis-benchmark") else { return nil }
        let p = Process()
        p.executableURL = tool
        p.arguments = ["-p", "\(port)", "-n", "200000", "-c", "50", "-q", "XADD", "cortex:bench:xadd", "*", "item", "x"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // "XADD cortex:bench:xadd * item x: 98765.43 requests per second, p50=0.263 msec"
        let last = out.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).last { $0.contains("requests per second") } ?? ""
        guard let colon = last.range(of: ": ", options: .backwards) else { return nil }
        return Double(last[colon.upperBound...].split(separator: " ").first ?? "")
    }

    /// The results as Markdown.
    public static func table(_ r: Result) -> String {
        var out = "| Workers | Bulk items | Items/s (bulk) | Latency p50 / p99 under backlog | Paced at | Latency p50 / p99 paced | vs redis-benchmark XADD |\n|---|---|---|---|---|---|---|\n"
        for row in r.rows {
            let ratio = r.xaddPerSecond.map { String(format: "%.1f %%", 100 * row.throughput / $0) } ?? "n/a"
            out += String(format: "| %d | %d | %.0f | %.0f / %.0f ms | %.0f items/s | %.0f / %.0f ms | %@ |\n",
                          row.workers, row.items, row.throughput, row.backlogP50, row.backlogP99, row.pacedRate, row.pacedP50, row.pacedP99, ratio)
        }
        out += "\nredis-benchmark XADD on the same server: " + (r.xaddPerSecond.map { String(format: "%.0f requests/s", $0) } ?? "redis-benchmark not installed") + " (`\(r.xaddCommand)`)\n"
        return out
    }
}
