import CortexCore
import Foundation
import Testing

/// The cicd master's workflow audits against zizmor 1.32 (installed into the test virtualenv by
/// scripts/python-env) on the corpus of real public workflows in Tests/Fixtures/zizmor-corpus:
/// scripts/zizmor-differential runs both and fails on any zizmor finding (file, job, step, audit)
/// Cortex misses that the reviewed allow-list does not name, and on allow-list entries that are no
/// longer misses. The coverage table it prints is the one in docs/cicd-audits.md.
@Suite struct ZizmorDifferentialTests {
    /// Audit classes the corpus must exercise (every offline audit that applies to workflow files).
    static let requiredAudits = [
        "template-injection", "unpinned-uses", "unpinned-images", "cache-poisoning", "secrets-inherit", "dangerous-triggers", "excessive-permissions",
        "artipacked", "github-env", "insecure-commands", "self-hosted-runner", "bot-conditions", "unsound-contains", "overprovisioned-secrets",
        "unredacted-secrets", "hardcoded-container-credentials", "obfuscation", "use-trusted-publishing", "anonymous-definition",
        "undocumented-permissions", "superfluous-actions", "adhoc-packages", "github-app", "self-repository", "concurrency-limits",
    ]

    @Test func cortexFindsWhatZizmorFinds() throws {
        let root = SecurityMasterTests.root
        let python = try CatalogAPITests.python(root)
        let table = FileManager.default.temporaryDirectory.appendingPathComponent("zizmor-differential-\(UUID().uuidString.prefix(6)).md")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [root.appendingPathComponent("scripts/zizmor-differential").path, "--markdown", table.path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        print(output)
        let markdown = try String(contentsOf: table, encoding: .utf8)
        // The overall row: | **all** | **N** | **M** | **A** | **P %** |
        let all = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("| **all**") }, "\(markdown)")
        let numbers = all.split(separator: "|").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " *%")) }.compactMap(Double.init)
        #expect(numbers.count >= 3 && numbers[1] / numbers[0] >= 0.95, "\(all)")
        let audits = Set(markdown.split(separator: "\n").compactMap { line -> String? in
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            return cells.count >= 2 && Int(cells[1]) != nil ? cells[0] : nil
        })
        #expect(Set(Self.requiredAudits).subtracting(audits).isEmpty, "audit classes the corpus does not exercise: \(Set(Self.requiredAudits).subtracting(audits).sorted())")
        // At least 40 of the workflows are real public ones (the rest, if any, are named synthetic__).
        let corpus = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Tests/Fixtures/zizmor-corpus").path)
        #expect(corpus.filter { $0.hasSuffix(".yml") && !$0.hasPrefix("synthetic__") }.count >= 40, "\(corpus.count) files")
    }
}
