import CortexCore
import Foundation

/// An OSV record's `affected[]` evaluated for one package version, per the OSV schema: explicit
/// `versions`, and `ranges` of type SEMVER or ECOSYSTEM whose `events` (introduced, fixed,
/// last_affected, limit) are read in version order. GIT ranges are not version ranges and are skipped.
public enum OSVMatching {
    /// Whether `version` of `package` in `ecosystem` is affected by the record; withdrawn records affect nothing.
    public static func affects(_ record: JSONValue, ecosystem: Ecosystem, package: String, version: String) -> Bool {
        if record["withdrawn"]?.stringValue != nil { return false }
        for affected in record["affected"]?.arrayValue ?? [] {
            guard affected["package"]?["ecosystem"]?.stringValue?.split(separator: ":").first.map(String.init) == ecosystem.rawValue,
                  normalize(affected["package"]?["name"]?.stringValue ?? "", ecosystem) == normalize(package, ecosystem) else { continue }
            if (affected["versions"]?.arrayValue ?? []).contains(where: { $0.stringValue.map { ecosystem.compare($0, version) == 0 } ?? false }) {
                return true
            }
            for range in affected["ranges"]?.arrayValue ?? [] where ["SEMVER", "ECOSYSTEM"].contains(range["type"]?.stringValue ?? "") {
                if inRange(range["events"]?.arrayValue ?? [], ecosystem: ecosystem, version: version) { return true }
            }
        }
        return false
    }

    /// OSV's evaluation: walk the events sorted by version ("0" first); `introduced` at or below the
    /// version opens the range, `fixed` at or below it (or `last_affected` below it) closes it; a `limit`
    /// at or below the version means the range does not reach it.
    static func inRange(_ events: [JSONValue], ecosystem: Ecosystem, version: String) -> Bool {
        typealias Event = (kind: String, version: String)
        var list: [Event] = []
        for e in events {
            for kind in ["introduced", "fixed", "last_affected", "limit"] {
                if let v = e[kind]?.stringValue { list.append((kind, v)) }
            }
        }
        func cmp(_ a: String, _ b: String) -> Int {
            if a == "0" { return b == "0" ? 0 : -1 }
            if b == "0" { return 1 }
            return ecosystem.compare(a, b)
        }
        for e in list where e.kind == "limit" && cmp(e.version, version) <= 0 { return false }
        // The sorted walk ends in the state set by the greatest event that applies to the version
        // (introduced or fixed at or below it, last_affected below it); equal versions keep the list's
        // order, as a stable sort would. Found in one pass, without sorting on every query.
        var last: Event?
        for e in list {
            let c = cmp(e.version, version)
            let applies: Bool
            switch e.kind {
            case "introduced", "fixed": applies = c <= 0
            case "last_affected": applies = c < 0
            default: applies = false
            }
            if applies, last == nil || cmp(e.version, last!.version) >= 0 { last = e }
        }
        return last?.kind == "introduced"
    }

    /// The lowest `fixed` version above `version` in the record's ranges for the package, if any.
    public static func lowestFix(_ record: JSONValue, ecosystem: Ecosystem, package: String, version: String) -> String? {
        var fixes: [String] = []
        for affected in record["affected"]?.arrayValue ?? [] where normalize(affected["package"]?["name"]?.stringValue ?? "", ecosystem) == normalize(package, ecosystem) {
            for range in affected["ranges"]?.arrayValue ?? [] {
                for e in range["events"]?.arrayValue ?? [] {
                    if let f = e["fixed"]?.stringValue, ecosystem.compare(f, version) > 0 { fixes.append(f) }
                }
            }
        }
        return fixes.min { ecosystem.compare($0, $1) < 0 }
    }

    /// PyPI names compare case- and separator-insensitively (PEP 503), SwiftURL ones without scheme, `.git`
    /// and case (`https://github.com/Apple/swift-nio.git` is `github.com/apple/swift-nio`); others as written.
    static func normalize(_ name: String, _ ecosystem: Ecosystem) -> String {
        ecosystem == .PyPI || ecosystem == .swiftURL ? AdvisoryDatabase.normalizedName(name, ecosystem: ecosystem.rawValue) : name
    }
}

/// CVSS v3.0 / v3.1 base scores from a vector string, and the design's severity bands and SLAs.
public enum CVSS3 {
    public struct VectorError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The base score (0.0 ... 10.0) of e.g. `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` (9.8).
    public static func baseScore(_ vector: String) throws -> Double {
        let parts = vector.split(separator: "/")
        guard let head = parts.first, head == "CVSS:3.1" || head == "CVSS:3.0" else {
            throw VectorError(description: "not a CVSS v3 vector: \(vector)")
        }
        var m: [String: String] = [:]
        for p in parts.dropFirst() {
            let kv = p.split(separator: ":")
            guard kv.count == 2 else { throw VectorError(description: "bad metric '\(p)' in \(vector)") }
            m[String(kv[0])] = String(kv[1])
        }
        func value(_ key: String, _ table: [String: Double]) throws -> Double {
            guard let v = m[key], let x = table[v] else { throw VectorError(description: "missing or bad \(key) in \(vector)") }
            return x
        }
        let scopeChanged = m["S"] == "C"
        guard m["S"] == "C" || m["S"] == "U" else { throw VectorError(description: "missing or bad S in \(vector)") }
        let av = try value("AV", ["N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2])
        let ac = try value("AC", ["L": 0.77, "H": 0.44])
        let pr = try value("PR", scopeChanged ? ["N": 0.85, "L": 0.68, "H": 0.5] : ["N": 0.85, "L": 0.62, "H": 0.27])
        let ui = try value("UI", ["N": 0.85, "R": 0.62])
        let cia: [String: Double] = ["H": 0.56, "L": 0.22, "N": 0]
        let c = try value("C", cia), i = try value("I", cia), a = try value("A", cia)
        let iss = 1 - (1 - c) * (1 - i) * (1 - a)
        let impact = scopeChanged ? 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15) : 6.42 * iss
        let exploitability = 8.22 * av * ac * pr * ui
        if impact <= 0 { return 0 }
        return roundUp(scopeChanged ? min(1.08 * (impact + exploitability), 10) : min(impact + exploitability, 10))
    }

    /// CVSS v3.1's Roundup: the smallest one-decimal number at or above x, free of floating-point error.
    static func roundUp(_ x: Double) -> Double {
        let i = Int((x * 100_000).rounded())
        return i % 10_000 == 0 ? Double(i) / 100_000 : (Double(i / 10_000) + 1) / 10
    }

    public enum Severity: String, Sendable, CaseIterable, Codable {
        case critical, high, medium, low

        /// The design's bands: critical >= 9.0, high >= 7.0, medium >= 4.0, else low.
        public init(score: Double) {
            self = score >= 9 ? .critical : (score >= 7 ? .high : (score >= 4 ? .medium : .low))
        }

        /// Hours to fix, per the design: 4, 24, 72, 168.
        public var slaHours: Int { [Severity.critical: 4, .high: 24, .medium: 72, .low: 168][self]! }
    }
}
