import CortexCore
import Foundation

/// Where `cortexctl up` keeps what the local suite learned between invocations: its redis-server's data
/// (append-only file, fsynced every second), the coordination directory (learnings files, journal, run
/// snapshots) and the logs. One invocation at a time per directory (a lock file).
public enum LocalState {
    /// `--state-dir`, else `$XDG_STATE_HOME/cortex/up`, else `~/.local/state/cortex/up`.
    public static func directory(_ given: String?) -> URL {
        if let given, !given.isEmpty { return URL(fileURLWithPath: given).standardizedFileURL }
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_STATE_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("cortex/up") }
        return URL(fileURLWithPath: env["HOME"] ?? NSHomeDirectory()).appendingPathComponent(".local/state/cortex/up")
    }

    /// redis-server settings that keep the data: the append-only file, fsynced every second (the local suite
    /// is a convenience: a second of writes lost in a power cut is acceptable there, a slow run is not).
    public static let redisArguments = ["--appendonly", "yes", "--appendfsync", "everysec"]

    /// Removes a state directory (`--fresh`); one in use by another invocation is refused.
    public static func remove(_ dir: URL) throws {
        if let holder = Lock.holder(dir) { throw CortexError(.refused, "\(dir.path) is in use by cortexctl up (pid \(holder)): not removed") }
        guard FileManager.default.fileExists(atPath: dir.path) else { return }
        try FileManager.default.removeItem(at: dir)
    }

    /// `up.lock` holding the invocation's pid: a second `cortexctl up` on the same directory is refused
    /// (two redis-servers on one append-only file would corrupt it); a lock left by a process that is gone
    /// is taken over.
    public final class Lock: @unchecked Sendable {
        let file: URL

        public init(_ dir: URL) throws {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            file = dir.appendingPathComponent("up.lock")
            if let holder = Lock.holder(dir) {
                throw CortexError(.refused, "another cortexctl up (pid \(holder)) is using \(dir.path); wait for it, or use --state-dir")
            }
            try? FileManager.default.removeItem(at: file)  // a stale lock of a process that is gone
            let fd = open(file.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else { throw CortexError(.refused, "another cortexctl up took \(file.path) just now; use --state-dir") }
            let pid = "\(getpid())\n"
            _ = pid.withCString { write(fd, $0, strlen($0)) }
            close(fd)
        }

        /// The pid holding the directory's lock, if that process is alive.
        static func holder(_ dir: URL) -> Int32? {
            guard let text = try? String(contentsOf: dir.appendingPathComponent("up.lock"), encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, pid != getpid() else { return nil }
            return kill(pid, 0) == 0 || errno == EPERM ? pid : nil
        }

        public func release() { try? FileManager.default.removeItem(at: file) }
    }
}
