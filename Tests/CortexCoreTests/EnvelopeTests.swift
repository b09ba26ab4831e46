import CortexCore
import Foundation
import Testing

@Suite struct EnvelopeTests {
    let decoder = EnvelopeDecoder()

    @Test(arguments: MessageType.allCases)
    func exampleRoundTripsOnItsChannel(type: MessageType) throws {
        let sent = Envelope(type: type, source: "test", runID: "run-1", data: type.exampleData)
        let got = try decoder.decode(sent.encoded(), channel: type.channel).get()
        #expect(got.id == sent.id)
        #expect(got.type == type)
        #expect(got.runID == "run-1")
        #expect(got.data == type.exampleData)
        #expect(abs(got.timestamp.timeIntervalSince(sent.timestamp)) < 0.001)
    }

    func reason(_ text: String, channel: CortexNames.Channel? = .workersStatus, decoder: EnvelopeDecoder? = nil) -> RejectionReason? {
        if case .failure(let r) = (decoder ?? self.decoder).decode(Array(text.utf8), channel: channel) { return r.reason }
        return nil
    }

    static let valid = #"{"v":1,"id":"x","type":"WORKER_SHUTDOWN","source":"w","run_id":null,"ts":"2026-01-01T00:00:00Z","data":{"worker":"w","node":"n"}}"#

    @Test func acceptsTheMinimalForm() {
        #expect(reason(Self.valid) == nil)
    }

    @Test func rejectsEachKindOfBadMessage() {
        #expect(reason("not json") == .invalid_json)
        #expect(reason("[1,2]") == .invalid_envelope)
        #expect(reason(Self.valid.replacingOccurrences(of: #""id":"x","#, with: "")) == .invalid_envelope)
        #expect(reason(Self.valid.replacingOccurrences(of: #""id":"x""#, with: #""id":7"#)) == .invalid_envelope)
        #expect(reason(Self.valid.replacingOccurrences(of: #""v":1"#, with: #""v":2"#)) == .unsupported_version)
        #expect(reason(Self.valid.replacingOccurrences(of: "WORKER_SHUTDOWN", with: "WORKER_DANCE")) == .unknown_type)
        #expect(reason(Self.valid, channel: .eventsSystem) == .wrong_channel)
        #expect(reason(Self.valid.replacingOccurrences(of: #""node":"n""#, with: #""node":5"#)) == .invalid_data)
        #expect(reason(Self.valid.replacingOccurrences(of: #","node":"n""#, with: "")) == .invalid_data)
        #expect(reason(Self.valid.replacingOccurrences(of: "2026-01-01T00:00:00Z", with: "yesterday")) == .invalid_envelope)
        #expect(reason(Self.valid.replacingOccurrences(of: #""run_id":null"#, with: #""run_id":3"#)) == .invalid_envelope)
        let small = EnvelopeDecoder(maxBytes: 64)
        #expect(reason(Self.valid, decoder: small) == .oversized)
    }

    @Test func integerFieldsRefuseFractions() {
        let text = #"{"v":1,"id":"x","type":"TASK_PROGRESS","source":"w","ts":"2026-01-01T00:00:00Z","data":{"item_id":"i","worker":"w","done":1.5,"total":2}}"#
        #expect(reason(text) == .invalid_data)
    }

    @Test func everyTypeHasOneChannelAndDocumentedFields() {
        for type in MessageType.allCases {
            #expect(!type.summary.isEmpty)
            #expect(!type.fields.isEmpty)
        }
        #expect(MessageType.phaseStart(3) == .PHASE_3_START)
        #expect(Set(CortexNames.Channel.allCases.map(\.rawValue)) == ["cortex:masters:coordination", "cortex:workers:status", "cortex:events:system", "cortex:catalog:events"])
        #expect(CortexNames.Channel.orchestration.count == 3 && !CortexNames.Channel.orchestration.contains(.catalogEvents))
    }
}

@Suite struct RedisEndpointTests {
    @Test func parsesTheDocumentedForms() throws {
        let plain = try RedisEndpoint(url: "redis://cache:6380")
        #expect(plain.host == "cache" && plain.port == 6380 && plain.database == 0 && plain.username == nil && plain.password == nil)
        let full = try RedisEndpoint(url: "redis://cortex:s%40cret@10.0.0.5:6379/3")
        #expect(full.username == "cortex" && full.password == "s@cret" && full.database == 3)
        #expect(full.description == "redis://cortex:***@10.0.0.5:6379/3")
        #expect(try RedisEndpoint(url: full.url) == full)
        let passwordOnly = try RedisEndpoint(url: "redis://:pw@localhost")
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw" && passwordOnly.port == 6379)
    }

    @Test func rejectsBadURLs() {
        for bad in ["http://x:6379", "redis://", "redis://host:6379/db", "not a url", "redis://host:70000"] {
            #expect(throws: RedisError.self) { try RedisEndpoint(url: bad) }
        }
    }
}

@Suite struct SettingsTests {
    @Test func flagsOverrideEnvironment() throws {
        let v = try SettingValues(arguments: ["--http-port", "9200", "--log-level=debug"],
                                  environment: ["CORTEX_HTTP_PORT": "9100", "CORTEX_REDIS_URL": "redis://r:1"], settings: Setting.all)
        #expect(try v.int(.httpPort) == 9200)
        #expect(v.string(.logLevel) == "debug")
        #expect(v.string(.redisURL) == "redis://r:1")
        #expect(v.string(.outputDir) == "./cortex-reports")
        #expect(try v.seconds(.heartbeatInterval) == .seconds(5))
    }

    @Test func badInputNamesTheSetting() throws {
        #expect(throws: ConfigurationError.self) { try SettingValues(arguments: ["--nope", "1"], environment: [:], settings: Setting.all) }
        #expect(throws: ConfigurationError.self) { try SettingValues(arguments: ["--http-port"], environment: [:], settings: Setting.all) }
        #expect(throws: ConfigurationError.self) { try SettingValues(arguments: ["stray"], environment: [:], settings: Setting.all) }
        let v = try SettingValues(arguments: [], environment: ["CORTEX_HTTP_PORT": "eighty", "CORTEX_HEARTBEAT_INTERVAL": "-1"], settings: Setting.all)
        do {
            _ = try v.int(.httpPort)
            Issue.record("expected an error")
        } catch let e as ConfigurationError {
            #expect(e.description.contains("CORTEX_HTTP_PORT"))
        }
        #expect(throws: ConfigurationError.self) { try v.seconds(.heartbeatInterval) }
    }
}
