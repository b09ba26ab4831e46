import CortexCore

/// An OSV record as the matching reads it, read once when the database loads: the fields a finding
/// needs, names normalized as their ecosystem compares them and every version parsed by its ecosystem's
/// ordering. `AdvisoryDatabase.findings(for:)` then compares parsed versions, where walking the JSON
/// (`OSVMatching.affects`, still the definition) parses both versions on every comparison.
struct AdvisoryRecord: Sendable {
    enum EventKind: Sendable { case introduced, fixed, lastAffected, limit }

    struct Event: Sendable {
        let kind: EventKind
        let version: ParsedVersion
        /// The version is the text `0` (OSV's "from the beginning"), which orders before every version:
        /// decided once here, not by comparing texts on every evaluation.
        let isZero: Bool

        init(kind: EventKind, version: ParsedVersion) {
            self.kind = kind
            self.version = version
            isZero = version.text == "0"
        }
    }

    /// One entry of `affected[]`.
    struct Affected: Sendable {
        /// `package.ecosystem` without its release suffix (`Debian:12` → `Debian`); nil when not a string.
        let ecosystemName: String?
        /// The same as an ecosystem this matching orders versions for (nil: another one, or none).
        let ecosystem: Ecosystem?
        /// `package.name`, nil when not a string.
        let name: String?
        /// `name` (the empty string when nil) as `ecosystemName` compares names.
        let normalizedName: String
        /// `versions[]` (the strings among them), parsed.
        let versions: [ParsedVersion]
        /// The events of the SEMVER and ECOSYSTEM ranges, one list per range; an event object with more
        /// than one key gives one event per key, in the order introduced, fixed, last_affected, limit.
        let ranges: [[Event]]
        /// Every range's `fixed` versions (GIT ranges too, as the report lists them), in record order.
        let fixes: [ParsedVersion]

        /// The name as `ecosystem` compares names: computed here only for an entry of another ecosystem.
        func name(as ecosystem: Ecosystem) -> String {
            ecosystemName == ecosystem.rawValue ? normalizedName : AdvisoryDatabase.normalizedName(name ?? "", ecosystem: ecosystem.rawValue)
        }
    }

    let id: String
    /// The string ids of `aliases`.
    let aliases: [String]
    let summary: String
    /// `withdrawn` is set (a string): the record matches nothing.
    let withdrawn: Bool
    let affected: [Affected]
    /// The `CVSS_V3` vectors of `severity[]`, then of each `affected[].severity[]`, in order.
    let vectors: [String]
    /// `database_specific.severity`, when a string.
    let rating: String?

    /// `versions`: the versions parsed so far for an ecosystem, so a version written in many records is parsed once.
    init(_ record: [String: JSONValue], id: String, versions cache: inout [Ecosystem: [String: ParsedVersion]]) {
        self.id = id
        aliases = (record["aliases"]?.arrayValue ?? []).compactMap(\.stringValue)
        summary = record["summary"]?.stringValue ?? ""
        withdrawn = record["withdrawn"]?.stringValue != nil
        let entries = record["affected"]?.arrayValue ?? []
        var vectors: [String] = []
        for s in (record["severity"]?.arrayValue ?? []) + entries.flatMap({ $0["severity"]?.arrayValue ?? [] }) where s["type"]?.stringValue == "CVSS_V3" {
            if let vector = s["score"]?.stringValue { vectors.append(vector) }
        }
        self.vectors = vectors
        rating = record["database_specific"]?["severity"]?.stringValue
        affected = entries.map { entry in
            let ecosystemName = entry["package"]?["ecosystem"]?.stringValue.flatMap { $0.split(separator: ":").first.map(String.init) }
            let ecosystem = ecosystemName.flatMap(Ecosystem.init(rawValue:))
            func parse(_ text: String) -> ParsedVersion {
                guard let ecosystem else { return ParsedVersion(text: text, parsedBy: nil, form: .semVer(nil, text)) }
                if let known = cache[ecosystem]?[text] { return known }
                let parsed = ecosystem.parse(text)
                cache[ecosystem, default: [:]][text] = parsed
                return parsed
            }
            let name = entry["package"]?["name"]?.stringValue
            var ranges: [[Event]] = []
            var fixes: [ParsedVersion] = []
            for range in entry["ranges"]?.arrayValue ?? [] {
                let events = range["events"]?.arrayValue ?? []
                for e in events { if let f = e["fixed"]?.stringValue { fixes.append(parse(f)) } }
                guard ["SEMVER", "ECOSYSTEM"].contains(range["type"]?.stringValue ?? "") else { continue }
                var list: [Event] = []
                for e in events {
                    for (key, kind) in Self.eventKeys {
                        if let v = e[key]?.stringValue { list.append(Event(kind: kind, version: parse(v))) }
                    }
                }
                ranges.append(list)
            }
            return Affected(ecosystemName: ecosystemName, ecosystem: ecosystem, name: name,
                            normalizedName: AdvisoryDatabase.normalizedName(name ?? "", ecosystem: ecosystemName ?? ""),
                            versions: (entry["versions"]?.arrayValue ?? []).compactMap(\.stringValue).map(parse), ranges: ranges, fixes: fixes)
        }
    }

    static let eventKeys: [(String, EventKind)] = [("introduced", .introduced), ("fixed", .fixed), ("last_affected", .lastAffected), ("limit", .limit)]
}

/// One record as the index hands it out for one (ecosystem, name) key: what `findings(for:)` needs for a
/// package of that name, prepared when the database loads. Matching a package against it then compares
/// versions and nothing else: the record's entries for the key are already picked, its fixed versions
/// collected and sorted, its severity scored (CVSS once per distinct vector), its aliases filtered. A
/// final class, so the match loop passes one reference instead of copying (and retaining) a struct's
/// arrays and strings.
final class AdvisoryMatch: Sendable {
    /// A version the matching compares, held without references: the match loop reads these in place,
    /// where copying an event with its `ParsedVersion` (text and parsed parts) cost retains and releases
    /// (`perf`: a fifth of the matching). `simple` decides most comparisons; `parsed` indexes `versions`
    /// for the others.
    struct Bound: Sendable {
        let kind: AdvisoryRecord.EventKind
        /// OSV's `0`, before every version.
        let isZero: Bool
        /// `ParsedVersion.simple` of the version.
        let simple: ParsedVersion.Simple?
        /// Its place in `versions`.
        let parsed: Int
    }

    let id: String
    /// `[id]`, a finding's `records`: one array every finding of the record shares.
    let records: [String]
    /// The record's aliases without its own id, as a finding lists them.
    let aliases: [String]
    let summary: String
    /// Every version `listed` and `events` refer to, parsed by the key's ecosystem.
    let versions: ContiguousArray<ParsedVersion>
    /// `versions[]` of the entries `affects` reads (of the key's ecosystem and name); `kind` unused.
    let listed: ContiguousArray<Bound>
    /// The events of their SEMVER and ECOSYSTEM ranges, range after range; `ranges` gives each range's part.
    let events: ContiguousArray<Bound>
    let ranges: ContiguousArray<Range<Int>>
    /// The `fixed` versions of every entry naming the package (any ecosystem's, GIT ranges too), each
    /// text once in its first place: `lowestFix` takes the first lowest of them above the version.
    let fixes: ContiguousArray<ParsedVersion>
    /// The same texts in version order: a finding's `fixedVersions`.
    let fixedVersions: [String]
    let severity: CVSS3.Severity
    let score: Double?
    let severitySource: String

    /// `record` (not withdrawn) for the key `ecosystem` / `name` (a name as `ecosystem` compares names).
    /// `scores`: CVSS base scores by vector so far (nil: not a valid vector), so each is computed once.
    init(_ record: AdvisoryRecord, ecosystem: Ecosystem, name: String, scores: inout [String: Double?]) {
        id = record.id
        records = [record.id]
        aliases = record.aliases.filter { $0 != record.id }
        summary = record.summary
        var versions: ContiguousArray<ParsedVersion> = []
        var listed: ContiguousArray<Bound> = []
        var events: ContiguousArray<Bound> = []
        var ranges: ContiguousArray<Range<Int>> = []
        func bound(_ kind: AdvisoryRecord.EventKind, _ version: ParsedVersion) -> Bound {
            versions.append(version)
            // The shortcut holds for versions parsed by the ecosystem that compares them (all of these are).
            return Bound(kind: kind, isZero: version.text == "0", simple: version.parsedBy == ecosystem ? version.simple : nil, parsed: versions.count - 1)
        }
        // The entries `OSVMatching.affects` evaluates: of the package's ecosystem and name.
        for a in record.affected where a.ecosystem == ecosystem && a.normalizedName == name {
            for v in a.versions { listed.append(bound(.introduced, v)) }
            for range in a.ranges {
                let start = events.count
                for e in range { events.append(bound(e.kind, e.version)) }
                ranges.append(start..<events.count)
            }
        }
        self.versions = versions
        self.listed = listed
        self.events = events
        self.ranges = ranges
        // Entries of any ecosystem that name the package give the fixed versions, as in the JSON walk.
        var fixes: ContiguousArray<ParsedVersion> = []
        for a in record.affected where a.name(as: ecosystem) == name {
            for f in a.fixes where !fixes.contains(where: { $0.text == f.text }) { fixes.append(f) }
        }
        self.fixes = fixes
        fixedVersions = fixes.sorted { ecosystem.compare($0, $1) < 0 }.map(\.text)
        let rating = AdvisoryDatabase.severity(vectors: record.vectors, rating: record.rating, scores: &scores)
        severity = rating.severity
        score = rating.score
        severitySource = rating.source
    }

    /// `OSVMatching.affects` for a package of the key's ecosystem and name at `version` (parsed by `ecosystem`).
    func affects(_ version: ParsedVersion, ecosystem: Ecosystem) -> Bool {
        let versionIsZero = version.text == "0"
        let versionSimple = version.parsedBy == ecosystem ? version.simple : nil
        /// `ecosystem.compare` of the bound's version and `version`.
        func compare(_ b: Bound) -> Int {
            if let x = b.simple, let y = versionSimple { return x.compare(y) }
            return ecosystem.compare(versions[b.parsed], version)
        }
        /// The same with OSV's "0" before everything, on either side, as in `OSVMatching.inRange`.
        func cmpToVersion(_ b: Bound) -> Int {
            if b.isZero { return versionIsZero ? 0 : -1 }
            return versionIsZero ? 1 : compare(b)
        }
        func cmp(_ a: Bound, _ b: Bound) -> Int {
            if a.isZero { return b.isZero ? 0 : -1 }
            if b.isZero { return 1 }
            if let x = a.simple, let y = b.simple { return x.compare(y) }
            return ecosystem.compare(versions[a.parsed], versions[b.parsed])
        }
        // Any explicit version or range that contains it: the order of the checks does not change the answer.
        for b in listed where compare(b) == 0 { return true }
        rangeLoop: for range in ranges {
            // `OSVMatching.inRange`: a limit at or below the version excludes it; else the greatest event
            // that applies (introduced or fixed at or below it, last_affected below it; the first of
            // equals) decides.
            for i in range where events[i].kind == .limit && cmpToVersion(events[i]) <= 0 { continue rangeLoop }
            var last = -1
            for i in range {
                let e = events[i]
                let applies: Bool
                switch e.kind {
                case .introduced, .fixed: applies = cmpToVersion(e) <= 0
                case .lastAffected: applies = cmpToVersion(e) < 0
                case .limit: applies = false
                }
                if applies, last < 0 || cmp(e, events[last]) >= 0 { last = i }
            }
            if last >= 0 && events[last].kind == .introduced { return true }
        }
        return false
    }

    /// The lowest fixed version above `version`: the first lowest in record order, as `min(by:)` gives it.
    func lowestFix(above version: ParsedVersion, ecosystem: Ecosystem) -> String? {
        var lowest: ParsedVersion?
        for f in fixes where ecosystem.compare(f, version) > 0 {
            if let l = lowest, ecosystem.compare(f, l) >= 0 { continue }
            lowest = f
        }
        return lowest?.text
    }
}
