import CortexControl
import CortexCore
import Foundation
import Testing

/// A real worker process that goes idle gives back the file-backed pages it touched while starting, and
/// still works afterwards (the pages come back when needed).
@Suite(.serialized) struct IdleMemoryTrimTests {
    /// VmRSS / RssFile of a running process, in KiB.
    static func resident(_ pid: Int32) throws -> (total: Int, file: Int) {
        let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kib(_ key: String) -> Int {
            text.split(separator: "\n").first { $0.hasPrefix(key + ":") }.flatMap { Int($0.split(whereSeparator: \.isWhitespace)[1]) } ?? -1
        }
        return (kib("VmRSS"), kib("RssFile"))
    }

    @Test(.timeLimit(.minutes(2))) func anIdleWorkerGivesBackStartUpPagesAndStillWorks() async throws {
        // A private copy of the worker executable: the kernel leaves alone pages that other processes map
        // too, and the other suites run workers from the same file at the same time.
        // The copy is written by `cp`, not by this process: while this process held the new file open for
        // writing, a child another suite forked at that moment inherited the descriptor until its exec, and
        // starting the copy then failed with ETXTBSY ("Text file busy") — seen on a loaded CI machine.
        let bin = try temporaryDirectory("cortex-trim-bin")
        let copy = Process()
        copy.executableURL = URL(fileURLWithPath: "/bin/cp")
        copy.arguments = [try ExecutableLocator.path(of: "worker", in: binDirectory).path, bin.appendingPathComponent("worker").path]
        try copy.run()
        copy.waitUntilExit()
        try #require(copy.terminationStatus == 0, "cp of the worker executable exited \(copy.terminationStatus)")
        let work = try temporaryDirectory("cortex-trim")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: bin,
                                         environment: RecoveryTests.fast.merging(["CORTEX_IDLE_MEMORY_TRIM": "1"]) { $1 })
        let redis = RecoveryTests.client(suite)
        defer { redis.close() }
        let worker = try suite.startWorker(pools: [.catalog])
        let pid = worker.process.processIdentifier
        var trim: [String: Any]?
        let trimmed = await eventually(timeout: .seconds(30)) {
            trim = logLines(worker).first { ($0["msg"] as? String)?.hasPrefix("idle: gave back pages") == true }
            return trim != nil
        }
        #expect(trimmed, "no trim logged: \(worker.output().suffix(2000))")
        let before = Int(trim?["file_kib_before"] as? String ?? "") ?? -1
        let after = Int(trim?["file_kib_after"] as? String ?? "") ?? -1
        print("worker \(pid): file-backed \(before) KiB before the trim, \(after) KiB after; now \(try Self.resident(pid))")
        #expect(before > 0 && after >= 0 && after < before - 2048, "file-backed KiB \(before) -> \(after)")
        // What the trim gave back is read in again when work comes: an item still runs and is committed.
        _ = try await WorkQueueBatchTests.enqueue(redis, task: "t-trim", count: 20, target: try makeRepository())
        #expect(await eventually(timeout: .seconds(30)) { (try? await redis.send(.hlen(CortexNames.taskResults("t-trim"))).int) == 20 })
        #expect(worker.isRunning)
        await suite.stop()
        #expect(exitStatus(worker) == 0)
    }
}
