import Foundation

/// A dedicated OS thread that runs blocking jobs (hiredis calls) one at a time, in order.
///
/// hiredis is a blocking C library; running it on Swift's cooperative pool would starve every other
/// task in the process, so each Redis connection owns one of these threads instead.
public final class BlockingExecutor: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopped = false
    private var thread: Thread?

    init(name: String) {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

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
        condition.lock()
        defer { condition.unlock() }
        if stopped { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Lets queued jobs finish, then ends the thread.
    func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
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
