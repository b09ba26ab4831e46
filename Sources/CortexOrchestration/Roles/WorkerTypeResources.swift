import CortexCore

/// The resources of a spawned worker Job by worker type: the design's ten types (scan, fix, analysis,
/// implementation, test, review, pr, documentation, audit, verify). Memory request = limit, so a Job
/// is never scheduled on a node that cannot hold what it may use; an OOMKilled worker's respawn asks for
/// the limit × 1.5 (`WorkerJobSpawner.bumpedMemory`). Documented in docs/install.md.
public struct WorkerTypeResources: Sendable, Equatable {
    public var type: String
    public var cpuRequest: String
    public var cpuLimit: String
    public var memoryMiB: Int

    /// The table, in the design's order.
    public static let table: [WorkerTypeResources] = [
        .init(type: "scan", cpuRequest: "250m", cpuLimit: "1", memoryMiB: 512),
        .init(type: "fix", cpuRequest: "500m", cpuLimit: "1", memoryMiB: 1024),
        .init(type: "analysis", cpuRequest: "250m", cpuLimit: "1", memoryMiB: 512),
        .init(type: "implementation", cpuRequest: "1", cpuLimit: "2", memoryMiB: 2048),
        .init(type: "test", cpuRequest: "1", cpuLimit: "2", memoryMiB: 2048),
        .init(type: "review", cpuRequest: "100m", cpuLimit: "500m", memoryMiB: 256),
        .init(type: "pr", cpuRequest: "100m", cpuLimit: "500m", memoryMiB: 256),
        .init(type: "documentation", cpuRequest: "250m", cpuLimit: "1", memoryMiB: 512),
        .init(type: "audit", cpuRequest: "250m", cpuLimit: "1", memoryMiB: 512),
        .init(type: "verify", cpuRequest: "250m", cpuLimit: "1", memoryMiB: 512),
    ]

    /// The worker type a pool's Jobs are: the catalog pool's discovery is a scan; the others are their namesakes.
    public static func type(for pool: WorkerPool) -> String {
        switch pool {
        case .catalog, .scan: return "scan"
        case .implementation: return "implementation"
        case .documentation: return "documentation"
        case .analysis: return "analysis"
        case .test: return "test"
        }
    }

    /// The row of a pool's worker type.
    public static func forPool(_ pool: WorkerPool) -> WorkerTypeResources {
        let t = type(for: pool)
        return table.first { $0.type == t } ?? table[0]
    }
}
