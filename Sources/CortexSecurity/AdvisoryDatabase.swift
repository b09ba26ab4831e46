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
    /// The name the package is installed under when that is not `name` (an npm alias: `"x": "npm:y@1.0.0"`
    /// installs y as x). Advisories name the real package, so matching uses `name`; reports show both.
    public var installedAs: String?

    public init(ecosystem: String, name: String, version: String, file: String? = nil, line: Int? = nil, installedAs: String? = nil) {
        self.ecosystem = ecosystem
        self.name = name
        self.version = version
        self.file = file
        self.line = line
        self.installedAs = installedAs
    }
}

/// One vulnerability of one package version in one module: `AdvisoryDatabase.findings(for:)` makes one
/// per matching record and package occurrence, `merged(_:)` folds those into one row per vulnerability.
public struct VulnerabilityFinding: Sendable, Codable, Equatable {
    /// A file (relative to the repository) that pins the vulnerable version, and the line when the format tells it.
    public struct Location: Sendable, Codable, Hashable {
        public var file: String
        public var line: Int?

        public init(file: String, line: Int? = nil) {
            self.file = file
            self.line = line
        }

        /// `file:line`, or the file alone when the line is unknown.
        public var text: String { line.map { "\(file):\($0)" } ?? file }
    }

    public var package: String
    public var version: String
    public var ecosystem: String
    /// The id the finding goes by: of the records that matched, a GHSA id first (it usually carries the
    /// severity), else the first in id order.
    public var advisory: String
    /// Every other id of the same vulnerability (CVE, GHSA-, GO-, PYSEC-, RUSTSEC-), in id order.
    public var aliases: [String]
    public var summary: String
    /// Every `fixed` version the records name for the package, in version order.
    public var fixedVersions: [String]
    /// The lowest of them above `version`: what a fix branch bumps to. Nil when there is no fix. When
    /// twin records disagree, the highest of their lowest fixes, so the bump clears every one of them.
    public var lowestFix: String?
    public var severity: CVSS3.Severity
    /// The CVSS v3 base score, when a record has a vector.
    public var score: Double?
    /// Where the severity came from: the vector, the database's rating, or "unrated".
    public var severitySource: String
    /// The first of `locations`, kept for readers of a single place.
    public var file: String?
    public var line: Int?
    /// Every file of the module that pins this version (go.mod and go.sum, package-lock.json and yarn.lock,
    /// requirements.txt and poetry.lock ...), in path order.
    public var locations: [Location]
    /// The ids of the database records that matched: more than one when records of different databases
    /// describe the same vulnerability (a GHSA record and its GO- / PYSEC- / RUSTSEC- twin).
    public var records: [String]
    /// The names the package is installed under when one is not its own (npm aliases), in name order;
    /// nil when it is installed under its own name only.
    public var installedAs: [String]?

    /// The package as a report shows it: `y (as x)` for y installed under the alias x.
    public var displayName: String {
        guard let names = installedAs, !names.isEmpty else { return package }
        return "\(package) (as \(names.joined(separator: ", ")))"
    }

    init(package: String, version: String, ecosystem: String, advisory: String, aliases: [String], summary: String, fixedVersions: [String],
         lowestFix: String?, severity: CVSS3.Severity, score: Double?, severitySource: String, locations: [Location], records: [String],
         installedAs: [String]?) {
        self.package = package
        self.version = version
        self.ecosystem = ecosystem
        self.advisory = advisory
        self.aliases = aliases
        self.summary = summary
        self.fixedVersions = fixedVersions
        self.lowestFix = lowestFix
        self.severity = severity
        self.score = score
        self.severitySource = severitySource
        self.locations = locations
        self.file = locations.first?.file
        self.line = locations.first?.line
        self.records = records
        self.installedAs = installedAs
    }

    /// Also reads findings written before `locations` and `records` existed: one location, one record.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        package = try c.decode(String.self, forKey: .package)
        version = try c.decode(String.self, forKey: .version)
        ecosystem = try c.decode(String.self, forKey: .ecosystem)
        advisory = try c.decode(String.self, forKey: .advisory)
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases) ?? []
        summary = try c.decodeIfPresent(String.self, forKey: .summary) ?? ""
        fixedVersions = try c.decodeIfPresent([String].self, forKey: .fixedVersions) ?? []
        lowestFix = try c.decodeIfPresent(String.self, forKey: .lowestFix)
        severity = try c.decode(CVSS3.Severity.self, forKey: .severity)
        score = try c.decodeIfPresent(Double.self, forKey: .score)
        severitySource = try c.decodeIfPresent(String.self, forKey: .severitySource) ?? ""
        let file = try c.decodeIfPresent(String.self, forKey: .file), line = try c.decodeIfPresent(Int.self, forKey: .line)
        self.file = file
        self.line = line
        locations = try c.decodeIfPresent([Location].self, forKey: .locations) ?? file.map { [Location(file: $0, line: line)] } ?? []
        records = try c.decodeIfPresent([String].self, forKey: .records) ?? [advisory]
        installedAs = try c.decodeIfPresent([String].self, forKey: .installedAs)
    }
}

/// OSV records indexed by (ecosystem, package), from a directory of JSON records, an `all.zip`, or
/// osv-scanner's offline layout (`<dir>/<Ecosystem>/all.zip`). Immutable once loaded.
public final class AdvisoryDatabase: Sendable {
    /// What was loaded, for the report.
    public let source: String
    /// Records that could not be read (file: reason); the rest were loaded.
    public let problems: [String]
    public let withdrawnCount: Int
    /// Records loaded (withdrawn ones included).
    public let count: Int
    /// Per ecosystem (`Ecosystem.allCases` order), per package name as the ecosystem compares names: the
    /// records naming it that are not withdrawn, in load order, each prepared for that name.
    private let index: [[String: ContiguousArray<AdvisoryMatch>]]

    /// Indexes `records` (OSV JSON objects): each is read once here (`AdvisoryRecord`: names normalized,
    /// versions parsed) and prepared for each package name it names (`AdvisoryMatch`: entries picked,
    /// fixed versions sorted, severity scored), so matching never walks JSON, parses a record's version
    /// or scores a vector again.
    public init(records: [JSONValue], source: String, problems: [String] = []) {
        var index: [[String: ContiguousArray<AdvisoryMatch>]] = Array(repeating: [:], count: Ecosystem.allCases.count)
        var count = 0, withdrawn = 0
        var versions: [Ecosystem: [String: ParsedVersion]] = [:]
        var scores: [String: Double?] = [:]
        for record in records {
            guard case .object(let full) = record, let id = full["id"]?.stringValue else { continue }
            count += 1
            if full["withdrawn"] != nil { withdrawn += 1 }
            let parsed = AdvisoryRecord(full, id: id, versions: &versions)
            // A withdrawn record matches nothing, so the index leaves it out.
            if parsed.withdrawn { continue }
            // Only ecosystems whose versions can be ordered are ever looked up (`findings(for:)`).
            var keys: [AdvisoryKey] = []
            for a in parsed.affected where a.name != nil {
                if let ecosystem = a.ecosystem {
                    let key = AdvisoryKey(ecosystem: ecosystem, name: a.normalizedName)
                    if !keys.contains(key) { keys.append(key) }
                }
            }
            for k in keys {
                index[k.ecosystem.ordinal][k.name, default: []].append(AdvisoryMatch(parsed, ecosystem: k.ecosystem, name: k.name, scores: &scores))
            }
        }
        self.count = count
        self.index = index
        self.source = source
        self.problems = problems
        self.withdrawnCount = withdrawn
    }

    private struct AdvisoryKey: Hashable {
        let ecosystem: Ecosystem
        let name: String
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

    /// Every advisory affecting each package (withdrawn records never match): one finding per record and
    /// package occurrence, so a vulnerability pinned in go.mod and go.sum, or described by a GHSA record
    /// and its GO- twin, comes more than once. `VulnerabilityFinding.merged(_:)` makes the report's rows.
    public func findings(for packages: [PackageOccurrence]) -> [VulnerabilityFinding] {
        var out: [VulnerabilityFinding] = []
        for package in packages {
            guard let ecosystem = Ecosystem(rawValue: package.ecosystem) else { continue }
            let wanted = Self.normalizedName(package.name, ecosystem: ecosystem.rawValue)
            guard let matches = index[ecosystem.ordinal][wanted] else { continue }
            // Parsed once per package, only for a package some record names.
            let version = ecosystem.parse(package.version)
            // One array for all of the package's findings (they share it): allocating and freeing two
            // small arrays per finding showed in `perf` as malloc and free.
            var locations: [VulnerabilityFinding.Location]?
            for match in matches where match.affects(version, ecosystem: ecosystem) {
                if locations == nil { locations = package.file.map { [.init(file: $0, line: package.line)] } ?? [] }
                out.append(Self.finding(match, package: package, version: version, ecosystem: ecosystem, locations: locations ?? []))
            }
        }
        return out
    }

    /// The finding for a prepared record that affects the package (`version`: its version parsed;
    /// `locations`: the package's file and line). The same as `finding(_:package:ecosystem:)` on the
    /// record's JSON.
    static func finding(_ match: AdvisoryMatch, package: PackageOccurrence, version: ParsedVersion, ecosystem: Ecosystem,
                        locations: [VulnerabilityFinding.Location]) -> VulnerabilityFinding {
        VulnerabilityFinding(
            package: package.name, version: package.version, ecosystem: package.ecosystem,
            advisory: match.id, aliases: match.aliases,
            summary: match.summary, fixedVersions: match.fixedVersions, lowestFix: match.lowestFix(above: version, ecosystem: ecosystem),
            severity: match.severity, score: match.score, severitySource: match.severitySource,
            locations: locations, records: match.records, installedAs: package.installedAs.map { [$0] })
    }

    /// The finding for one record and package, or nil when the record does not affect that version: the
    /// record's JSON walked as the OSV schema reads it (`OSVMatching`). The definition the parsed records
    /// follow; `SecurityMatchingTests` holds `findings(for:)` to it.
    static func finding(_ record: JSONValue, package: PackageOccurrence, ecosystem: Ecosystem) -> VulnerabilityFinding? {
        // The record's own spelling of the name (SwiftURL records name the repository without a scheme,
        // `github.com/apple/swift-nio`, where Package.resolved has the clone URL).
        let wanted = normalizedName(package.name, ecosystem: ecosystem.rawValue)
        let recordName = (record["affected"]?.arrayValue ?? []).compactMap { $0["package"]?["name"]?.stringValue }
            .first { normalizedName($0, ecosystem: ecosystem.rawValue) == wanted } ?? package.name
        guard OSVMatching.affects(record, ecosystem: ecosystem, package: recordName, version: package.version) else { return nil }
        var fixed: [String] = []
        for affected in record["affected"]?.arrayValue ?? [] where normalizedName(affected["package"]?["name"]?.stringValue ?? "", ecosystem: ecosystem.rawValue) == normalizedName(recordName, ecosystem: ecosystem.rawValue) {
            for range in affected["ranges"]?.arrayValue ?? [] {
                for event in range["events"]?.arrayValue ?? [] { if let f = event["fixed"]?.stringValue, !fixed.contains(f) { fixed.append(f) } }
            }
        }
        fixed.sort { ecosystem.compare($0, $1) < 0 }
        let rating = severity(of: record)
        let id = record["id"]?.stringValue ?? "?"
        return VulnerabilityFinding(
            package: package.name, version: package.version, ecosystem: package.ecosystem,
            advisory: id, aliases: (record["aliases"]?.arrayValue ?? []).compactMap(\.stringValue).filter { $0 != id },
            summary: record["summary"]?.stringValue ?? "", fixedVersions: fixed,
            lowestFix: OSVMatching.lowestFix(record, ecosystem: ecosystem, package: recordName, version: package.version),
            severity: rating.severity, score: rating.score, severitySource: rating.source,
            locations: package.file.map { [.init(file: $0, line: package.line)] } ?? [], records: [id],
            installedAs: package.installedAs.map { [$0] })
    }

    /// Severity from the record's CVSS v3 vector (base score computed here), else the database's own
    /// rating (GitHub's CRITICAL / HIGH / MODERATE / LOW), else medium, marked unrated.
    public static func severity(of record: JSONValue) -> (severity: CVSS3.Severity, score: Double?, source: String) {
        var entries = (record["severity"]?.arrayValue ?? [])
        for affected in record["affected"]?.arrayValue ?? [] { entries += affected["severity"]?.arrayValue ?? [] }
        let vectors = entries.filter { $0["type"]?.stringValue == "CVSS_V3" }.compactMap { $0["score"]?.stringValue }
        return severity(vectors: vectors, rating: record["database_specific"]?["severity"]?.stringValue)
    }

    /// The same from the record's `CVSS_V3` vectors in order and its database's rating: the first vector
    /// that is a valid CVSS v3 vector, else the rating.
    static func severity(vectors: [String], rating: String?) -> (severity: CVSS3.Severity, score: Double?, source: String) {
        var scores: [String: Double?] = [:]
        return severity(vectors: vectors, rating: rating, scores: &scores)
    }

    /// The same with the base scores computed so far by vector (nil: not a valid CVSS v3 vector), so a
    /// database computes each distinct vector's score once, not once per record.
    static func severity(vectors: [String], rating: String?, scores: inout [String: Double?]) -> (severity: CVSS3.Severity, score: Double?, source: String) {
        for vector in vectors {
            let score: Double?
            if let known = scores[vector] {
                score = known
            } else {
                // An invalid vector is not an error here: the next vector, or the rating, rates the record.
                score = try? CVSS3.baseScore(vector)
                scores.updateValue(score, forKey: vector)
            }
            if let score { return (CVSS3.Severity(score: score), score, vector) }
        }
        if let rating = rating?.uppercased(), let s = ratings[rating] { return (s, nil, ratingSourcePrefix + rating) }
        return (.medium, nil, unratedSource)
    }

    /// GitHub's ratings (and MEDIUM) as severities.
    static let ratings: [String: CVSS3.Severity] = ["CRITICAL": .critical, "HIGH": .high, "MODERATE": .medium, "MEDIUM": .medium, "LOW": .low]

    static let ratingSourcePrefix = "database rating "
    static let unratedSource = "unrated: the record has no CVSS v3 vector or rating"

    /// How well a `severitySource` is sourced (lower is better): a CVSS vector, a database's rating, unrated.
    static func sourceRank(_ source: String) -> Int {
        if source.hasPrefix("CVSS:") { return 0 }
        return source.hasPrefix(ratingSourcePrefix) ? 1 : 2
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

extension VulnerabilityFinding {
    /// One row per vulnerability: findings of the same package version (ecosystem, name as the ecosystem
    /// compares names, version) in the same module directory (the directory of the manifest: go.mod and
    /// go.sum side by side are one module) whose ids meet — the same advisory, or records that alias each
    /// other or share a CVE — become one finding with every location, every id and every matched record.
    /// Its severity is the best-sourced of theirs: a CVSS vector (the highest score when several), else a
    /// database's rating (the most severe), else unrated. Idempotent, so the offline database's and the
    /// OSV API's findings can be merged together. Sorted most severe first.
    public static func merged(_ findings: [VulnerabilityFinding]) -> [VulnerabilityFinding] {
        var groups: [String: [VulnerabilityFinding]] = [:]
        var order: [String] = []
        for f in findings {
            let ecosystem = f.ecosystem.split(separator: ":").first.map(String.init) ?? f.ecosystem
            let key = [ecosystem, AdvisoryDatabase.normalizedName(f.package, ecosystem: ecosystem), f.version, moduleDirectory(f.file)].joined(separator: "\u{0}")
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(f)
        }
        var out: [VulnerabilityFinding] = []
        for key in order {
            let members = groups[key]!
            // Union-find over the members: two meet when any of their ids (upper-cased) is the same.
            var parent = Array(members.indices)
            func root(_ i: Int) -> Int {
                var i = i
                while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }
                return i
            }
            var owner: [String: Int] = [:]
            for (i, m) in members.enumerated() {
                for id in [m.advisory] + m.aliases + m.records {
                    let id = id.uppercased()
                    if let j = owner[id] { parent[root(i)] = root(j) } else { owner[id] = i }
                }
            }
            var clusters: [Int: [VulnerabilityFinding]] = [:]
            var clusterOrder: [Int] = []
            for i in members.indices {
                let r = root(i)
                if clusters[r] == nil { clusterOrder.append(r) }
                clusters[r, default: []].append(members[i])
            }
            out += clusterOrder.map { combine(clusters[$0]!) }
        }
        return out.sorted(by: reportOrder)
    }

    /// Most severe first, then by score, package, advisory, place and version (a total order: the report
    /// is the same whatever order the findings came in).
    static func reportOrder(_ a: VulnerabilityFinding, _ b: VulnerabilityFinding) -> Bool {
        let bands = CVSS3.Severity.allCases
        let x = bands.firstIndex(of: a.severity)!, y = bands.firstIndex(of: b.severity)!
        if x != y { return x < y }
        if (a.score ?? 0) != (b.score ?? 0) { return (a.score ?? 0) > (b.score ?? 0) }
        if (a.package, a.advisory) != (b.package, b.advisory) { return (a.package, a.advisory) < (b.package, b.advisory) }
        return (a.file ?? "", a.line ?? 0, a.version) < (b.file ?? "", b.line ?? 0, b.version)
    }

    /// The directory that holds the manifest: findings of different modules are never merged.
    public static func moduleDirectory(_ file: String?) -> String {
        guard let file, let slash = file.lastIndex(of: "/") else { return "" }
        return String(file[..<slash])
    }

    /// GHSA ids first (GitHub's records carry the severity most often), CVE ids last, then in text order.
    static func idOrder(_ a: String, _ b: String) -> Bool {
        func rank(_ id: String) -> Int { id.hasPrefix("GHSA-") ? 0 : (id.hasPrefix("CVE-") ? 2 : 1) }
        return (rank(a), a) < (rank(b), b)
    }

    /// One finding from findings of one vulnerability (see `merged`).
    static func combine(_ members: [VulnerabilityFinding]) -> VulnerabilityFinding {
        let ecosystem = Ecosystem(rawValue: members[0].ecosystem)
        func versionOrder(_ a: String, _ b: String) -> Bool { ecosystem.map { $0.compare(a, b) < 0 } ?? (a < b) }
        var records: [String] = []
        var ids: [String] = []
        var locations: [Location] = []
        var fixed: [String] = []
        for m in members {
            for r in m.records.isEmpty ? [m.advisory] : m.records where !records.contains(r) { records.append(r) }
            for id in [m.advisory] + m.aliases where !ids.contains(id) { ids.append(id) }
            for l in m.locations where !locations.contains(l) { locations.append(l) }
            for v in m.fixedVersions where !fixed.contains(where: { ecosystem?.compare($0, v) == 0 || $0 == v }) { fixed.append(v) }
        }
        records.sort(by: idOrder)
        let advisory = records[0]
        locations.sort { ($0.file, $0.line ?? 0) < ($1.file, $1.line ?? 0) }
        // The member that names the package: the one found at the first location, as the files spell it.
        let first = members.first { $0.locations.first == locations.first } ?? members[0]
        let summaries = members.sorted { idOrder($0.advisory, $1.advisory) }.map(\.summary)
        // Best-sourced severity: a vector over a rating over nothing; among equals, the most severe.
        let rated = members.min { a, b in
            let x = AdvisoryDatabase.sourceRank(a.severitySource), y = AdvisoryDatabase.sourceRank(b.severitySource)
            return x != y ? x < y : reportOrder(a, b)
        }!
        let fixes = members.compactMap(\.lowestFix)
        var names = Set<String>()
        for m in members { names.formUnion(m.installedAs ?? [m.package]) }
        let aliased = names.subtracting(members.map(\.package)).isEmpty ? nil : names.sorted()
        return VulnerabilityFinding(
            package: first.package, version: first.version, ecosystem: first.ecosystem, advisory: advisory,
            aliases: ids.filter { $0 != advisory }.sorted(), summary: summaries.first { !$0.isEmpty } ?? "",
            fixedVersions: fixed.sorted(by: versionOrder), lowestFix: fixes.max(by: versionOrder),
            severity: rated.severity, score: rated.score, severitySource: rated.severitySource,
            locations: locations, records: records, installedAs: aliased)
    }
}
