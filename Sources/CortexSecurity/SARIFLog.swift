import CortexCore
import Foundation

/// The security findings as a SARIF 2.1.0 log (OASIS), the format code-scanning tools import
/// (GitHub code scanning among them). One run, one rule per advisory or audit rule, one result per
/// finding — a vulnerability pinned in several files of a module (go.mod and go.sum) is one result with
/// a location for each; `security-severity` carries the CVSS score so tools rank results the same way.
public enum SARIFLog {
    public static let schemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

    public static func make(vulnerabilities: [VulnerabilityFinding], configuration: [ConfigFinding], secrets: [SecretScanner.Finding],
                            toolVersion: String = "1.0.0") -> JSONValue {
        var rules: [JSONValue] = []
        var ruleIndex: [String: Int] = [:]
        var results: [JSONValue] = []

        func rule(_ id: String, name: String, text: String, help: String?, severity: CVSS3.Severity, score: Double?, tags: [String]) -> Int {
            if let i = ruleIndex[id] { return i }
            var r: [String: JSONValue] = [
                "id": .string(id), "name": .string(name),
                "shortDescription": ["text": .string(text.isEmpty ? id : text)],
                "defaultConfiguration": ["level": .string(level(severity))],
                "properties": ["security-severity": .string(String(format: "%.1f", score ?? representativeScore(severity))),
                               "tags": .array((["security"] + tags).map(JSONValue.string))],
            ]
            if let help { r["helpUri"] = .string(help) }
            ruleIndex[id] = rules.count
            rules.append(.object(r))
            return rules.count - 1
        }

        func location(_ file: String?, _ line: Int?) -> [JSONValue] {
            guard let file else { return [] }
            var physical: [String: JSONValue] = ["artifactLocation": ["uri": .string(uri(file))]]
            if let line, line >= 1 { physical["region"] = ["startLine": .number(Double(line))] }
            return [["physicalLocation": .object(physical)]]
        }

        for v in vulnerabilities {
            let i = rule(v.advisory, name: "VulnerableDependency", text: v.summary, help: "https://osv.dev/vulnerability/\(v.advisory)",
                         severity: v.severity, score: v.score, tags: ["vulnerability", v.ecosystem])
            let fix = v.lowestFix.map { "; fixed in \($0)" } ?? "; no fixed version"
            let aliases = v.aliases.isEmpty ? "" : " (\(v.aliases.joined(separator: ", ")))"
            var result: [String: JSONValue] = [
                "ruleId": .string(v.advisory), "ruleIndex": .number(Double(i)), "level": .string(level(v.severity)),
                "message": ["text": .string("\(v.displayName) \(v.version) (\(v.ecosystem)) is affected by \(v.advisory)\(aliases): \(v.summary)\(fix).")],
                "locations": .array(v.locations.flatMap { location($0.file, $0.line) }),
                // The first location, as before several were kept: a result keeps its fingerprint across the change.
                "partialFingerprints": ["cortex/v1": .string("\(v.advisory)|\(v.ecosystem)|\(v.package)|\(v.version)|\(v.file ?? "")")],
            ]
            // Every id, for tools that look a result up by a CVE or the Go / PyPI / RustSec id.
            if !v.aliases.isEmpty { result["properties"] = ["aliases": .array(v.aliases.map(JSONValue.string))] }
            results.append(.object(result))
        }
        for c in configuration {
            let meta = KubernetesAudit.rules.first { $0.id == c.rule }
            let i = rule(c.rule, name: "KubernetesConfiguration", text: meta?.title ?? c.rule, help: nil, severity: c.severity, score: nil, tags: ["kubernetes"])
            var result: [String: JSONValue] = [
                "ruleId": .string(c.rule), "ruleIndex": .number(Double(i)), "level": .string(level(c.severity)),
                "message": ["text": .string("\(c.object)\(c.container.map { " container \($0)" } ?? ""): \(c.message)")],
                "locations": .array(location(c.file, c.line)),
                "partialFingerprints": ["cortex/v1": .string("\(c.rule)|\(c.object)|\(c.container ?? "")|\(c.message)")],
            ]
            if c.file == nil {
                // A live object: no file, so a logical location names it.
                result["locations"] = [["logicalLocations": [["name": .string(c.object), "kind": "resource"]]]]
            }
            results.append(.object(result))
        }
        for s in secrets {
            let id = "secret/\(s.rule)"
            let i = rule(id, name: "HardcodedSecret", text: "A \(s.rule) committed to the repository.", help: nil, severity: secretSeverity(s.rule), score: nil, tags: ["secret"])
            results.append(.object([
                "ruleId": .string(id), "ruleIndex": .number(Double(i)), "level": .string(level(secretSeverity(s.rule))),
                "message": ["text": .string("\(s.rule) \(s.masked): revoke it and move it to a secret store.")],
                "locations": .array(location(s.path, s.line)),
                "partialFingerprints": ["cortex/v1": .string("\(s.rule)|\(s.path)|\(s.line)|\(s.masked)")],
            ]))
        }
        return .object([
            "$schema": .string(schemaURI),
            "version": "2.1.0",
            "runs": [[
                "tool": ["driver": [
                    "name": "Cortex security-master", "version": .string(toolVersion),
                    "rules": .array(rules),
                ]],
                "results": .array(results),
                "columnKind": "unicodeCodePoints",
            ]],
        ])
    }

    /// Private keys and cloud credentials are critical; other tokens high.
    public static func secretSeverity(_ rule: String) -> CVSS3.Severity {
        ["private-key", "aws-access-key-id", "stripe-secret-key"].contains(rule) ? .critical : .high
    }

    static func level(_ s: CVSS3.Severity) -> String {
        switch s {
        case .critical, .high: return "error"
        case .medium: return "warning"
        case .low: return "note"
        }
    }

    /// A score inside the band, for findings that have a band but no CVSS vector.
    static func representativeScore(_ s: CVSS3.Severity) -> Double {
        switch s {
        case .critical: return 9.5
        case .high: return 8.0
        case .medium: return 5.5
        case .low: return 2.0
        }
    }

    /// A relative path as a URI reference (spaces and the like percent-encoded).
    static func uri(_ path: String) -> String {
        path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
    }
}
