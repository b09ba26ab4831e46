import CortexCatalog
import CortexControl
import CortexCore
import CortexOrchestration
import Foundation
import MCP

/// Cortex over the Model Context Protocol: an assistant starts runs, follows them, reads their findings,
/// the catalog's assets and lineage, and the token budget, through tools; the reports of recent runs are
/// resources. Every tool's input is validated and a bad one is an MCP error (invalid params) naming the
/// field, never a crash; a tool that spends tokens or runs code says so in its description.
public final class CortexMCPServer: Sendable {
    let bus: MessageBus
    let catalog: CatalogClient?

    /// Over HTTP, the tokens a call is checked against (nil over stdio: whoever started the process may).
    let auth: CatalogAuth?

    /// `catalog`: the catalog-api to query (nil: the catalog tools answer that none is configured);
    /// `auth`: the bearer tokens HTTP callers present (write scope for `writeTools`).
    public init(bus: MessageBus, catalog: CatalogClient?, auth: CatalogAuth? = nil) {
        self.bus = bus
        self.catalog = catalog
        self.auth = auth
    }

    /// The tools that start work and spend tokens: over HTTP they need a write-scope token.
    public static let writeTools: Set<String> = ["start_run"]

    /// An MCP server named `cortex` with tools and resources (register the handlers with `register(on:)`).
    public static func makeServer() -> Server {
        Server(name: "cortex", version: "1.0.0", capabilities: .init(resources: .init(subscribe: false, listChanged: false), tools: .init(listChanged: false)))
    }

    /// Over HTTP: the caller's token must allow the tool (read for all, write for `writeTools`).
    func authorize(_ tool: String) throws {
        guard let auth, let http = Server.currentHandlerContext?.httpContext else { return }
        do {
            _ = try auth.authorize(http.header("Authorization"), requires: Self.writeTools.contains(tool) ? .write : .read)
        } catch let error as CatalogError {
            let why = Self.writeTools.contains(tool) ? "\(tool) starts work and spends tokens, so it needs a write-scope token" : "\(tool) refused"
            throw MCPError.serverError(code: -32003, message: "\(why): \(error.message)")
        }
    }

    /// The tools, with their JSON Schemas.
    public static let tools: [Tool] = [
        Tool(name: "start_run",
             description: "Start a Cortex orchestration run on repositories (paths as the workers see them) and return its run id at once; follow it with get_run_status. "
                + "SPENDS LLM TOKENS from the run's budget when a model is configured, and reads every target; with allow_test_execution the targets' test suites EXECUTE on the workers, "
                + "and with implement the development master's agent writes changes on a new branch of each target (never on the checked-out branch).",
             inputSchema: .object(["type": "object", "required": ["targets"], "additionalProperties": false, "properties": .object([
                "goal": .object(["type": "string", "description": "full-orchestration (default), or master names such as 'security testing', or e.g. 'fix CVE-2021-44228'"]),
                "targets": .object(["type": "array", "items": .object(["type": "string"]), "minItems": 1, "description": "repository paths or git URLs"]),
                "allow_test_execution": .object(["type": "boolean", "description": "run the targets' test suites (executes their code)"]),
                "implement": .object(["type": "array", "items": .object(["type": "string"]), "description": "changes for the implementation agent (needs a model)"]),
             ])]),
             annotations: .init(title: "Start a run", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true)),
        Tool(name: "get_run_status",
             description: "A run's status, phase, goal, targets, plan (each subtask and its outcome) and report directory; without run_id, the masters, workers and recent runs. Read-only.",
             inputSchema: .object(["type": "object", "additionalProperties": false, "properties": .object(["run_id": .object(["type": "string"])])]),
             annotations: .init(title: "Run status", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "list_findings",
             description: "The findings of a finished run: vulnerable dependencies, Kubernetes configuration, secrets (security master) and CI pipeline findings (cicd master), filtered by severity and master. Read-only.",
             inputSchema: .object(["type": "object", "required": ["run_id"], "additionalProperties": false, "properties": .object([
                "run_id": .object(["type": "string"]),
                "severity": .object(["type": "string", "enum": ["critical", "high", "medium", "low", "info"], "description": "this severity and above"]),
                "master": .object(["type": "string", "enum": ["security", "cicd"]]),
                "limit": .object(["type": "integer", "minimum": 1, "maximum": 1000, "description": "at most this many (default 100)"]),
             ])]),
             annotations: .init(title: "List findings", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "query_catalog",
             description: "Assets in the catalog (services, workloads, images, repositories, vulnerabilities …) matching a filter. Read-only.",
             inputSchema: .object(["type": "object", "additionalProperties": false, "properties": .object([
                "type": .object(["type": "string", "description": "an asset type, e.g. DEPLOYMENT, REPOSITORY, VULNERABILITY"]),
                "namespace": .object(["type": "string"]), "text": .object(["type": "string", "description": "words that must all occur in the id, name or namespace"]),
                "limit": .object(["type": "integer", "minimum": 1, "maximum": 500]),
             ])]),
             annotations: .init(title: "Query the catalog", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "get_lineage",
             description: "An asset's lineage in the catalog: the assets it depends on and that depend on it, up to a depth, with the relations between them. Read-only.",
             inputSchema: .object(["type": "object", "required": ["asset_id"], "additionalProperties": false, "properties": .object([
                "asset_id": .object(["type": "string", "description": "e.g. deployment:shop/web"]),
                "direction": .object(["type": "string", "enum": ["UPSTREAM", "DOWNSTREAM", "BOTH"]]),
                "depth": .object(["type": "integer", "minimum": 1, "maximum": 5]),
             ])]),
             annotations: .init(title: "Lineage", readOnlyHint: true, openWorldHint: false)),
        Tool(name: "read_budget",
             description: "A run's token ledger (the latest run by default): each account's limit, reserved and used tokens, and the emergency reserve. Read-only.",
             inputSchema: .object(["type": "object", "additionalProperties": false, "properties": .object(["run_id": .object(["type": "string"])])]),
             annotations: .init(title: "Token budget", readOnlyHint: true, openWorldHint: false)),
    ]

    /// Registers the handlers on `server`.
    public func register(on server: Server) async {
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: Self.tools) }
        await server.withMethodHandler(CallTool.self) { [self] params in
            let args = Arguments(params.arguments ?? [:], tool: params.name)
            try authorize(params.name)
            do {
                return try await call(params.name, args)
            } catch let e as MCPError {
                throw e
            } catch let e as CortexError {
                // What Cortex refused (a run that does not exist, an unreachable Redis) is the tool's error
                // result, as the protocol asks for failures of a valid call.
                return .init(content: [Self.text("\(params.name) failed: \(e.message)")], isError: true)
            } catch {
                return .init(content: [Self.text("\(params.name) failed: \(error)")], isError: true)
            }
        }
        await server.withMethodHandler(ListResources.self) { [self] _ in
            .init(resources: try await recentReports(), nextCursor: nil)
        }
        await server.withMethodHandler(ReadResource.self) { [self] params in
            try await readReport(params.uri)
        }
    }

    // MARK: - Tools

    func call(_ name: String, _ args: Arguments) async throws -> CallTool.Result {
        switch name {
        case "start_run":
            try args.only(["goal", "targets", "allow_test_execution", "implement"])
            let targets = try args.strings("targets", required: true)
            guard !targets.isEmpty else { throw MCPError.invalidParams("start_run: `targets` must name at least one repository") }
            let resolved: [String]
            do { resolved = try ControlCommands.resolveTargets(targets) } catch { throw MCPError.invalidParams("start_run: \(error)") }
            let goal = try args.string("goal") ?? "full-orchestration"
            let implement = try args.strings("implement")
            let request = RunRequest(goal: goal, targets: resolved, requestedBy: "cortex-mcp@\(ProcessIdentity.hostname)",
                                     allowTestExecution: try args.bool("allow_test_execution") == true ? resolved : nil, implement: implement.isEmpty ? nil : implement)
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            try await RunClient(bus: bus).submit(request)
            return json(["run_id": .string(request.runID), "goal": .string(goal), "targets": .array(resolved.map(JSONValue.string)), "status": "queued"])
        case "get_run_status":
            try args.only(["run_id"])
            let runID = try args.string("run_id")
            let text = try await ControlCommands.status(bus: bus, runID: runID)
            guard let runID, let s = try await RunState.load(runID, redis: bus.redis) else { return .init(content: [Self.text(text)], isError: false) }
            let state: JSONValue = ["run_id": .string(s.runID), "status": .string(s.status), "phase": s.phase.map { .number(Double($0)) } ?? .null,
                                    "finished": .bool(s.isFinished), "reason": s.reason.map(JSONValue.string) ?? .null, "report_dir": s.reportDir.map(JSONValue.string) ?? .null]
            return .init(content: [Self.text(JSONText.serialize(state)), Self.text(text)], isError: false)
        case "list_findings":
            try args.only(["run_id", "severity", "master", "limit"])
            guard let runID = try args.string("run_id") else { throw MCPError.invalidParams("list_findings: `run_id` is required") }
            let severity = try args.string("severity")
            let order = ["info", "low", "medium", "high", "critical"]
            if let severity, !order.contains(severity) { throw MCPError.invalidParams("list_findings: `severity` must be one of \(order.joined(separator: ", "))") }
            let master = try args.string("master")
            if let master, !["security", "cicd"].contains(master) { throw MCPError.invalidParams("list_findings: `master` must be security or cicd") }
            let limit = try args.int("limit", in: 1...1000) ?? 100
            guard let s = try await RunState.load(runID, redis: bus.redis) else { throw MCPError.invalidParams("list_findings: no run \(runID)") }
            guard s.isFinished, let dir = s.reportDir else {
                return .init(content: [Self.text("run \(runID) is \(s.status): its findings are in its report when it finishes")], isError: true)
            }
            var findings = try RunFindings.load(reportDirectory: URL(fileURLWithPath: dir))
            if let master { findings = findings.filter { $0["master"]?.stringValue == master } }
            if let severity, let floor = order.firstIndex(of: severity) {
                findings = findings.filter { (order.firstIndex(of: $0["severity"]?.stringValue ?? "") ?? 0) >= floor }
            }
            let total = findings.count
            return json(["run_id": .string(runID), "total": .number(Double(total)), "returned": .number(Double(min(total, limit))),
                         "findings": .array(Array(findings.prefix(limit)))])
        case "query_catalog":
            try args.only(["type", "namespace", "text", "limit"])
            // Input first: a bad call is an invalid-params error whether or not a catalog is configured.
            var filter = AssetFilter(namespace: try args.string("namespace"), text: try args.string("text"))
            if let type = try args.string("type") {
                guard let t = AssetType(rawValue: type.uppercased()) else {
                    throw MCPError.invalidParams("query_catalog: unknown asset type '\(type)' (one of \(AssetType.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                filter.type = t
            }
            let limit = try args.int("limit", in: 1...500) ?? 50
            guard let catalog else { return notConfigured }
            let assets = try await catalog.assets(filter: filter)
            return json(["total": .number(Double(assets.count)), "assets": .array(assets.prefix(limit).map { ["id": .string($0.id), "type": .string($0.type.rawValue), "health": .string($0.health.rawValue)] })])
        case "get_lineage":
            try args.only(["asset_id", "direction", "depth"])
            guard let id = try args.string("asset_id"), !id.isEmpty else { throw MCPError.invalidParams("get_lineage: `asset_id` is required") }
            let direction = try args.string("direction") ?? "BOTH"
            guard ["UPSTREAM", "DOWNSTREAM", "BOTH"].contains(direction) else { throw MCPError.invalidParams("get_lineage: `direction` must be UPSTREAM, DOWNSTREAM or BOTH") }
            let depth = try args.int("depth", in: 1...5) ?? 2
            guard let catalog else { return notConfigured }
            let data = try await catalog.graphQL("query($id: ID!, $depth: Int!) { lineage(id: $id, direction: \(direction), depth: $depth) { nodes { id type name } edges { from to kind } truncated } }",
                                                 variables: ["id": .string(id), "depth": .number(Double(depth))])
            return json(data["lineage"] ?? data)
        case "read_budget":
            try args.only(["run_id"])
            return .init(content: [Self.text(try await ControlCommands.budget(bus: bus, runID: try args.string("run_id")))], isError: false)
        default:
            throw MCPError.invalidParams("unknown tool '\(name)': the tools are \(Self.tools.map(\.name).joined(separator: ", "))")
        }
    }

    static func text(_ s: String) -> Tool.Content { .text(text: s, annotations: nil, _meta: nil) }

    var notConfigured: CallTool.Result {
        .init(content: [Self.text("no catalog-api is configured for cortex-mcp (CORTEX_CATALOG_URL)")], isError: true)
    }

    func json(_ value: JSONValue) -> CallTool.Result {
        .init(content: [Self.text(JSONText.serialize(value))], isError: false)
    }

    // MARK: - Resources

    /// summary.md and report.html of the ten most recent runs that have a report.
    func recentReports() async throws -> [Resource] {
        var out: [Resource] = []
        for id in try await bus.redis.zrevrange(CortexNames.runIndex, start: 0, stop: 9) {
            guard let s = try await RunState.load(id, redis: bus.redis), s.reportDir != nil else { continue }
            out.append(Resource(name: "\(id) summary", uri: "cortex://runs/\(id)/summary.md", description: "\(s.status): \(s.goal)", mimeType: "text/markdown"))
            out.append(Resource(name: "\(id) report", uri: "cortex://runs/\(id)/report.html", description: "the self-contained HTML report", mimeType: "text/html"))
        }
        return out
    }

    /// MCP's JSON-RPC error code for a resource that does not exist or cannot be read.
    static let resourceNotFound = -32002

    func readReport(_ uri: String) async throws -> ReadResource.Result {
        let parts = uri.replacingOccurrences(of: "cortex://runs/", with: "").split(separator: "/").map(String.init)
        guard uri.hasPrefix("cortex://runs/"), parts.count == 2, ["summary.md", "report.html", "summary.json"].contains(parts[1]), RunRequest.isValidRunID(parts[0]) else {
            throw MCPError.invalidParams("unknown resource '\(uri)': cortex://runs/<run id>/summary.md, report.html or summary.json")
        }
        guard let s = try await RunState.load(parts[0], redis: bus.redis), let dir = s.reportDir else { throw MCPError.invalidParams("run \(parts[0]) has no report") }
        let path = dir + "/" + parts[1]
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            // MCP's "resource not found" (-32002), with what is missing: the whole directory (this server
            // does not see the coordinator's reports volume, as list_findings says too) or the one file.
            do { try RunFindings.requireReadable(reportDirectory: URL(fileURLWithPath: dir)) } catch let missing as CortexError {
                throw MCPError.serverError(code: Self.resourceNotFound, message: "run \(parts[0]): \(missing.message)")
            }
            throw MCPError.serverError(code: Self.resourceNotFound, message: "\(parts[1]) of run \(parts[0]) cannot be read from \(path): \(error.localizedDescription)")
        }
        let mime = parts[1].hasSuffix(".html") ? "text/html" : parts[1].hasSuffix(".json") ? "application/json" : "text/markdown"
        return .init(contents: [.text(text, uri: uri, mimeType: mime)])
    }
}

/// A tool call's arguments with typed, validated access: a wrong type or an unknown field is an
/// invalid-params error naming it.
struct Arguments {
    let values: [String: Value]
    let tool: String
    init(_ values: [String: Value], tool: String) { self.values = values; self.tool = tool }

    func only(_ allowed: Set<String>) throws {
        if let extra = values.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw MCPError.invalidParams("\(tool): unknown argument `\(extra)` (accepted: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let v = values[key], !v.isNull else { return nil }
        guard let s = v.stringValue else { throw MCPError.invalidParams("\(tool): `\(key)` must be a string") }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = values[key], !v.isNull else { return nil }
        guard let b = v.boolValue else { throw MCPError.invalidParams("\(tool): `\(key)` must be true or false") }
        return b
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = values[key], !v.isNull else { return nil }
        guard let n = v.intValue ?? v.doubleValue.flatMap({ $0 == $0.rounded() ? Int(exactly: $0) : nil }), range.contains(n) else {
            throw MCPError.invalidParams("\(tool): `\(key)` must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    func strings(_ key: String, required: Bool = false) throws -> [String] {
        guard let v = values[key], !v.isNull else {
            if required { throw MCPError.invalidParams("\(tool): `\(key)` is required (an array of strings)") }
            return []
        }
        guard let items = v.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else { throw MCPError.invalidParams("\(tool): `\(key)` must be an array of strings") }
        return items.compactMap(\.stringValue)
    }
}
