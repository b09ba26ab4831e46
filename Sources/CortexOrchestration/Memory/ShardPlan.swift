import CortexCore
import Foundation

/// What examining a target's files cost, per file and per directory: measured by workers, merged by the
/// master, learned by the coordinator (a `file-costs` learning per skill and target), and used by the
/// next run's master to place the costliest files so that the items finish together (`ShardPlan`).
public struct FileCosts: Codable, Sendable, Equatable {
    /// One costly file.
    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var ms: Double
    }
    /// One directory (its first two path components) and what its files cost together.
    public struct Directory: Codable, Sendable, Equatable {
        public var directory: String
        public var files: Int
        public var ms: Double
    }

    /// The costliest files, most costly first (at most `keptFiles`).
    public var heavy: [File]
    /// The costliest directories, most costly first (at most `keptDirectories`).
    public var directories: [Directory]
    /// Files examined and what they cost together.
    public var files: Int
    public var ms: Double

    static let keptFiles = 32
    static let keptDirectories = 32

    /// The directory a path is counted under: its first two components (`services/api`), or `.` at the root.
    static func directory(of path: String) -> String {
        let parts = path.split(separator: "/").dropLast()
        return parts.isEmpty ? "." : parts.prefix(2).joined(separator: "/")
    }

    /// Several items' costs as one (the task's).
    public static func merged(_ parts: [FileCosts]) -> FileCosts {
        var byDirectory: [String: (files: Int, ms: Double)] = [:]
        for p in parts { for d in p.directories { byDirectory[d.directory, default: (0, 0)].files += d.files; byDirectory[d.directory, default: (0, 0)].ms += d.ms } }
        return FileCosts(heavy: Array(parts.flatMap(\.heavy).sorted { ($0.ms, $1.path) > ($1.ms, $0.path) }.prefix(keptFiles)),
                         directories: Array(byDirectory.map { Directory(directory: $0.key, files: $0.value.files, ms: $0.value.ms) }
                             .sorted { ($0.ms, $1.directory) > ($1.ms, $0.directory) }.prefix(keptDirectories)),
                         files: parts.reduce(0) { $0 + $1.files }, ms: parts.reduce(0) { $0 + $1.ms })
    }

    /// The learning's key for one skill on one target.
    public static func learningKey(skill: SkillName, target: String) -> String { "file-costs|\(skill.rawValue)|\(RepositoryFiles.hash(target))" }
}

/// Measures what each examined file costs, for `FileCosts`.
struct FileCostMeter {
    private var perFile: [(path: String, ms: Double)] = []
    private var byDirectory: [String: (files: Int, ms: Double)] = [:]

    mutating func add(_ path: String, _ elapsed: Duration) {
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        perFile.append((path, ms))
        let dir = FileCosts.directory(of: path)
        byDirectory[dir, default: (0, 0)].files += 1
        byDirectory[dir, default: (0, 0)].ms += ms
    }

    /// What was measured (nil when nothing was examined).
    var costs: FileCosts? {
        guard !perFile.isEmpty else { return nil }
        let heavy = perFile.sorted { $0.ms > $1.ms }.prefix(FileCosts.keptFiles).map { FileCosts.File(path: $0.path, ms: ($0.ms * 100).rounded() / 100) }
        let dirs = byDirectory.sorted { $0.value.ms > $1.value.ms }.prefix(FileCosts.keptDirectories)
            .map { FileCosts.Directory(directory: $0.key, files: $0.value.files, ms: ($0.value.ms * 100).rounded() / 100) }
        return FileCosts(heavy: Array(heavy), directories: Array(dirs), files: perFile.count, ms: perFile.reduce(0) { $0 + $1.ms })
    }
}

/// The shard plan of a file-sharded task from what its files cost last time: the costly files are placed
/// one by one, most costly first, on the shard with the least estimated work (longest processing time
/// first); every other file stays where its path hash puts it, and counts as the average of the rest.
/// The items are dispatched in order of their estimated work, largest first, so that the longest item
/// starts first and the workers finish together.
public enum ShardPlan {
    /// A file counts as costly when it took at least this share of the task's time.
    static let costlyShare = 0.01

    public struct Placement: Codable, Sendable, Equatable {
        /// Costly files and the shard each goes to.
        public var pinned: [String: Int]
        /// Estimated milliseconds per shard.
        public var estimate: [Double]
        /// The run whose costs it was made from.
        public var learnedIn: String = ""
    }

    /// The placement for `shards` items, or nil when no file stands out (hashing alone is as good).
    public static func place(_ costs: FileCosts, shards: Int) -> Placement? {
        guard shards > 1, costs.ms > 0 else { return nil }
        let costly = costs.heavy.filter { $0.ms >= costs.ms * costlyShare }
        guard !costly.isEmpty else { return nil }
        // The files not listed are spread evenly by their hash.
        let rest = max(0, costs.ms - costly.reduce(0) { $0 + $1.ms })
        var estimate = [Double](repeating: rest / Double(shards), count: shards)
        var pinned: [String: Int] = [:]
        for file in costly.sorted(by: { ($0.ms, $1.path) > ($1.ms, $0.path) }) {
            let least = estimate.indices.min { (estimate[$0], $0) < (estimate[$1], $1) }!
            pinned[file.path] = least
            estimate[least] += file.ms
        }
        return Placement(pinned: pinned, estimate: estimate)
    }

    /// Which shard of `shards` a path belongs to: where the plan pinned it, else by its path hash.
    public static func shard(of path: String, shards: Int, pinned: [String: Int]?) -> Int {
        if let s = pinned?[path], s >= 0, s < shards { return s }
        return RepositoryFiles.shard(of: path, shards: shards)
    }
}
