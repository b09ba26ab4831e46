import CortexCatalog
import CortexCore
import CortexMonitoring
import Foundation
import Logging

/// The monitoring master's own step, once per run (on the run's first monitoring task): alert rules and
/// dashboards for every workload the catalog knows and for Cortex itself, checked with promtool when it
/// is installed, pushed to Grafana when GRAFANA_URL and a token are configured, and always written to
/// the report (`masters/monitoring-0-files/`).
final class MonitoringReview: Sendable {
    let context: ProcessContext
    let catalog: CatalogClient?
    let grafana: GrafanaClient?

    init(context: ProcessContext) throws {
        self.context = context
        self.catalog = try CatalogClient(settings: context.settings)
        let s = context.settings
        if let url = s.raw(.grafanaURL), !url.isEmpty {
            guard let token = try s.secret(.grafanaToken, file: .grafanaTokenFile), !token.isEmpty else {
                throw ConfigurationError("GRAFANA_URL is set but there is no token (GRAFANA_TOKEN or CORTEX_GRAFANA_TOKEN_FILE)")
            }
            grafana = GrafanaClient(baseURL: url, token: token, folderUID: s.raw(.grafanaFolder))
        } else {
            grafana = nil
        }
    }

    /// Whether this task is the one that generates for the run (the first target's).
    static func generates(_ task: TaskSpec) -> Bool { task.id.hasSuffix(".monitoring.0") }

    func review(_ report: inout MasterReport, task: TaskSpec, log: Logger) async {
        guard Self.generates(task) else { return }
        var notes: [String] = []
        var workloads: [Workload] = []
        if let catalog {
            do {
                for type in [AssetType.DEPLOYMENT, .STATEFULSET, .DAEMONSET] {
                    for asset in try await catalog.assets(filter: AssetFilter(type: type)) {
                        if let w = Self.workload(id: asset.id, type: type) { workloads.append(w) }
                    }
                }
            } catch {
                notes.append("The catalog could not be read (\(error)): rules and dashboards for Cortex only.")
                log.warning("catalog unreadable: \(error)")
            }
        } else {
            notes.append("No catalog configured (CORTEX_CATALOG_URL): no workloads to monitor beyond Cortex itself.")
        }

        var files: [String: JSONValue] = [:]
        var dashboards = CortexDashboards.all
        files["cortex-alerts.yaml"] = .string(CortexAlerts.ruleFile)
        var checks: [(String, RuleCheck.Outcome)] = [("cortex-alerts.yaml", await RuleCheck.checkOffloaded(CortexAlerts.ruleFile, name: "cortex-alerts.yaml"))]
        if !workloads.isEmpty {
            let rules = WorkloadMonitoring.ruleFile(workloads)
            files["workload-alerts.yaml"] = .string(rules)
            files["workload-prometheusrule.yaml"] = .string(WorkloadMonitoring.prometheusRule(workloads))
            checks.append(("workload-alerts.yaml", await RuleCheck.checkOffloaded(rules, name: "workload-alerts.yaml")))
            dashboards += WorkloadMonitoring.dashboards(workloads)
        }
        for (name, json) in dashboards { files["\(name).json"] = .string(JSONText.pretty(json)) }

        var pushed: [String] = []
        if let grafana {
            for (name, json) in dashboards {
                do { pushed.append(try await grafana.push(json, message: "Cortex run \(task.runID)")) }
                catch {
                    notes.append("Grafana: \(name) not pushed: \(error)")
                    log.warning("grafana push of \(name) failed: \(error)")
                }
            }
        } else {
            notes.append("No Grafana configured (GRAFANA_URL and a token): the dashboards are in the report's files.")
        }

        var md = "### Generated monitoring\n\n"
        md += "\(workloads.count) workload(s) from the catalog" + (workloads.isEmpty ? "" : " (\(Dictionary(grouping: workloads, by: \.kind).sorted { $0.key < $1.key }.map { "\($0.value.count) \($0.key)" }.joined(separator: ", ")))")
            + "; \(dashboards.count) dashboards; alert rules for Cortex" + (workloads.isEmpty ? "" : " and every workload (availability, restarts, CPU and memory against limits)") + ".\n\n"
        md += "| Rule file | promtool check rules |\n|---|---|\n"
        for (name, outcome) in checks {
            switch outcome {
            case .passed(let output): md += "| \(name) | passed: \(output.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "") |\n"
            case .failed(let output): md += "| \(name) | FAILED: \(output.replacingOccurrences(of: "\n", with: " ").prefix(300)) |\n"
            case .unavailable: md += "| \(name) | not checked: promtool is not installed here |\n"
            }
        }
        md += "\n| Dashboard | Panels | Where |\n|---|---|---|\n"
        for (name, json) in dashboards {
            let url = pushed.first { $0.contains("/\(json["uid"]?.stringValue ?? name)") }
            md += "| \(json["title"]?.stringValue ?? name) | \(json["panels"]?.arrayValue?.count ?? 0) | \(url ?? "report: \(name).json") |\n"
        }
        if !notes.isEmpty { md += "\n" + notes.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        report.markdown = md + "\n" + report.markdown
        let failed = checks.filter { if case .failed = $0.1 { return true }; return false }.count
        let unchecked = checks.filter { $0.1 == .unavailable }.map(\.0)
        report.summary += "; generated \(dashboards.count) dashboards and rules for \(workloads.count) workloads"
            + (grafana == nil ? "" : " (\(pushed.count) pushed to Grafana)") + (failed > 0 ? "; \(failed) rule file(s) FAILED promtool" : "")
            + (unchecked.isEmpty ? "" : "; rules NOT CHECKED (promtool not installed)")
        // Generated rules that fail or were never checked are not a clean result.
        if failed > 0 { report.degrade("\(failed) generated rule file(s) failed promtool check rules") }
        if !unchecked.isEmpty { report.notChecked("generated alert rules \(unchecked.joined(separator: ", ")) (promtool is not installed)") }
        var details = report.details.objectValue ?? [:]
        details["files"] = .object(files)
        details["generated"] = ["workloads": .array(workloads.map(JSONValue.of)), "pushed": .array(pushed.map(JSONValue.string)),
                                "promtool": .object(Dictionary(uniqueKeysWithValues: checks.map { name, outcome in
                                    let text: String
                                    switch outcome {
                                    case .passed: text = "passed"
                                    case .failed(let o): text = "failed: \(o)"
                                    case .unavailable: text = "promtool not installed"
                                    }
                                    return (name, JSONValue.string(text))
                                }))]
        report.details = .object(details)
    }

    /// `deployment:shop/web` → Deployment shop/web.
    static func workload(id: String, type: AssetType) -> Workload? {
        guard let colon = id.firstIndex(of: ":") else { return nil }
        let rest = id[id.index(after: colon)...].split(separator: "/", maxSplits: 1).map(String.init)
        guard rest.count == 2 else { return nil }
        let kind = ["DEPLOYMENT": "Deployment", "STATEFULSET": "StatefulSet", "DAEMONSET": "DaemonSet"][type.rawValue] ?? type.rawValue
        return Workload(kind: kind, namespace: rest[0], name: rest[1])
    }
}
