/// Envelope ids: random UUIDs (version 4) as lower-case text, the form `UUID().uuidString.lowercased()`
/// gave, drawn from the system's generator. Foundation's `UUID()` opened /dev/urandom on every call (twice
/// per work item in a worker's profile); this costs no file descriptor and no Foundation.
public enum MessageID {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// A new random id, e.g. `3f2b8c1e-9d4a-4e7b-a1c2-5d6e7f8a9b0c`.
    public static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        // Version 4 (random) in the high nibble of byte 6, variant 10 in the top bits of byte 8.
        let high = (generator.next() as UInt64) & ~0xF000 | 0x4000
        let low = (generator.next() as UInt64) & ~(0xC << 60) | (0x8 << 60)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (i, word) in [high, low].enumerated() {
            for nibble in 0..<16 {
                let position = i * 16 + nibble
                if position == 8 || position == 12 || position == 16 || position == 20 { text.append(UInt8(ascii: "-")) }
                text.append(hex[Int((word >> UInt64(60 - 4 * nibble)) & 0xF)])
            }
        }
        return String(decoding: text, as: UTF8.self)
    }
}
