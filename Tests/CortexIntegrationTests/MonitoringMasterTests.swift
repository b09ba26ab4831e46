import CortexCatalog
import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Hummingbird
import Testing

/// The monitoring master generates rules and dashboards for the catalog's workloads and for Cortex,
/// checks the rules with promtool and pushes the dashboards to a local server speaking Grafana's HTTP API.
@Suite(.serialized) struct MonitoringMasterTests {
    @Test func generatesChecksAndPushesToGrafana() async throws {
        let received = Locked<[(authorization: String, body: JSONValue)]>([])
        let router = Router()
        router.post("/api/dashboards/db") { request, _ -> Response in
            let body = (try? JSONText.parse(String(buffer: try await request.body.collect(upTo: 4 << 20)))) ?? .null
            received.withLock { $0.append((request.headers[.authorization] ?? "", body)) }
            let uid = body["dashboard"]?["uid"]?.stringValue ?? "x"
            // Grafana's answer shape for a created or updated dashboard.
            let answer: JSONValue = ["id": 1, "uid": .string(uid), "url": .string("/d/\(uid)/\(uid)"), "status": "success", "version": 1, "slug": .string(uid)]
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer.description)))
        }
        let (server, port) = try await startLocalServer(router, name: "fake Grafana")
        defer { server.cancel() }

        let work = try temporaryDirectory("cortex-monitoring")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory, environment: [
            "GRAFANA_URL": "http://127.0.0.1:\(port)", "GRAFANA_TOKEN": "glsa_testtoken_never_logged",
        ])
        let (_, catalogPort) = try await suite.startCatalog()
        let catalog = CatalogClient(baseURL: "http://127.0.0.1:\(catalogPort)", token: nil)
        _ = try await catalog.upsert([
            AssetInput(id: "deployment:shop/web", type: .DEPLOYMENT, name: "web", namespace: "shop"),
            AssetInput(id: "statefulset:shop/db", type: .STATEFULSET, name: "db", namespace: "shop"),
            AssetInput(id: "daemonset:kube-system/node-exporter", type: .DAEMONSET, name: "node-exporter", namespace: "kube-system"),
        ])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let state = try await client.follow(runID: try await client.submit(RunRequest(goal: "monitoring", targets: [try makeRepository().path, try makeRepository().path],
                                                                                         requestedBy: "test")), timeout: .seconds(60)) { _ in }
        let logs = suite.supervisor.all.map { $0.output() }.joined()
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let report = try String(contentsOfFile: dir + "/masters/monitoring-0.md", encoding: .utf8)
        #expect(report.contains("3 workload(s) from the catalog (1 DaemonSet, 1 Deployment, 1 StatefulSet); 8 dashboards"), "\(report)")
        #expect(report.contains("| workload-alerts.yaml | passed: SUCCESS: 12 rules found |") && report.contains("| cortex-alerts.yaml | passed: SUCCESS: 6 rules found |"), "\(report)")
        #expect(report.contains("| Workloads: shop | 8 | http://127.0.0.1:\(port)/d/cortex-ns-shop/cortex-ns-shop |"))
        // Generated once per run: the second target's report has no generation section.
        let second = try String(contentsOfFile: dir + "/masters/monitoring-1.md", encoding: .utf8)
        #expect(!second.contains("### Generated monitoring"))
        // Grafana got every dashboard once, authenticated, with overwrite and a null id (create or replace by uid).
        let pushes = received.value
        #expect(pushes.count == 8 && pushes.allSatisfy { $0.authorization == "Bearer glsa_testtoken_never_logged" })
        #expect(Set(pushes.compactMap { $0.body["dashboard"]?["uid"]?.stringValue }) == ["cortex-overview", "cortex-masters", "cortex-budget", "cortex-workers",
                                                                                        "cortex-assets", "cortex-cve", "cortex-ns-shop", "cortex-ns-kube-system"])
        #expect(pushes.allSatisfy { $0.body["overwrite"] == true && $0.body["dashboard"]?["id"] == .null })
        // The files are in the report too.
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/masters/monitoring-0-files").sorted()
        #expect(files.contains("workload-prometheusrule.yaml") && files.contains("cortex-ns-shop.json") && files.count == 11, "\(files)")
        #expect(!logs.contains("glsa_testtoken_never_logged"))
    }
}
