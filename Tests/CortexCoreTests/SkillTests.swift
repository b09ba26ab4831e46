import CortexCore
@testable import CortexOrchestration
import Foundation
import Testing

/// A small repository with known contents, written fresh for each test.
func makeFixtureRepository() throws -> URL {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-fixture-\(UUID().uuidString)")
    let files: [String: String] = [
        "README.md": "# Shop\n\nA shop.\n\n## Running\n",
        "docs/ops.md": "# Operations\n",
        "Package.swift": "// swift-tools-version:6.0\n",
        "Sources/Shop/Cart.swift": "struct Cart {}\nlet a = 1\nlet b = 2\n",
        "Sources/Shop/Price.swift": "struct Price {}\n",
        "Tests/ShopTests/CartTests.swift": "import Testing\n@Test func adds() {}\n@Test func removes() {}\n",
        "tools/test_report.py": "def test_one():\n    pass\n\ndef test_two():\n    pass\n\ndef helper():\n    pass\n",
        "web/package.json": "{\"name\":\"web\"}\n",
        "web/app.js": "it('is not in a test file')\ntest('nor is this')\n",
        "web/package-lock.json": "{\"lockfileVersion\":3}\n",
        ".github/workflows/ci.yml": "name: ci\non: [push]\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: swift build\n  lint:\n    runs-on: ubuntu-latest\n    steps:\n      - run: swiftlint\n",
        "deploy/alerts.yml": "groups:\n  - name: shop\n    rules:\n      - alert: ShopDown\n        expr: up == 0\n      - alert: ShopSlow\n        expr: latency > 1\n",
        "logo.png": "\u{0}\u{1}binary",
    ]
    for (path, text) in files {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }
    return root
}

/// Runs a skill the way master and workers do: sharded examination, then one summary.
func runSkill(_ name: SkillName, on root: URL, shards: Int = 3) throws -> SkillSummary {
    let files = try RepositoryFiles.list(root: root)
    var records: [SkillRecord] = []
    for shard in 0..<shards {
        records += try name.fileSkill!.examine(root: root, files: files.filter { RepositoryFiles.shard(of: $0, shards: shards) == shard }) { _ in }
    }
    return name.skill.summarize(records)
}

@Suite struct SkillTests {
    @Test func languageCensusCountsFilesAndLinesAcrossShards() throws {
        let root = try makeFixtureRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        let s = try runSkill(.languageCensus, on: root)
        let langs = Dictionary(uniqueKeysWithValues: (s.details["languages"]?.arrayValue ?? []).map { ($0["language"]!.stringValue!, ($0["files"]!.intValue!, $0["lines"]!.intValue!)) })
        #expect(langs["Swift"]?.0 == 4)
        #expect(langs["Swift"]?.1 == 1 + 3 + 1 + 3)
        #expect(langs["Python"]?.0 == 1)
        #expect(langs["Other"]?.0 == 1)  // the PNG
        #expect(s.details["files"]?.intValue == 13)
    }

    @Test func manifestFinderClassifiesEcosystems() throws {
        let root = try makeFixtureRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        let s = try runSkill(.manifestFinder, on: root)
        let paths = (s.details["manifests"]?.arrayValue ?? []).compactMap { $0["path"]?.stringValue }
        #expect(paths == ["Package.swift", "web/package-lock.json", "web/package.json"])
        #expect(s.headline.contains("3 dependency files (1 lockfiles)"))
    }

    @Test func testSurveyCountsCasesPerFramework() throws {
        let root = try makeFixtureRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        let s = try runSkill(.testSurvey, on: root)
        #expect(s.details["cases"]?.intValue == 4)
        #expect(s.details["frameworks"]?["swift-testing"]?.intValue == 2)
        #expect(s.details["frameworks"]?["pytest"]?.intValue == 2)
    }

    @Test func workflowAndMonitoringAndDocs() throws {
        let root = try makeFixtureRepository()
        defer { try? FileManager.default.removeItem(at: root) }
        let wf = try runSkill(.workflowFinder, on: root)
        #expect(wf.details["pipelines"]?.arrayValue?.first?["jobs"] == ["build", "lint"])
        let mon = try runSkill(.monitoringSurvey, on: root)
        #expect(mon.headline.hasPrefix("2 alert rules"))
        let docs = try runSkill(.documentationSurvey, on: root)
        #expect(docs.details["readme"] == true)
        #expect((docs.details["documents"]?.arrayValue ?? []).compactMap { $0["title"]?.stringValue } == ["Shop", "Operations"])
    }

    @Test func shardingIsStableAndCoversEveryFileOnce() {
        let paths = (0..<500).map { "dir\($0 % 7)/file\($0).swift" }
        let shards = paths.map { RepositoryFiles.shard(of: $0, shards: 4) }
        #expect(shards == paths.map { RepositoryFiles.shard(of: $0, shards: 4) })
        #expect(Set(shards) == [0, 1, 2, 3])
        #expect(RepositoryFiles.shard(of: "README.md", shards: 4) == 2)  // FNV-1a, fixed across runs and machines
    }

    @Test func missingTargetIsAClearError() {
        #expect(throws: SkillError.self) { try RepositoryFiles.list(root: URL(fileURLWithPath: "/nonexistent/cortex")) }
    }

    @Test func routerDecomposesGoals() {
        let request = RunRequest(goal: "full-orchestration", targets: ["/a", "/b"], requestedBy: "t")
        let tasks = TaskRouter.decompose(request)
        #expect(tasks.count == 12)
        #expect(Set(tasks.map(\.id)).count == 12)
        #expect(TaskRouter.masters(for: "security and testing review") == [.security, .testing])
    }
}
