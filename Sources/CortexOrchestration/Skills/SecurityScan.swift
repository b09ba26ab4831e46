import CortexCore
import CortexSecurity
import Foundation

/// security: per file of a repository shard, the dependency inventory (`ManifestFinder`: packages with
/// their file and line), the configuration audit of Kubernetes manifests, and the secret scan. The
/// vulnerability matching happens in the master, once per target, against the advisory database.
public struct SecurityScan: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change — the dependency parsers
    /// (`ManifestFinder`, `Lockfiles`), the manifest audit (`KubernetesAudit`) or the secret rules (`SecretScanner`).
    /// 2: npm aliases under their real name, lines for package-lock.json and Package.resolved entries.
    public var version: Int { 2 }

    let manifests = ManifestFinder()
    let secrets = SecretScanner()

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        var out: [SkillRecord] = []
        for path in files {
            let text = readText(root, path)  // read once for the inventory, the audit and the secret scan
            if var record = ManifestFinder.record(path: path, text: text) {
                if record["kind"]?.stringValue == "k8s-manifest", let text {
                    do { record["config"] = .array(try KubernetesAudit.auditManifest(path: path, text: text).map(JSONValue.of)) }
                    catch { record["error"] = .string("\(error)") }
                }
                out.append(record)
            }
            if let text {
                let found = secrets.scan(path: path, text: text)
                if !found.isEmpty { out.append(["path": .string(path), "kind": "secrets", "secrets": .array(found.map(JSONValue.of))]) }
            }
        }
        return out
    }

    /// The packages of the records, each with the file and line it was found at.
    public static func packages(_ records: [SkillRecord]) -> [PackageOccurrence] {
        records.flatMap { r -> [PackageOccurrence] in
            guard let eco = r["ecosystem"]?.stringValue, let path = r["path"]?.stringValue else { return [] }
            return (r["packages"]?.arrayValue ?? []).compactMap { p in
                guard let name = p["name"]?.stringValue, let version = p["version"]?.stringValue else { return nil }
                return PackageOccurrence(ecosystem: eco, name: name, version: version, file: path, line: p["line"]?.intValue,
                                         installedAs: p["installedAs"]?.stringValue)
            }
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let dependencyRecords = records.filter { $0["kind"]?.stringValue != "secrets" }
        let base = manifests.summarize(dependencyRecords)
        let config = records.flatMap { ($0["config"]?.arrayValue ?? []).compactMap { $0.decoded(as: ConfigFinding.self) } }
        let found = records.flatMap { ($0["secrets"]?.arrayValue ?? []).compactMap { $0.decoded(as: SecretScanner.Finding.self) } }
            .sorted { ($0.path, $0.line) < ($1.path, $1.line) }
        var md = base.markdown
        md += "\n### Kubernetes configuration (manifests)\n\n" + ConfigurationTable.markdown(config)
        md += "\n### Secrets in the repository (masked)\n\n" + table(["File", "Line", "Kind", "Value"], found.map { [$0.path, "\($0.line)", $0.rule, $0.masked] })
        var details = base.details.objectValue ?? [:]
        details["packages"] = .array(Self.packages(records).map(JSONValue.of))
        details["config"] = .array(config.map(JSONValue.of))
        details["secrets"] = .array(found.map(JSONValue.of))
        let headline = base.headline + "; \(config.count) configuration findings; \(found.count) secrets"
        return SkillSummary(headline: headline, markdown: md, details: .object(details))
    }
}

/// The configuration findings as a Markdown table, most severe first.
enum ConfigurationTable {
    static func markdown(_ findings: [ConfigFinding]) -> String {
        guard !findings.isEmpty else { return "_none found_\n" }
        let order = CVSS3.Severity.allCases
        let rows = findings.sorted { (order.firstIndex(of: $0.severity)!, $0.object, $0.rule) < (order.firstIndex(of: $1.severity)!, $1.object, $1.rule) }
        var out = "| Severity | Object | Container | Rule | Problem | Where |\n|---|---|---|---|---|---|\n"
        for f in rows.prefix(500) {
            let place = f.file.map { "\($0)\(f.line.map { ":\($0)" } ?? "")" } ?? "live"
            out += "| \(f.severity.rawValue) | \(f.object) | \(f.container ?? "") | \(f.rule) | \(f.message.replacingOccurrences(of: "|", with: "\\|")) | \(place) |\n"
        }
        if rows.count > 500 { out += "\n(\(rows.count - 500) more in the JSON report and the SARIF file)\n" }
        return out
    }
}
