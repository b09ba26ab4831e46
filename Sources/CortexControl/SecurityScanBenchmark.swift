import CortexCore
import CortexOrchestration
import CortexSecurity
import Foundation

/// Measures one worker's `security-scan` skill on a directory tree: every regular file (`.git`
/// directories left out, as a listing of tracked files would), examined one at a time as
/// `FileShardedSkill` examines a shard (read, dependency inventory, manifest audit, secret scan), on one
/// thread. Also times `SecretScanner.scan` alone over the texts already in memory. `scripts/bench-scan`
/// runs it on this package's own dependency checkouts.
public enum SecurityScanBenchmark {
    public struct Result: Sendable {
        public var root: String
        public var files: Int
        /// The files' sizes added up (every listed file, read or skipped).
        public var bytes: Int
        /// Files the skill read as text (not binary, not over its size limit).
        public var textFiles: Int
        public var textBytes: Int
        public var records: Int
        public var dependencyFiles: Int
        public var secrets: Int
        /// Seconds per pass of the whole skill, sorted.
        public var skillSeconds: [Double]
        /// Seconds per pass of the secret scanner alone over the texts, sorted.
        public var scannerSeconds: [Double]
    }

    public static func run(root: String, repeats: Int = 3) throws -> Result {
        let rootURL = URL(fileURLWithPath: root).standardizedFileURL
        let (files, bytes) = try listing(rootURL)
        let skill = SecurityScan()
        // Every file read once first, untimed: the page cache then holds the tree, so every pass reads the same way.
        for path in files { _ = FileManager.default.contents(atPath: rootURL.appendingPathComponent(path).path) }
        var records: [SkillRecord] = []
        var skillTimes: [Double] = []
        for pass in 0..<max(1, repeats) {
            let start = ContinuousClock.now
            var found: [SkillRecord] = []
            for path in files { found += try skill.examine(root: rootURL, files: [path]) { _ in } }
            skillTimes.append(AdvisoryBenchmark.seconds(since: start))
            if pass == 0 { records = found } else { precondition(found.count == records.count, "pass \(pass) found \(found.count) records, the first \(records.count)") }
        }
        // The texts as the skill reads them (its own limits: 2 MiB, no NUL byte in the first 8,000).
        var texts: [(String, String)] = []
        for path in files {
            guard let data = FileManager.default.contents(atPath: rootURL.appendingPathComponent(path).path), data.count <= 2 * 1024 * 1024,
                  !data.prefix(8000).contains(0) else { continue }
            texts.append((path, String(decoding: data, as: UTF8.self)))
        }
        let scanner = SecretScanner()
        var scannerTimes: [Double] = []
        var secrets = 0
        for _ in 0..<max(1, repeats) {
            let start = ContinuousClock.now
            secrets = 0
            for (path, text) in texts { secrets += scanner.scan(path: path, text: text).count }
            scannerTimes.append(AdvisoryBenchmark.seconds(since: start))
        }
        return Result(root: root, files: files.count, bytes: bytes, textFiles: texts.count, textBytes: texts.reduce(0) { $0 + $1.1.utf8.count },
                      records: records.count, dependencyFiles: records.filter { $0["ecosystem"] != nil }.count,
                      secrets: secrets, skillSeconds: skillTimes.sorted(), scannerSeconds: scannerTimes.sorted())
    }

    /// Every regular file under `root` (relative paths, sorted), without `.git` directories, and their sizes added up.
    static func listing(_ root: URL) throws -> ([String], Int) {
        var files: [String] = []
        var bytes = 0
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey, .isDirectoryKey]) else {
            throw CocoaError(.fileReadNoSuchFile)
        }
        while let url = walker.nextObject() as? URL {
            let values = try url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey, .isDirectoryKey])
            if values.isDirectory == true, url.lastPathComponent == ".git" { walker.skipDescendants(); continue }
            guard values.isRegularFile == true else { continue }
            let path = url.standardizedFileURL.path
            guard path.hasPrefix(prefix) else { continue }
            files.append(String(path.dropFirst(prefix.count)))
            bytes += values.fileSize ?? 0
        }
        return (files.sorted(), bytes)
    }

    public static func table(_ r: Result) -> String {
        func mb(_ b: Int) -> String { String(format: "%.1f MB", Double(b) / 1e6) }
        func rate(_ seconds: [Double], _ b: Int) -> String {
            let median = seconds[seconds.count / 2]
            return String(format: "%.2f s (%.2f / %.2f s) = %.1f MB/s", median, seconds.first!, seconds.last!, Double(b) / 1e6 / median)
        }
        return """
        | Measure | Value |
        |---|---|
        | Tree | \(r.root) |
        | Files listed / their size | \(r.files) / \(mb(r.bytes)) |
        | Files read as text / their size | \(r.textFiles) / \(mb(r.textBytes)) |
        | Records / dependency files / secrets found | \(r.records) / \(r.dependencyFiles) / \(r.secrets) |
        | Skill, one worker: median of \(r.skillSeconds.count) (min / max) | \(rate(r.skillSeconds, r.bytes)) |
        | Secret scanner alone on the texts: median of \(r.scannerSeconds.count) (min / max) | \(rate(r.scannerSeconds, r.textBytes)) |

        """
    }
}
