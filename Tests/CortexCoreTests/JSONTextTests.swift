import CortexCore
import Foundation
import Testing

/// The hand-written JSON reader and writer agree with Foundation's and refuse what is not JSON.
@Suite struct JSONTextTests {
    @Test func roundTripsAndMatchesFoundation() throws {
        let samples = [
            #"{"a":[1,2.5,-3e-7,true,false,null],"b":{"c":"d\"e\\f\n\t\u0001/é😀"},"":""}"#,
            #"[]"#, #"{}"#, #""x""#, "0", "-0.125", "1e300", #"[[[[{"k":[]}]]]]"#, #""\ud83d\ude00 \u00e9""#,
        ]
        for text in samples {
            let ours = try JSONText.parse(text)
            let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
            #expect(ours == foundation, "\(text)")
            // What we write, Foundation reads back to the same value, and our writer is stable.
            let written = JSONText.serialize(ours)
            #expect(try JSONDecoder().decode(JSONValue.self, from: Data(written.utf8)) == ours)
            #expect(JSONText.serialize(try JSONText.parse(written)) == written)
        }
        #expect(JSONText.serialize(["b": 1, "a": [true, .null], "s": "x/y\"\u{1}"]) == #"{"a":[true,null],"b":1,"s":"x/y\"\u0001"}"#)
    }

    @Test func refusesWhatIsNotJSON() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"abc", "\"a\u{1}b\"", #""\x""#, #""\ud800""#, "[1] x", "NaN", "{'a':1}"] {
            #expect(throws: JSONText.SyntaxError.self, "\(text)") { try JSONText.parse(text) }
        }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONText.SyntaxError.self) { try JSONText.parse(deep) }
    }

    @Test func timestampsWithoutAFormatter() throws {
        let date = Date(timeIntervalSince1970: 1_795_000_000.123)
        #expect(Timestamp.format(date) == "2026-11-18T11:06:40.123Z")
        #expect(Timestamp.parse("2026-11-18T11:06:40.123Z")?.timeIntervalSince1970 == 1_795_000_000.123)
        #expect(Timestamp.parse("2026-11-18T11:06:40Z")?.timeIntervalSince1970 == 1_795_000_000)
        #expect(Timestamp.parse("2026-11-18T12:06:40+01:00")?.timeIntervalSince1970 == 1_795_000_000)
        #expect(Timestamp.parse("2026-13-18T11:06:40Z") == nil)
        #expect(Timestamp.parse("yesterday") == nil)
        #expect(Timestamp.format(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
    }
}
