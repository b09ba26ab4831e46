import Foundation

/// A dedicated OS thread that runs blocking jobs one at a time, in order: a subscriber's hiredis loop,
/// and (`offload`) long blocking work such as a clone, a file walk or a test suite.
///
/// Blocking calls on Swift's cooperative pool would starve every other task in the process, so they run
/// on threads like this one instead. (A `RedisClient`'s connection has a thread of its own that pipelines
/// its callers' requests: `RedisConnectionThread`.)
public final class BlockingExecutor: @unchecked Sendable {
    /// The queue the thread serves. The thread holds it (not the executor): an executor dropped before
    /// its thread got to run used to leave the thread reading a freed object (a crash at exit of any
    /// process that made a client and dropped it at once).
    private final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [() -> Void] = []
        var stopped = false

        func loop() {
            while true {
                condition.lock()
                while jobs.isEmpty && !stopped { condition.wait() }
                if jobs.isEmpty && stopped { condition.unlock(); return }
                let job = jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
    }

    private let queue = Queue()

    init(name: String) {
        let thread = Thread { [queue] in queue.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// A dropped executor ends its thread once the queued jobs are done.
    deinit { shutdown() }

    /// Runs one long blocking job (a test suite, a subprocess) on a thread of its own, so it cannot
    /// hold up the cooperative pool that heartbeats and message handling run on.
    public static func offload<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let executor = BlockingExecutor(name: name)
        defer { executor.shutdown() }
        return try await executor.run(body)
    }

    /// Runs `body` on the executor's thread and returns its result to the awaiting task.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let accepted = enqueue {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }
            if !accepted { continuation.resume(throwing: RedisError.closed) }
        }
    }

    /// Queues a job without waiting; returns false once the executor is shut down.
    @discardableResult
    func enqueue(_ job: @escaping () -> Void) -> Bool {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        if queue.stopped { return false }
        queue.jobs.append(job)
        queue.condition.signal()
        return true
    }

    /// Lets queued jobs finish, then ends the thread.
    func shutdown() {
        queue.condition.lock()
        queue.stopped = true
        queue.condition.signal()
        queue.condition.unlock()
    }
}
