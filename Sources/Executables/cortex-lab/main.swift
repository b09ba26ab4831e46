import ArgumentParser
import CortexControl
import Foundation

/// Reliability drills and benchmarks on this machine (private redis-servers, real daemons).
@main
struct CortexLab: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cortex-lab",
        abstract: "Fault injection and benchmarks against a local Cortex suite.",
        subcommands: [Chaos.self, BenchQueue.self]
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
        if rows.contains(where: { $0.lost > 0 || $0.countedTwice > 0 || $0.run != "succeeded" }) { throw ExitCode(1) }
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
