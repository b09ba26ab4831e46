import CMalloc
import Glibc
import Foundation
import Logging
import ServiceLifecycle

/// Gives back, while a daemon is idle, the memory it only needed while busy.
///
/// Most of an idle daemon's resident memory is not its own data but file-backed pages: the code and
/// read-only data of its executable and libraries that starting up (or the last run) touched — the Linux
/// kernel maps up to 64 KiB around every page a program faults in — and that an idle loop of heartbeats
/// never touches again. Every `interval`, if the process used under 2 % of a core since the last look
/// and its file-backed pages grew by at least 2 MiB since the last trim, this asks the kernel to reclaim
/// them (`madvise(MADV_PAGEOUT)` over every read-only file mapping; pages other processes map too are
/// left alone by the kernel) and returns the heap's free memory (`malloc_trim`). What the daemon needs
/// later is read back in on first use, which costs page faults when work arrives, not correctness.
struct IdleMemoryTrim: Service {
    let interval: Duration
    let logger: Logger

    /// Resident memory from /proc/self/status, in KiB.
    struct Resident: Equatable {
        var total: Int
        var anonymous: Int
        var file: Int

        static func read() -> Resident? {
            guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
            var r = Resident(total: 0, anonymous: 0, file: 0)
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard parts.count >= 2, let kib = Int(parts[1]) else { continue }
                switch parts[0] {
                case "VmRSS:": r.total = kib
                case "RssAnon:": r.anonymous = kib
                case "RssFile:": r.file = kib
                default: break
                }
            }
            return r
        }
    }

    func run() async throws {
        var lastCPU = Self.cpuSeconds()
        var fileAfterTrim = 0
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch { return }
            let cpu = Self.cpuSeconds()
            defer { lastCPU = cpu }
            guard cpu - lastCPU < 0.02 * Double(interval / .milliseconds(1)) / 1000 else { continue }  // busy
            guard let before = Resident.read() else { return }  // no /proc: nothing to measure, nothing to do
            guard before.file - fileAfterTrim >= 2048 else { continue }
            let refused = Self.pageOutFileMappings()
            _ = malloc_trim(0)
            guard let after = Resident.read() else { return }
            fileAfterTrim = after.file
            if let refused {
                // Older kernels (before 5.4) do not know MADV_PAGEOUT: nothing to trim, and nothing will be.
                logger.notice("idle memory trim unavailable (madvise MADV_PAGEOUT: \(refused)); CORTEX_IDLE_MEMORY_TRIM has no effect here")
                return
            }
            logger.info("idle: gave back pages touched while busy", metadata: [
                "rss_kib_before": "\(before.total)", "rss_kib_after": "\(after.total)",
                "file_kib_before": "\(before.file)", "file_kib_after": "\(after.file)",
            ])
        }
    }

    /// User plus system CPU seconds of the whole process.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1_000_000 }
        return s(usage.ru_utime) + s(usage.ru_stime)
    }

    /// MADV_PAGEOUT (Linux 5.4): reclaim these pages now.
    static let pageOut: Int32 = 21

    /// Advises the kernel to reclaim every read-only file-backed mapping of this process; returns the
    /// error text if the kernel refused the advice itself (EINVAL: it does not know it), else nil.
    static func pageOutFileMappings() -> String? {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return nil }
        for line in maps.split(separator: "\n") {
            // address perms offset dev inode path (the path is padded with spaces, which split keeps)
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[5].drop(while: { $0 == " " }).hasPrefix("/"), !fields[1].contains("w") else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let low = UInt(range[0], radix: 16), let high = UInt(range[1], radix: 16), high > low,
                  let start = UnsafeMutableRawPointer(bitPattern: low) else { continue }
            if madvise(start, Int(high - low), pageOut) != 0, errno == EINVAL {
                return String(cString: strerror(errno))
            }
        }
        return nil
    }
}
