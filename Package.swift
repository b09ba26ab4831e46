// swift-tools-version:6.0
import PackageDescription

/// Every daemon is a thin `@main` over the shared libraries; this factory keeps the list readable.
func daemon(_ name: String) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["CortexCore", "CortexOrchestration"],
        path: "Sources/Executables/\(name)"
    )
}

let masters = [
    "security-master", "development-master", "inventory-master",
    "cicd-master", "testing-master", "monitoring-master",
]
let daemons = ["coordinator"] + masters + ["worker"]

let package = Package(
    name: "cortex",
    platforms: [.macOS(.v14)],
    products: daemons.map { .executable(name: $0, targets: [$0]) } + [
        .executable(name: "catalog-api", targets: ["catalog-api"]),
        .executable(name: "cortexctl", targets: ["cortexctl"]),
        .executable(name: "cortex-lab", targets: ["cortex-lab"]),
        .executable(name: "cortex-mcp", targets: ["cortex-mcp"]),
        .library(name: "CortexCore", targets: ["CortexCore"]),
        // The parsers' modules, for the libFuzzer package under Fuzz/ (a path dependency sees products only).
        .library(name: "CortexParsers", targets: ["CortexOrchestration", "CortexSecurity", "CortexCICD"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/GraphQLSwift/GraphQL.git", from: "4.3.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        // cortex-mcp: the Model Context Protocol's Swift SDK (stdio transport; about 30 s of a clean build here).
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", exact: "0.12.1"),
        // SHA-1 for git blob ids of files outside a git work tree (the incremental file cache).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        // Traces: the Tracer API (already built for Hummingbird) and W3C trace context ids; the OTLP/HTTP
        // exporter is Cortex's own (docs/tracing.md says why not swift-otel).
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context.git", exact: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CSpawn",
            path: "Sources/CSpawn"
        ),
        .systemLibrary(
            name: "CMalloc",
            path: "Sources/CMalloc"
        ),
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "CortexCore",
            dependencies: [
                "CHiredis",
                "CCurl",
                "CSpawn",
                "CMalloc",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
            ]
        ),
        .target(
            name: "CortexOrchestration",
            dependencies: ["CortexCore", "CortexCatalog", "CortexKubernetes", "CortexSecurity", "CortexCICD", "CortexMonitoring", "CortexTestRunner",
                           .product(name: "Crypto", package: "swift-crypto"), .product(name: "Tracing", package: "swift-distributed-tracing")]
        ),
        .target(
            name: "CortexMonitoring",
            dependencies: ["CortexCore"]
        ),
        .target(
            name: "CortexTestRunner",
            dependencies: []
        ),
        .target(
            name: "CortexCICD",
            dependencies: ["CortexCore", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "CortexSecurity",
            dependencies: ["CortexCore", "CZlib", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "CortexKubernetes",
            dependencies: ["CortexCore", "CortexCatalog", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "CortexCatalog",
            dependencies: ["CortexCore"]
        ),
        .target(
            name: "CatalogServer",
            dependencies: [
                "CortexCore",
                "CortexCatalog",
                .product(name: "GraphQL", package: "GraphQL"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ]
        ),
        .executableTarget(
            name: "catalog-api",
            dependencies: ["CortexCore", "CatalogServer"],
            path: "Sources/Executables/catalog-api"
        ),
        .target(
            name: "CortexControl",
            dependencies: ["CortexCore", "CortexOrchestration", "CortexCatalog", "CortexSecurity", "CSpawn"]
        ),
        .executableTarget(
            name: "cortexctl",
            dependencies: [
                "CortexControl",
                "CortexCICD",
                "CortexMonitoring",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Executables/cortexctl"
        ),
        .executableTarget(
            name: "cortex-lab",
            dependencies: [
                "CortexControl",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/Executables/cortex-lab"
        ),
        // Cortex's tools and reports over MCP: the library holds them, cortex-mcp serves them on stdio.
        .target(
            name: "CortexMCP",
            dependencies: ["CortexControl", "CortexCatalog", "CortexOrchestration", .product(name: "MCP", package: "swift-sdk"),
                           .product(name: "Hummingbird", package: "hummingbird")]
        ),
        .executableTarget(
            name: "cortex-mcp",
            dependencies: ["CortexMCP", "CortexControl", "CortexCatalog", .product(name: "MCP", package: "swift-sdk")],
            path: "Sources/Executables/cortex-mcp"
        ),
        .testTarget(
            name: "CortexCoreTests",
            dependencies: ["CortexCore", "CortexOrchestration", "CortexControl", "CortexCatalog", "CatalogServer", "CortexSecurity", "CortexCICD", "CortexMonitoring", "CortexTestRunner", .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(
            name: "CortexIntegrationTests",
            dependencies: ["CortexCore", "CortexOrchestration", "CortexControl", "CortexCatalog", "CatalogServer", "CortexKubernetes",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Tracing", package: "swift-distributed-tracing")]
        ),
    ] + daemons.map(daemon)
)
