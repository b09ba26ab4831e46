import CortexCore
import Foundation

/// A target that could not be cloned (not a configuration error: the item fails with this reason).
public struct CheckoutError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

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
        // A worker runs several items of a task at once: the first clones, the others wait and share it.
        return try clones.one(at: dir.path) { try clone(target, into: dir, timeout: timeout) }
    }

    private static let clones = CloneGate()

    private static func clone(_ target: String, into dir: URL, timeout: Duration) throws -> URL {
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent(".git").path) { return dir }
        try FileManager.default.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
        let partial = dir.appendingPathExtension("partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: partial)
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
        let result: SubprocessResult
        do {
            result = try Subprocess.run("git", ["clone", "--depth", "1", "--quiet", "--", target, partial.path], environment: environment, timeout: timeout)
        } catch {
            throw CheckoutError(description: "git clone \(target): \(error)")
        }
        guard result.succeeded else {
            try? FileManager.default.removeItem(at: partial)
            if result.timedOut { throw CheckoutError(description: "git clone \(target) took longer than \(timeout); stopped") }
            let message = result.stderrText.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
            throw CheckoutError(description: "git clone \(target) failed: \(message)")
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

/// Directories being cloned by this process, one clone each at a time (callers are blocking threads).
private final class CloneGate: @unchecked Sendable {  // `active` is guarded by `condition`
    private let condition = NSCondition()
    private var active: Set<String> = []

    func one<T>(at path: String, _ body: () throws -> T) rethrows -> T {
        condition.lock()
        while active.contains(path) { condition.wait() }
        active.insert(path)
        condition.unlock()
        defer {
            condition.lock()
            active.remove(path)
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }
}
