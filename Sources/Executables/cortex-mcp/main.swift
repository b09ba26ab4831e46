import CortexCatalog
import CortexControl
import CortexCore
import CortexMCP
import Foundation
import MCP

// cortex-mcp: Cortex as an MCP server over stdio (one client: Claude Desktop, Claude Code, any MCP
// client that starts it). stdout carries the protocol only; every message of ours goes to stderr.
// Tools and resources: CortexMCP.CortexMCPServer; configuration: docs/mcp.md.
let settingsList: [Setting] = [.redisURL, .redisSentinels, .redisMasterName, .redisPasswordFile, .catalogURL, .catalogToken, .catalogTokenFile]
let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--help") || arguments.contains("-h") {
    print("""
        usage: cortex-mcp [--redis URL] [--catalog-url URL] [--catalog-token-file FILE] ...
        Serves Cortex's tools (start_run, get_run_status, list_findings, query_catalog, get_lineage, read_budget)
        and its run reports (resources) over MCP on stdin/stdout.
        Settings (flags or environment): \(settingsList.map { "--\($0.flag) / \($0.env)" }.joined(separator: ", ")).
        Example (Claude Code): claude mcp add cortex -- cortex-mcp --redis redis://127.0.0.1:6379/0
        """)
    exit(0)
}
do {
    let settings = try SettingValues(arguments: arguments, settings: settingsList)
    let bus = try ControlCommands.bus(redisURL: settings.raw(.redisURL) ?? "redis://127.0.0.1:6379/0", sentinels: settings.raw(.redisSentinels),
                                      masterName: settings.raw(.redisMasterName) ?? "cortex", passwordFile: settings.raw(.redisPasswordFile))
    let cortex = CortexMCPServer(bus: bus, catalog: try CatalogClient(settings: settings))
    let server = Server(name: "cortex", version: "1.0.0", capabilities: .init(resources: .init(subscribe: false, listChanged: false), tools: .init(listChanged: false)))
    await cortex.register(on: server)
    try await server.start(transport: StdioTransport())
    await server.waitUntilCompleted()
} catch {
    FileHandle.standardError.write(Data("cortex-mcp: \(error)\n".utf8))
    exit(2)
}
