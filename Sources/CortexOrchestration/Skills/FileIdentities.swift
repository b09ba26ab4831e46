import CortexCore
import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The content identity of a target's files: git's blob id (SHA-1 of `blob <size>\0<content>`). In a git
/// work tree the index already has it for every tracked file that is unchanged on disk (`git ls-files -s`),
/// so nothing is read; files changed in the work tree (`git diff-files`), untracked files and targets that
/// are not git repositories are hashed here, in the same format, so the ids mean the same everywhere.
///
/// A worker keeps the ids of its latest targets per run: the six file skills of one target ask for the
/// same files, and the index is read once per run and target, not once per item.
final class FileIdentities: Sendable {
    private struct Entry: Sendable { var key: String; var ids: [String: String] }
    private let cache = Locked<[Entry]>([])

    /// The blob id of each of `files` (paths relative to `root`, a checkout of `target`); a file that
    /// cannot be read, or is larger than the skills read, has none (it is examined, and not cached).
    func blobIDs(root: URL, target: String, files: [String], run: String) async throws -> [String: String] {
        // By run and target, not by directory: a remote target is cloned once per task, at the same commit.
        let key = run + "\u{0}" + target
        var known = cache.withLock { $0.first { $0.key == key } }
        if known == nil {
            let index = try await BlockingExecutor.offload("cortex-blob-ids") { Self.indexIDs(root: root) }
            known = Entry(key: key, ids: index ?? [:])
        }
        let wasCached = cache.withLock { $0.contains { $0.key == key } }
        var ids = known?.ids ?? [:]
        let missing = files.filter { ids[$0] == nil }
        var hashed: [String: String] = [:]
        if !missing.isEmpty {
            hashed = try await BlockingExecutor.offload("cortex-blob-ids") { Self.hash(root: root, files: missing) }
            ids.merge(hashed) { _, new in new }
        }
        // Kept for the next item: what is new is merged into what another item of this worker may have
        // added meanwhile (only the new ids: the index's are there already).
        if !wasCached || !hashed.isEmpty {
            let fresh = wasCached ? hashed : ids
            cache.withLock { cache in
                var merged = cache.first { $0.key == key } ?? Entry(key: key, ids: [:])
                merged.ids.merge(fresh) { old, _ in old }
                cache.removeAll { $0.key == key }
                cache.insert(merged, at: 0)
                if cache.count > 4 { cache.removeLast() }
            }
        }
        var out: [String: String] = [:]
        out.reserveCapacity(files.count)
        for path in files { if let id = ids[path] { out[path] = id } }
        return out
    }

    /// The index's blob ids of tracked files unchanged in the work tree, or nil when `root` is not a git
    /// work tree (or git is not there): then every file is hashed.
    static func indexIDs(root: URL) -> [String: String]? {
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent(".git").path) else { return nil }
        // -v tags each entry: `H` is an ordinary tracked file; lower case (assume-unchanged) and `S`
        // (skip-worktree) are files git does not compare with the work tree, so their index id may be stale.
        guard let staged = try? Subprocess.run("git", ["-C", root.path, "ls-files", "-s", "-v", "-z"], timeout: .seconds(300), outputLimit: 512 * 1024 * 1024),
              staged.succeeded, !staged.truncated else { return nil }
        // Files whose work-tree copy differs from the index (or whose stat data does: then they are hashed
        // here, which costs a read and is never wrong).
        guard let dirty = try? Subprocess.run("git", ["-C", root.path, "diff-files", "--name-only", "-z"], timeout: .seconds(300), outputLimit: 512 * 1024 * 1024),
              dirty.succeeded, !dirty.truncated else { return nil }
        let changed = Set(dirty.stdout.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
        var ids: [String: String] = [:]
        // Each record: "<tag> <mode> <blob> <stage>\t<path>". Taken from the index: tag H, stage 0 (merged),
        // regular files. A symlink's index id is its link text, not what the skills read through it, and a
        // submodule has no content here: those are hashed from disk (or have no id).
        for record in staged.stdout.split(separator: 0) {
            guard let tab = record.firstIndex(of: 9) else { continue }
            let meta = record[record.startIndex..<tab].split(separator: 32)
            guard meta.count == 4, meta[0].elementsEqual("H".utf8), meta[3].elementsEqual("0".utf8),
                  meta[1].elementsEqual("100644".utf8) || meta[1].elementsEqual("100755".utf8) else { continue }
            let path = String(decoding: record[record.index(after: tab)...], as: UTF8.self)
            if !changed.contains(path) { ids[path] = String(decoding: meta[2], as: UTF8.self) }
        }
        return ids
    }

    /// Files larger than this are not hashed: the skills do not read them (`Skill.readText`), so there is
    /// nothing worth caching, and reading them would cost what the cache saves.
    static let largest = 2 * 1024 * 1024

    /// Git blob ids computed from the files' contents (through symlinks, as the skills read them).
    static func hash(root: URL, files: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for path in files {
            let full = root.appendingPathComponent(path).path
            var info = stat()
            guard stat(full, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= largest,
                  let data = FileManager.default.contents(atPath: full) else { continue }
            out[path] = blobID(data)
        }
        return out
    }

    /// Whether a file can still be read: a result made while it could not (deleted meanwhile, out of
    /// descriptors) is not one to keep.
    static func readable(root: URL, _ path: String) -> Bool {
        access(root.appendingPathComponent(path).path, R_OK) == 0
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
