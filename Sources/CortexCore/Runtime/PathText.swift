/// Path arithmetic on plain text, for paths that come from outside (repository listings, lockfile names
/// in fuzzed or hostile input).
///
/// Why not `NSString.lastPathComponent`: Foundation's implementation on Linux crashes on some inputs
/// (the fuzzer found `Gemfile.lock` followed by a run of slashes with a quote among them), and a crash
/// in a worker is an item that never finishes. This one only splits on `/`.
public enum PathText {
    /// The last component of `path`, as `NSString.lastPathComponent` defines it: trailing slashes ignored,
    /// `"/"` for a path of slashes only, the empty string for the empty path.
    public static func lastComponent(_ path: String) -> String {
        let bytes = Array(path.utf8)
        var end = bytes.count
        while end > 0 && bytes[end - 1] == UInt8(ascii: "/") { end -= 1 }
        if end == 0 { return bytes.isEmpty ? "" : "/" }
        var start = end
        while start > 0 && bytes[start - 1] != UInt8(ascii: "/") { start -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }
}
