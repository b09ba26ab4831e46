import CortexCore
@testable import CortexOrchestration
import Foundation
import Testing

/// The hand-written wire forms on the worker's path agree with the `Codable` ones the rest of Cortex uses:
/// either side of the queue may read what the other wrote.
@Suite struct WorkWireTests {
    static let full = WorkItem(id: "run-1.security.0.2", taskID: "run-1.security.0", runID: "run-1", master: .security, pool: .scan, skill: .languageCensus,
                               target: "/srv/repos/shop \"quoted\"\n", shard: 2, shards: 4, instruction: "bump lodash", priority: .critical,
                               branch: "cortex/fix-1", allowTestExecution: true, pinned: ["a/b.swift": 1, "c.py": 3])
    static let minimal = WorkItem(id: "i", taskID: "t", runID: "r", master: .inventory, pool: .catalog, skill: .manifestFinder,
                                  target: "/t", shard: 0, shards: 1)

    @Test func workItemsReadAndWrittenByHandMatchCodable() throws {
        for item in [Self.full, Self.minimal] {
            #expect(try WorkItem(wireJSON: try WireJSON.encode(item)) == item)
            #expect(try WireJSON.decode(WorkItem.self, from: item.wireJSON) == item)
            #expect(try JSONText.parse(item.wireJSON) == JSONText.parse(try WireJSON.encode(item)))
        }
        // A null optional is absent, as for JSONDecoder.
        #expect(try WorkItem(wireJSON: #"{"id":"i","taskID":"t","runID":"r","master":"inventory","pool":"catalog","skill":"manifest-finder","target":"/t","shard":0,"shards":1,"branch":null}"#) == Self.minimal)
    }

    @Test func malformedItemsAreRefusedLikeCodableRefusesThem() {
        let valid = Self.minimal.wireJSON
        for broken in [
            "[]", "{", valid.replacingOccurrences(of: #""pool":"catalog""#, with: #""pool":"nosuchpool""#),
            valid.replacingOccurrences(of: #""shard":0"#, with: #""shard":0.5"#),
            valid.replacingOccurrences(of: #""id":"i","#, with: ""),
            valid.replacingOccurrences(of: #""target":"/t""#, with: #""target":7"#),
        ] {
            #expect(throws: (any Error).self) { try WorkItem(wireJSON: broken) }
            #expect(throws: (any Error).self) { try WireJSON.decode(WorkItem.self, from: broken) }
        }
    }

    @Test func resultsWrittenByHandReadBackWithCodable() throws {
        var full = WorkResult(itemID: "i", taskID: "t", worker: "w", node: "n", status: .partial, error: "2 files unreadable", durationMs: 12,
                              filesExamined: 40, output: .array([["language": "Swift", "files": 3, "lines": 10.5]]), finishedAtMs: 1_700_000_000_123, resumedFrom: 7)
        full.catalog = .init(assets: 3, registered: 2, error: "one refused")
        full.fileCache = FileCacheUse(files: 40, reused: 30, unreadable: 1, error: "file cache not written: x")
        full.costs = FileCosts(heavy: [.init(path: "big.swift", ms: 3.25)], directories: [.init(directory: "Sources/App", files: 4, ms: 5.5)], files: 40, ms: 9.75)
        let minimal = WorkResult(itemID: "i", taskID: "t", worker: "w", node: "n", status: .succeeded, error: nil, durationMs: 0, filesExamined: 0, output: .null)
        for result in [full, minimal] {
            #expect(try WireJSON.decode(WorkResult.self, from: result.wireJSON) == result)
            #expect(try JSONText.parse(result.wireJSON) == JSONText.parse(try WireJSON.encode(result)))
        }
    }

    @Test func workItemMessagesWriteTheDataTheirCodableFormWould() throws {
        let payloads: [any MessagePayload] = [
            TaskStarted.example, TaskComplete.example, TaskFailed.example,
            TaskFailed(itemID: "i", taskID: "t", worker: "w", reason: "r", status: "denied"), TaskBatchComplete.example,
        ]
        for p in payloads {
            #expect(p.data == (try JSONValue(encoding: p)), "\(type(of: p))")
            let envelope = Envelope(type: p.messageType, source: "worker-1", data: p.data)
            #expect((try? EnvelopeDecoder().decode(envelope.encoded(), channel: .workersStatus).get()) != nil)
        }
        let batch = try Envelope(TaskBatchComplete.example, source: "worker-1").payload(TaskBatchComplete.self)
        #expect(batch == TaskBatchComplete.example)
        #expect(MessageType.TASK_BATCH_COMPLETE.fields.map(\.name).sorted() == ["duration_ms", "item_ids", "node", "task_id", "worker"])
    }

    @Test func messageIDsAreRandomVersion4UUIDs() throws {
        var seen = Set<String>()
        for _ in 0..<2000 {
            let id = MessageID.random()
            let uuid = try #require(UUID(uuidString: id), "\(id)")
            #expect(uuid.uuidString.lowercased() == id)
            let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
            #expect(bytes[6] >> 4 == 4 && bytes[8] >> 6 == 0b10)
            seen.insert(id)
        }
        #expect(seen.count == 2000)
    }

    @Test func fileContentsReadsRegularFilesWithinTheLimitOnly() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cortex-filecontents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("a.txt")
        try Data("line\nline\n".utf8).write(to: text)
        try Data().write(to: dir.appendingPathComponent("empty"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("link").path, withDestinationPath: text.path)
        #expect(FileContents.read(text.path, limit: 100) == Array("line\nline\n".utf8))
        #expect(FileContents.read(dir.appendingPathComponent("link").path, limit: 100) == Array("line\nline\n".utf8))
        #expect(FileContents.read(text.path, limit: 9) == nil)
        #expect(FileContents.read(dir.appendingPathComponent("empty").path, limit: 9) == [])
        #expect(FileContents.read(dir.path, limit: 1 << 20) == nil)
        #expect(FileContents.read(dir.appendingPathComponent("missing").path, limit: 100) == nil)
    }
}
