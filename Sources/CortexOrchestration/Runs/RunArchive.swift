import CortexCore
import Foundation

/// Phase 5's clean-up: a finished run's working keys (its task list, activation, reports, handoffs, and
/// every task's item results, file listing, shard plan and duplicate count) are copied into the run's report
/// directory as `redis-archive.json` and then deleted, so Redis holds only what live runs need.
///
/// The run's own hash (`cortex:run:<id>`, what `cortexctl status` reads) and its budget accounts stay,
/// expiring after `CORTEX_RETENTION`; every other key expires after it too, should the archive not be
/// written (then nothing is deleted).
public enum RunArchive {
    /// The file written beside summary.md.
    public static let fileName = "redis-archive.json"

    /// Hashes, lists and strings worth keeping, by key; the wake-up streams of the tasks are only deleted.
    static func keys(runID: String, taskIDs: [String]) -> (hashes: [String], lists: [String], strings: [String], deleteOnly: [String]) {
        var hashes = [CortexNames.runActivation(runID), CortexNames.runTasks(runID), CortexNames.runResults(runID), CortexNames.runRouted(runID)]
        // The plan stays (with the run's hash, until the retention ends): `cortexctl status <run>` shows it.
        var strings: [String] = []
        var deleteOnly: [String] = []
        for task in taskIDs {
            hashes += [CortexNames.taskResults(task), CortexNames.taskDuplicates(task)]
            strings += [CortexNames.taskFiles(task), CortexNames.taskShardPlan(task)]
            deleteOnly.append(CortexNames.taskResultEvents(task))
        }
        return (hashes, [CortexNames.runHandoffs(runID)], strings, deleteOnly)
    }

    /// Reads the run's working keys and writes them to `directory/redis-archive.json` (atomically).
    /// Returns the keys to delete once the run is marked finished (`delete`): deleting them before that
    /// would make a coordinator that resumes the run (it stopped in between) dispatch every task again.
    /// Throws, writing nothing, when a read or the write fails.
    public static func write(runID: String, taskIDs: [String], redis: RedisClient, to directory: URL) async throws -> (archived: Int, keys: [String]) {
        let k = keys(runID: runID, taskIDs: taskIDs)
        let commands: [RedisCommand] = k.hashes.map { .hgetall($0) } + k.lists.map { .lrange($0, start: 0, stop: -1) } + k.strings.map { .get($0) }
        let replies = try await redis.pipeline(commands)
        var archived: [String: JSONValue] = [:]
        for (i, reply) in replies.enumerated() {
            try reply.orThrow()
            if i < k.hashes.count {
                let fields = reply.fieldMap
                if !fields.isEmpty { archived[k.hashes[i]] = .object(fields.mapValues { archivedValue($0) }) }
            } else if i < k.hashes.count + k.lists.count {
                let items = reply.array?.compactMap(\.string) ?? []
                if !items.isEmpty { archived[k.lists[i - k.hashes.count]] = .array(items.map { archivedValue($0) }) }
            } else if let text = reply.string {
                archived[k.strings[i - k.hashes.count - k.lists.count]] = archivedValue(text)
            }
        }
        let document: JSONValue = ["run_id": .string(runID), "archived_at": .string(Timestamp.format(Date())), "keys": .object(archived)]
        try Data(JSONText.pretty(document).utf8).write(to: directory.appendingPathComponent(fileName), options: .atomic)
        return (archived.count, k.hashes + k.lists + k.strings + k.deleteOnly)
    }

    /// Deletes archived keys (UNLINK frees the memory off Redis's main thread; in batches so one command
    /// stays small).
    public static func delete(_ keys: [String], redis: RedisClient) async throws {
        for start in stride(from: 0, to: keys.count, by: 500) {
            try await redis.send(.unlink(Array(keys[start..<min(start + 500, keys.count)]))).orThrow()
        }
    }

    /// A stored value as JSON when it is JSON (reports, results), else as a string.
    static func archivedValue(_ text: String) -> JSONValue {
        guard let first = text.utf8.first, first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else { return .string(text) }
        return (try? JSONText.parse(text)) ?? .string(text)
    }

    /// The archived keys of a run from its report directory (key -> value, as archived).
    public static func load(reportDirectory: String) throws -> [String: JSONValue] {
        let text = try String(contentsOfFile: reportDirectory + "/" + fileName, encoding: .utf8)
        return try JSONText.parse(text)["keys"]?.objectValue ?? [:]
    }
}
