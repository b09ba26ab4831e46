import CortexCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The files of a target repository, relative to its root, and a stable way to shard them.
public enum RepositoryFiles {
    /// Directories never worth scanning (build output, dependencies, VCS data).
    static let skippedDirectories: Set<String> = [".git", ".build", "node_modules", ".venv", "venv", "__pycache__", "target", "vendor", ".swiftpm", "DerivedData"]

    /// Tracked files when the root is a git work tree (so .gitignore is honoured), else every regular file.
    public static func list(root: URL) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDir), isDir.boolValue else {
            throw SkillError("target \(root.path) is not a directory on this node")
        }
        if FileManager.default.fileExists(atPath: root.appendingPathComponent(".git").path), let tracked = gitFiles(root: root) {
            return tracked.filter { path in
                !path.split(separator: "/").contains { skippedDirectories.contains(String($0)) }
            }.sorted()
        }
        return walk(root: root).sorted()
    }

    /// FNV-1a of the path: the same on every worker and every run, unlike Swift's seeded `hashValue`.
    public static func shard(of path: String, shards: Int) -> Int {
        Int(fnv1a(path) % UInt64(max(shards, 1)))
    }

    /// A stable short name for a string (hex FNV-1a), e.g. a clone directory for a URL.
    public static func hash(_ text: String) -> String { String(fnv1a(text), radix: 16) }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    private static func gitFiles(root: URL) -> [String]? {
        // Arguments are passed as an array: nothing from the repository reaches a shell.
        guard let result = try? Subprocess.run("git", ["-C", root.path, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                               timeout: .seconds(300), outputLimit: 512 * 1024 * 1024),
              result.succeeded, !result.truncated else { return nil }
        let data = result.stdout
        // One stat per path (following links, as the skills read them): it must exist and not be a
        // directory. Plain string paths: URL.appendingPathComponent would stat each one again.
        let base = root.path.hasSuffix("/") ? root.path : root.path + "/"
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.filter { path in
            var info = stat()
            return stat(base + path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR
        }
    }

    private static func walk(root: URL) -> [String] {
        var out: [String] = []
        let base = root.standardizedFileURL.path
        guard let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .isDirectoryKey]) else { return [] }
        for case let url as URL in e {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .isDirectoryKey])
            if values?.isDirectory == true {
                if skippedDirectories.contains(url.lastPathComponent) { e.skipDescendants() }
                continue
            }
            guard values?.isRegularFile == true else { continue }
            let full = url.standardizedFileURL.path
            out.append(full.hasPrefix(base + "/") ? String(full.dropFirst(base.count + 1)) : url.lastPathComponent)
        }
        return out
    }
}

/// A skill could not do its work; the text is shown in the report.
public struct SkillError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
