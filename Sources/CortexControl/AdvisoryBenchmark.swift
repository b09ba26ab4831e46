import CortexSecurity
import Foundation

/// Measures the security master's matching: loading an OSV database (osv-scanner's offline layout of
/// zipped records) and matching a repository's worth of packages against it. `scripts/bench-osv` makes
/// the data (50,000 advisories, 10,000 packages) and runs this.
public enum AdvisoryBenchmark {
    public struct Result: Sendable {
        public var records: Int
        public var packages: Int
        public var findings: Int
        public var loadSeconds: Double
        public var matchSeconds: [Double]
        public var rssBeforeMB: Double
        public var rssAfterLoadMB: Double
        public var peakMB: Double
    }

    public static func run(database: String, packagesFile: String, repeats: Int = 5) throws -> Result {
        let data = try Data(contentsOf: URL(fileURLWithPath: packagesFile))
        let packages = try JSONDecoder().decode([PackageOccurrence].self, from: data)
        let before = memory("VmRSS")
        var clock = ContinuousClock.now
        let db = try AdvisoryDatabase.load(database)
        let load = seconds(since: clock)
        let afterLoad = memory("VmRSS")
        var times: [Double] = []
        var findings = 0
        for _ in 0..<max(1, repeats) {
            clock = .now
            findings = db.findings(for: packages).count
            times.append(seconds(since: clock))
        }
        return Result(records: db.count, packages: packages.count, findings: findings, loadSeconds: load, matchSeconds: times.sorted(),
                      rssBeforeMB: before, rssAfterLoadMB: afterLoad, peakMB: memory("VmHWM"))
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// A line of /proc/self/status in MB (Linux).
    static func memory(_ field: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    public static func table(_ r: Result) -> String {
        let median = r.matchSeconds[r.matchSeconds.count / 2]
        return """
        | Measure | Value |
        |---|---|
        | Advisories loaded (parsed and indexed) | \(r.records) |
        | Load time (unzip + parse + index) | \(String(format: "%.2f s", r.loadSeconds)) (\(String(format: "%.0f", Double(r.records) / r.loadSeconds)) records/s) |
        | Packages matched | \(r.packages) |
        | Findings | \(r.findings) |
        | Match time, median of \(r.matchSeconds.count) (min / max) | \(String(format: "%.1f ms", median * 1000)) (\(String(format: "%.1f", r.matchSeconds.first! * 1000)) / \(String(format: "%.1f", r.matchSeconds.last! * 1000)) ms) = \(String(format: "%.0f", Double(r.packages) / median)) packages/s |
        | Resident memory: before load / after load / peak | \(String(format: "%.0f / %.0f / %.0f MB", r.rssBeforeMB, r.rssAfterLoadMB, r.peakMB)) |

        """
    }
}
