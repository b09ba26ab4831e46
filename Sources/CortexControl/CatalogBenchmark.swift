import CortexCatalog
import CortexCore
import Foundation

/// catalog-api measured as its clients use it: a cluster-shaped catalog of 100,000 assets with their
/// lineage registered through `CatalogClient.upsert` (what workers call: `POST /api/v1/batch`), then the
/// latency of a filtered page and of a depth-3 lineage walk at that size, over GraphQL. Real catalog-api
/// process, private redis-server.
public enum CatalogBenchmark {
    public struct Result: Sendable {
        public var assets: Int
        public var relations: Int
        public var batchSize: Int
        public var concurrency: Int
        public var upsertSeconds: Double
        public var filterP50: Double
        public var filterP99: Double
        public var lineageP50: Double
        public var lineageP99: Double
        public var lineageNodes: Int
        public var samples: Int
        public var redisMemory: String
        /// catalog-api's CPU seconds (user + system, from /proc/<pid>/stat) over the page samples and
        /// over the lineage samples; nil where /proc is not there.
        public var filterCPUSeconds: Double?
        public var lineageCPUSeconds: Double?
    }

    /// The synthetic cluster: nodes, namespaces, images, deployments -> replicasets -> pods, with RUNS_ON,
    /// MANAGED_BY and USES_IMAGE edges. Returned as batches in dependency order (edges point at assets that
    /// exist already or come in the same batch).
    static func cluster(assets total: Int, batchSize: Int) -> [(assets: [AssetInput], relations: [RelationInput])] {
        let nodes = 20, namespaces = 200, images = 200, deployments = 2000
        var batches: [(assets: [AssetInput], relations: [RelationInput])] = []
        var assets: [AssetInput] = []
        var relations: [RelationInput] = []
        func flush() {
            if !assets.isEmpty { batches.append((assets, relations)) }
            assets = []
            relations = []
        }
        func add(_ a: AssetInput, _ r: [RelationInput] = []) {
            assets.append(a)
            relations += r
            if assets.count >= batchSize { flush() }
        }
        for n in 0..<nodes { add(AssetInput(type: .NODE, name: "node-\(n)", labels: ["zone": "z\(n % 3)"], health: Health(status: .OK))) }
        for n in 0..<namespaces { add(AssetInput(type: .NAMESPACE, name: "ns-\(n)")) }
        for i in 0..<images { add(AssetInput(type: .CONTAINER_IMAGE, name: "registry.local/app-\(i):1.\(i % 7)")) }
        flush()
        for d in 0..<deployments {
            let ns = "ns-\(d % namespaces)"
            add(AssetInput(type: .DEPLOYMENT, name: "app-\(d)", namespace: ns, owner: "team-\(d % 12)", labels: ["app": "app-\(d)"],
                           properties: ["replicas": 3], health: Health(status: d % 50 == 0 ? .DEGRADED : .OK)))
        }
        flush()
        for d in 0..<deployments {
            let ns = "ns-\(d % namespaces)"
            add(AssetInput(type: .REPLICASET, name: "app-\(d)-rs", namespace: ns, labels: ["app": "app-\(d)"]),
                [RelationInput(from: "replicaset:\(ns)/app-\(d)-rs", to: "deployment:\(ns)/app-\(d)", kind: .MANAGED_BY)])
        }
        flush()
        let pods = total - nodes - namespaces - images - 2 * deployments
        for p in 0..<pods {
            let d = p % deployments
            let ns = "ns-\(d % namespaces)"
            let id = "pod:\(ns)/app-\(d)-\(p)"
            add(AssetInput(type: .POD, name: "app-\(d)-\(p)", namespace: ns, owner: "team-\(d % 12)", labels: ["app": "app-\(d)"],
                           properties: ["restarts": .number(Double(p % 5))], health: Health(status: p % 97 == 0 ? .FAILING : .OK)),
                [RelationInput(from: id, to: "replicaset:\(ns)/app-\(d)-rs", kind: .MANAGED_BY),
                 RelationInput(from: id, to: "node:node-\(p % nodes)", kind: .RUNS_ON),
                 RelationInput(from: id, to: "container_image:registry.local/app-\(d % images):1.\(d % images % 7)", kind: .USES_IMAGE)])
        }
        flush()
        return batches
    }

    public static func run(assets total: Int = 100_000, batchSize: Int = 1000, concurrency: Int = 2, samples: Int = 300,
                           workDirectory: URL, binDirectory: URL = ExecutableLocator.binDirectory,
                           log: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let suite = try await LocalSuite(workDirectory: workDirectory, outputDirectory: workDirectory, binDirectory: binDirectory,
                                         environment: ["CORTEX_LOG_LEVEL": "notice"])
        defer { Task { await suite.stop() } }
        let (catalog, port) = try await suite.startCatalog()
        // For `perf record -p` during a phase (scripts/bench-catalog-cpu).
        log("catalog-api pid \(catalog.pid)")
        let client = CatalogClient(baseURL: "http://127.0.0.1:\(port)", token: nil, timeout: .seconds(120))
        let batches = cluster(assets: total, batchSize: batchSize)
        let assetCount = batches.reduce(0) { $0 + $1.assets.count }
        let relationCount = batches.reduce(0) { $0 + $1.relations.count }
        log("registering \(assetCount) assets and \(relationCount) relations in \(batches.count) batches, \(concurrency) at a time")

        // Batches in dependency order: the cluster-wide ones first, then the rest `concurrency` at a time.
        let started = ContinuousClock.now
        var index = 0
        while index < batches.count {
            let group = batches[index..<min(index + concurrency, batches.count)]
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for b in group {
                    tasks.addTask {
                        let summary = try await client.upsert(b.assets, relations: b.relations)
                        guard summary.created == b.assets.count, summary.relations == b.relations.count else {
                            throw CatalogClientError("a batch of \(b.assets.count) assets / \(b.relations.count) relations did \(summary)")
                        }
                    }
                }
                try await tasks.waitForAll()
            }
            index += group.count
            if index % 20 == 0 { log("  \(index)/\(batches.count) batches") }
        }
        let upsertSeconds = seconds(ContinuousClock.now - started)
        let totals = try await client.totals()
        guard totals.assets == assetCount, totals.relations == relationCount else {
            throw CatalogClientError("catalog holds \(totals.assets) assets / \(totals.relations) relations, expected \(assetCount) / \(relationCount)")
        }

        var generator = SystemRandomNumberGenerator()
        func measure(_ query: (Int) -> String, check: (JSONValue) throws -> Void) async throws -> [Double] {
            var times: [Double] = []
            for i in 0..<samples {
                let t0 = ContinuousClock.now
                let data = try await client.graphQL(query(i), variables: [:])
                times.append(seconds(ContinuousClock.now - t0) * 1000)
                try check(data)
            }
            return times.sorted()
        }
        log("measuring assets(filter) pages")
        let filterCPU = cpuSeconds(catalog.pid)
        let filter = try await measure({ _ in
            let ns = Int.random(in: 0..<200, using: &generator)
            return """
                { assets(filter: {namespace: "ns-\(ns)", type: POD, health: OK}, first: 50) {
                    edges { node { id name namespace owner labels { key value } health { status } version } } pageInfo { hasNextPage endCursor } } }
                """
        }, check: { data in
            guard (data["assets"]?["edges"]?.arrayValue?.count ?? 0) > 0 else { throw CatalogClientError("filtered page empty: \(data)") }
        })
        let filterCPUAfter = cpuSeconds(catalog.pid)
        log("measuring lineage(depth: 3)")
        let lineageNodes = Locked(0)
        let lineage = try await measure({ _ in
            let d = Int.random(in: 0..<2000, using: &generator)
            return "{ lineage(id: \"deployment:ns-\(d % 200)/app-\(d)\", direction: BOTH, depth: 3) { nodes { id type health { status } } edges { from to kind } truncated } }"
        }, check: { data in
            let n = data["lineage"]?["nodes"]?.arrayValue?.count ?? 0
            guard n >= 5 else { throw CatalogClientError("lineage too small: \(n)") }
            lineageNodes.withLock { $0 = max($0, n) }
        })
        let lineageCPUAfter = cpuSeconds(catalog.pid)
        log("done measuring")
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port))
        defer { redis.close() }
        let info = try await redis.info("memory")
        let memory = info.split(separator: "\r\n").first { $0.hasPrefix("used_memory_human:") }.map { String($0.dropFirst(18)) } ?? "?"
        await suite.stop()
        return Result(assets: assetCount, relations: relationCount, batchSize: batchSize, concurrency: concurrency, upsertSeconds: upsertSeconds,
                      filterP50: percentile(filter, 0.5), filterP99: percentile(filter, 0.99),
                      lineageP50: percentile(lineage, 0.5), lineageP99: percentile(lineage, 0.99), lineageNodes: lineageNodes.value,
                      samples: samples, redisMemory: memory,
                      filterCPUSeconds: filterCPU.flatMap { a in filterCPUAfter.map { $0 - a } },
                      lineageCPUSeconds: filterCPUAfter.flatMap { a in lineageCPUAfter.map { $0 - a } })
    }

    /// User plus system CPU seconds a process has used so far (fields 14 and 15 of /proc/<pid>/stat,
    /// in clock ticks), or nil without /proc.
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command name in parentheses (which may hold spaces): field 3 onwards.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
    }

    static func cpuNote(_ r: Result) -> String {
        guard let page = r.filterCPUSeconds, let walk = r.lineageCPUSeconds else { return "" }
        return String(format: " catalog-api CPU: %.2f s over the pages (%.2f ms each), %.2f s over the lineage walks (%.2f ms each).",
                      page, page * 1000 / Double(r.samples), walk, walk * 1000 / Double(r.samples))
    }

    /// The result as the Markdown table in docs/benchmarks.md.
    public static func table(_ r: Result) -> String {
        func f(_ x: Double) -> String { String(format: "%.1f", x) }
        return """
        | Assets | Relations | Batch upsert (POST /api/v1/batch, \(r.batchSize) per batch, \(r.concurrency) in flight) | assets(filter) page of 50, p50 / p99 | lineage(depth: 3), p50 / p99 (up to \(r.lineageNodes) nodes) | Redis memory |
        |---|---|---|---|---|---|
        | \(r.assets) | \(r.relations) | \(f(r.upsertSeconds)) s = \(Int(Double(r.assets) / r.upsertSeconds)) assets/s with \(Int(Double(r.relations) / r.upsertSeconds)) relations/s | \(f(r.filterP50)) / \(f(r.filterP99)) ms | \(f(r.lineageP50)) / \(f(r.lineageP99)) ms | \(r.redisMemory) |

        (\(r.samples) sequential samples of each query.\(cpuNote(r)))

        """
    }
}
