import ArgumentParser
import CortexControl
import CortexCore
import Foundation

/// Reliability drills and benchmarks on this machine (private redis-servers, real daemons).
@main
struct CortexLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cortex-lab",
        abstract: "Fault injection and benchmarks against a local Cortex suite.",
        subcommands: [Chaos.self, BenchQueue.self, BenchCatalog.self, BenchOSV.self, BenchScan.self, BenchIncremental.self, LedgerHammer.self, Soak.self]
    )
}

struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the chaos scenarios and print one table.")
    @Flag(name: .long, help: "The short version (what CI runs).") var short = false
    @Option(name: .long, help: "Only this scenario (repeatable): worker-kills, master-restart, redis-restart, sentinel-failover.")
    var scenario: [String] = []
    @Flag(name: .long, help: "Keep the work directory (daemon logs, reports) for inspection.") var keep = false

    func run() async throws {
        let chosen = try (scenario.isEmpty ? ChaosSuite.Scenario.allCases.map(\.rawValue) : scenario).map { name in
            guard let s = ChaosSuite.Scenario(rawValue: name) else { throw ValidationError("unknown scenario '\(name)'") }
            return s
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-chaos-\(ProcessInfo.processInfo.processIdentifier)")
        let rows = try await ChaosSuite.run(chosen, options: .init(full: !short, workDirectory: work, log: { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }))
        print(ChaosSuite.table(rows), terminator: "")
        if keep { FileHandle.standardError.write(Data("logs and reports kept in \(work.path)\n".utf8)) } else { try? FileManager.default.removeItem(at: work) }
        // A scenario whose fault missed the run (or changed nothing) proves nothing: it fails like a lost item.
        if rows.contains(where: { $0.lost > 0 || $0.countedTwice > 0 || $0.run != "succeeded" || !$0.inFlight || !$0.faultTookEffect }) { throw ExitCode(1) }
    }
}

struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Many short runs back to back on one local suite; prints Redis memory and keys and every daemon's RSS and open descriptors every N runs.")
    @Option(name: .long, help: "Runs to make.") var runs = 500
    @Option(name: .long, help: "Sample every this many runs.") var every = 50
    @Option(name: .long, help: "Workers to start.") var workers = 2
    @Option(name: .long, help: "The runs' goal.") var goal = "full-orchestration"
    @Option(name: .long, help: "CORTEX_RETENTION for the suite, in seconds (default: the daemons' default, 7 days); the run timeout becomes half of it.") var retention: Int?

    func run() async throws {
        guard runs >= 1, every >= 1, workers >= 1 else { throw ValidationError("--runs, --every and --workers must be at least 1") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-soak-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: work) }
        let samples = try await SoakBenchmark.run(runs: runs, every: every, workers: workers, goal: goal, retention: retention, workDirectory: work, log: { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        })
        print(SoakBenchmark.table(samples), terminator: "")
        if samples.last?.failedRuns ?? 0 > 0 { throw ExitCode(1) }
    }
}

struct BenchIncremental: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-incremental", abstract: "Three runs of a generated repository: an empty file cache, unchanged, one lockfile changed; wall and worker time of each.")
    @Option(name: .long, help: "Files in the generated repository.") var files = 20_000
    @Option(name: .long, help: "Workers to start.") var workers = 4
    @Option(name: .long, help: "The runs' goal.") var goal = "full-orchestration"
    @Option(name: .customLong("osv-db"), help: "An OSV advisory directory for the security master (CORTEX_OSV_DB); without one, vulnerabilities are not checked.") var osvDB: String?
    @Flag(name: .long, help: "Run without catalog-api (workers then register nothing), to see what registration costs.") var withoutCatalog = false
    @Option(name: .long, help: "An existing git repository to orchestrate instead of a generated one (two runs: empty cache, unchanged; the repository is not changed).") var repository: String?

    func run() async throws {
        guard files >= 10, workers >= 1 else { throw ValidationError("--files must be at least 10 and --workers at least 1") }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-bench-incremental-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: work) }
        let rows = try await IncrementalBenchmark.run(files: files, workers: workers, goal: goal, osvDatabase: osvDB, catalog: !withoutCatalog,
                                                      repository: repository.map { URL(fileURLWithPath: $0) }, workDirectory: work, log: { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        })
        print(IncrementalBenchmark.table(rows), terminator: "")
        if rows.contains(where: { $0.status == "failed" }) { throw ExitCode(1) }
    }
}

struct BenchQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-queue", abstract: "Measure the durable work queue end to end with 1, 2 and 4 workers.")
    @Option(name: .long, help: "Items per worker count in the bulk phase.") var items = 3000

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-bench-\(ProcessInfo.processInfo.processIdentifier)")
        let result = try await QueueBenchmark.run(items: items, workDirectory: work, log: { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        })
        print(QueueBenchmark.table(result), terminator: "")
        try? FileManager.default.removeItem(at: work)
    }
}

struct BenchCatalog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-catalog", abstract: "Measure catalog-api: batch upsert of a 100,000-asset cluster with lineage, then filtered pages and lineage walks.")
    @Option(name: .long, help: "Assets to register.") var assets = 100_000
    @Option(name: .long, help: "Assets per upsertAssets batch.") var batch = 1000
    @Option(name: .long, help: "Batches in flight at once.") var concurrency = 2
    @Option(name: .long, help: "Samples of each query.") var samples = 300

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-bench-catalog-\(ProcessInfo.processInfo.processIdentifier)")
        let result = try await CatalogBenchmark.run(assets: assets, batchSize: batch, concurrency: concurrency, samples: samples, workDirectory: work, log: { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        })
        print(CatalogBenchmark.table(result), terminator: "")
        try? FileManager.default.removeItem(at: work)
    }
}

struct BenchOSV: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-osv", abstract: "Measure loading an OSV database and matching packages against it (scripts/bench-osv makes the data).")
    @Option(name: .long, help: "The OSV database: a directory of records or of <Ecosystem>/all.zip.") var db: String
    @Option(name: .long, help: "A JSON array of {ecosystem, name, version, file} to match.") var packages: String
    @Option(name: .long, help: "Times to repeat the matching.") var repeats = 5

    func run() throws {
        print(AdvisoryBenchmark.table(try AdvisoryBenchmark.run(database: db, packagesFile: packages, repeats: repeats)), terminator: "")
    }
}

struct BenchScan: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-scan", abstract: "Measure one worker's security-scan skill (and the secret scanner alone) on a directory tree.")
    @Option(name: .long, help: "The tree to scan (every regular file, .git directories left out).") var root: String
    @Option(name: .long, help: "Timed passes (after one untimed pass that fills the page cache).") var repeats = 3

    func run() throws {
        print(SecurityScanBenchmark.table(try SecurityScanBenchmark.run(root: root, repeats: repeats)), terminator: "")
    }
}

struct LedgerHammer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger-hammer",
        abstract: "Reserve and commit tokens against a run's budget accounts as fast as possible, from many tasks at once; prints a JSON summary. Used by the ledger's multi-process test.")
    @Option(name: .long, help: "Redis URL.") var redis: String
    @Option(name: .long, help: "Run id whose accounts to draw from.") var run: String
    @Option(name: .long, help: "Comma-separated accounts each reservation draws from.") var accounts: String
    @Option(name: .long, help: "Reservations to attempt.") var attempts = 200
    @Option(name: .long, help: "Tokens per reservation.") var amount = 37
    @Option(name: .long, help: "Reservations in flight at once.") var concurrency = 8

    func run() async throws {
        let client = try RedisClient(url: redis)
        let ledger = BudgetLedger(redis: client, runID: run)
        let names = accounts.split(separator: ",").map(String.init)
        let tally = Locked((granted: 0, refused: 0, used: 0))
        let (attempts, amount, concurrency) = (self.attempts, self.amount, self.concurrency)
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<concurrency {
                group.addTask {
                    var i = lane
                    while i < attempts {
                        do {
                            let r = try await ledger.reserve(amount, from: names)
                            let actual = amount - (i % 5)  // real calls use less than their estimate
                            try await ledger.commit(r, actual: actual)
                            tally.withLock { $0.granted += 1; $0.used += actual }
                        } catch is BudgetLedger.Refusal {
                            tally.withLock { $0.refused += 1 }
                        } catch {
                            FileHandle.standardError.write(Data("ledger-hammer: \(error)\n".utf8))
                        }
                        i += concurrency
                    }
                }
            }
        }
        let t = tally.value
        print("{\"granted\":\(t.granted),\"refused\":\(t.refused),\"used\":\(t.used)}")
    }
}
