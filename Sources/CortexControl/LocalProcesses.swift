import CortexCore
import CSpawn
import Foundation

/// Finds Cortex's own executables: next to the running binary, or in `CORTEX_BIN_DIR`.
public enum ExecutableLocator {
    /// The directory holding `cortexctl` and the daemons.
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["CORTEX_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent()
    }

    /// The path of one executable, or an error naming where it was looked for.
    public static func path(of name: String, in dir: URL = binDirectory) throws -> URL {
        let url = dir.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw ConfigurationError("\(name) not found in \(dir.path); build it with `swift build` or set CORTEX_BIN_DIR")
        }
        return url
    }

    /// Searches PATH (and the usual sbin directories) for a system program.
    public static func system(_ name: String) -> URL? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bin"
        for dir in path.split(separator: ":") {
            let url = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }
}

/// Free TCP ports on the loopback interface.
public enum FreePort {
    /// Ports this process has handed out. None is handed out twice: a test's server that was stopped is
    /// often started again on its port while its clients and daemons keep reconnecting to it, and another
    /// server given that port in between would receive their connections (another test's daemon running
    /// its commands on a server it does not belong to).
    private static let handedOut = Locked<Set<Int>>([])

    /// An unused loopback port that this process has not handed out before.
    public static func find() throws -> Int {
        for _ in 0..<64 {
            let port = try unused()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw CortexError(.failed, "no unused loopback port that this process had not handed out before, in 64 tries")
    }

    /// Asks the kernel for an unused port (bind to port 0, read it back, close).
    private static func unused() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CortexError(.failed, "socket() failed: errno \(errno)") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0 else { throw CortexError(.failed, "bind() failed: errno \(errno)") }
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard named == 0 else { throw CortexError(.failed, "getsockname() failed: errno \(errno)") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

/// A child process started by `cortexctl up` (or a test), with its output in a log file.
public final class ChildProcess: @unchecked Sendable {
    public let name: String
    public let process: Process
    public let logFile: URL

    init(name: String, process: Process, logFile: URL) {
        self.name = name
        self.process = process
        self.logFile = logFile
    }

    /// Whether the process still runs. Foundation learns that a child ended when a socket it shares
    /// with the child closes; a child another thread starts at that moment can inherit the socket and
    /// keep it open (a worker that had exited stayed "running" in a test), so the kernel is asked too.
    public var isRunning: Bool { process.isRunning && endedStatus() == nil }
    public var pid: Int32 { process.processIdentifier }

    /// The exit status (or the number of the signal that ended it, as `Process.terminationStatus`);
    /// nil while it runs.
    public var exitStatus: Int32? {
        guard process.isRunning else { return process.terminationStatus }
        return endedStatus()
    }

    /// The status of a child that ended but that Foundation has not noticed yet (the kernel's answer,
    /// without reaping it: Foundation still collects it).
    private func endedStatus() -> Int32? {
        var status: Int32 = 0
        return cortex_child_ended(process.processIdentifier, &status) == 1 ? status : nil
    }

    /// Sends a signal (SIGTERM by default).
    public func signal(_ sig: Int32 = SIGTERM) {
        if isRunning { kill(process.processIdentifier, sig) }
    }

    /// Waits for the process to end; returns its exit status, or nil if it still runs after `timeout`.
    public func wait(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus
    }

    /// The log written so far.
    public func output() -> String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }

    /// The ops port a Cortex daemon logged when its endpoint came up (waits up to `timeout`).
    public func opsPort(timeout: Duration = .seconds(15)) async -> Int? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in output().split(separator: "\n") where line.contains("\"ops endpoint listening\"") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   let port = (object[LogKey.httpPort] as? String).flatMap(Int.init) { return port }
            }
            if !isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

/// Starts and stops a set of child processes; stopping is SIGTERM, then SIGKILL for stragglers.
public final class ProcessSupervisor: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [ChildProcess] = []
    public let logDirectory: URL

    public init(logDirectory: URL) throws {
        self.logDirectory = logDirectory
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
    }

    /// Starts `executable` with `arguments` and extra environment; stdout and stderr go to `<logDirectory>/<name>.log`.
    @discardableResult
    public func start(name: String, executable: URL, arguments: [String] = [], environment: [String: String] = [:]) throws -> ChildProcess {
        let log = logDirectory.appendingPathComponent("\(name).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = executable
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? handle.close()
        let child = ChildProcess(name: name, process: p, logFile: log)
        lock.withLock { children.append(child) }
        return child
    }

    /// Every child started so far.
    public var all: [ChildProcess] { lock.withLock { children } }

    /// SIGTERM to every running child (newest first), then SIGKILL to those still running after `grace`.
    public func stopAll(grace: Duration = .seconds(10)) async {
        let running = all.reversed().filter(\.isRunning)
        for c in running { c.signal(SIGTERM) }
        for c in running where await c.wait(timeout: grace) == nil {
            c.signal(SIGKILL)
            _ = await c.wait(timeout: .seconds(2))
        }
    }

    /// Synchronous last resort (signal handlers, exit paths): SIGKILL everything still running.
    public func killAll() {
        for c in all where c.isRunning { c.signal(SIGKILL) }
    }
}

/// A private redis-server on a free loopback port in a temporary directory.
public final class LocalRedis: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    public let appendOnly: Bool
    public let extraArguments: [String]
    private let supervisor: ProcessSupervisor
    private let current: Locked<ChildProcess>
    /// The running server process.
    public var child: ChildProcess { current.value }
    public var url: String { "redis://127.0.0.1:\(port)/0" }

    /// Starts redis-server and waits until it answers PING. With `appendOnly`, every write is fsynced
    /// before it is acknowledged (`appendfsync always`), so a killed server loses nothing it confirmed.
    public init(supervisor: ProcessSupervisor, directory: URL, appendOnly: Bool = false, port: Int? = nil, extraArguments: [String] = []) async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.appendOnly = appendOnly
        self.extraArguments = extraArguments
        self.supervisor = supervisor
        var lastError: Error = CortexError(.failed, "redis-server did not start")
        for _ in 0..<(port == nil ? 3 : 1) {  // a port found free can be taken by someone else before redis binds it
            let candidate = try port ?? FreePort.find()
            do {
                let child = try await Self.launch(supervisor: supervisor, port: candidate, directory: directory, appendOnly: appendOnly, extra: extraArguments)
                self.port = candidate
                self.current = Locked(child)
                return
            } catch { lastError = error }
        }
        throw lastError
    }

    private static func launch(supervisor: ProcessSupervisor, port: Int, directory: URL, appendOnly: Bool, extra: [String]) async throws -> ChildProcess {
        guard let server = ExecutableLocator.system("redis-server") else {
            throw ConfigurationError("redis-server not found on PATH: install it with `sudo apt-get install redis-server` (Debian/Ubuntu)")
        }
        var args = ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path, "--save", "",
                    "--appendonly", appendOnly ? "yes" : "no", "--daemonize", "no", "--protected-mode", "yes",
                    "--repl-diskless-sync-delay", "0"]  // a local replica syncs at once instead of after 5 s
        if appendOnly { args += ["--appendfsync", "always"] }
        let child = try supervisor.start(name: "redis-server-\(port)", executable: server, arguments: args + extra)
        // Generous bounds, as for the sentinel: milliseconds normally, far more on a loaded machine.
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), configuration: .init(connectTimeout: .seconds(1), initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(20)))
        defer { client.close() }
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline && child.isRunning {
            if await client.ping() { return child }
            try await Task.sleep(for: .milliseconds(20))
        }
        child.signal(SIGKILL)
        throw CortexError(.unreachable, "redis-server on port \(port) did not answer: \(child.output().suffix(500))")
    }

    /// Waits until this server, started as a replica, has finished its initial sync.
    public func waitForReplicationLink(timeout: Duration = .seconds(30)) async throws {
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
        defer { client.close() }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let info = try? await client.info("replication"), info.contains("master_link_status:up") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CortexError(.timeout, "replica on port \(port) did not finish its sync within \(timeout)")
    }

    /// Kills the server outright (SIGKILL), as a crash would.
    public func kill() async {
        child.signal(SIGKILL)
        _ = await child.wait(timeout: .seconds(5))
    }

    /// Starts the server again on the same port and directory (AOF, if on, is loaded back).
    public func restart() async throws {
        let child = try await Self.launch(supervisor: supervisor, port: port, directory: directory, appendOnly: appendOnly, extra: extraArguments)
        current.withLock { $0 = child }
    }

    /// Stops the server: SHUTDOWN over the protocol (prompt and certain), then signals as a fallback.
    public func stop() async {
        guard child.isRunning else { return }
        let client = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: port), configuration: .init(connectTimeout: .milliseconds(500), commandTimeout: .seconds(2)))
        _ = try? await client.send(.shutdownWithoutSaving)  // the connection closes instead of a reply
        client.close()
        if await child.wait(timeout: .seconds(3)) != nil { return }
        child.signal(SIGTERM)
        if await child.wait(timeout: .seconds(3)) == nil { child.signal(SIGKILL) }
    }
}
