import CortexCore
import Foundation
import Testing
import Yams

/// The image, compose file, chart, dashboards and alerts agree with the code: every executable is in
/// the image, every query names a metric the processes export.
@Suite struct PackagingTests {
    static let root = GeneratedDocsTests.repoRoot

    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// The executables users run (the image holds these; cortex-lab is a development tool).
    static let executables: Set<String> = Set(["coordinator", "worker", "catalog-api", "cortexctl", "cortex-mcp"]).union(MasterRole.allCases.map(\.processName))

    /// `cortex_*` names in a PromQL expression, without histogram suffixes.
    static func metrics(in expr: String) -> Set<String> {
        let regex = try! NSRegularExpression(pattern: #"cortex_[a-z_]+"#)
        return Set(regex.matches(in: expr, range: NSRange(expr.startIndex..., in: expr)).map { m -> String in
            var name = (expr as NSString).substring(with: m.range)
            for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) && CortexMetrics.help[name] == nil { name.removeLast(suffix.count) }
            return name
        })
    }

    @Test func everyDashboardQueryUsesAnExportedMetric() throws {
        let dir = Self.root.appendingPathComponent("charts/cortex/files/dashboards")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(files == ["cortex-assets.json", "cortex-budget.json", "cortex-cve.json", "cortex-masters.json", "cortex-overview.json", "cortex-workers.json"])
        var used: Set<String> = []
        for file in files {
            let board = try JSONText.parse(try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8))
            let panels = board["panels"]?.arrayValue ?? []
            #expect(!panels.isEmpty, "\(file) has no panels")
            for panel in panels {
                let exprs = (panel["targets"]?.arrayValue ?? []).compactMap { $0["expr"]?.stringValue }
                #expect(!exprs.isEmpty, "\(file): panel \(panel["title"]?.stringValue ?? "?") has no query")
                for expr in exprs {
                    let names = Self.metrics(in: expr)
                    #expect(!names.isEmpty, "\(file): \(expr) queries no Cortex metric")
                    for name in names { #expect(CortexMetrics.help[name] != nil, "\(file): \(name) is not exported (\(expr))") }
                    used.formUnion(names)
                }
            }
        }
        // The design's views: the CVE breakdown and the workers-by-node heatmap read these.
        #expect(used.isSuperset(of: ["cortex_vulnerabilities", "cortex_workers_by_node", "cortex_tokens_spent", "cortex_catalog_assets", "cortex_tasks_active"]))
    }

    @Test func everyAlertUsesAnExportedMetric() throws {
        let rules = try Yams.load(yaml: try Self.text("charts/cortex/files/prometheus/cortex-alerts.yaml")) as? [String: Any]
        let list = ((rules?["groups"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]]) ?? []
        #expect(Set(list.compactMap { $0["alert"] as? String }) == ["CortexMasterDown", "CortexWorkerPoolEmpty", "CortexTokenBudgetAbove90Percent",
                                                                   "CortexRedisUnreachable", "CortexCatalogAPISlow", "CortexWorkDeadLettered"])
        for rule in list {
            let expr = rule["expr"] as? String ?? ""
            let names = Self.metrics(in: expr)
            #expect(!names.isEmpty)
            for name in names { #expect(CortexMetrics.help[name] != nil, "\(rule["alert"] ?? "?"): \(name) is not exported") }
        }
    }

    @Test func theImageTheComposeFileAndTheChartRunEveryExecutable() throws {
        let dockerfile = try Self.text("docker/Dockerfile")
        let copied = dockerfile.components(separatedBy: "&& cp ").dropFirst().first?.components(separatedBy: "/out/").first?
            .split(whereSeparator: { $0 == " " || $0 == "\\" || $0 == "\n" }).map(String.init) ?? []
        #expect(Set(copied) == Self.executables, "docker/Dockerfile copies \(copied)")
        #expect(dockerfile.contains(#"ENTRYPOINT ["/usr/bin/tini", "--"]"#) && dockerfile.contains("USER 10001:10001"))

        let compose = try Yams.load(yaml: try Self.text("docker/compose.yaml")) as? [String: Any]
        let services = compose?["services"] as? [String: [String: Any]] ?? [:]
        let commands = Set(services.values.compactMap { ($0["command"] as? [String])?.first }.filter { !$0.hasPrefix("redis") })
        // cortexctl and cortex-mcp are clients a person (or an assistant) starts, not services.
        #expect(commands == Self.executables.subtracting(["cortexctl", "cortex-mcp"]), "\(commands)")

        let masters = try Self.text("charts/cortex/templates/masters.yaml")
        for role in MasterRole.allCases { #expect(masters.contains("\"\(role.rawValue)\""), "the chart has no \(role.processName)") }
        let values = try Yams.load(yaml: try Self.text("charts/cortex/values.yaml")) as? [String: Any]
        let pools = ((values?["workers"] as? [String: Any]) ?? [:]).values.compactMap { ($0 as? [String: Any])?["pools"] as? [String] }.flatMap { $0 }
        #expect(Set(pools) == Set(WorkerPool.allCases.map(\.rawValue)), "the default worker Deployments serve \(pools)")
    }
}
