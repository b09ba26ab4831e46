import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// cortex-mcp driven by a real MCP client (PyPI's `mcp`, in the test virtualenv) over stdio, against a
/// running suite with its catalog: list tools, start a run on a fixture repository, poll its status to
/// the end, list its findings, query the catalog and a lineage, read the budget and a report resource;
/// bad input gets an MCP error (or a tool error result), and the server keeps serving.
@Suite(.serialized) struct MCPServerTests {
    @Test func aRealMCPClientDrivesARun() async throws {
        let target = try temporaryDirectory("cortex-mcp-target")
        try writeFiles(GoldenRunTests.files, under: target)
        let work = try temporaryDirectory("cortex-mcp-run")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories.merging(["CORTEX_SECURITY_FIX_BRANCHES": "false", "CORTEX_ITEMS_PER_TASK": "3"]) { $1 })
        let catalog = try await suite.startCatalog()
        try suite.startAll(workers: 2)
        defer { Task { await suite.stop() } }
        let python = try CatalogAPITests.python(SecurityMasterTests.root)
        let result = try await Subprocess.runOffloaded(python, [SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/mcp/client.py").path,
                                                                binDirectory.appendingPathComponent("cortex-mcp").path, target.path],
                                                       environment: ProcessInfo.processInfo.environment.merging(["CORTEX_REDIS_URL": suite.redis.url, "CORTEX_CATALOG_URL": "http://127.0.0.1:\(catalog.port)"]) { $1 },
                                                       timeout: .seconds(180))
        await suite.stop()
        #expect(result.status == 0, "\(result.stderrText.suffix(3000))")
        let out = try JSONText.parse(Array(result.stdoutText.utf8))
        print("mcp client: \(result.stdoutText.prefix(4000))")
        #expect(out["server"] == "cortex")
        #expect(out["tools"] == ["get_lineage", "get_run_status", "list_findings", "query_catalog", "read_budget", "start_run"])
        #expect(out["start_run_description"]?.stringValue?.contains("SPENDS LLM TOKENS") == true)
        #expect(out["final"]?["finished"] == true && ["succeeded", "partial"].contains(out["final"]?["status"]?.stringValue ?? ""), "\(out["final"] ?? .null)")
        #expect((out["statuses"]?.arrayValue?.count ?? 0) >= 1)
        // The fixture's log4j 2.14.1 is critical (CVE-2021-44228); the pipeline's script injection is high.
        let findings = out["findings"]?["findings"]?.arrayValue ?? []
        #expect(findings.contains { $0["severity"] == "critical" && ($0["title"]?.stringValue ?? "").contains("log4j-core") }, "\(findings)")
        #expect(findings.contains { $0["master"] == "cicd" && ($0["title"]?.stringValue ?? "").hasPrefix("template-injection") }, "\(findings)")
        #expect(findings.allSatisfy { ["critical", "high"].contains($0["severity"]?.stringValue ?? "") })
        #expect(out["cicd_findings"]?["returned"] == 2 && (out["cicd_findings"]?["total"]?.intValue ?? 0) >= 2)
        #expect((out["assets"]?["total"]?.intValue ?? 0) >= 1, "\(out["assets"] ?? .null)")
        #expect(out["lineage"]?["nodes"]?.arrayValue?.isEmpty == false, "\(out["lineage"] ?? .null)")
        #expect(out["budget"]?.stringValue?.contains("reserve") == true, "\(out["budget"] ?? .null)")
        #expect(out["resources"]?.arrayValue?.contains { ($0.stringValue ?? "").hasSuffix("/report.html") } == true)
        #expect(out["summary_starts"]?.stringValue?.isEmpty == false)
        // Bad input: MCP errors (-32602) naming the field, or a tool error result; never a crash.
        let errors = try #require(out["errors"]?.objectValue)
        #expect(errors["start_run {\"targets\": \"not-a-list\"}"]?["mcp_error"] == -32602)
        #expect(errors["start_run {\"targets\": \"not-a-list\"}"]?["message"]?.stringValue?.contains("`targets` must be an array of strings") == true)
        #expect(errors["start_run {}"]?["mcp_error"] == -32602)
        #expect(errors["list_findings {}"]?["mcp_error"] == -32602)
        #expect(errors["get_lineage {\"asset_id\": \"x\", \"depth\": 99}"]?["message"]?.stringValue?.contains("`depth` must be an integer from 1 to 5") == true)
        #expect(errors["no_such_tool {}"]?["mcp_error"] == -32602)
        #expect(errors["start_run {\"targets\": [\"/nonexistent/repo\"]}"]?["mcp_error"] == -32602)
        #expect(errors["list_findings {\"run_id\": \"\(out["run_id"]?.stringValue ?? "")\", \"severity\": \"urgent\"}"]?["mcp_error"] == -32602)
        #expect(errors["start_run {\"targets\": [\"\(target.path)\"], \"colour\": \"red\"}"]?["message"]?.stringValue?.contains("unknown argument `colour`") == true, "\(errors)")
        #expect(out["bad_resource"]?["mcp_error"] == -32602)
        // A report directory that is not readable here is an error result naming it, not an empty list.
        let unreadable = out["findings_without_report"]
        #expect(unreadable?["isError"] == true && unreadable?["text"]?.stringValue?.contains("is not readable here") == true, "\(unreadable ?? .null)")
        // ... and its report resources are MCP's "resource not found" saying the same.
        let summary = out["summary_without_report"]
        #expect(summary?["mcp_error"] == -32002 && summary?["message"]?.stringValue?.contains("is not readable here") == true, "\(summary ?? .null)")
        #expect(out["alive_after_errors"] == 6)
    }

    /// The streamable HTTP transport for in-cluster use, driven by the same real client: no token, a wrong
    /// one or a non-bearer one is a 401 with `WWW-Authenticate: Bearer`; a read token reads but cannot start
    /// a run (an MCP error); a write token starts one and follows it to the end; each client has its own
    /// session, and a closed session's id is refused.
    @Test func streamableHTTPWithCatalogTokens() async throws {
        let target = try temporaryDirectory("cortex-mcp-http-target")
        try writeFiles(GoldenRunTests.files, under: target)
        let work = try temporaryDirectory("cortex-mcp-http")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: checkedAdvisories.merging(["CORTEX_SECURITY_FIX_BRANCHES": "false"]) { $1 })
        try suite.startCoordinator()
        try suite.startMaster(.security)
        _ = try suite.startWorker()
        defer { Task { await suite.stop() } }
        let readToken = "read-token-0123456789abcdef", writeToken = "write-token-0123456789abcdef"
        let port = try FreePort.find()
        let mcp = try suite.supervisor.start(name: "cortex-mcp", executable: binDirectory.appendingPathComponent("cortex-mcp"), environment: [
            "CORTEX_REDIS_URL": suite.redis.url, "CORTEX_MCP_TRANSPORT": "http", "CORTEX_HTTP_HOST": "127.0.0.1", "CORTEX_HTTP_PORT": "\(port)",
            "CORTEX_CATALOG_TOKENS": "read:\(readToken):assistant,write:\(writeToken):operator",
        ])
        #expect(await eventually(timeout: .seconds(60)) { mcp.output().contains("serving MCP (streamable HTTP) on http://127.0.0.1:\(port)/mcp") }, "\(mcp.output())")
        let python = try CatalogAPITests.python(SecurityMasterTests.root)
        let result = try await Subprocess.runOffloaded(python, [SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/mcp/http_client.py").path,
                                                                "http://127.0.0.1:\(port)/mcp", readToken, writeToken, target.path],
                                                       environment: ProcessInfo.processInfo.environment, timeout: .seconds(180))
        let serverLog = mcp.output()
        await suite.stop()
        #expect(result.status == 0, "\(result.stderrText.suffix(3000))\n\(serverLog.suffix(2000))")
        print("mcp http client: \(result.stdoutText.prefix(3000))")
        let out = try JSONText.parse(Array(result.stdoutText.utf8))
        for refused in ["no_token", "wrong_token", "not_bearer"] {
            #expect(out[refused]?["status"] == 401 && out[refused]?["www_authenticate"]?.stringValue?.hasPrefix("Bearer") == true, "\(refused): \(out[refused] ?? .null)")
            #expect(out[refused]?["session"] == .null, "no session for \(refused)")
        }
        #expect(out["server"] == "cortex")
        #expect(out["tools"] == ["get_lineage", "get_run_status", "list_findings", "query_catalog", "read_budget", "start_run"])
        #expect(out["read_start_run"]?["mcp_error"] == -32003 && out["read_start_run"]?["message"]?.stringValue?.contains("write") == true, "\(out["read_start_run"] ?? .null)")
        #expect(out["read_unknown_run"]?["isError"] == true, "\(out["read_unknown_run"] ?? .null)")
        #expect(out["read_bad_input"]?["mcp_error"] == -32602)
        #expect(out["read_session"] != out["write_session"] && out["read_session"]?.stringValue?.isEmpty == false)
        #expect(out["final"]?["finished"] == true && ["succeeded", "partial"].contains(out["final"]?["status"]?.stringValue ?? ""), "\(out["final"] ?? .null)")
        #expect((out["findings"]?["total"]?.intValue ?? 0) >= 1, "\(out["findings"] ?? .null)")
        #expect(out["resources"]?.arrayValue?.contains { ($0.stringValue ?? "").contains(out["run_id"]?.stringValue ?? "?") } == true)
        #expect(out["closed_session"]?["status"] == 404, "\(out["closed_session"] ?? .null)")
        // Who did what is in the server's log, never a token.
        #expect(!serverLog.contains(readToken) && !serverLog.contains(writeToken))
    }

    /// cortex-mcp as the chart runs it: connected to Redis as its own ACL user (`cortex-mcp`, RedisACL's `mcp`
    /// role) on a server that enforces the generated ACL. A real MCP client starts a run, reads its status,
    /// the overview and a budget, and lists the resources, all without a single denial for that user, which
    /// still cannot FLUSHALL, CONFIG, read the catalog or write a budget. /readyz is 200 while Redis answers
    /// PING, then 503 with the reason once the test's Redis is stopped, and the process keeps serving.
    @Test func httpReadinessAndItsOwnRedisUser() async throws {
        let (supervisor, redis) = try await RedisACLTests.startRedis { try RedisACLTests.aclFile(in: $0) }
        defer { Task { await redis.stop() } }
        let admin = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: redis.port))
        defer { admin.close() }
        // A ledger to read and a worker to list (the overview's pipeline reads its registry and heartbeat).
        let budgetRun = "run-mcp-budget"
        try await BudgetLedger(redis: admin, runID: budgetRun).open(["run": 1000, "security": 400])
        try await admin.send("SADD", CortexNames.workerSet, "worker-mcp-test").orThrow()
        try await admin.send("HSET", CortexNames.workerRegistry("worker-mcp-test"), "status", "idle", "pools", "scan").orThrow()

        let target = try temporaryDirectory("cortex-mcp-acl-target")
        try writeFiles(GoldenRunTests.files, under: target)
        let writeToken = "write-token-acl-0123456789abcdef"
        let port = try FreePort.find()
        let mcp = try supervisor.start(name: "cortex-mcp", executable: binDirectory.appendingPathComponent("cortex-mcp"), environment: [
            "CORTEX_REDIS_URL": RedisACLTests.url(redis.port, .mcp), "CORTEX_MCP_TRANSPORT": "http", "CORTEX_HTTP_HOST": "127.0.0.1",
            "CORTEX_HTTP_PORT": "\(port)", "CORTEX_CATALOG_TOKENS": "write:\(writeToken):operator",
        ])
        defer { mcp.signal() }
        #expect(await eventually(timeout: .seconds(60)) { mcp.output().contains("serving MCP (streamable HTTP) on http://127.0.0.1:\(port)/mcp") }, "\(mcp.output())")
        let base = "http://127.0.0.1:\(port)"

        // Ready: Redis answers the mcp user's PING (no token needed, as for /healthz).
        let ready = try await HTTPClient.request(url: "\(base)/readyz")
        #expect(ready.status == 200, "\(ready.status) \(ready.text)")
        #expect(try JSONText.parse(ready.body)["ready"] == true, "\(ready.text)")

        // The tools, through a real MCP client, under the mcp user.
        let python = try CatalogAPITests.python(SecurityMasterTests.root)
        let result = try await Subprocess.runOffloaded(python, [SecurityMasterTests.root.appendingPathComponent("Tests/Fixtures/mcp/acl_client.py").path,
                                                                "\(base)/mcp", writeToken, target.path, budgetRun],
                                                       environment: ProcessInfo.processInfo.environment, timeout: .seconds(120))
        #expect(result.status == 0, "\(result.stderrText.suffix(3000))\n\(mcp.output().suffix(2000))")
        print("mcp acl client: \(result.stdoutText.prefix(3000))")
        let out = try JSONText.parse(Array(result.stdoutText.utf8))
        #expect(out["start_run"]?["isError"] == false, "\(out["start_run"] ?? .null)")
        let runID = try #require(out["run_id"]?.stringValue)
        #expect(try await RunState.load(runID, redis: admin)?.status == "queued")
        #expect(try await admin.send("XLEN", CortexNames.runRequests).int == 1)
        let status = out["status"]?["text"]?.arrayValue?.first?.stringValue ?? ""
        #expect(out["status"]?["isError"] == false && (try? JSONText.parse(Array(status.utf8)))?["status"] == "queued", "\(out["status"] ?? .null)")
        let overview = out["overview"]?["text"]?.arrayValue?.first?.stringValue ?? ""
        #expect(out["overview"]?["isError"] == false && overview.contains("worker-mcp-test") && overview.contains(runID), "\(overview)")
        let budget = out["budget"]?["text"]?.arrayValue?.first?.stringValue ?? ""
        #expect(out["budget"]?["isError"] == false && budget.contains(budgetRun) && budget.contains("security"), "\(budget)")
        let denials = try await RedisACLTests.aclLog(redis.port)
        #expect(denials.isEmpty, "\(denials)")

        // What the mcp user must not do, with its own credentials.
        let own = RedisACLTests.client(redis.port, .mcp)
        defer { own.close() }
        for command: [any RedisArgument] in [["FLUSHALL"], ["CONFIG", "GET", "maxmemory"], ["KEYS", "*"],
                                             ["HGETALL", CortexNames.Catalog.assetPrefix + "x"],
                                             ["HSET", CortexNames.budgetAccount(budgetRun, "run"), "limit", 999_999],
                                             ["XADD", CortexNames.taskStream(.security), "*", "task", "{}"]] {
            let denied = try await RedisACLTests.denial(own, command)
            #expect(denied != nil, "cortex-mcp ran \(command.map { String(decoding: $0.redisBytes, as: UTF8.self) }.joined(separator: " "))")
        }

        // Redis gone: not ready, with the reason; alive and still serving.
        await redis.stop()
        var notReady: HTTPResponse?
        #expect(await eventually(timeout: .seconds(30)) {
            notReady = try? await HTTPClient.request(url: "\(base)/readyz")
            return notReady?.status == 503
        }, "\(notReady?.status ?? 0) \(notReady?.text ?? "")")
        #expect(notReady?.text.contains("redis unreachable at redis://cortex-mcp:***@127.0.0.1:\(redis.port)/0") == true, "\(notReady?.text ?? "")")
        #expect(notReady.map { $0.text.contains(RedisACLTests.passwords[.mcp]!) } == false, "the password in /readyz")
        #expect(mcp.isRunning, "\(mcp.output().suffix(2000))")
        #expect(try await HTTPClient.request(url: "\(base)/healthz").status == 200)
    }
}
