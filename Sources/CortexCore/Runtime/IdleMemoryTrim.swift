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
/// never touches again. Every `interval`, if the process used under 2 % of a core since the last look,
/// was busy at some point since the last trim (start-up counts) and its file-backed pages grew by at
/// least 2 MiB since then, this asks the kernel to reclaim them (`madvise(MADV_PAGEOUT)` over every
/// read-only file mapping) and returns the heap's free memory (`malloc_trim`). The kernel leaves alone
/// pages other processes map too, and pages of files the process neither owns nor may write (a binary
/// owned by root run as another user: said once in a notice). What the daemon needs later is read back
/// in on first use, which costs page faults when work arrives, not correctness.
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
        // Start-up counts as busy. After a trim, only a busy stretch makes the next one worth doing: what
        // an idle loop touches again between looks is its working set, and trimming it again and again
        // would only read the same pages back from disk every interval.
        var busySinceTrim = true
        var warnedOwner = false
        while !Task.isShuttingDownGracefully {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch { return }
            let cpu = Self.cpuSeconds()
            defer { lastCPU = cpu }
            guard cpu - lastCPU < 0.02 * Double(interval / .milliseconds(1)) / 1000 else {
                busySinceTrim = true
                continue
            }
            guard busySinceTrim else { continue }
            guard let before = Resident.read() else { return }  // no /proc: nothing to measure, nothing to do
            guard before.file - fileAfterTrim >= 2048 else { continue }
            if !warnedOwner, let owner = Self.executableOwnerIfNotOurs() {
                // The kernel pages out only files the caller owns or may write: a binary owned by root
                // and run as another user keeps every page. Said once, so the figures are not a mystery.
                logger.notice("idle memory trim: the executable is owned by uid \(owner.owner), not this process's user (uid \(owner.user)); the kernel pages out only files the process owns, so only the heap's free memory is returned (docker/Dockerfile installs the binaries owned by the user that runs them)")
                warnedOwner = true
            }
            let pageOut = Self.pageOutFileMappings()
            _ = malloc_trim(0)
            guard let after = Resident.read() else { return }
            fileAfterTrim = after.file
            busySinceTrim = false
            if let refused = pageOut.unsupported {
                // Older kernels (before 5.4) do not know MADV_PAGEOUT: nothing to trim, and nothing will be.
                logger.notice("idle memory trim unavailable (madvise MADV_PAGEOUT: \(refused)); CORTEX_IDLE_MEMORY_TRIM has no effect here")
                return
            }
            logger.info("idle: gave back pages touched while busy", metadata: [
                "rss_kib_before": "\(before.total)", "rss_kib_after": "\(after.total)",
                "file_kib_before": "\(before.file)", "file_kib_after": "\(after.file)",
                "mappings_advised": "\(pageOut.advised)", "mappings_refused": "\(pageOut.refused)",
            ])
        }
    }

    /// The owner of this process's executable and this process's effective user, when they differ and
    /// the user is not root (root may page out any file).
    static func executableOwnerIfNotOurs() -> (owner: uid_t, user: uid_t)? {
        var st = stat()
        guard stat("/proc/self/exe", &st) == 0 else { return nil }
        let user = geteuid()
        return user != 0 && st.st_uid != user ? (st.st_uid, user) : nil
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

    /// What one pass of `pageOutFileMappings` did.
    struct PageOut {
        /// Mappings the kernel took the advice for (it may still keep pages other processes map).
        var advised = 0
        /// Mappings it refused with EINVAL (locked, special or huge-page mappings; or, for all of them, a
        /// kernel without MADV_PAGEOUT).
        var refused = 0
        var refusal: String?
        /// Set when the kernel refused every mapping: it does not know the advice.
        var unsupported: String? { advised == 0 && refused > 0 ? refusal : nil }
    }

    /// Advises the kernel to reclaim every read-only file-backed mapping of this process.
    static func pageOutFileMappings() -> PageOut {
        var result = PageOut()
        guard let maps = try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8) else { return result }
        for line in maps.split(separator: "\n") {
            // address perms offset dev inode path (the path is padded with spaces, which split keeps)
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[5].drop(while: { $0 == " " }).hasPrefix("/"), !fields[1].contains("w") else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let low = UInt(range[0], radix: 16), let high = UInt(range[1], radix: 16), high > low,
                  let start = UnsafeMutableRawPointer(bitPattern: low) else { continue }
            if madvise(start, Int(high - low), pageOut) == 0 {
                result.advised += 1
            } else if errno == EINVAL {
                result.refused += 1
                result.refusal = String(cString: strerror(EINVAL))
            }
        }
        return result
    }
}
