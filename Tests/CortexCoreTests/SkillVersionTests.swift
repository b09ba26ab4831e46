import CortexCore
import CortexOrchestration
import Foundation
import Testing

/// The file cache reuses a file's results while its content and its skill's `version` are the same, so a
/// change to what a skill makes of a file must come with a new version, or runs would keep reporting the
/// old code's results for unchanged files. This test holds each file skill's records over a fixed corpus
/// (Tests/Fixtures/skill-corpus) to the fingerprint recorded with its version in
/// Tests/Fixtures/skill-versions.json: records that change under the same version fail it.
/// After raising a version: `CORTEX_UPDATE_SKILL_VERSIONS=1 scripts/test --filter SkillVersionTests`.
@Suite struct SkillVersionTests {
    static let corpus = RetrievalTests.root.appendingPathComponent("Tests/Fixtures/skill-corpus")
    static let recorded = RetrievalTests.root.appendingPathComponent("Tests/Fixtures/skill-versions.json")

    /// A fingerprint of what `skill` makes of each corpus file, file by file (as the cache stores them).
    static func fingerprint(_ skill: any Skill) throws -> String {
        let files = try RepositoryFiles.list(root: corpus)
        var perFile: [JSONValue] = []
        for path in files {
            let records = try skill.examine(root: corpus, files: [path]) { _ in }
            perFile.append(.array([.string(path), .array(records.map { .object($0) })]))
        }
        return RepositoryFiles.hash(JSONText.serialize(.array(perFile)))
    }

    @Test func aSkillWhoseRecordsChangedHasANewVersion() throws {
        var now: [String: JSONValue] = [:]
        for name in SkillName.allCases {
            guard let skill = name.fileSkill else { continue }
            now[name.rawValue] = ["version": .number(Double(skill.version)), "fingerprint": .string(try Self.fingerprint(skill))]
        }
        if ProcessInfo.processInfo.environment["CORTEX_UPDATE_SKILL_VERSIONS"] == "1" {
            try Data((JSONText.pretty(.object(now)) + "\n").utf8).write(to: Self.recorded)
            return
        }
        let before = try JSONText.parse(Array(Data(contentsOf: Self.recorded))).objectValue ?? [:]
        #expect(Set(before.keys) == Set(now.keys), "file skills added or removed: run with CORTEX_UPDATE_SKILL_VERSIONS=1")
        for (name, entry) in now.sorted(by: { $0.key < $1.key }) {
            guard let old = before[name] else { continue }
            let sameVersion = old["version"] == entry["version"]
            let sameRecords = old["fingerprint"] == entry["fingerprint"]
            #expect(!sameVersion || sameRecords, "\(name): its records changed but its version is still \(entry["version"]?.intValue ?? 0); raise `version` (cached results of the old code would be reused), then run with CORTEX_UPDATE_SKILL_VERSIONS=1")
            if !sameVersion { Issue.record("\(name): version \(old["version"]?.intValue ?? 0) -> \(entry["version"]?.intValue ?? 0): record it with CORTEX_UPDATE_SKILL_VERSIONS=1") }
        }
    }

    /// A path a skill does not consider is skipped (not read, hashed or cached): it must yield nothing.
    @Test func aPathASkillDoesNotConsiderYieldsNothing() throws {
        let files = try RepositoryFiles.list(root: Self.corpus)
        for name in SkillName.allCases {
            guard let skill = name.fileSkill else { continue }
            for path in files where !skill.considers(path) {
                #expect(try skill.examine(root: Self.corpus, files: [path]) { _ in }.isEmpty, "\(name.rawValue) skips \(path) but would report it")
            }
            #expect(files.contains { skill.considers($0) }, "\(name.rawValue) considers nothing in the corpus")
        }
    }
}
