// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for Cortex's parsers, kept out of the root package: a fuzz target has no `main`
/// (libFuzzer supplies it), so the root's `swift build` / `swift test` never see this package.
/// Build and run it through `scripts/fuzz` (it passes `-sanitize=fuzzer,address` to every module).
let package = Package(
    name: "cortex-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "cortex", path: ".."),
    ],
    targets: [
        // libFuzzer's driver entry point, declared for Swift.
        .target(name: "CLibFuzzer"),
        // One executable for every target, chosen with CORTEX_FUZZ_TARGET: one link instead of nine.
        .executableTarget(
            name: "cortex-fuzz",
            dependencies: [
                "CLibFuzzer",
                .product(name: "CortexCore", package: "cortex"),
                .product(name: "CortexParsers", package: "cortex"),
            ]
        ),
    ]
)
