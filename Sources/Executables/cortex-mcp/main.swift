import CortexCatalog
import CortexControl
import CortexCore
import CortexMCP
import Foundation
import Logging
import MCP

// cortex-mcp: Cortex as an MCP server. Over stdio (one client: Claude Desktop, Claude Code, any MCP client
// that starts it) stdout carries the protocol only and every message of ours goes to stderr; over
// streamable HTTP (in the cluster) each client has its own session and presents a catalog bearer token.
// Tools and resources: CortexMCP.CortexMCPServer; HTTP: CortexMCP.MCPHTTPServer; docs/mcp.md.
let settingsList: [Setting] = [.redisURL, .redisSentinels, .redisMasterName, .redisPasswordFile, .catalogURL, .catalogToken, .catalogTokenFile,
                               .mcpTransport, .httpHost, .httpPort, .catalogTokens, .catalogTokensFile, .catalogAllowAnonymous]
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print("""
        usage: cortex-mcp [--redis URL] [--catalog-url URL] [--catalog-token-file FILE] [--transport stdio|http] ...
        Serves Cortex's tools (start_run, get_run_status, list_findings, query_catalog, get_lineage, read_budget)
        and its run reports (resources) over MCP: on stdin/stdout (default), or with --transport http on
        http://<http-host>:<http-port>/mcp (default port 9120) for clients that present a catalog bearer token
        (CORTEX_CATALOG_TOKENS / --catalog-tokens-file: read scope for every tool, write scope for start_run).
        Settings (flags or environment): \(settingsList.map { "--\($0.flag) / \($0.env)" }.joined(separator: ", ")).
        Examples:
          claude mcp add cortex -- cortex-mcp --redis redis://127.0.0.1:6379/0
          cortex-mcp --transport http --http-port 9120 --catalog-tokens-file /etc/cortex/catalog-tokens
          claude mcp add --transport http cortex http://cortex-mcp:9120/mcp --header "Authorization: Bearer $TOKEN"
        """)
    exit(0)
}
do {
    let settings = try SettingValues(arguments: arguments, settings: settingsList)
    let bus = try ControlCommands.bus(redisURL: settings.raw(.redisURL) ?? "redis://127.0.0.1:6379/0", sentinels: settings.raw(.redisSentinels),
                                      masterName: settings.raw(.redisMasterName) ?? "cortex", passwordFile: settings.raw(.redisPasswordFile))
    let catalog = try CatalogClient(settings: settings)
    switch settings.string(.mcpTransport) {
    case "stdio":
        let server = CortexMCPServer.makeServer()
        await CortexMCPServer(bus: bus, catalog: catalog).register(on: server)
        try await server.start(transport: StdioTransport())
        await server.waitUntilCompleted()
    case "http":
        JSONLogHandler.bootstrap(process: "cortex-mcp", level: .info)
        let logger = Logger(label: "cortex.cortex-mcp")
        let auth = try CatalogAuth(settings: settings)
        let host = settings.string(.httpHost), port = try settings.int(.httpPort, default: 9120, range: 0...65535)
        let http = MCPHTTPServer(cortex: CortexMCPServer(bus: bus, catalog: catalog, auth: auth), auth: auth, logger: logger)
        // Hummingbird's service group ends the server on SIGTERM / SIGINT (Kubernetes stops pods with SIGTERM).
        try await http.run(host: host, port: port) { bound in logger.info("serving MCP (streamable HTTP) on http://\(host):\(bound)/mcp") }
        logger.info("stopped")
    case let other:
        throw ConfigurationError("--transport / CORTEX_MCP_TRANSPORT must be stdio or http; got '\(other)'")
    }
} catch {
    FileHandle.standardError.write(Data("cortex-mcp: \(error)\n".utf8))
    exit(2)
}
