@testable import CortexCore
@testable import CortexSecurity
import CortexCICD
import CortexOrchestration
import Foundation
import Testing

/// Inputs the libFuzzer targets under Fuzz/ found crashing a parser (docs/fuzzing.md); each is also
/// kept in the target's corpus (Fuzz/Corpus/<target>/crash-*), so `scripts/fuzz` replays it too.
@Suite struct FuzzRegressionTests {
    /// Fuzz/Corpus/workflow/crash-lone-carriage-returns: a workflow whose lines end in lone "\r". YAML counts
    /// them as line breaks, the patch builder split at "\n" only, and indexed past the end of the lines.
    /// The file is now analysed with its line breaks read as YAML reads them, and its findings carry no patch.
    @Test func aWorkflowWithLoneCarriageReturnsIsAnalysedWithoutPatches() throws {
        let text = "on:\r  pull_request_target:\rpermissions: write-all\rjobs:\r  lint:\r    runs-on: ubuntu-latest\r    steps:\r      - uses: actions/checkout@v4\r"
        let findings = try #require(try PipelineAnalyzer.analyze(file: ".github/workflows/ci.yml", text: text))
        #expect(!findings.isEmpty && findings.allSatisfy { $0.patch == nil }, "\(findings.map(\.rule))")
        #expect(findings.contains { $0.rule == "excessive-permissions" && $0.line == 3 }, "\(findings.map { "\($0.rule):\($0.line ?? 0)" })")
        let corpus = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus/workflow/crash-lone-carriage-returns"))
        _ = try? PipelineAnalyzer.analyze(file: ".github/workflows/x.yml", text: String(decoding: corpus, as: UTF8.self))
    }

    /// Fuzz/Corpus/json/crash-int-beyond-range: an integer beyond Int's range. `intValue` converted with
    /// `Int(_:)`, which traps; every envelope's `v` and every integer payload field goes through it.
    @Test func integerBeyondIntRangeIsNotAnInt() {
        #expect(JSONValue.number(999_999_999_999_999_999_999_999).intValue == nil)
        #expect(JSONValue.number(1e300).intValue == nil)
        #expect(JSONValue.number(-9.3e18).intValue == nil)
        #expect(JSONValue.number(42).intValue == 42)
        #expect(JSONValue.number(4.5).intValue == nil)

        let payload = #"{"v":999999999999999999999999,"id":"x","type":"ESCALATION","source":"s","ts":"2026-11-28T12:00:00.000Z","data":{}}"#
        guard case .failure(let rejection) = EnvelopeDecoder().decode(Array(payload.utf8), channel: nil) else {
            Issue.record("an envelope version beyond Int's range was accepted")
            return
        }
        #expect(rejection.reason == .invalid_envelope)
        #expect(Envelope(type: .TASK_PROGRESS, source: "w", data: ["done": 1e300]).int("done") == nil)
    }

    /// Fuzz/Corpus/version/crash-pep440-*: a PEP 440 release segment that starts with
    /// something `Character.isNumber` accepts but `Int(_:)` does not ("1" carrying a combining mark),
    /// or that overflows Int, was force-unwrapped. Such a version is now unparseable and orders after
    /// every parseable one, like any other malformed version.
    @Test func pep440ReleaseSegmentThatIsNotAnInt() {
        for bad in ["1.1\u{0310}", "1!2.1\u{0310}\u{FFFD}v", "1.99999999999999999999", "2.0.1\u{0663}"] {
            #expect(Ecosystem.PyPI.compare(bad, "1.0") == 1, "\(bad.debugDescription) sorts after parseable versions")
            #expect(Ecosystem.PyPI.compare("1.0", bad) == -1)
            #expect(Ecosystem.PyPI.compare(bad, bad) == 0)
        }
        // The fuzzer's input as found: the ecosystem's line, then one version (the second is empty).
        let input = Data(base64Encoded: "UHlQSQoxITIuMcyQnJ7/dpCPb3MxLmQrbG9jYQAAdAAAADEuZCtsb2NhAAAAAOHh4OHh4eEwLjMuMC1ybA==")!
        let text = String(decoding: input, as: UTF8.self)
        let found = String(text[text.index(after: text.firstIndex(of: "\n")!)...])
        #expect(Ecosystem.PyPI.compare(found, "") == 1)
        #expect(Ecosystem.PyPI.compare("", found) == -1)
    }

    /// Fuzz/Corpus/osv-zip/oom-declared-4gib.zip: a central directory entry declaring 0xFFFFFFFE uncompressed
    /// bytes for a 47-byte deflate stream made `inflate` allocate 4 GiB before reading a byte (libFuzzer:
    /// out-of-memory, malloc(4294967296)). The buffer now starts at what deflate can produce at most.
    @Test func zipEntryDeclaringHugeSizeIsNotAllocatedUpFront() throws {
        #expect(ZipArchive.initialInflateCapacity(declared: 0xFFFF_FFFE, compressed: 47) == 47 * 1032 + 1024)
        #expect(ZipArchive.initialInflateCapacity(declared: 50, compressed: 47) == 50)
        #expect(ZipArchive.initialInflateCapacity(declared: 0, compressed: 0) == 1)

        let found = Data(base64Encoded: """
            UEsDBBQAAAAAAAAAIQBqBNK/HQAAAB0AAAAQAAAAR0hTQS1zdG9yZWQuanNvbnsiaWQiOiJHSFNBLXgiLCJhZmZlY3RlZCI6W119UEsDBBQAAAAI\
            ADO1gV0xcpEoLwAAADIAAAASAAAAR0hTQS1kZWZsYXRlZC5qc29uq1bKTFGyUnL3CHbUrVTSUSouzc1NLKoECqWkpuUklqSmAAUT09JSk0FMq+jY\
            WgBQSwECFAMUAAAAAAAAACEAagQqvx0AAAAdAAAAEAAAAAAAAAAAAAAAgAEAAAAAR0hTQS1zdG9yZWQuanNvblBLAQIUAxQAAAAIADO1gV0xcpEo\
            LwAAAP7///8AAAAAAAAAAAAAAACAAUsAAABHSFNBLWRlZmxhdGVkLmpzb25QSwUGAAAAAAIAAgB+AAAAqgAAAAAA
            """)!
        let zip = try ZipArchive(data: found)
        let deflated = try #require(zip.entries.first { $0.method == 8 })  // the fuzzer emptied its name
        #expect(deflated.size == 0xFFFF_FFFE)
        // The data itself is intact: it inflates, and the CRC matches, whatever the header claimed.
        let contents = try zip.contents(of: deflated)
        #expect(String(decoding: contents, as: UTF8.self) == #"{"id":"GHSA-y","summary":"deflated","affected":[]}"#)
    }

    /// Fuzz/Corpus/osv-zip/crash-zip64-offset-beyond-int.zip: a ZIP64 end-of-directory locator whose
    /// 64-bit offset is beyond Int.max. `Int(_:)` on it trapped ("Not enough bits to represent the
    /// passed value"); so would a ZIP64 count, offset or extra-field size, or an offset near Int.max in
    /// a bounds check (`p + 46` overflowed). The archive is now refused as damaged.
    @Test func zip64OffsetBeyondIntIsRefused() {
        let found = Data(base64Encoded: """
            UEtQSwUGAAAAAAAAIQBqBNK/HQAAAB0AAAAQAAAAR0hTQSWr6NhaAFBLAQIUAxQAAAAAAAAAIQBqBNK/HQAAAB0AAAAQJAAAAAAAAAAAAAAAAAAA\
            IQBqBNK/HQAAgAEAAAAAR0hTQS1zdG9yZWQuanNvblBLAQIUAxQAAAAIADO1gV0xcpEoLwAAADIAAAASAAgAAAAAAAFK/1BLBgdTQS1kZWb/////\
            ////Nm9uUEsFBgAAAAACAAIAfgAAAKoAAAAEAA==
            """)!
        #expect(throws: ZipArchive.FormatError.self) { try ZipArchive(data: found) }

        // A well-formed ZIP64 archive (one stored entry, every size and offset in the ZIP64 fields)
        // still reads; the same archive with its entry's ZIP64 offset set to 2^63 is refused.
        var zip64 = Self.zip64Archive()
        let archive = try? ZipArchive(data: zip64)
        #expect(archive?.entries.map(\.name) == ["GHSA-zip64.json"])
        #expect(archive.flatMap { try? $0.contents(of: $0.entries[0]) }.map { String(decoding: $0, as: UTF8.self) } == #"{"id":"GHSA-z","affected":[]}"#)
        let localOffsetField = 30 + 15 + 29 + 46 + 15 + 4 + 16  // local header, name, data; directory entry, name; extra id+length, two sizes
        zip64.replaceSubrange(localOffsetField..<(localOffsetField + 8), with: [0, 0, 0, 0, 0, 0, 0, 0x80])
        #expect(throws: ZipArchive.FormatError.self) { try ZipArchive(data: zip64) }
    }

    /// Fuzz/Corpus/osv-zip/zip64-stored.zip: one stored entry, with a ZIP64 extra field, end record and locator.
    static func zip64Archive() -> Data {
        Data(base64Encoded: "UEsDBC0AAAAAAAAAAACtlO5rHQAAAB0AAAAPAAAAR0hTQS16aXA2NC5qc29ueyJpZCI6IkdIU0EteiIsImFmZmVjdGVkIjpbXX1QSwECLQAtAAAAAAAAAAAArZTua///////////DwAcAAAAAAAAAAAAAAD/////R0hTQS16aXA2NC5qc29uAQAYAB0AAAAAAAAAHQAAAAAAAAAAAAAAAAAAAFBLBgYsAAAAAAAAAC0ALQAAAAAAAAAAAAEAAAAAAAAAAQAAAAAAAABZAAAAAAAAAEoAAAAAAAAAUEsGBwAAAACjAAAAAAAAAAEAAABQSwUGAAAAAP///////////////wAA")!
    }

    /// Fuzz/Corpus/envelope/crash-timestamp-long-fraction: `ts` with 66 fractional digits. The
    /// protocol's fast timestamp parser read every fractional digit into one Int, which overflowed
    /// (a trap in whichever daemon received the message). Digits past nanoseconds are now checked
    /// but not accumulated.
    @Test func timestampWithLongFractionParses() throws {
        let long = "2026-11-18T11:06:40.08888888888888888888888888888888888888888888888888888888888888800Z"
        let date = try #require(Timestamp.parse(long))
        #expect(abs(date.timeIntervalSince1970 - (Double(try #require(Timestamp.parse("2026-11-18T11:06:40Z")).timeIntervalSince1970) + 0.088888888)) < 1e-6)
        #expect(Timestamp.parse("2026-11-18T11:06:40.123Z").map { Timestamp.format($0) } == "2026-11-18T11:06:40.123Z")
        #expect(Timestamp.parseUTC("2026-11-18T11:06:40.0888888888888888888888x88Z") == nil)

        let payload = #"{"data":{"r1eason":"pre-flightregistered after 30s: monitoring"},"id":"debug-run-failed","run_id":"run-debug","source":"coordinator","ts":"\#(long)","type":"RUN_FAILED","v":1}"#
        // The type's required `reason` is missing: rejected for its data, after the timestamp was read.
        guard case .failure(let rejection) = EnvelopeDecoder().decode(Array(payload.utf8), channel: nil) else {
            Issue.record("accepted an envelope without data.reason")
            return
        }
        #expect(rejection.reason == .invalid_data)
    }

    /// Fuzz/Corpus/envelope/crash-timestamp-icu-fpe: a `ts` with a long fraction the fast parser refuses
    /// (a stray byte in it, or an offset instead of Z) went to ISO8601DateFormatter, whose ICU parser
    /// traps with SIGFPE on such a fraction (and misreads 30 digits by a second). Timestamps longer
    /// than any form Cortex accepts no longer reach it.
    @Test func timestampTheFormatterCannotReadIsRefused() {
        let fraction = String(repeating: "8", count: 60)
        #expect(Timestamp.parse("2026-11-18T11:06:40.\(fraction)+01:00") == nil)
        #expect(Timestamp.parse("2026-11-18T11:06:40.0888\u{FFFD}\(fraction)Z") == nil)
        // The formatter still reads the offsets it is there for.
        #expect(Timestamp.parse("2026-11-18T12:06:40.123456789+01:00").map { Timestamp.format($0) } == "2026-11-18T11:06:40.123Z")
        #expect(Timestamp.parse("2026-11-18T12:06:40+01:00").map { Timestamp.format($0) } == "2026-11-18T11:06:40.000Z")
    }

    /// Found by CI's fuzz run: Foundation's `NSString.lastPathComponent` crashed on a lockfile path of
    /// `Gemfile.lock` followed by a run of slashes with a quote among them. `PathText` only splits on `/`.
    @Test func lockfilePathThatCrashedLastPathComponent() throws {
        let path = "Gemfile.lock" + String(repeating: "/", count: 21) + "'" + String(repeating: "/", count: 22)
        #expect(PathText.lastComponent(path) == "'")
        #expect(PathText.lastComponent("a/b/") == "b" && PathText.lastComponent("///") == "/" && PathText.lastComponent("") == "")
        #expect(PathText.lastComponent("deploy/app.yaml") == "app.yaml" && PathText.lastComponent("README.md") == "README.md")
        _ = try? Lockfiles.parse(path: path, text: "GEM\n  specs:\n    rack (3.0.0)\n")
        let input = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus/lockfile/crash-lastPathComponent-slashes"))
        let text = String(decoding: input, as: UTF8.self)
        let firstLine = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        _ = try? Lockfiles.parse(path: String(firstLine[0]), text: firstLine.count > 1 ? String(firstLine[1]) : "")
    }

    /// Found by CI's fuzz run (Fuzz/Corpus/envelope/crash-negative-year-roundtrip): the formatter read
    /// `"ts":"-026-11-28T12:00:00.000Z"`, which `Timestamp.format` then wrote in a form no parser accepts,
    /// so a forwarded or journaled copy of an accepted message would be refused. Only years 0001-9999 pass.
    @Test func timestampOutsideFourDigitYearsIsRefused() {
        #expect(Timestamp.parse("-026-11-28T12:00:00.000Z") == nil)
        #expect(Timestamp.parse("2026-11-28T12:00:00.000Z") != nil)
        #expect(Timestamp.parse("2026-11-28T12:00:00+02:00") != nil)
        let message = Array(#"{"v":1,"id":"manual-1","type":"ESCALATION","source":"operator","ts":"-026-11-28T12:00:00.000Z","data":{"severity":"high","reason":"manual test"}}"#.utf8)
        guard case .failure(let r) = EnvelopeDecoder().decode(message, channel: nil) else { Issue.record("accepted"); return }
        #expect(r.reason == .invalid_envelope)
        for ts in ["2026-11-28T12:00:00.000Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-28T12:00:00+05:30"] {
            let ok = Array(#"{"v":1,"id":"m","type":"ESCALATION","source":"o","ts":"\#(ts)","data":{"severity":"high","reason":"r"}}"#.utf8)
            guard case .success(let e) = EnvelopeDecoder().decode(ok, channel: nil) else { Issue.record("refused \(ts)"); continue }
            #expect((try? EnvelopeDecoder().decode(e.encoded(), channel: nil).get()) != nil, "\(ts) does not survive a round trip")
        }
    }
}
