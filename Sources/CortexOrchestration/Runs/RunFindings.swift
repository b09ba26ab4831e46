import CortexCore
import Foundation

/// The findings of a finished run, read from its report directory (masters/*.json): vulnerable
/// dependencies (every id and location), Kubernetes configuration and secrets from the security master,
/// and the cicd master's regular pipeline findings (pedantic and acknowledged ones left out). One flat
/// list for `cortex-mcp`'s list_findings and `cortexctl watch`'s severity counts.
public enum RunFindings {
    /// The findings of a run's report directory, one object each: master, kind, severity, title, where.
    /// Throws when the directory cannot be read here (e.g. `cortex-mcp` or `cortexctl` without the
    /// coordinator's reports volume): that is "not known", never "no findings". A report directory without
    /// `masters/` (a run that ended before any master reported) has none.
    /// Throws "not readable here" unless `dir` is a directory this process can read: what `load` and
    /// cortex-mcp's report resources say when the coordinator's reports volume is not mounted here.
    public static func requireReadable(reportDirectory dir: URL) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: dir.path, isDirectory: &isDirectory), isDirectory.boolValue, fm.isReadableFile(atPath: dir.path) else {
            throw CortexError(.notFound, "the report directory \(dir.path) is not readable here (it is on the coordinator's reports volume)")
        }
    }

    public static func load(reportDirectory dir: URL) throws -> [JSONValue] {
        let fm = FileManager.default
        try requireReadable(reportDirectory: dir)
        let masters = dir.appendingPathComponent("masters")
        let names: [String]
        if fm.fileExists(atPath: masters.path) {
            do { names = try fm.contentsOfDirectory(atPath: masters.path) } catch {
                throw CortexError(.failed, "cannot list \(masters.path): \(error.localizedDescription)")
            }
        } else {
            names = []
        }
        let files = names.filter { $0.hasSuffix(".json") }.sorted()
        var out: [JSONValue] = []
        for file in files {
            let report = try JSONText.parse(Array(try Data(contentsOf: masters.appendingPathComponent(file))))
            let master = report["master"]?.stringValue ?? ""
            let target = report["target"]?.stringValue ?? ""
            let details = report["details"] ?? .null
            func add(_ kind: String, _ severity: String?, _ title: String, _ whereText: String, _ extra: [String: JSONValue] = [:]) {
                var o: [String: JSONValue] = ["master": .string(master), "target": .string(target), "kind": .string(kind),
                                              "severity": .string(severity ?? "unknown"), "title": .string(title), "where": .string(whereText)]
                o.merge(extra) { $1 }
                out.append(.object(o))
            }
            switch master {
            case "security":
                for v in details["vulnerabilities"]?.arrayValue ?? [] {
                    let ids = ([v["advisory"]?.stringValue] + (v["aliases"]?.arrayValue ?? []).map(\.stringValue)).compactMap { $0 }
                    let places = (v["locations"]?.arrayValue ?? []).compactMap { l in l["file"]?.stringValue.map { $0 + (l["line"]?.intValue.map { ":\($0)" } ?? "") } }
                    add("vulnerability", v["severity"]?.stringValue, "\(v["package"]?.stringValue ?? "?") \(v["version"]?.stringValue ?? ""): \(v["summary"]?.stringValue ?? "")",
                        places.isEmpty ? (v["file"]?.stringValue ?? "") : places.joined(separator: ", "),
                        ["ids": .array(ids.map(JSONValue.string)), "fixed_in": v["lowestFix"] ?? .null])
                }
                for c in details["config"]?.arrayValue ?? [] {
                    add("configuration", c["severity"]?.stringValue, c["message"]?.stringValue ?? c["rule"]?.stringValue ?? "", c["file"]?.stringValue ?? c["resource"]?.stringValue ?? "")
                }
                for k in details["secrets"]?.arrayValue ?? [] {
                    add("secret", "high", k["rule"]?.stringValue ?? "secret", (k["file"]?.stringValue ?? "") + (k["line"]?.intValue.map { ":\($0)" } ?? ""))
                }
            case "cicd":
                for f in details["findings"]?.arrayValue ?? [] where f["persona"] == nil && f["ignoredBy"] == nil {
                    add("pipeline-\(f["category"]?.stringValue ?? "")", f["severity"]?.stringValue, "\(f["rule"]?.stringValue ?? ""): \(f["message"]?.stringValue ?? "")",
                        (f["file"]?.stringValue ?? "") + (f["line"]?.intValue.map { ":\($0)" } ?? ""))
                }
            default: break
            }
        }
        return out
    }
}
