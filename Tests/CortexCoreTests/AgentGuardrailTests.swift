@testable import CortexOrchestration
import CortexTestRunner
import Foundation
import Testing

/// The implementation agent's tools act only inside the working copy; CI configuration needs an
/// allowance; the review flags what a reviewer would.
@Suite struct AgentGuardrailTests {
    static func workspace(allowCI: Bool = false) throws -> AgentWorkspace {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ws-\(UUID().uuidString.prefix(6))")
        for (path, text) in ["app.py": "x = 1\n", ".github/workflows/ci.yml": "on: push\n"] {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "init", "-q"]
        git.currentDirectoryURL = root
        try git.run()
        git.waitUntilExit()
        return AgentWorkspace(root: root, allowCIChanges: allowCI, testRunner: TestRunner(workDirectory: root.appendingPathComponent(".runs")))
    }

    @Test func pathsStayInsideTheWorkingCopy() throws {
        let ws = try Self.workspace()
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.readFile("../etc/passwd", start: nil, end: nil) }
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.readFile("/etc/passwd", start: nil, end: nil) }
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.readFile(".git/config", start: nil, end: nil) }
        // A symlink pointing out of the copy is refused too.
        try FileManager.default.createSymbolicLink(atPath: ws.root.appendingPathComponent("escape").path, withDestinationPath: "/etc")
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.readFile("escape/hostname", start: nil, end: nil) }
        #expect(try ws.readFile("app.py", start: nil, end: nil) == "1: x = 1\n2: ")
        #expect(try ws.search("x =").hasPrefix("app.py:1: x = 1"))
    }

    @Test func diffsOutsideOrOnCIConfigurationAreRefused() throws {
        let ws = try Self.workspace()
        let outside = "--- a/../outside.txt\n+++ b/../outside.txt\n@@ -0,0 +1 @@\n+pwned\n"
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.applyDiff(outside) }
        let ci = "--- a/.github/workflows/ci.yml\n+++ b/.github/workflows/ci.yml\n@@ -1 +1 @@\n-on: push\n+on: [push, pull_request]\n"
        do { _ = try ws.applyDiff(ci); Issue.record("CI change applied without allowance") } catch let e as AgentWorkspace.Refusal {
            #expect(e.description.contains("CI configuration"))
        }
        let allowed = try Self.workspace(allowCI: true)
        #expect(try allowed.applyDiff(ci) == "applied to .github/workflows/ci.yml")
        #expect(try String(contentsOf: allowed.root.appendingPathComponent(".github/workflows/ci.yml"), encoding: .utf8) == "on: [push, pull_request]\n")
        // A diff that does not apply changes nothing and says why.
        #expect(throws: AgentWorkspace.Refusal.self) { try ws.applyDiff("--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-y = 2\n+y = 3\n") }
        #expect(try String(contentsOf: ws.root.appendingPathComponent("app.py"), encoding: .utf8) == "x = 1\n")
    }

    @Test func reviewFlagsTodosSecretsLongAdditionsAndUntestedChanges() {
        let long = (1...90).map { "+    step\($0)()" }.joined(separator: "\n")
        let diff = """
            --- a/service/app.py
            +++ b/service/app.py
            @@ -1,2 +1,95 @@
             import os
            +# TODO: remove the fallback
            +API_TOKEN = "ghp_\(String(repeating: "Ab9", count: 12))"
            \(long)
             x = 1
            """
        let comments = ChangeReview.review(diff)
        #expect(Set(comments.map(\.rule)) == ["new-todo", "secret", "long-addition", "no-test-change"], "\(comments)")
        #expect(comments.first { $0.rule == "new-todo" }?.line == 2)
        #expect(!comments.map(\.message).joined().contains("Ab9Ab9Ab9"))
        let tested = diff + "\n--- a/tests/test_app.py\n+++ b/tests/test_app.py\n@@ -1 +1,2 @@\n x = 1\n+assert True\n"
        #expect(!ChangeReview.review(tested).contains { $0.rule == "no-test-change" })
    }
}
