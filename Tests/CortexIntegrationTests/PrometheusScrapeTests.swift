import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// A real Prometheus (Debian's package) scrapes every process of a running local suite; a query of
/// each dashboard the chart ships returns data, and the alert rules load.
@Suite(.serialized) struct PrometheusScrapeTests {
    static let prometheus = "/usr/bin/prometheus"

    /// An instant query through Prometheus's HTTP API: the result vector.
    static func query(_ base: String, _ promql: String) async throws -> [JSONValue] {
        var components = URLComponents(string: base + "/api/v1/query")!
        components.queryItems = [URLQueryItem(name: "query", value: promql)]
        let response = try await HTTPClient.request(url: components.url!.absoluteString)
        let json = try JSONText.parse(response.text)
        guard json["status"]?.stringValue == "success" else { throw ConfigurationError("query \(promql) failed: \(response.text)") }
        return json["data"]?["result"]?.arrayValue ?? []
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: prometheus), "the Debian package prometheus is not installed (scripts/install-deps installs it)"))
    func prometheusScrapesTheSuiteAndEveryDashboardHasData() async throws {
        let work = try temporaryDirectory("cortex-prometheus")
        // A target with one vulnerable dependency, so the CVE dashboard has a non-zero series.
        let target = try makeRepository()
        try Data("""
            <project><modelVersion>4.0.0</modelVersion><dependencies><dependency>
            <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.14.1</version>
            </dependency></dependencies></project>
            """.utf8).write(to: target.appendingPathComponent("pom.xml"))
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "CORTEX_OSV_DB": SecurityMasterTests.fixtures.path, "CORTEX_SECURITY_FIX_BRANCHES": "false",
        ])
        _ = try await suite.startCatalog()
        try suite.startAll(workers: 2)

        // Every process's ops endpoint, labelled with its name, scraped every second.
        var targets: [String] = []
        for child in suite.supervisor.all where child.name != "redis-server" {
            guard let port = await opsPort(child) else { continue }
            targets.append("  - targets: ['127.0.0.1:\(port)']\n    labels: {process: '\(child.name)'}")
        }
        #expect(targets.count == 10, "coordinator, 6 masters, 2 workers, catalog-api: \(targets.count)")
        let rules = SecurityMasterTests.root.appendingPathComponent("charts/cortex/files/prometheus/cortex-alerts.yaml").path
        let config = work.appendingPathComponent("prometheus.yml")
        try Data("""
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: ['\(rules)']
            scrape_configs:
            - job_name: cortex
              static_configs:
            \(targets.joined(separator: "\n"))
            """.utf8).write(to: config)
        let port = try FreePort.find()
        let server = try suite.supervisor.start(name: "prometheus", executable: URL(fileURLWithPath: Self.prometheus), arguments: [
            "--config.file=\(config.path)", "--storage.tsdb.path=\(work.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ])
        let base = "http://127.0.0.1:\(port)"
        let up = await eventually(timeout: .seconds(60)) {
            let samples = (try? await Self.query(base, "up == 1")) ?? []
            return samples.count == targets.count
        }
        #expect(up, "not every target is up: \(server.output().suffix(2000))")

        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "full-orchestration", targets: [target.path], requestedBy: "test")),
                                            timeout: .seconds(60)) { _ in }
        // Log4Shell in the target is handed to the development master, whose change is skipped without a
        // model, and to the testing master, which takes no handoffs: the run says so and is partial.
        #expect(state.status == "partial" && (state.reason ?? "").hasPrefix("implementation skipped (no model configured) (development-master)"), "\(state.reason ?? "")")

        // One query per dashboard (each panel's queries are checked against the exported metrics in PackagingTests).
        let perDashboard: [(dashboard: String, query: String)] = [
            ("cortex-overview", "sum by (master) (cortex_masters_live)"),
            ("cortex-masters", "sum by (master) (increase(cortex_tasks_total[5m]))"),
            ("cortex-budget", "cortex_tokens_spent / (cortex_tokens_budget > 0)"),
            ("cortex-workers", "sum by (node) (cortex_workers_by_node)"),
            ("cortex-assets", "max by (type) (cortex_catalog_assets)"),
            ("cortex-cve", "sum by (severity) (cortex_vulnerabilities)"),
        ]
        var results: [String: [JSONValue]] = [:]
        let all = await eventually(timeout: .seconds(30)) {
            for (dashboard, query) in perDashboard { results[dashboard] = (try? await Self.query(base, query)) ?? [] }
            return results.values.allSatisfy { !$0.isEmpty } && (results["cortex-masters"]?.count ?? 0) >= 6
                && (results["cortex-cve"] ?? []).contains { $0["metric"]?["severity"] == "critical" && $0["value"]?[1] == "1" }
        }
        #expect(all, "\(results)")
        #expect(results["cortex-overview"]?.count == 6 && results["cortex-overview"]?.allSatisfy { $0["value"]?[1] == "1" } == true)
        #expect(results["cortex-budget"]?.count == 7, "one ratio per agent with a budget: \(results["cortex-budget"] ?? [])")
        #expect((results["cortex-assets"] ?? []).contains { $0["metric"]?["type"] == "REPOSITORY" })
        // The alert rules loaded and evaluate (nothing is firing on a healthy suite).
        let rulesAnswer = try JSONText.parse(try await HTTPClient.request(url: base + "/api/v1/rules").text)
        let loaded = (rulesAnswer["data"]?["groups"]?[0]?["rules"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        #expect(loaded.count == 6 && loaded.contains("CortexMasterDown"), "\(rulesAnswer)")
        let firing = try await Self.query(base, "ALERTS{alertstate=\"firing\"}")
        #expect(firing.isEmpty, "\(firing)")
        await suite.stop()
    }
}
