import CSpawn
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished subprocess left: its exit status and what it wrote.
public struct SubprocessResult: Sendable {
    /// The exit code, or 128 + the signal number when a signal ended it (as a shell reports it).
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    /// True when the timeout ended it (its process group was sent SIGTERM, then SIGKILL).
    public var timedOut: Bool
    /// True when it wrote more than the output cap; the rest was read and discarded.
    public var truncated: Bool

    public var succeeded: Bool { status == 0 && !timedOut }
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// A subprocess that could not be started.
public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Runs programs without a shell (arguments are passed as they are), with a timeout that works and
/// pipes that are always closed.
///
/// Why not Foundation's `Process`: its `readDataToEndOfFile()` blocks until the child closes its pipe,
/// so a hung child made a deadline checked afterwards unreachable, and its pipes stayed open until the
/// objects were freed. Here the child runs in its own process group (a timeout stops it and whatever it
/// started), both output pipes are drained together with `poll` up to the deadline, and every
/// descriptor is closed before `run` returns. `run` blocks its thread: async code uses `runOffloaded`,
/// which runs it on a thread of its own, never on the cooperative pool heartbeats share.
public enum Subprocess {
    /// A write to a pipe whose reader is gone must fail with EPIPE, not kill this process.
    private static let ignoreSIGPIPE: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// Output kept per stream by default (16 MiB); more is read and dropped, and `truncated` says so.
    public static let defaultOutputLimit = 16 * 1024 * 1024

    /// Runs `executable` (a path, or a name looked up on PATH) with `arguments` in `directory`.
    /// - Parameters:
    ///   - environment: the child's whole environment (nil: this process's).
    ///   - stdin: bytes written to the child's standard input (nil: /dev/null).
    ///   - timeout: after it the process group gets SIGTERM, and SIGKILL two seconds later.
    public static func run(
        _ executable: String, _ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil,
        stdin: [UInt8]? = nil, timeout: Duration = .seconds(300), outputLimit: Int = defaultOutputLimit
    ) throws -> SubprocessResult {
        _ = ignoreSIGPIPE
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1], inPipe: [Int32] = [-1, -1]
        var open: [Int32] = []
        defer { for fd in open where fd >= 0 { close(fd) } }
        guard cortex_pipe_cloexec(&outPipe) == 0 else { throw SubprocessError(description: "pipe: \(String(cString: strerror(errno)))") }
        open += outPipe
        guard cortex_pipe_cloexec(&errPipe) == 0 else { throw SubprocessError(description: "pipe: \(String(cString: strerror(errno)))") }
        open += errPipe
        if stdin != nil {
            guard cortex_pipe_cloexec(&inPipe) == 0 else { throw SubprocessError(description: "pipe: \(String(cString: strerror(errno)))") }
            open += inPipe
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if stdin != nil {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if let directory {
            guard posix_spawn_file_actions_addchdir_np(&actions, directory.path) == 0 else {
                throw SubprocessError(description: "cannot change to \(directory.path)")
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (so a timeout reaches its children too), default signal handling (we
        // ignore SIGPIPE; the child must not inherit that), nothing blocked.
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) }
        defer { for p in argv { free(p) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") }
        defer { for p in env { free(p) } }
        var pid: pid_t = 0
        let spawned = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (env + [nil]).withUnsafeBufferPointer { envBuffer in
                posix_spawnp(&pid, executable, &actions, &attributes,
                             UnsafeMutablePointer(mutating: argvBuffer.baseAddress!), UnsafeMutablePointer(mutating: envBuffer.baseAddress!))
            }
        }
        guard spawned == 0 else { throw SubprocessError(description: "cannot run \(executable): \(String(cString: strerror(spawned)))") }

        // The parent keeps only its ends.
        close(outPipe[1]); close(errPipe[1])
        var readers = [outPipe[0], errPipe[0]]
        var writer: Int32 = -1
        if stdin != nil { close(inPipe[0]); writer = inPipe[1] }
        if writer >= 0 && (stdin ?? []).isEmpty { close(writer); writer = -1 }
        open = readers + (writer >= 0 ? [writer] : [])
        for fd in open { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        var outputs: [[UInt8]] = [[], []]
        var truncated = false
        var timedOut = false
        var input = stdin ?? []
        var written = 0
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = 0
        var reaped = false
        var lostChild = false
        func reap() -> Bool {
            guard !reaped else { return true }
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { reaped = true }
            if r < 0 && errno == ECHILD { reaped = true; lostChild = true }  // someone else reaped it: status unknown
            return reaped
        }
        // After the child exits, its output is drained for a moment more; a grandchild that keeps the pipe
        // open (an ssh control master, a credential helper) does not hold us until the deadline.
        var drainUntil: ContinuousClock.Instant?
        while readers.contains(where: { $0 >= 0 }) || writer >= 0 {
            let now = ContinuousClock.now
            if let drainUntil, now >= drainUntil { break }
            let left = deadline - now
            if left <= .zero { timedOut = !reap(); break }
            var fds = readers.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if writer >= 0 { fds.append(pollfd(fd: writer, events: Int16(POLLOUT), revents: 0)) }
            let waitMs = Int32(min(left, .milliseconds(50)) / .milliseconds(1)) + 1
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 && errno != EINTR { break }
            for p in fds where p.revents != 0 {
                if p.fd == writer {
                    let n = input.withUnsafeBytes { write(writer, $0.baseAddress! + written, input.count - written) }
                    if n > 0 { written += n }
                    if n < 0 && errno != EAGAIN || written >= input.count {
                        close(writer); open.removeAll { $0 == writer }; writer = -1; input = []
                    }
                    continue
                }
                guard let index = readers.firstIndex(of: p.fd) else { continue }
                let n = chunk.withUnsafeMutableBytes { read(p.fd, $0.baseAddress!, $0.count) }
                if n > 0 {
                    let room = max(0, outputLimit - outputs[index].count)
                    if n > room { truncated = true }
                    outputs[index] += chunk[0..<min(n, room)]
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    close(p.fd); open.removeAll { $0 == p.fd }; readers[index] = -1
                }
            }
            if drainUntil == nil && reap() { drainUntil = ContinuousClock.now + .milliseconds(500) }
        }
        // Reap it. Its pipes are closed, so it has exited or is about to; one that closed them and lives
        // on still gets only until the deadline.
        var pause: useconds_t = 200
        while !timedOut && !reap() {
            if ContinuousClock.now >= deadline { timedOut = true; break }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
        if timedOut && !reaped {
            kill(-pid, SIGTERM)
            let grace = ContinuousClock.now + .seconds(2)
            while ContinuousClock.now < grace && !reap() { usleep(20_000) }
            if !reaped {
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
        }
        if lostChild { throw SubprocessError(description: "\(executable): its exit status was collected elsewhere (SIGCHLD ignored?); result unknown") }
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return SubprocessResult(status: code, stdout: outputs[0], stderr: outputs[1], timedOut: timedOut, truncated: truncated)
    }

    /// `run` on a thread of its own, for async callers (a clone or a push can take minutes).
    public static func runOffloaded(
        _ executable: String, _ arguments: [String], directory: URL? = nil, environment: [String: String]? = nil,
        stdin: [UInt8]? = nil, timeout: Duration = .seconds(300), outputLimit: Int = defaultOutputLimit
    ) async throws -> SubprocessResult {
        try await BlockingExecutor.offload("cortex-subprocess") {
            try run(executable, arguments, directory: directory, environment: environment, stdin: stdin, timeout: timeout, outputLimit: outputLimit)
        }
    }
}
