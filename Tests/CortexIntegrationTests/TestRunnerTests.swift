import CortexControl
import CortexCore
import CortexOrchestration
import CortexTestRunner
import Foundation
import Testing

/// Small repositories whose suites really run: Python (pytest + coverage.py), Swift (swift test with
/// llvm-cov) and Go (go test -cover); real coverage files from those tools in every format read.
@Suite(.serialized) struct TestRunnerTests {
    static func write(_ files: [String: String], git: Bool = true) throws -> URL {
        let root = try temporaryDirectory("testrepo")
        try writeFiles(files, under: root)
        if git {
            for args in [["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "initial"]] { _ = try SecurityMasterTests.git(args, in: root) }
        }
        return root
    }

    /// PATH with the test Python (pytest, coverage) first, then the machine's (swift, go, git).
    static var path: String {
        let python = (try? CatalogAPITests.python(SecurityMasterTests.root)).map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
        return ([python].compactMap { $0 } + [ProcessInfo.processInfo.environment["PATH"] ?? "", "/usr/lib/go/bin", NSHomeDirectory() + "/.cargo/bin", "/usr/bin", "/bin"]).joined(separator: ":")
    }

    static let python: [String: String] = [
        "calc.py": """
            def add(a, b):
                return a + b


            def div(a, b):
                return a / b


            def unused(x):
                if x > 10:
                    return "big"
                return "small"
            """,
        "tests/test_calc.py": """
            import os

            from calc import add, div


            def test_add():
                assert add(2, 3) == 5


            def test_div_by_zero():
                assert div(1, 0) == 0


            def test_flaky():
                # Fails the first time it runs in this checkout, passes after: what a race looks like from outside.
                marker = os.path.join(os.path.dirname(__file__), ".ran-once")
                if not os.path.exists(marker):
                    open(marker, "w").close()
                    assert False, "first run"
            """,
        "pytest.ini": "[pytest]\npythonpath = .\n",
    ]

    @Test func pythonSuiteRunsWithCoverageAndARerun() throws {
        let repo = try Self.write(Self.python)
        let runner = TestRunner(timeout: 120, path: Self.path, workDirectory: try temporaryDirectory("runs"))
        let result = try runner.run(repository: repo)
        #expect(result.frameworks == [.pytest])
        let run = try #require(result.runs.first)
        #expect(run.passed == 1 && run.failed == 2, "\(run.tests) \(run.outputTail)")
        #expect(run.flaky == ["tests.test_calc.test_flaky"], "\(run.flaky) \(run.notes)")
        #expect(run.tests.first { $0.name.hasSuffix("test_div_by_zero") }?.message?.contains("ZeroDivisionError") == true)
        #expect(run.coverageSource == "coverage.py JSON")
        let calc = try #require(run.coverage.first { $0.file == "calc.py" })
        #expect(calc.total == 8 && calc.covered == 5, "\(calc)")  // unused()'s three statements never run
        #expect(run.command.first == "python3" && !run.command.contains("sh"))
        // The copy, not the repository, was written to.
        #expect(!FileManager.default.fileExists(atPath: repo.appendingPathComponent("tests/.ran-once").path))
        #expect(runner.lastChange(of: "calc.py", in: result.copy) != nil)
    }

    @Test func aTimeoutStopsTheWholeProcessGroup() throws {
        let runner = TestRunner(timeout: 1, path: Self.path, workDirectory: try temporaryDirectory("timeout"))
        let started = Date()
        // The shell's child sleep is in the same group: both are stopped.
        let r = try runner.execute(["sh", "-c", "sleep 30 & sleep 30; echo never"], in: FileManager.default.temporaryDirectory, timeout: 1)
        #expect(r.timedOut && Date().timeIntervalSince(started) < 25 && !r.output.contains("never"))  // not the 30 s sleep
        let failing = try runner.execute(["sh", "-c", "exit 3"], in: FileManager.default.temporaryDirectory, timeout: 10)
        #expect(failing.status == 3 && !failing.timedOut)
    }

    @Test func coverageFormatsFromTheRealTools() throws {
        // coverage.py writes Cobertura XML and JSON; Go writes its profile; llvm-cov writes lcov and JSON (below, for Swift).
        let repo = try Self.write(Self.python, git: false)
        let runner = TestRunner(timeout: 120, path: Self.path, workDirectory: try temporaryDirectory("cov"))
        _ = try runner.execute(["python3", "-m", "coverage", "run", "-m", "pytest", "-q"], in: repo, timeout: 120)
        #expect(try runner.execute(["python3", "-m", "coverage", "xml", "-o", "coverage.xml"], in: repo, timeout: 60).status == 0)
        let cobertura = try CoverageReport.parse(file: repo.appendingPathComponent("coverage.xml"))
        #expect(cobertura.first { $0.file == "calc.py" }.map { ($0.covered, $0.total) }.map { $0 == (5, 8) } == true, "\(cobertura)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/go") || FileManager.default.isExecutableFile(atPath: "/usr/lib/go/bin/go"), "go is not installed"))
    func goSuiteRunsWithItsProfile() throws {
        let repo = try Self.write([
            "go.mod": "module example.com/calc\n\ngo 1.19\n",
            "calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n\nfunc Sub(a, b int) int {\n\treturn a - b\n}\n",
            "calc_test.go": "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal(\"add\")\n\t}\n}\n\nfunc TestBroken(t *testing.T) {\n\tt.Fatal(\"always fails\")\n}\n",
        ])
        let runner = TestRunner(timeout: 300, path: Self.path, workDirectory: try temporaryDirectory("go-runs"))
        let run = try #require(try runner.run(repository: repo).runs.first)
        #expect(run.framework == .go && run.passed == 1 && run.failed == 1, "\(run.tests) \(run.notes) \(run.outputTail)")
        #expect(run.coverageSource == "Go cover profile")
        let calc = try #require(run.coverage.first { $0.file.hasSuffix("calc.go") })
        #expect(calc.covered == 1 && calc.total == 2, "\(run.coverage)")  // Add's statement ran, Sub's did not
    }

    /// A std-only crate: `cargo test` with rustc's source-based coverage, exported with llvm-cov.
    @Test func cargoSuiteRunsWithSourceCoverage() throws {
        let repo = try Self.write([
            "Cargo.toml": "[package]\nname = \"calc\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
            "src/lib.rs": """
                pub fn add(a: i32, b: i32) -> i32 { a + b }

                pub fn sub(a: i32, b: i32) -> i32 {
                    a - b
                }

                #[cfg(test)]
                mod tests {
                    use super::*;
                    #[test]
                    fn adds() { assert_eq!(add(2, 3), 5); }
                    #[test]
                    fn broken() { assert_eq!(add(2, 2), 5, "two and two"); }
                    #[test]
                    #[ignore]
                    fn later() {}
                }
                """,
        ])
        let runner = TestRunner(timeout: 600, path: Self.path, workDirectory: try temporaryDirectory("cargo-runs"))
        let result = try runner.run(repository: repo)
        #expect(result.frameworks == [.cargo])
        let run = try #require(result.runs.first)
        #expect(run.notRun == nil && run.exitCode == 101, "\(run.notRun ?? "") \(run.outputTail)")
        #expect(run.passed == 1 && run.failed == 1 && run.skipped == 1, "\(run.tests) \(run.notes) \(run.outputTail)")
        #expect(Set(run.tests.map(\.name)) == ["tests::adds", "tests::broken", "tests::later"])
        #expect(run.coverageSource?.hasPrefix("llvm-cov export JSON") == true, "\(run.notes)")
        let lib = try #require(run.coverage.first { $0.file == "src/lib.rs" }, "\(run.coverage) \(run.notes)")
        // add and the tests ran; sub's body did not.
        #expect(lib.covered > 0 && lib.covered < lib.total, "\(lib)")
        #expect(run.coverage.allSatisfy { !$0.file.hasPrefix("/") }, "only the crate's own files: \(run.coverage)")
        print("cargo: `\(run.command.joined(separator: " "))` exit \(run.exitCode ?? -1): \(run.passed) passed, \(run.failed) failed, \(run.skipped) skipped; coverage \(run.coverage.map { "\($0.file) \($0.covered)/\($0.total)" }) (\(run.coverageSource ?? "-"))")
    }

    /// A package whose `npm test` is node's built-in runner: per-test JUnit through NODE_OPTIONS, line
    /// coverage from V8's own coverage files.
    @Test func npmSuiteRunsWithNodeTestRunnerAndV8Coverage() throws {
        let repo = try Self.write([
            "package.json": #"{"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}"#,
            "calc.js": """
                function add(a, b) { return a + b; }
                function sub(a, b) {
                  return a - b;
                }

                // Exported for the tests.
                module.exports = { add, sub };
                """,
            "test/calc.test.js": """
                const test = require('node:test');
                const assert = require('node:assert');
                const { add } = require('../calc');
                test('adds', () => { assert.strictEqual(add(2, 3), 5); });
                test('broken', () => { assert.strictEqual(add(2, 2), 5); });
                test('later', { skip: 'not yet' }, () => {});
                """,
        ])
        let runner = TestRunner(timeout: 300, path: Self.path, workDirectory: try temporaryDirectory("npm-runs"))
        let result = try runner.run(repository: repo)
        #expect(result.frameworks == [.npm])
        let run = try #require(result.runs.first)
        #expect(run.notRun == nil && run.exitCode != 0, "\(run.outputTail)")
        #expect(run.passed == 1 && run.failed == 1 && run.skipped == 1, "\(run.tests) \(run.notes) \(run.outputTail)")
        #expect(run.tests.first { $0.outcome == .failed }?.message?.contains("4 !== 5") == true, "\(run.tests)")
        #expect(run.coverageSource == "V8 coverage (NODE_V8_COVERAGE)", "\(run.notes)")
        // calc.js: 5 counted lines (the blank line and the comment do not count); add's line and the
        // export ran, sub's three lines did not. The test file is not counted.
        #expect(run.coverage == [FileCoverage(file: "calc.js", covered: 2, total: 5)], "\(run.coverage)")
        print("npm: `\(run.command.joined(separator: " "))` exit \(run.exitCode ?? -1): \(run.passed) passed, \(run.failed) failed, \(run.skipped) skipped; coverage \(run.coverage.map { "\($0.file) \($0.covered)/\($0.total)" }) (\(run.coverageSource ?? "-"))")
    }

    /// A Maven project. With no network to Maven Central and an empty local repository Maven cannot
    /// fetch its plugins: the run says NOT RUN with Maven's reason (never "0 failed"); where Maven can
    /// resolve them, the suite's one test passes.
    @Test func mavenSuiteRunsOrSaysWhyNot() throws {
        let repo = try Self.write([
            "pom.xml": """
                <project xmlns="http://maven.apache.org/POM/4.0.0">
                  <modelVersion>4.0.0</modelVersion>
                  <groupId>example</groupId><artifactId>calc</artifactId><version>1.0</version>
                  <properties><maven.compiler.source>17</maven.compiler.source><maven.compiler.target>17</maven.compiler.target></properties>
                  <dependencies><dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13.2</version><scope>test</scope></dependency></dependencies>
                </project>
                """,
            "src/main/java/calc/Calc.java": "package calc;\npublic class Calc { public static int add(int a, int b) { return a + b; } }\n",
            "src/test/java/calc/CalcTest.java": "package calc;\nimport org.junit.Test;\nimport static org.junit.Assert.*;\npublic class CalcTest { @Test public void adds() { assertEquals(5, Calc.add(2, 3)); } }\n",
        ])
        let runner = TestRunner(timeout: 300, path: Self.path, workDirectory: try temporaryDirectory("maven-runs"))
        let result = try runner.run(repository: repo)
        #expect(result.frameworks == [.maven])
        let run = try #require(result.runs.first)
        print("maven: `\(run.command.joined(separator: " "))` exit \(run.exitCode ?? -1): " + (run.notRun.map { "NOT RUN: \($0)" } ?? "\(run.passed) passed"))
        if let reason = run.notRun {
            #expect(reason.hasPrefix("Maven could not resolve what the build needs"), "\(reason)")
            #expect(reason.contains("maven-resources-plugin") || reason.contains("Could not transfer") || reason.contains("could not be resolved"), "\(reason)")
            #expect(run.passed == 0 && run.failed == 0)
            let survey = TestSurvey().summarize([["kind": "test-run", "run": JSONValue.of(run)]])
            #expect(survey.headline.contains("maven NOT RUN"), "\(survey.headline)")
            #expect(survey.markdown.contains("| maven | `mvn -B -q test` | NOT RUN |"), "\(survey.markdown)")
        } else {
            #expect(run.passed == 1 && run.failed == 0, "\(run.tests) \(run.outputTail)")
        }
    }

    @Test func swiftSuiteRunsWithLLVMCoverage() throws {
        let repo = try Self.write([
            "Package.swift": """
                // swift-tools-version:5.9
                import PackageDescription
                let package = Package(name: "Calc", targets: [.target(name: "Calc"), .testTarget(name: "CalcTests", dependencies: ["Calc"])])
                """,
            "Sources/Calc/Calc.swift": "public func add(_ a: Int, _ b: Int) -> Int { a + b }\n\npublic func twice(_ a: Int) -> Int {\n    let b = a * 2\n    return b\n}\n",
            "Tests/CalcTests/CalcTests.swift": """
                import XCTest
                @testable import Calc

                final class CalcTests: XCTestCase {
                    func testAdd() { XCTAssertEqual(add(2, 3), 5) }
                    func testWrong() { XCTAssertEqual(add(2, 2), 5, "two and two") }
                }
                """,
        ])
        let runner = TestRunner(timeout: 600, path: Self.path, workDirectory: try temporaryDirectory("swift-runs"))
        let result = try runner.run(repository: repo)
        let run = try #require(result.runs.first)
        #expect(run.framework == .swift && run.passed == 1 && run.failed == 1, "\(run.tests) \(run.notes) \(run.outputTail)")
        #expect(run.tests.first { $0.outcome == .failed }?.name.hasSuffix("testWrong") == true)
        #expect(run.flaky.isEmpty)
        #expect(run.coverageSource == "llvm-cov export JSON", "\(run.notes)")
        let calc = try #require(run.coverage.first { $0.file == "Sources/Calc/Calc.swift" }, "\(run.coverage)")
        #expect(calc.covered < calc.total && calc.covered > 0, "\(calc)")  // twice() never ran

        // The same profile as lcov, from the toolchain's llvm-cov: the lcov reader agrees with the JSON one.
        let results = result.copy.appendingPathComponent(".cortex-test-results")
        let bin = result.copy.appendingPathComponent(".build/debug")
        let bundle = try #require(try FileManager.default.contentsOfDirectory(atPath: bin.path).first { $0.hasSuffix(".xctest") })
        let tools = try #require(runner.toolchainDirectory())
        let lcov = try runner.execute([tools.appendingPathComponent("llvm-cov").path, "export", "-format=lcov", "-instr-profile",
                                       results.appendingPathComponent("merged.profdata").path, bin.appendingPathComponent(bundle).path], in: result.copy, timeout: 120)
        #expect(lcov.status == 0, "\(lcov.output.prefix(500))")
        let fromLcov = try CoverageReport.lcov(lcov.output).first { $0.file.hasSuffix("Sources/Calc/Calc.swift") }
        #expect(fromLcov?.covered == calc.covered && fromLcov?.total == calc.total, "\(String(describing: fromLcov)) vs \(calc)")
    }

    /// A whole run: the testing master runs the suite only for the target whose run allows it.
    @Test func theTestingMasterRunsAnAllowedTargetOnly() async throws {
        let allowed = try Self.write(Self.python)
        let notAllowed = try Self.write(Self.python)
        let work = try temporaryDirectory("cortex-testing")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["PATH": Self.path, "CORTEX_TEST_TIMEOUT": "120"])
        try suite.startAll(workers: 2)
        let client = RunClient(bus: OrchestrationRunTests.bus(suite))
        let request = RunRequest(goal: "testing", targets: [allowed.path, notAllowed.path], requestedBy: "test", allowTestExecution: [allowed.path])
        let state = try await client.follow(runID: try await client.submit(request), timeout: .seconds(120)) { _ in }
        await suite.stop()
        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let ran = try String(contentsOfFile: dir + "/masters/testing-0.md", encoding: .utf8)
        let skipped = try String(contentsOfFile: dir + "/masters/testing-1.md", encoding: .utf8)
        #expect(ran.contains("| pytest | `python3 -m coverage run -m pytest -q --junitxml="), "\(ran)")
        #expect(ran.contains("| tests.test_calc.test_flaky | yes: passed on the rerun |"), "\(ran)")
        #expect(ran.contains("| calc.py | 62 % | 8 | changed today"), "\(ran)")
        #expect(skipped.contains("Not run: running a target's tests executes its code, so it is opt-in per target"), "\(skipped)")
        let summary = try String(contentsOfFile: dir + "/summary.md", encoding: .utf8)
        #expect(summary.contains("run: 1 passed, 2 failed (1 flaky), line coverage"), "\(summary)")
    }
}
