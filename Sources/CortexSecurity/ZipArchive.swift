import CZlib
import Foundation

/// A read-only ZIP archive (PKWARE APPNOTE: end of central directory, central directory, local
/// headers; stored and deflated entries; ZIP64 sizes and offsets), enough to read OSV's `all.zip`
/// exports without unpacking them to disk.
public struct ZipArchive {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var method: UInt16
        public var compressedSize: Int
        public var size: Int
        public var crc32: UInt32
        var localHeaderOffset: Int
    }

    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    let data: Data
    /// Every entry, in central-directory order.
    public let entries: [Entry]
    let path: String

    /// Opens the archive at `url` (memory-mapped, so a large export is paged in as it is read).
    public init(url: URL) throws {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        try self.init(data: data, path: url.path)
    }

    public init(data: Data, path: String = "(zip)") throws {
        self.data = data
        self.path = path
        self.entries = try Self.centralDirectory(data, path)
    }

    /// The entry's bytes, inflated and checked against its CRC-32.
    public func contents(of entry: Entry) throws -> Data {
        let base = entry.localHeaderOffset
        guard base <= data.count - 30, u32(base) == 0x0403_4b50 else { throw fail("\(entry.name): no local header at offset \(base)") }
        let start = base + 30 + Int(u16(base + 26)) + Int(u16(base + 28))
        guard entry.compressedSize <= data.count - start else { throw fail("\(entry.name): data runs past the end of the file") }
        let raw = data.subdata(in: start..<(start + entry.compressedSize))
        let out: Data
        switch entry.method {
        case 0: out = raw
        case 8: out = try inflate(raw, expected: entry.size, name: entry.name)
        default: throw fail("\(entry.name): compression method \(entry.method) is not supported (stored and deflate are)")
        }
        let crc = out.withUnsafeBytes { buffer -> UInt32 in
            UInt32(CZlib.crc32(0, buffer.bindMemory(to: Bytef.self).baseAddress, uInt(buffer.count)))
        }
        guard crc == entry.crc32 else { throw fail("\(entry.name): CRC mismatch (the archive is damaged)") }
        return out
    }

    // MARK: - Reading the directory

    private static func centralDirectory(_ data: Data, _ path: String) throws -> [Entry] {
        func u16(_ o: Int) -> UInt16 { data.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt16.self)) } }
        func u32(_ o: Int) -> UInt32 { data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) } }
        func u64(_ o: Int) -> UInt64 { data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) } }
        func fail(_ m: String) -> FormatError { FormatError(description: "\(path): \(m)") }
        // A ZIP64 size or offset past Int.max cannot describe this file; `Int(_:)` would trap on it.
        func int64(_ o: Int) throws -> Int {
            guard let v = Int(exactly: u64(o)) else { throw fail("a ZIP64 size or offset is out of range") }
            return v
        }

        // The end record is the last 22 bytes, unless a comment (at most 65535 bytes) follows it.
        guard data.count >= 22 else { throw fail("too short to be a zip archive") }
        var eocd = -1
        var o = data.count - 22
        let floor = max(0, data.count - 22 - 65_535)
        while o >= floor {
            if u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record: not a zip archive") }
        var count = Int(u16(eocd + 10))
        var offset = Int(u32(eocd + 16))
        // ZIP64: the locator sits just before the end record and points at the ZIP64 end record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = try int64(eocd - 20 + 8)
            guard z <= data.count - 56, u32(z) == 0x0606_4b50 else { throw fail("broken ZIP64 end record") }
            count = try int64(z + 32)
            offset = try int64(z + 48)
        }
        var entries: [Entry] = []
        entries.reserveCapacity(min(count, data.count / 46))  // the count is a claim; an entry takes 46 bytes at least
        var p = offset
        for _ in 0..<count {
            guard p <= data.count - 46, u32(p) == 0x0201_4b50 else { throw fail("central directory entry \(entries.count + 1) is damaged") }
            let nameLength = Int(u16(p + 28)), extraLength = Int(u16(p + 30)), commentLength = Int(u16(p + 32))
            guard p + 46 + nameLength + extraLength <= data.count else { throw fail("central directory runs past the end of the file") }
            let name = String(decoding: data.subdata(in: (p + 46)..<(p + 46 + nameLength)), as: UTF8.self)
            var compressed = Int(u32(p + 20)), size = Int(u32(p + 24)), local = Int(u32(p + 42))
            // ZIP64 extra field (id 1): the 64-bit values, in this order, of the fields that are 0xFFFFFFFF.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = Int(u16(e + 2))
                if id == 1 {
                    var f = e + 4
                    func next() throws -> Int {
                        guard f + 8 <= extraEnd else { throw fail("\(name): ZIP64 extra field too short") }
                        defer { f += 8 }
                        return try int64(f)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + length
            }
            entries.append(Entry(name: name, method: u16(p + 10), compressedSize: compressed, size: size, crc32: u32(p + 16), localHeaderOffset: local))
            p += 46 + nameLength + extraLength + commentLength
        }
        return entries
    }

    /// The output buffer to start inflating into. The declared size is the archive's claim, not a fact:
    /// deflate expands at most 1032:1, so no more than that is allocated up front (a header claiming
    /// 4 GiB was otherwise allocated as such); a buffer that proves too small grows.
    static func initialInflateCapacity(declared: Int, compressed: Int) -> Int {
        max(1, min(declared, compressed * 1032 + 1024))
    }

    private func u16(_ o: Int) -> UInt16 { data.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt16.self)) } }
    private func u32(_ o: Int) -> UInt32 { data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) } }
    private func fail(_ m: String) -> FormatError { FormatError(description: "\(path): \(m)") }

    /// Raw deflate (no zlib header), as ZIP stores it.
    private func inflate(_ input: Data, expected: Int, name: String) throws -> Data {
        var stream = z_stream()
        guard cortex_inflate_init_raw(&stream) == Z_OK else { throw fail("\(name): zlib could not start") }
        defer { inflateEnd(&stream) }
        var output = Data(count: Self.initialInflateCapacity(declared: expected, compressed: input.count))
        var status: Int32 = Z_OK
        try input.withUnsafeBytes { (inBuffer: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: inBuffer.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(inBuffer.count)
            while true {
                let produced = Int(stream.total_out)
                if produced == output.count { output.count *= 2 }  // the declared size was wrong: grow
                status = output.withUnsafeMutableBytes { (outBuffer: UnsafeMutableRawBufferPointer) -> Int32 in
                    stream.next_out = outBuffer.bindMemory(to: Bytef.self).baseAddress! + produced
                    stream.avail_out = uInt(outBuffer.count - produced)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                if status == Z_STREAM_END { break }
                guard status == Z_OK || (status == Z_BUF_ERROR && stream.avail_out == 0) else {
                    throw fail("\(name): not valid deflate data (zlib \(status))")
                }
                if stream.avail_in == 0 && stream.avail_out > 0 { throw fail("\(name): deflate data ends early") }
            }
        }
        output.count = Int(stream.total_out)
        return output
    }
}
