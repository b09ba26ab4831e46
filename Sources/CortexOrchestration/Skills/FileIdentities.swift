import CortexCore
import Crypto
import Foundation

/// The content identity of a target's files: git's blob id (SHA-1 of `blob <size>\0<content>`). In a git
/// work tree the index already has it for every tracked file that is unchanged on disk (`git ls-files -s`),
/// so nothing is read; files changed in the work tree (`git diff-files`), untracked files and targets that
/// are not git repositories are hashed here, in the same format, so the ids mean the same everywhere.
///
/// A worker keeps the ids of its latest targets per run: the six file skills of one target ask for the
/// same files, and the index is read once per run and target, not once per item.
final class FileIdentities: Sendable {
    private struct Entry: Sendable { var key: String; var ids: [String: String]; var fromIndex: Bool }
    private let cache = Locked<[Entry]>([])

    /// The blob id of each of `files` (paths relative to `root`); a file that cannot be read has none.
    func blobIDs(root: URL, files: [String], run: String) async throws -> [String: String] {
        let key = run + "\u{0}" + root.path
        var entry = cache.withLock { $0.first { $0.key == key } }
        if entry == nil {
            let index = try await BlockingExecutor.offload("cortex-blob-ids") { Self.indexIDs(root: root) }
            entry = Entry(key: key, ids: index ?? [:], fromIndex: index != nil)
        }
        guard var known = entry else { return [:] }
        let missing = files.filter { known.ids[$0] == nil }
        if !missing.isEmpty {
            let hashed = try await BlockingExecutor.offload("cortex-blob-ids") { Self.hash(root: root, files: missing) }
            known.ids.merge(hashed) { _, new in new }
        }
        let stored = known
        cache.withLock { cache in
            cache.removeAll { $0.key == key }
            cache.insert(stored, at: 0)
            if cache.count > 4 { cache.removeLast() }
        }
        var out: [String: String] = [:]
        out.reserveCapacity(files.count)
        for path in files { if let id = stored.ids[path] { out[path] = id } }
        return out
    }

    /// The index's blob ids of tracked files unchanged in the work tree, or nil when `root` is not a git
    /// work tree (or git is not there): then every file is hashed.
    static func indexIDs(root: URL) -> [String: String]? {
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent(".git").path) else { return nil }
        guard let staged = try? Subprocess.run("git", ["-C", root.path, "ls-files", "-s", "-z"], timeout: .seconds(300), outputLimit: 512 * 1024 * 1024),
              staged.succeeded, !staged.truncated else { return nil }
        // Files whose work-tree copy differs from the index (or whose stat data does: then they are hashed
        // here, which costs a read and is never wrong).
        guard let dirty = try? Subprocess.run("git", ["-C", root.path, "diff-files", "--name-only", "-z"], timeout: .seconds(300), outputLimit: 512 * 1024 * 1024),
              dirty.succeeded, !dirty.truncated else { return nil }
        let changed = Set(dirty.stdout.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
        var ids: [String: String] = [:]
        // Each record: "<mode> <blob> <stage>\t<path>"; only stage 0 (merged) regular files and symlinks.
        for record in staged.stdout.split(separator: 0) {
            guard let tab = record.firstIndex(of: 9) else { continue }
            let meta = record[record.startIndex..<tab].split(separator: 32)
            guard meta.count == 3, meta[2].elementsEqual("0".utf8), !meta[0].elementsEqual("160000".utf8) else { continue }
            let path = String(decoding: record[record.index(after: tab)...], as: UTF8.self)
            if !changed.contains(path) { ids[path] = String(decoding: meta[1], as: UTF8.self) }
        }
        return ids
    }

    /// Git blob ids computed from the files' contents.
    static func hash(root: URL, files: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for path in files {
            guard let data = FileManager.default.contents(atPath: root.appendingPathComponent(path).path) else { continue }
            out[path] = blobID(data)
        }
        return out
    }

    /// Git's blob id of a file's content.
    static func blobID(_ data: Data) -> String {
        var sha = Insecure.SHA1()
        sha.update(data: Data("blob \(data.count)\u{0}".utf8))
        sha.update(data: data)
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(40)
        for byte in sha.finalize() { hex.append(digits[Int(byte >> 4)]); hex.append(digits[Int(byte & 15)]) }
        return String(decoding: hex, as: UTF8.self)
    }
}
