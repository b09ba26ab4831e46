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

    /// `OSVMatching.affects` on the parsed record, for a package whose name `ecosystem` normalizes to `name`.
    func affects(ecosystem: Ecosystem, name: String, version: ParsedVersion) -> Bool {
        if withdrawn { return false }
        for a in affected where a.ecosystem == ecosystem && a.normalizedName == name {
            if a.versions.contains(where: { ecosystem.compare($0, version) == 0 }) { return true }
            for events in a.ranges where Self.inRange(events, ecosystem: ecosystem, version: version) { return true }
        }
        return false
    }

    /// `OSVMatching.inRange` on parsed events.
    static func inRange(_ events: [Event], ecosystem: Ecosystem, version: ParsedVersion) -> Bool {
        func cmp(_ a: ParsedVersion, _ b: ParsedVersion) -> Int {
            if a.text == "0" { return b.text == "0" ? 0 : -1 }
            if b.text == "0" { return 1 }
            return ecosystem.compare(a, b)
        }
        for e in events where e.kind == .limit && cmp(e.version, version) <= 0 { return false }
        var last: Event?
        for e in events {
            let c = cmp(e.version, version)
            let applies: Bool
            switch e.kind {
            case .introduced, .fixed: applies = c <= 0
            case .lastAffected: applies = c < 0
            case .limit: applies = false
            }
            if applies, last == nil || cmp(e.version, last!.version) >= 0 { last = e }
        }
        return last?.kind == .introduced
    }
}
