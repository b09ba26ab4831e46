#if canImport(Glibc)
import Glibc
#endif

/// A file's bytes read with one open, fstat and read: the skills read every file of their shard, and
/// Foundation's `attributesOfItem` (the size check before) also read /etc/passwd and /etc/group to name
/// the file's owner — half of a short item's file access in a worker's profile.
enum FileContents {
    /// The bytes of the regular file at `path` (through symlinks), or nil when it cannot be read, is not a
    /// regular file, or is larger than `limit` bytes.
    static func read(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size <= limit else { return nil }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        let ok = bytes.withUnsafeMutableBytes { buffer -> Bool in
            while filled < size {
                let n = Glibc.read(fd, buffer.baseAddress! + filled, size - filled)
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { break }  // shorter than fstat said (truncated meanwhile): what is there
                filled += n
            }
            return true
        }
        guard ok else { return nil }
        if filled < size { bytes.removeLast(size - filled) }
        return bytes
    }
}
