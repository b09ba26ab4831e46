import CortexCore
import Foundation

/// Targets that are git URLs are cloned shallowly into the worker's work directory, once per task, so
/// every skill reads a local tree.
public enum RepositoryCheckout {
    /// Whether a target names a remote repository rather than a local path.
    public static func isRemote(_ target: String) -> Bool {
        ["https://", "http://", "ssh://", "git://", "file://", "git@"].contains { target.hasPrefix($0) }
    }

    /// A local directory for `target`: the path itself, or a shallow clone under `workDirectory`
    /// (reused by the task's other items on this worker).
    public static func localPath(for target: String, task: String, workDirectory: URL, timeout: Duration = .seconds(300)) throws -> URL {
        guard isRemote(target) else { return URL(fileURLWithPath: target) }
        let dir = workDirectory.appendingPathComponent("repos").appendingPathComponent("\(RepositoryFiles.hash(target))-\(task)")
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) { return dir }
        try FileManager.default.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        let partial = dir.appendingPathExtension("partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: partial)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "clone", "--depth", "1", "--quiet", "--", target, partial.path]
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds))
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            throw ConfigurationError("git clone \(target) took longer than \(timeout)")
        }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(separator: "\n").last.map(String.init) ?? "exit \(process.terminationStatus)"
            try? FileManager.default.removeItem(at: partial)
            throw ConfigurationError("git clone \(target) failed: \(message)")
        }
        // Another item of the task may have finished its clone first: keep one.
        if (try? FileManager.default.moveItem(at: partial, to: dir)) == nil { try? FileManager.default.removeItem(at: partial) }
        return dir
    }

    /// The repository's name: the last path component of a path or URL, without `.git`.
    public static func name(of target: String) -> String {
        let last = target.split(whereSeparator: { $0 == "/" || $0 == ":" }).last.map(String.init) ?? target
        return last.hasSuffix(".git") ? String(last.dropLast(4)) : last
    }
}
