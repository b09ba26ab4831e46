import Foundation
import Logging

/// Writes that could not reach Redis, kept on disk in order and replayed once Redis is back.
///
/// Each record is one JSON line `{"id":…,"commands":[[…],…]}` in
/// `<coordination dir>/journal/<process>-<instance>.jsonl`, flushed to disk before `append` returns.
/// Replay runs every record's commands in one Lua script that first claims a marker key
/// (`SET NX`), so a record applied before a crash is never applied twice.
public actor Journal {
    public nonisolated let file: URL
    private let logger: Logger
    private let metrics: CortexMetrics
    private var replaying = false

    struct Record: Codable {
        var id: String
        var commands: [[String]]
        /// Applied only while this key exists (e.g. a budget reservation not yet settled).
        var onlyIfExists: String?
    }

    static let replayScript = RedisScript("""
        if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 0 then return 2 end
        if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
        local i = 2
        while i <= #ARGV do
          local n = tonumber(ARGV[i])
          local args = {}
          for j = 1, n do args[j] = ARGV[i + j] end
          redis.call(unpack(args))
          i = i + n + 1
        end
        return 1
        """)

    /// How long replay markers are kept (a record older than this is assumed gone or applied).
    public static let markerTTL = 7 * 24 * 3600

    public init(directory: URL, name: String, logger: Logger, metrics: CortexMetrics) {
        self.file = directory.appendingPathComponent("journal", isDirectory: true).appendingPathComponent("\(name).jsonl")
        self.logger = logger
        self.metrics = metrics
    }

    /// Appends a record; throws only when the disk write itself fails. With `onlyIfExists`, replay applies
    /// the record only while that key exists (a write whose effect may have landed before the connection
    /// broke, and that deletes the key when it lands, is then never applied twice).
    public func append(_ commands: [RedisCommand], onlyIfExists: String? = nil) throws {
        let record = Record(id: UUID().uuidString.lowercased(), commands: commands.map(\.parts), onlyIfExists: onlyIfExists)
        let line = try String(decoding: JSONEncoder().encode(record), as: UTF8.self) + "\n"
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: file.path) { FileManager.default.createFile(atPath: file.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: file)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
        try handle.synchronize()
        metrics.journal(event: "appended")
    }

    /// Records waiting for replay.
    public func pendingCount() -> Int {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return 0 }
        return text.split(separator: "\n").count
    }

    /// Replays every record in order. Unreadable lines are reported (file and line) and skipped; if Redis
    /// drops again, the records not yet applied stay in the file for the next replay.
    @discardableResult
    public func replay(redis: RedisClient) async -> (applied: Int, duplicates: Int, skipped: Int) {
        guard !replaying, let data = FileManager.default.contents(atPath: file.path), !data.isEmpty else { return (0, 0, 0) }
        replaying = true
        defer { replaying = false }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var applied = 0, duplicates = 0, skipped = 0
        var remaining: [String] = []
        for (index, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            if !remaining.isEmpty { remaining.append(line); continue }  // keep order: stop at the first failure
            guard let record = try? JSONDecoder().decode(Record.self, from: Data(line.utf8)), !record.commands.isEmpty,
                  record.commands.allSatisfy({ !$0.isEmpty }) else {
                logger.error("journal \(file.path):\(index + 1) is not a journal record; skipped", metadata: [LogKey.journalLine: "\(line.prefix(200))"])
                metrics.journal(event: "corrupt")
                skipped += 1
                continue
            }
            let keys = [CortexNames.journalMarker(record.id)] + (record.onlyIfExists.map { [$0] } ?? [])
            var args: [any RedisArgument] = [Self.markerTTL]
            for command in record.commands {
                args.append(command.count)
                args += command.map { $0 as any RedisArgument }
            }
            do {
                let reply = try await Self.replayScript.run(redis, keys: keys, args: args)
                if case .error(let message) = reply {
                    logger.error("journal \(file.path):\(index + 1) was refused by Redis and skipped: \(message)")
                    metrics.journal(event: "refused")
                    skipped += 1
                } else if reply.int == 1 {
                    applied += 1
                    metrics.journal(event: "replayed")
                } else if reply.int == 2 {
                    // Its guard key is gone: the write landed before the connection broke (a settled budget
                    // reservation), or the key expired first — then what the record carried is lost, and said so.
                    logger.warning("journal \(file.path):\(index + 1) not applied: \(record.onlyIfExists ?? "") no longer exists (applied before, or expired)")
                    metrics.journal(event: "obsolete")
                    duplicates += 1
                } else {
                    duplicates += 1
                    metrics.journal(event: "duplicate")
                }
            } catch {
                remaining.append(line)
            }
        }
        // Records appended while we awaited Redis (actor reentrancy) come after the ones read above.
        let now = FileManager.default.contents(atPath: file.path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let appendedMeanwhile = now.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropFirst(lines.count - 1)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let keep = remaining + appendedMeanwhile
        do {
            if keep.isEmpty {
                try FileManager.default.removeItem(at: file)
            } else {
                try Data((keep.joined(separator: "\n") + "\n").utf8).write(to: file, options: .atomic)
            }
        } catch {
            logger.error("cannot rewrite journal \(file.path): \(error)")
        }
        if applied + duplicates + skipped > 0 {
            logger.notice("journal replayed", metadata: [LogKey.journalApplied: "\(applied)", LogKey.journalDuplicates: "\(duplicates)",
                                                         LogKey.journalSkipped: "\(skipped)", LogKey.journalLeft: "\(remaining.count)"])
        }
        return (applied, duplicates, skipped)
    }
}
