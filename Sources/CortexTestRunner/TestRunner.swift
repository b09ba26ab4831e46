import Foundation

/// The test frameworks a repository uses, found from its build files.
public enum TestFramework: String, Sendable, Codable, CaseIterable {
    case swift, pytest, go, cargo, npm, maven, gradle
}

/// What running one framework's suite produced.
public struct FrameworkRun: Sendable, Codable, Equatable {
    public var framework: TestFramework
    /// The command, as run (no shell).
    public var command: [String]
    public var exitCode: Int32?
    public var timedOut = false
    public var seconds: Double = 0
    public var tests: [TestCaseResult] = []
    /// Tests that failed, then passed when run again.
    public var flaky: [String] = []
    public var coverage: [FileCoverage] = []
    /// Which report the coverage came from.
    public var coverageSource: String?
    /// Counts from the runner's own summary when it writes no per-test report.
    public var summaryCounts: [String: Int] = [:]
    public var notes: [String] = []
    /// Why the suite did not run at all (e.g. Maven could not resolve its plugins offline): then no
    /// count of this run means anything, and reports say NOT RUN instead of passed or failed.
    public var notRun: String?
    /// The last lines of the runner's output.
    public var outputTail = ""

    public var passed: Int { tests.isEmpty ? summaryCounts["passed"] ?? 0 : tests.filter { $0.outcome == .passed }.count }
    public var failed: Int { tests.isEmpty ? summaryCounts["failed"] ?? 0 : tests.filter { $0.outcome == .failed }.count }
    public var skipped: Int { tests.filter { $0.outcome == .skipped }.count }
}

/// Runs a repository's test suites in a copy of it, each in a subprocess with a timeout and a clean
/// environment (PATH, a temporary HOME, nothing of Cortex's: the repository's code is untrusted), its
/// arguments passed as they are — never through a shell. Results come from JUnit XML where the runner
/// writes it, else from its own output; coverage from the report each runner can write; failed tests
/// are run once more to tell flaky ones apart.
public struct TestRunner: Sendable {
    public var timeout: TimeInterval
    /// PATH for the test processes (where the toolchains are).
    public var path: String
    public var workDirectory: URL

    public init(timeout: TimeInterval = 900, path: String = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", workDirectory: URL) {
        self.timeout = timeout
        self.path = path
        self.workDirectory = workDirectory
    }

    public static func detect(root: URL) -> [TestFramework] {
        let fm = FileManager.default
        func has(_ p: String) -> Bool { fm.fileExists(atPath: root.appendingPathComponent(p).path) }
        var out: [TestFramework] = []
        if has("Package.swift") { out.append(.swift) }
        let py = has("pytest.ini") || has("conftest.py") || has("tests/conftest.py")
            || ((try? String(contentsOf: root.appendingPathComponent("pyproject.toml"), encoding: .utf8))?.contains("[tool.pytest") ?? false)
            || ((try? fm.contentsOfDirectory(atPath: root.appendingPathComponent("tests").path)) ?? []).contains { $0.hasPrefix("test_") && $0.hasSuffix(".py") }
        if py { out.append(.pytest) }
        if has("go.mod") { out.append(.go) }
        if has("Cargo.toml") { out.append(.cargo) }
        if let data = fm.contents(atPath: root.appendingPathComponent("package.json").path),
           let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], (json["scripts"] as? [String: Any])?["test"] != nil { out.append(.npm) }
        if has("pom.xml") { out.append(.maven) }
        if has("build.gradle") || has("build.gradle.kts") { out.append(.gradle) }
        return out
    }

    /// Copies the repository (a clone when it is a git repository: a clean tree with its history),
    /// runs every detected framework, and removes the copy.
    public func run(repository: URL) throws -> (frameworks: [TestFramework], runs: [FrameworkRun], copy: URL) {
        let copy = workDirectory.appendingPathComponent("tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: repository.appendingPathComponent(".git").path) {
            let clone = try execute(["git", "clone", "--quiet", "--no-hardlinks", "--", repository.path, copy.path], in: workDirectory, timeout: 300)
            guard clone.status == 0 else { throw ReportParseError(description: "git clone of \(repository.path) failed: \(clone.output.suffix(300))") }
        } else {
            try FileManager.default.copyItem(at: repository, to: copy)
        }
        let frameworks = Self.detect(root: copy)
        var runs: [FrameworkRun] = []
        for f in frameworks { runs.append(runFramework(f, root: copy)) }
        return (frameworks, runs, copy)
    }

    // MARK: - Per framework

    /// Runs one framework's suite in `root` (a copy the caller owns).
    public func runFramework(_ framework: TestFramework, root: URL) -> FrameworkRun {
        let out = root.appendingPathComponent(".cortex-test-results")
        try? FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var run = FrameworkRun(framework: framework, command: [])
        switch framework {
        case .swift:
            // --parallel: SwiftPM writes XCTest's xunit file only in parallel mode (swift-testing's beside it).
            run.command = ["swift", "test", "--parallel", "--enable-code-coverage", "--xunit-output", out.appendingPathComponent("swift.xml").path]
            execute(&run, root: root)
            run.tests = junitResults(in: out)
            swiftCoverage(&run, root: root, out: out)
            rerunFailures(&run, root: root) { names in ["swift", "test", "--skip-build", "--parallel", "--filter", names.map { NSRegularExpression.escapedPattern(for: $0.split(separator: ".").last.map(String.init) ?? $0) }.joined(separator: "|"),
                                                        "--xunit-output", out.appendingPathComponent("rerun.xml").path] }
        case .pytest:
            let hasCoverage = (try? execute(["python3", "-c", "import coverage, pytest"], in: root, timeout: 60).status) == 0
            run.command = hasCoverage
                ? ["python3", "-m", "coverage", "run", "-m", "pytest", "-q", "--junitxml=\(out.appendingPathComponent("pytest.xml").path)"]
                : ["python3", "-m", "pytest", "-q", "--junitxml=\(out.appendingPathComponent("pytest.xml").path)"]
            if !hasCoverage { run.notes.append("coverage.py is not installed for this Python: no coverage") }
            execute(&run, root: root)
            run.tests = junitResults(in: out)
            if hasCoverage, (try? execute(["python3", "-m", "coverage", "json", "-o", out.appendingPathComponent("coverage.json").path], in: root, timeout: 120).status) == 0 {
                coverage(&run, from: out.appendingPathComponent("coverage.json"), root: root, source: "coverage.py JSON")
            }
            rerunFailures(&run, root: root) { names in
                ["python3", "-m", "pytest", "-q", "--junitxml=\(out.appendingPathComponent("rerun.xml").path)", "-k",
                 names.map { $0.split(separator: ".").last.map(String.init) ?? $0 }.joined(separator: " or ")]
            }
        case .go:
            run.command = ["go", "test", "-json", "-coverprofile=\(out.appendingPathComponent("cover.out").path)", "./..."]
            execute(&run, root: root)
            run.tests = goResults(run.outputTail)
            coverage(&run, from: out.appendingPathComponent("cover.out"), root: root, source: "Go cover profile")
        case .cargo:
            // Source-based coverage (rustc's -C instrument-coverage): profiles merged and exported with
            // llvm-profdata/llvm-cov, as cargo-llvm-cov does.
            let profiles = out.appendingPathComponent("cargo-profiles")
            run.command = ["cargo", "test"]
            execute(&run, root: root, environment: ["RUSTFLAGS": "-C instrument-coverage", "LLVM_PROFILE_FILE": profiles.path + "/%p-%m.profraw"])
            run.tests = cargoResults(run.outputTail)
            cargoCoverage(&run, root: root, profiles: profiles, out: out)
        case .npm:
            // node's built-in runner (`node --test`) writes JUnit when asked through NODE_OPTIONS; every
            // node process writes V8's own coverage to NODE_V8_COVERAGE (c8 reads the same files).
            let v8 = out.appendingPathComponent("v8-coverage")
            var environment = ["NODE_V8_COVERAGE": v8.path]
            if Self.usesNodeTestRunner(root) {
                environment["NODE_OPTIONS"] = "--test-reporter=tap --test-reporter-destination=stdout --test-reporter=junit --test-reporter-destination=\(out.appendingPathComponent("node.xml").path)"
            }
            run.command = ["npm", "test", "--silent"]
            execute(&run, root: root, environment: environment)
            run.tests = junitResults(in: out)
            if run.tests.isEmpty { run.summaryCounts = Self.summaryCounts(run.outputTail) }
            do {
                run.coverage = try CoverageReport.v8(directory: v8, root: root)
                if !run.coverage.isEmpty { run.coverageSource = "V8 coverage (NODE_V8_COVERAGE)" } else { run.notes.append("V8 coverage holds no file of the repository (outside node_modules and tests)") }
            } catch {
                run.notes.append("V8 coverage unreadable: \(error)")
            }
        case .maven:
            run.command = ["mvn", "-B", "-q", "test"]
            execute(&run, root: root)
            run.tests = junitResults(in: root.appendingPathComponent("target/surefire-reports"))
            if run.tests.isEmpty, run.exitCode != 0, let reason = Self.mavenResolutionFailure(run.outputTail) { run.notRun = reason }
        case .gradle:
            let wrapper = FileManager.default.isExecutableFile(atPath: root.appendingPathComponent("gradlew").path)
            run.command = [wrapper ? "./gradlew" : "gradle", "test", "--console=plain"]
            execute(&run, root: root)
            run.tests = junitResults(in: root.appendingPathComponent("build/test-results/test"))
        }
        if run.tests.isEmpty && run.summaryCounts.isEmpty && !run.timedOut && run.notRun == nil {
            run.notes.append("no per-test report found; the outcome is the exit code \(run.exitCode.map(String.init) ?? "?")")
        }
        run.outputTail = String(run.outputTail.suffix(4000))  // parsed in full above; the report keeps the end
        return run
    }

    /// SwiftPM exports coverage (llvm-cov JSON) only when every test passed; otherwise the raw profiles
    /// are merged and exported here with the toolchain's own llvm-profdata and llvm-cov, as SwiftPM does.
    func swiftCoverage(_ run: inout FrameworkRun, root: URL, out: URL) {
        if let codecov = try? execute(["swift", "test", "--show-codecov-path"], in: root, timeout: 120).output
            .split(separator: "\n").last.map({ String($0).trimmingCharacters(in: .whitespaces) }), FileManager.default.fileExists(atPath: codecov) {
            coverage(&run, from: URL(fileURLWithPath: codecov), root: root, source: "llvm-cov export JSON")
        } else if let bin = try? execute(["swift", "build", "--show-bin-path"], in: root, timeout: 120).output
                    .split(separator: "\n").last.map({ URL(fileURLWithPath: String($0).trimmingCharacters(in: .whitespaces)) }),
                  let tools = toolchainDirectory(),
                  let profiles = try? FileManager.default.contentsOfDirectory(atPath: bin.appendingPathComponent("codecov").path).filter({ $0.hasSuffix(".profraw") }),
                  !profiles.isEmpty,
                  let bundle = try? FileManager.default.contentsOfDirectory(atPath: bin.path).first(where: { $0.hasSuffix(".xctest") }) {
            let merged = out.appendingPathComponent("merged.profdata")
            let merge = try? execute([tools.appendingPathComponent("llvm-profdata").path, "merge", "-sparse", "-o", merged.path]
                                     + profiles.map { bin.appendingPathComponent("codecov").appendingPathComponent($0).path }, in: root, timeout: 120)
            if merge?.status == 0, let export = try? execute([tools.appendingPathComponent("llvm-cov").path, "export", "-summary-only", "-instr-profile", merged.path,
                                                              bin.appendingPathComponent(bundle).path], in: root, timeout: 120), export.status == 0 {
                let json = out.appendingPathComponent("llvm-cov.json")
                try? Data(export.output.utf8).write(to: json)
                coverage(&run, from: json, root: root, source: "llvm-cov export JSON")
            } else {
                run.notes.append("coverage profiles could not be merged and exported with \(tools.path)'s llvm tools")
            }
        }
        run.coverage = run.coverage.filter { !$0.file.hasPrefix(".build/") && !$0.file.hasPrefix("Tests/") && !$0.file.contains("/.build/") }
    }

    /// The directory of the `swift` on PATH (symlinks resolved): its llvm-profdata and llvm-cov match the
    /// compiler's profile format, which the system's LLVM may not.
    public func toolchainDirectory() -> URL? {
        for dir in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(dir)).appendingPathComponent("swift")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.resolvingSymlinksInPath().deletingLastPathComponent() }
        }
        return nil
    }

    /// Whether `npm test` runs node's built-in test runner (`node --test`), whose reporters NODE_OPTIONS selects.
    static func usesNodeTestRunner(_ root: URL) -> Bool {
        guard let data = FileManager.default.contents(atPath: root.appendingPathComponent("package.json").path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let test = (json["scripts"] as? [String: Any])?["test"] as? String else { return false }
        return test.range(of: #"\bnode\b.*--test\b"#, options: .regularExpression) != nil
    }

    /// Maven's "could not resolve" failures (plugins or dependencies neither in the local repository nor
    /// downloadable, e.g. with no network): the suite never ran, so the run is reported NOT RUN with
    /// Maven's own first error line.
    static func mavenResolutionFailure(_ output: String) -> String? {
        let markers = ["could not be resolved", "Could not transfer artifact", "Could not resolve dependencies", "PluginResolutionException", "Non-resolvable"]
        guard let line = output.split(separator: "\n").first(where: { l in l.contains("[ERROR]") && markers.contains { l.contains($0) } }) else { return nil }
        let error = line.replacingOccurrences(of: "\u{1B}\\[[0-9;]*m", with: "", options: .regularExpression)
            .replacingOccurrences(of: "[ERROR] ", with: "").trimmingCharacters(in: .whitespaces)
        return "Maven could not resolve what the build needs (no network to its repositories, and not in the local repository ~/.m2), so no test ran: "
            + String(error.prefix(400))
    }

    /// Line coverage of a cargo run from its raw profiles: merged with llvm-profdata and exported from
    /// the test binaries with llvm-cov (rustup's llvm-tools when installed, else the Swift toolchain's:
    /// Swift 6.3's LLVM reads rustc 1.95's profiles). Only the repository's own files count.
    func cargoCoverage(_ run: inout FrameworkRun, root: URL, profiles: URL, out: URL) {
        let fm = FileManager.default
        let raw = ((try? fm.contentsOfDirectory(atPath: profiles.path)) ?? []).filter { $0.hasSuffix(".profraw") }.map { profiles.appendingPathComponent($0).path }
        guard !raw.isEmpty else { run.notes.append("no coverage: the test binaries wrote no profile (-C instrument-coverage)"); return }
        guard let tools = llvmToolsForRust() ?? toolchainDirectory() else { run.notes.append("no coverage: no llvm-profdata/llvm-cov found (rustup component add llvm-tools)"); return }
        let deps = root.appendingPathComponent("target/debug/deps")
        let binaries = ((try? fm.contentsOfDirectory(atPath: deps.path)) ?? []).filter { !$0.contains(".") }.map { deps.appendingPathComponent($0).path }
            .filter { fm.isExecutableFile(atPath: $0) }.sorted()
        guard let first = binaries.first else { run.notes.append("no coverage: no test binary under target/debug/deps"); return }
        let merged = out.appendingPathComponent("cargo.profdata")
        let json = out.appendingPathComponent("cargo-llvm-cov.json")
        do {
            let merge = try execute([tools.appendingPathComponent("llvm-profdata").path, "merge", "-sparse", "-o", merged.path] + raw, in: root, timeout: 120)
            guard merge.status == 0 else { run.notes.append("no coverage: llvm-profdata merge failed: \(merge.output.suffix(300))"); return }
            let export = try execute([tools.appendingPathComponent("llvm-cov").path, "export", "-summary-only", "-instr-profile", merged.path, first]
                                     + binaries.dropFirst().flatMap { ["-object", $0] }, in: root, timeout: 120)
            guard export.status == 0 else { run.notes.append("no coverage: llvm-cov export failed: \(export.output.suffix(300))"); return }
            try Data(export.output.utf8).write(to: json)
        } catch {
            run.notes.append("no coverage: \(error)")
            return
        }
        coverage(&run, from: json, root: root, source: "llvm-cov export JSON (rustc -C instrument-coverage)")
        run.coverage = run.coverage.filter { !$0.file.hasPrefix("/") && !$0.file.hasPrefix("target/") }
    }

    /// rustup's llvm-tools component for the active toolchain (same LLVM as rustc), when installed.
    func llvmToolsForRust() -> URL? {
        guard let sysroot = try? execute(["rustc", "--print", "sysroot"], in: workDirectory, timeout: 60), sysroot.status == 0,
              let host = try? execute(["rustc", "--print", "host-tuple"], in: workDirectory, timeout: 60), host.status == 0 else { return nil }
        let dir = URL(fileURLWithPath: sysroot.output.trimmingCharacters(in: .whitespacesAndNewlines))
            .appendingPathComponent("lib/rustlib/\(host.output.trimmingCharacters(in: .whitespacesAndNewlines))/bin")
        return FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("llvm-cov").path) ? dir : nil
    }

    /// Runs the failed tests once more: those that pass are flaky.
    func rerunFailures(_ run: inout FrameworkRun, root: URL, command: ([String]) -> [String]) {
        let failed = run.tests.filter { $0.outcome == .failed }.map(\.name)
        guard !failed.isEmpty, !run.timedOut else { return }
        let out = root.appendingPathComponent(".cortex-test-results")
        try? FileManager.default.removeItem(at: out.appendingPathComponent("rerun.xml"))
        _ = try? execute(command(failed), in: root, timeout: timeout)
        let again = (try? String(contentsOf: out.appendingPathComponent("rerun.xml"), encoding: .utf8)).flatMap { try? JUnitXML.parse($0) } ?? []
        let passedNow = Set(again.filter { $0.outcome == .passed }.map { $0.name.split(separator: ".").last.map(String.init) ?? $0.name })
        run.flaky = failed.filter { passedNow.contains($0.split(separator: ".").last.map(String.init) ?? $0) }
        run.notes.append("\(failed.count) failed test(s) run again: \(run.flaky.count) passed (flaky)")
    }

    func junitResults(in dir: URL) -> [TestCaseResult] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".xml") && !$0.hasPrefix("rerun") }.sorted()
        return files.flatMap { (try? String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)).flatMap { try? JUnitXML.parse($0) } ?? [] }
    }

    func coverage(_ run: inout FrameworkRun, from file: URL, root: URL, source: String) {
        guard FileManager.default.fileExists(atPath: file.path) else { run.notes.append("no coverage report (\(source)) was written"); return }
        do {
            let rootPath = root.resolvingSymlinksInPath().path + "/"
            run.coverage = try CoverageReport.parse(file: file).map { c in
                var c = c
                // Paths relative to the repository (reports may hold absolute paths of the copy).
                for prefix in [rootPath, root.path + "/"] where c.file.hasPrefix(prefix) { c.file = String(c.file.dropFirst(prefix.count)) }
                return c
            }
            run.coverageSource = source
        } catch {
            run.notes.append("coverage report unreadable: \(error)")
        }
    }

    /// `go test -json` events: the last pass/fail/skip per test.
    func goResults(_ output: String) -> [TestCaseResult] {
        var out: [String: TestCaseResult] = [:]
        for line in output.split(separator: "\n") {
            guard let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let test = json["Test"] as? String, let action = json["Action"] as? String, let package = json["Package"] as? String else { continue }
            let outcome: TestCaseResult.Outcome? = ["pass": .passed, "fail": .failed, "skip": .skipped][action]
            if let outcome { out["\(package).\(test)"] = TestCaseResult(name: "\(package).\(test)", outcome: outcome, seconds: json["Elapsed"] as? Double) }
        }
        return out.values.sorted { $0.name < $1.name }
    }

    /// `cargo test` lines: `test path::name ... ok|FAILED|ignored`.
    func cargoResults(_ output: String) -> [TestCaseResult] {
        output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("test "), let dots = line.range(of: " ... ") else { return nil }
            let name = String(line[line.index(line.startIndex, offsetBy: 5)..<dots.lowerBound])
            switch line[dots.upperBound...].trimmingCharacters(in: .whitespaces) {
            case "ok": return TestCaseResult(name: name, outcome: .passed)
            case "FAILED": return TestCaseResult(name: name, outcome: .failed)
            case "ignored": return TestCaseResult(name: name, outcome: .skipped)
            default: return nil
            }
        }
    }

    /// Jest (`Tests: 1 failed, 12 passed`), TAP (`# pass 12` / `# fail 1`) and mocha (`12 passing`, `1 failing`) summaries.
    static func summaryCounts(_ output: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        let patterns: [(String, String)] = [(#"Tests:.*?(\d+) failed"#, "failed"), (#"Tests:.*?(\d+) passed"#, "passed"), (#"# pass\s+(\d+)"#, "passed"),
                                            (#"# fail\s+(\d+)"#, "failed"), (#"(\d+) passing"#, "passed"), (#"(\d+) failing"#, "failed")]
        for (pattern, key) in patterns {
            let regex = try! NSRegularExpression(pattern: pattern)
            if let m = regex.firstMatch(in: output, range: NSRange(output.startIndex..., in: output)), let n = Int((output as NSString).substring(with: m.range(at: 1))) {
                counts[key] = max(counts[key] ?? 0, n)
            }
        }
        return counts
    }

    // MARK: - Processes

    func execute(_ run: inout FrameworkRun, root: URL, environment: [String: String] = [:]) {
        let started = Date()
        do {
            let r = try execute(run.command, in: root, timeout: timeout, environment: environment)
            run.exitCode = r.status
            run.timedOut = r.timedOut
            run.outputTail = r.output
            if r.timedOut { run.notes.append("stopped after the \(Int(timeout)) s timeout") }
        } catch {
            run.notRun = "could not start \(run.command.first ?? ""): \(error)"
        }
        run.seconds = Date().timeIntervalSince(started)
    }

    /// Runs `arguments` (arguments[0] looked up on `path`) in its own process group, so a timeout stops
    /// the whole tree; output (stdout and stderr) through a file, returned in full for parsing.
    /// `environment` adds to the clean one (coverage switches, reporters).
    @discardableResult
    public func execute(_ arguments: [String], in directory: URL, timeout: TimeInterval, environment: [String: String] = [:]) throws -> (status: Int32, output: String, timedOut: Bool) {
        let home = workDirectory.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let log = workDirectory.appendingPathComponent("output-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = Process()
        // env finds the program on PATH. Foundation starts the child in a process group of its own
        // (its pid), so a timeout stops the whole tree with kill(-pid).
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--"] + arguments
        process.currentDirectoryURL = directory
        var env = ["PATH": path, "HOME": home.path, "LANG": "C.UTF-8", "TMPDIR": workDirectory.path, "CI": "true", "NO_COLOR": "1",
                   "PYTHONDONTWRITEBYTECODE": "1"]
        // rustup's cargo/rustc are proxies that find their toolchain under RUSTUP_HOME (default ~/.rustup):
        // with the temporary HOME they would find none.
        if let rustup = Self.rustupHome { env["RUSTUP_HOME"] = rustup }
        env.merge(environment) { $1 }
        process.environment = env
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        var timedOut = false
        if process.isRunning {
            timedOut = true
            kill(-process.processIdentifier, SIGTERM)
            usleep(500_000)
            if process.isRunning { kill(-process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output, timedOut)
    }

    /// The rustup home of the user running Cortex, when there is one.
    static let rustupHome: String? = {
        let env = ProcessInfo.processInfo.environment
        if let home = env["RUSTUP_HOME"] { return home }
        let dir = (env["HOME"] ?? NSHomeDirectory()) + "/.rustup"
        return FileManager.default.fileExists(atPath: dir) ? dir : nil
    }()

    /// When each file last changed (git log), for the least-covered list.
    public func lastChange(of file: String, in root: URL) -> Date? {
        guard let r = try? execute(["git", "log", "-1", "--format=%ct", "--", file], in: root, timeout: 30), r.status == 0,
              let seconds = Double(r.output.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }
}
