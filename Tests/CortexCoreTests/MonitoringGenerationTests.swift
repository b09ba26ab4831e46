import CortexCore
import CortexMonitoring
import Foundation
import Testing

/// Generated rules pass promtool and fire on the series they are about (`promtool test rules`);
/// the chart ships exactly the dashboards and rules the code generates.
@Suite struct MonitoringGenerationTests {
    static let promtool = RuleCheck.promtool()
    static let workloads = [Workload(kind: "Deployment", namespace: "shop", name: "web"), Workload(kind: "StatefulSet", namespace: "shop", name: "db"),
                            Workload(kind: "DaemonSet", namespace: "kube-system", name: "node-exporter")]

    @Test(.enabled(if: promtool != nil, "promtool (Debian package prometheus) is not installed"))
    func workloadRulesPassPromtoolAndFire() throws {
        let rules = WorkloadMonitoring.ruleFile(Self.workloads)
        guard case .passed(let output) = RuleCheck.check(rules, name: "workloads.yaml") else { Issue.record("promtool rejected:\n\(rules)"); return }
        #expect(output.contains("SUCCESS: 12 rules found"), "\(output)")
        guard case .passed = RuleCheck.check(CortexAlerts.ruleFile) else { Issue.record("Cortex's rules rejected"); return }
        // A broken rule is caught (the check can fail).
        guard case .failed = RuleCheck.check("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]) >\n") else {
            Issue.record("a broken rule passed"); return
        }

        // The web Deployment loses a replica for 10 minutes; db restarts 4 times; node-exporter is fine.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("promtool-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(rules.utf8).write(to: dir.appendingPathComponent("workloads.yaml"))
        try Data("""
            rule_files: [workloads.yaml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'kube_deployment_status_replicas_available{namespace="shop",deployment="web"}'
                    values: '3 2 2 2 2 2 2 2 2 2 2 2 2 2'
                  - series: 'kube_deployment_spec_replicas{namespace="shop",deployment="web"}'
                    values: '3x13'
                  - series: 'kube_pod_container_status_restarts_total{namespace="shop",pod="db-0",container="postgres"}'
                    values: '0 0 1 2 3 4 4 4 4 4 4'
                  - series: 'kube_daemonset_status_number_available{namespace="kube-system",daemonset="node-exporter"}'
                    values: '3x13'
                  - series: 'kube_daemonset_status_desired_number_scheduled{namespace="kube-system",daemonset="node-exporter"}'
                    values: '3x13'
                alert_rule_test:
                  - eval_time: 12m
                    alertname: ShopWebUnavailable
                    exp_alerts:
                      - exp_labels: {severity: critical, namespace: shop, workload: web, deployment: web}
                        exp_annotations:
                          summary: "Deployment shop/web has fewer available replicas than desired"
                          description: "2 available for 10 minutes; kubectl -n shop describe deployment web"
                  - eval_time: 10m
                    alertname: ShopDbRestarting
                    exp_alerts:
                      - exp_labels: {severity: warning, namespace: shop, workload: db}
                        exp_annotations:
                          summary: "Containers of shop/db restarted 4 times in 15 minutes"
                  - eval_time: 12m
                    alertname: KubeSystemNodeExporterUnavailable
            """.utf8).write(to: dir.appendingPathComponent("workloads.test.yaml"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(Self.promtool))
        process.arguments = ["test", "rules", "workloads.test.yaml"]
        process.currentDirectoryURL = dir
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(text)")
    }

    @Test func workloadDashboardsAndThePrometheusRule() throws {
        let boards = WorkloadMonitoring.dashboards(Self.workloads)
        #expect(boards.map(\.name) == ["cortex-ns-kube-system", "cortex-ns-shop"])
        let shop = try #require(boards.last?.json)
        #expect(shop["panels"]?.arrayValue?.count == 8)
        #expect(GrafanaDashboard.queries(shop).contains("kube_statefulset_status_replicas_ready{namespace=\"shop\", statefulset=\"db\"}"))
        let rule = WorkloadMonitoring.prometheusRule(Self.workloads)
        #expect(rule.hasPrefix("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n") && rule.contains("\n  groups:\n    - name: kube-system.node-exporter\n"), "\(rule)")
    }

    @Test func theChartShipsWhatTheCodeGenerates() throws {
        for (name, json) in CortexDashboards.all {
            let committed = try String(contentsOf: PackagingTests.root.appendingPathComponent("charts/cortex/files/dashboards/\(name).json"), encoding: .utf8)
            #expect(committed == JSONText.pretty(json), "regenerate: cortexctl docs dashboards charts/cortex/files/dashboards")
        }
        let rules = try String(contentsOf: PackagingTests.root.appendingPathComponent("charts/cortex/files/prometheus/cortex-alerts.yaml"), encoding: .utf8)
        #expect(rules == CortexAlerts.ruleFile, "regenerate: cortexctl docs alerts > charts/cortex/files/prometheus/cortex-alerts.yaml")
    }
}
