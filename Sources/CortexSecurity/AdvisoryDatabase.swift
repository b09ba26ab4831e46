import CortexCore
import Foundation

/// A dependency at an exact version, and where it was found.
public struct PackageOccurrence: Sendable, Hashable, Codable {
    /// The OSV ecosystem name, e.g. `npm`, `PyPI`, `crates.io`.
    public var ecosystem: String
    public var name: String
    public var version: String
    /// The manifest or lockfile (relative to the repository), and the line when the format tells it.
    public var file: String?
    public var line: Int?

    public init(ecosystem: String, name: String, version: String, file: String? = nil, line: Int? = nil) {
        self.ecosystem = ecosystem
        self.name = name
        self.version = version
        self.file = file
        self.line = line
    }
}

/// One advisory that affects one package occurrence.
public struct VulnerabilityFinding: Sendable, Codable, Equatable {
    public var package: String
    public var version: String
    public var ecosystem: String
    public var advisory: String
    /// Other ids of the same vulnerability (CVE, GO-, PYSEC-, RUSTSEC-).
    public var aliases: [String]
    public var summary: String
    /// Every `fixed` version the record names for the package, in version order.
    public var fixedVersions: [String]
    /// The lowest of them above `version`: what a fix branch bumps to. Nil when there is no fix.
    public var lowestFix: String?
    public var severity: CVSS3.Severity
    /// The CVSS v3 base score, when the record has a vector.
    public var score: Double?
    /// Where the severity came from: the vector, the database's rating, or "unrated".
    public var severitySource: String
    public var file: String?
    public var line: Int?
}

/// OSV records indexed by (ecosystem, package), from a directory of JSON records, an `all.zip`, or
/// osv-scanner's offline layout (`<dir>/<Ecosystem>/all.zip`). Immutable once loaded.
public final class AdvisoryDatabase: Sendable {
    /// What was loaded, for the report.
    public let source: String
    /// Records that could not be read (file: reason); the rest were loaded.
    public let problems: [String]
    public let withdrawnCount: Int
    private let records: [JSONValue]
    private let index: [String: [Int]]

    public var count: Int { records.count }

    /// Indexes `records` (OSV JSON objects). Only the fields matching needs are kept.
    public init(records: [JSONValue], source: String, problems: [String] = []) {
        var kept: [JSONValue] = []
        var index: [String: [Int]] = [:]
        var withdrawn = 0
        kept.reserveCapacity(records.count)
        for record in records {
            guard case .object(let full) = record, full["id"]?.stringValue != nil else { continue }
            if full["withdrawn"] != nil { withdrawn += 1 }
            var slim: [String: JSONValue] = [:]
            for key in ["id", "aliases", "summary", "severity", "affected", "withdrawn"] { slim[key] = full[key] }
            if let rating = full["database_specific"]?["severity"] { slim["database_specific"] = .object(["severity": rating]) }
            let position = kept.count
            kept.append(.object(slim))
            var keys: Set<String> = []
            for affected in full["affected"]?.arrayValue ?? [] {
                guard let eco = affected["package"]?["ecosystem"]?.stringValue, let name = affected["package"]?["name"]?.stringValue else { continue }
                keys.insert(Self.key(eco, name))
            }
            for k in keys { index[k, default: []].append(position) }
        }
        self.records = kept
        self.index = index
        self.source = source
        self.problems = problems
        self.withdrawnCount = withdrawn
    }

    /// The index key: the ecosystem without its release suffix (`Debian:12` → `Debian`) and the name
    /// as the ecosystem compares names (PyPI per PEP 503; SwiftURL without scheme and `.git`).
    static func key(_ ecosystem: String, _ name: String) -> String {
        let eco = ecosystem.split(separator: ":").first.map(String.init) ?? ecosystem
        return eco + "\u{0}" + normalizedName(name, ecosystem: eco)
    }

    /// Without Foundation's string searching: this runs for every candidate record of every package.
    public static func normalizedName(_ name: String, ecosystem: String) -> String {
        switch ecosystem {
        case "PyPI":
            var out = ""
            out.reserveCapacity(name.utf8.count)
            for ch in name.unicodeScalars {
                switch ch {
                case "_", ".": out.unicodeScalars.append("-")
                case "A"..."Z": out.unicodeScalars.append(Unicode.Scalar(ch.value + 32)!)
                default: out.unicodeScalars.append(ch)
                }
            }
            return out
        case "SwiftURL":
            var s = Substring(name.lowercased())
            for scheme in ["https://", "http://", "ssh://", "git@"] where s.hasPrefix(scheme) { s = s.dropFirst(scheme.count) }
            if s.hasSuffix(".git") { s = s.dropLast(4) }
            return String(s.map { $0 == ":" ? "/" : $0 })
        default: return name
        }
    }

    /// Every advisory affecting each package (withdrawn records never match).
    public func findings(for packages: [PackageOccurrence]) -> [VulnerabilityFinding] {
        var out: [VulnerabilityFinding] = []
        for package in packages {
            guard let ecosystem = Ecosystem(rawValue: package.ecosystem) else { continue }
            for position in index[Self.key(package.ecosystem, package.name)] ?? [] {
                if let f = Self.finding(records[position], package: package, ecosystem: ecosystem) { out.append(f) }
            }
        }
        return out
    }

    /// The finding for one record and package, or nil when the record does not affect that version.
    static func finding(_ record: JSONValue, package: PackageOccurrence, ecosystem: Ecosystem) -> VulnerabilityFinding? {
        // SwiftURL records name the repository without a scheme; the lockfile has the clone URL.
        let name = ecosystem == .swiftURL ? normalizedName(package.name, ecosystem: "SwiftURL") : package.name
        let recordName = (record["affected"]?.arrayValue ?? []).compactMap { $0["package"]?["name"]?.stringValue }
            .first { normalizedName($0, ecosystem: ecosystem.rawValue) == normalizedName(name, ecosystem: ecosystem.rawValue) } ?? name
        guard OSVMatching.affects(record, ecosystem: ecosystem, package: recordName, version: package.version) else { return nil }
        var fixed: [String] = []
        for affected in record["affected"]?.arrayValue ?? [] where normalizedName(affected["package"]?["name"]?.stringValue ?? "", ecosystem: ecosystem.rawValue) == normalizedName(recordName, ecosystem: ecosystem.rawValue) {
            for range in affected["ranges"]?.arrayValue ?? [] {
                for event in range["events"]?.arrayValue ?? [] { if let f = event["fixed"]?.stringValue, !fixed.contains(f) { fixed.append(f) } }
            }
        }
        fixed.sort { ecosystem.compare($0, $1) < 0 }
        let rating = severity(of: record)
        return VulnerabilityFinding(
            package: package.name, version: package.version, ecosystem: package.ecosystem,
            advisory: record["id"]?.stringValue ?? "?", aliases: (record["aliases"]?.arrayValue ?? []).compactMap(\.stringValue),
            summary: record["summary"]?.stringValue ?? "", fixedVersions: fixed,
            lowestFix: OSVMatching.lowestFix(record, ecosystem: ecosystem, package: recordName, version: package.version),
            severity: rating.severity, score: rating.score, severitySource: rating.source, file: package.file, line: package.line)
    }

    /// Severity from the record's CVSS v3 vector (base score computed here), else the database's own
    /// rating (GitHub's CRITICAL / HIGH / MODERATE / LOW), else medium, marked unrated.
    public static func severity(of record: JSONValue) -> (severity: CVSS3.Severity, score: Double?, source: String) {
        var vectors = (record["severity"]?.arrayValue ?? [])
        for affected in record["affected"]?.arrayValue ?? [] { vectors += affected["severity"]?.arrayValue ?? [] }
        for s in vectors where s["type"]?.stringValue == "CVSS_V3" {
            if let vector = s["score"]?.stringValue, let score = try? CVSS3.baseScore(vector) {
                return (CVSS3.Severity(score: score), score, vector)
            }
        }
        if let rating = record["database_specific"]?["severity"]?.stringValue?.uppercased() {
            let map: [String: CVSS3.Severity] = ["CRITICAL": .critical, "HIGH": .high, "MODERATE": .medium, "MEDIUM": .medium, "LOW": .low]
            if let s = map[rating] { return (s, nil, "database rating \(rating)") }
        }
        return (.medium, nil, "unrated: the record has no CVSS v3 vector or rating")
    }

    // MARK: - Loading

    public struct LoadError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Loads every OSV record under `path` (see the type's documentation). Unreadable records are
    /// listed in `problems`; a path that holds no records at all is an error.
    public static func load(_ path: String) throws -> AdvisoryDatabase {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw LoadError(description: "CORTEX_OSV_DB: \(path) does not exist")
        }
        var records: [JSONValue] = []
        var problems: [String] = []
        var zips = 0, files = 0
        func add(_ data: Data, origin: String) {
            do { records.append(try JSONText.parse(String(decoding: data, as: UTF8.self))) }
            catch { problems.append("\(origin): \(error)") }
        }
        func readZip(_ url: URL) throws {
            let zip = try ZipArchive(url: url)
            zips += 1
            for entry in zip.entries where entry.name.hasSuffix(".json") {
                do { add(try zip.contents(of: entry), origin: "\(url.path)!\(entry.name)") }
                catch { problems.append("\(error)") }
            }
        }
        if !isDirectory.boolValue {
            if path.hasSuffix(".zip") { try readZip(URL(fileURLWithPath: path)) }
            else if let data = fm.contents(atPath: path) { files += 1; add(data, origin: path) }
        } else {
            let root = URL(fileURLWithPath: path)
            let walker = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles])
            while let url = walker?.nextObject() as? URL {
                if url.pathExtension == "zip" {
                    do { try readZip(url) } catch { problems.append("\(error)") }
                } else if url.pathExtension == "json", let data = fm.contents(atPath: url.path) {
                    files += 1
                    add(data, origin: url.path)
                }
            }
        }
        guard !records.isEmpty else {
            throw LoadError(description: "CORTEX_OSV_DB: no OSV records in \(path)" + (problems.first.map { " (first problem: \($0))" } ?? ""))
        }
        let what = [zips > 0 ? "\(zips) zip archive(s)" : nil, files > 0 ? "\(files) JSON file(s)" : nil].compactMap { $0 }.joined(separator: " and ")
        return AdvisoryDatabase(records: records, source: "\(path) (\(what))", problems: problems)
    }
}
