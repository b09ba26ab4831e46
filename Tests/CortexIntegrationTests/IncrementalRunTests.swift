import CortexControl
import CortexCore
@testable import CortexOrchestration
import Foundation
import Testing

/// Incremental runs: per-file results kept in Redis by git blob id and skill version, reused by the next
/// run for unchanged files; a changed lockfile examined again; an unreadable entry reported and rewritten;
/// the cache bounded with least-recently-used eviction; blob ids the same as git's.
@Suite(.serialized) struct IncrementalRunTests {
    /// The fix-CVE repository (PyYAML 5.3 has a critical advisory) and some ordinary files around it.
    static var repoFiles: [String: String] {
        var files = PlanRunTests.repoFiles
        for i in 0..<20 { files["src/module\(i).py"] = "def f\(i)(x):\n    return x + \(i)\n" }
        files["README.md"] = "# shop\n\nA small shop.\n"
        return files
    }

    @Test func aSecondRunReusesUnchangedFilesAndAChangedLockfileIsExaminedAgain() async throws {
        let s = try await PlanRunTests.start("cortex-incremental", masters: [.security])
        let target = try TestRunnerTests.write(Self.repoFiles)
        let fileCount = Self.repoFiles.count
        func report(_ state: RunState) throws -> MasterReport {
            // The run is partial while PyYAML is vulnerable (the fix handoffs have no development or testing
            // master here); the security master's own report must be a clean success every time.
            let report = try #require(try PlanRunTests.summary(state).0.reports.first { $0.master == .security })
            #expect(report.status == .succeeded, "\(report.status): \(report.reason ?? "")")
            return report
        }
        let first = try report(try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test")))
        let second = try report(try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test")))
        // A lockfile changed in the work tree (not committed): git's index no longer vouches for it.
        try Data("PyYAML==5.3.1\n".utf8).write(to: target.appendingPathComponent("requirements.txt"))
        let thirdState = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        #expect(thirdState.status == "succeeded", "\(thirdState.status): \(thirdState.reason ?? "")")
        let third = try report(thirdState)
        // An entry of the wrong shape (a hand edit, an older format): reported, examined again, rewritten.
        let key = FileResultCache.Scope(skill: .securityScan, version: SecurityScan().version, target: target.path).key
        try await s.bus.redis.send(.hset(key, "calc.py", "{\"blob\": 42}")).orThrow()
        let fourthState = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let fourth = try report(fourthState)
        let rewritten = try await s.bus.redis.hget(key, "calc.py")
        let (_, fourthMarkdown) = try PlanRunTests.summary(fourthState)
        let memory = try await ControlCommands.memoryShow(bus: s.bus, master: "security", target: nil)
        let forgot = try await ControlCommands.memoryForget(bus: s.bus, master: "security", target: target.lastPathComponent)
        let afterForget = try await s.bus.redis.exists(key)
        await s.stop()

        #expect(first.fileCache == MasterReport.FileCacheSummary([FileCacheUse(files: fileCount)]), "\(String(describing: first.fileCache))")
        #expect(first.details["vulnerabilities"]?.arrayValue?.count == 1)
        // Nothing changed: no file read again, and the findings are the same (matched from the cached package lists).
        #expect(second.fileCache?.unchanged == fileCount && second.fileCache?.reexamined == 0, "\(String(describing: second.fileCache))")
        #expect(second.summary.contains("\(fileCount) of \(fileCount) files unchanged; 0 re-examined"), "\(second.summary)")
        #expect(second.markdown.contains("Incremental: \(fileCount) of \(fileCount) files unchanged; 0 re-examined."), "\(second.markdown.prefix(200))")
        #expect(second.details["vulnerabilities"]?.arrayValue?.count == 1)
        #expect(second.items.reduce(0) { $0 + $1.filesExamined } == 0)
        // Exactly the changed lockfile was examined again, and its new content counts: the fix is seen.
        #expect(third.fileCache?.unchanged == fileCount - 1 && third.fileCache?.reexamined == 1, "\(String(describing: third.fileCache))")
        #expect(third.items.reduce(0) { $0 + $1.filesExamined } == 1)
        #expect(third.details["vulnerabilities"]?.arrayValue?.isEmpty == true, "\(String(describing: third.details["vulnerabilities"]))")
        // The wrong-shaped entry: said so in the report, the file examined again, the run still succeeded.
        #expect(fourth.fileCache?.unreadable == 1 && fourth.fileCache?.reexamined == 1, "\(String(describing: fourth.fileCache))")
        #expect(fourth.summary.contains("1 file cache entry unreadable"), "\(fourth.summary)")
        #expect(fourthMarkdown.contains("1 file cache entry unreadable"))
        #expect(rewritten.map { FileResultCache.decode(Array($0.utf8)) != nil } == true, "\(rewritten ?? "nil")")
        #expect(memory.contains("security-scan@\(SecurityScan().version)") && memory.contains(target.path), "\(memory)")
        #expect(forgot.contains("1 cached result set (\(fileCount) files"), "\(forgot)")
        #expect(!afterForget)
    }

    @Test func theCacheMatchesByBlobAndEvictsTheLeastRecentlyUsedTargets() async throws {
        let redis = try await PrivateRedis.start()
        let client = RedisClient(endpoint: redis.endpoint)
        defer { client.close() }
        let record: SkillRecord = ["path": "a.txt", "kind": "secrets", "text": .string(String(repeating: "x", count: 400))]
        let cache = FileResultCache(redis: client, maxBytes: 2_000)
        let (sa, sb, sc) = (FileResultCache.Scope(skillVersion: "t@1", target: "/srv/a"), FileResultCache.Scope(skillVersion: "t@1", target: "/srv/b"),
                            FileResultCache.Scope(skillVersion: "t@1", target: "/srv/c"))
        let (a, b, c) = (sa.key, sb.key, sc.key)
        // Two entries of ~470 bytes each under a, then b: 4 entries, under the bound.
        try await cache.store(sa, entries: [("a.txt", "blob-a", [record]), ("b.txt", "blob-b", [record])])
        let lookedUp = try await cache.lookup(sa, files: [("a.txt", "blob-a"), ("b.txt", "changed"), ("c.txt", "blob-c")])
        #expect(Set(lookedUp.hits.keys) == ["a.txt"] && lookedUp.unreadable.isEmpty)  // b changed, c never cached
        try await client.send(.zadd(CortexNames.fileCacheIndex, score: 1, a)).orThrow()  // a: used long ago
        // Marked used moments ago by this process: another hit does not mark it again (one mark per 10 s).
        #expect(try await cache.lookup(sa, files: [("a.txt", "blob-a")]).hits.count == 1)
        #expect(try await client.send("ZSCORE", CortexNames.fileCacheIndex, a).string == "1")
        let stored = try await cache.store(sb, entries: [("a.txt", "blob-a", [record]), ("b.txt", "blob-b", [record])])
        #expect(stored == .init(evicted: 0, droppedSelf: false))
        // c takes the cache over its bound: a, the least recently used, goes; b stays.
        let third = try await cache.store(sc, entries: [("a.txt", "blob-a", [record]), ("b.txt", "blob-b", [record])])
        #expect(third == .init(evicted: 1, droppedSelf: false))
        let (hasA, hasB, hasC) = (try await client.exists(a), try await client.exists(b), try await client.exists(c))
        #expect(!hasA && hasB && hasC)
        let sizes = try await client.hgetall(CortexNames.fileCacheBytes)
        #expect(Int(sizes["/total"] ?? "") == (Int(sizes[b] ?? "") ?? -1) + (Int(sizes[c] ?? "") ?? -1) && sizes[a] == nil, "\(sizes)")
        // Rewriting the same entries does not count their bytes twice.
        try await cache.store(sc, entries: [("a.txt", "blob-a", [record])])
        #expect(try await client.hgetall(CortexNames.fileCacheBytes)["/total"] == sizes["/total"])
        // One target larger than the whole bound is not kept (and says so).
        let big = (0..<6).map { ("f\($0).txt", "blob", [record]) }
        let sbig = FileResultCache.Scope(skillVersion: "t@1", target: "/srv/big")
        #expect(try await cache.store(sbig, entries: big).droppedSelf)
        #expect(try await client.exists(sbig.key) == false)
        // ... without evicting anyone for it, now or when another shard stores part of it later (marked for a day).
        let again = try await cache.store(sbig, entries: Array(big.prefix(1)))
        let (stillB, stillC) = (try await client.exists(b), try await client.exists(c))
        #expect(again == .init(evicted: 0, droppedSelf: true) && stillB && stillC)
        // Wrong shapes: not JSON, a blob that is not a string, records that are not objects.
        for bad in ["not json", "{\"blob\": 1, \"records\": []}", "{\"blob\": \"x\", \"records\": [1]}"] {
            try await client.send(.hset(b, "a.txt", bad)).orThrow()
            let found = try await cache.lookup(sb, files: [("a.txt", "blob-a")])
            #expect(found.unreadable == ["a.txt"] && found.hits.isEmpty, "\(bad)")
        }
        let listed = try await FileResultCache.summaries(redis: client)
        #expect(Set(listed.map(\.target)) == ["/srv/b", "/srv/c"] && listed.first { $0.target == "/srv/c" }?.files == 2)
        await redis.stop()
    }

    @Test func blobIDsAreGitsForCommittedChangedUntrackedAndPlainFiles() async throws {
        let repo = try TestRunnerTests.write(["a.txt": "one\n", "dir/b.txt": "two\n", "c.txt": "three\n"])
        try Data("changed\n".utf8).write(to: repo.appendingPathComponent("c.txt"))
        try Data("new\n".utf8).write(to: repo.appendingPathComponent("untracked.txt"))
        let plain = try TestRunnerTests.write(["a.txt": "one\n", "empty.txt": ""], git: false)
        // A symlink (its index id is the link text, the skills read what it points to) and a file git is told
        // not to look at (assume-unchanged): both must be hashed from what is on disk.
        try FileManager.default.createSymbolicLink(atPath: repo.appendingPathComponent("link.txt").path, withDestinationPath: "a.txt")
        _ = try SecurityMasterTests.git(["add", "link.txt"], in: repo)
        _ = try SecurityMasterTests.git(["commit", "-q", "-m", "link"], in: repo)
        _ = try SecurityMasterTests.git(["update-index", "--assume-unchanged", "dir/b.txt"], in: repo)
        try Data("two, edited\n".utf8).write(to: repo.appendingPathComponent("dir/b.txt"))
        let identities = FileIdentities()
        let ids = try await identities.blobIDs(root: repo, target: repo.path, files: ["a.txt", "dir/b.txt", "c.txt", "untracked.txt", "missing.txt", "link.txt"], run: "run-1")
        let plainIDs = try await identities.blobIDs(root: plain, target: plain.path, files: ["a.txt", "empty.txt"], run: "run-1")
        for path in ["a.txt", "dir/b.txt", "c.txt", "untracked.txt"] {
            let git = try SecurityMasterTests.git(["hash-object", path], in: repo).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(ids[path] == git, "\(path)")
        }
        #expect(ids["missing.txt"] == nil)
        #expect(ids["link.txt"] == ids["a.txt"], "a symlink is identified by what it points to")
        #expect(FileIdentities.indexIDs(root: repo)?["dir/b.txt"] == nil && FileIdentities.indexIDs(root: repo)?["link.txt"] == nil)
        #expect(plainIDs["a.txt"] == ids["a.txt"])
        #expect(plainIDs["empty.txt"] == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")  // git's id of the empty blob
        #expect(FileIdentities.indexIDs(root: repo)?["c.txt"] == nil)  // changed in the work tree: hashed, not taken from the index
    }

    /// Learned shard plans: run 1 measures what each file costs (a large text file dominates the secret
    /// scan); the coordinator learns it (Redis and learnings.json); run 2's master places that file on a
    /// shard of its own estimate, dispatches that item first, and says so in the report.
    @Test func whatTheFilesCostIsLearnedAndTheNextRunPlacesTheCostlyOnes() async throws {
        let s = try await PlanRunTests.start("cortex-shard-plan", masters: [.security], environment: ["CORTEX_FILE_CACHE_MAX_MB": "0"])
        var files = Self.repoFiles
        let big = "data/big-export.txt"
        files[big] = (0..<12_000).map { "row \($0): customer record, nothing secret here, just text to scan\n" }.joined()
        let target = try TestRunnerTests.write(files)
        let first = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let learned = try await s.bus.redis.hget(CortexNames.learnings("security"), FileCosts.learningKey(skill: .securityScan, target: target.path))
        let second = try await PlanRunTests.run(s, RunRequest(goal: "security", targets: [target.path], requestedBy: "test"))
        let file = try String(contentsOf: s.suite.workDirectory.appendingPathComponent("coordination/masters/security/learnings.json"), encoding: .utf8)
        let shown = try await ControlCommands.memoryShow(bus: s.bus, master: "security", target: nil)
        await s.stop()

        let firstReport = try #require(try PlanRunTests.summary(first).0.reports.first { $0.master == .security })
        #expect(firstReport.shardPlan == nil)
        #expect(firstReport.costs?.heavy.first?.path == big, "\(String(describing: firstReport.costs?.heavy.prefix(3)))")
        let learning = try WireJSON.decode(Learning.self, from: try #require(learned))
        #expect(learning.kind == "file-costs" && learning.runID == first.runID && learning.data?.decoded(as: FileCosts.self)?.heavy.first?.path == big)
        #expect(file.contains(FileCosts.learningKey(skill: .securityScan, target: target.path)) && file.contains(big), "\(file.prefix(800))")
        #expect(shown.contains("file-costs") || shown.contains("measured"), "\(shown)")
        let report = try #require(try PlanRunTests.summary(second).0.reports.first { $0.master == .security })
        let note = try #require(report.shardPlan)
        #expect(note.contains("placed by what they cost in \(first.runID)"), "\(note)")
        // The plan the items followed (kept with the task, archived with the run): the big file pinned, and
        // the report's items in dispatch order, the big file's shard first.
        let archive = try JSONText.parse(Array(Data(contentsOf: URL(fileURLWithPath: try #require(second.reportDir)).appendingPathComponent(RunArchive.fileName))))
        let archived = try #require(archive["keys"]?[CortexNames.taskShardPlan(report.taskID)], "\(archive["keys"]?.objectValue?.keys.sorted() ?? [])")
        let placement = try #require(archived.decoded(as: ShardPlan.Placement.self) ?? archived.stringValue.flatMap { try? WireJSON.decode(ShardPlan.Placement.self, from: $0) })
        let pinnedShard = try #require(placement.pinned[big])
        #expect(report.items.count == 4 && report.items.first?.itemID == "\(report.taskID).\(pinnedShard)", "\(report.items.map(\.itemID)) \(placement)")
        #expect(placement.estimate[pinnedShard] == placement.estimate.max(), "\(placement.estimate)")
        #expect(second.status != "failed" && report.status == .succeeded, "\(report.status): \(report.reason ?? "")")
    }

    @Test func theShardPlanPlacesTheCostliestFilesWhereTheLeastWorkIs() {
        let costs = FileCosts(heavy: [.init(path: "a", ms: 500), .init(path: "b", ms: 300), .init(path: "c", ms: 250), .init(path: "tiny", ms: 0.5)],
                              directories: [], files: 1000, ms: 1450)
        let placement = try? #require(ShardPlan.place(costs, shards: 4))
        // The rest (400 ms) spread evenly: 100 each; a, b, c each on a shard of their own; tiny stays hashed.
        #expect(placement?.pinned.count == 3 && Set(placement?.pinned.values.map { $0 } ?? []).count == 3 && placement?.pinned["tiny"] == nil)
        #expect(placement?.estimate.sorted() == [100, 350, 400, 600])
        #expect(ShardPlan.place(FileCosts(heavy: [.init(path: "a", ms: 1)], directories: [], files: 1000, ms: 1000), shards: 4) == nil)  // nothing stands out
        #expect(ShardPlan.shard(of: "a", shards: 4, pinned: ["a": 3]) == 3 && ShardPlan.shard(of: "a", shards: 4, pinned: ["a": 9]) == RepositoryFiles.shard(of: "a", shards: 4))
    }
}
