// libFuzzer entry points for Cortex's parsers of untrusted text. One binary serves every target;
// `CORTEX_FUZZ_TARGET` names the one to run (scripts/fuzz sets it). Each target feeds the input to
// the same public entry points the daemons use, then to what a reader does next with the result
// (typed field access, re-serialisation), so a trap anywhere on that path is a finding.
//
// A target's input format is chosen so the corpus stays readable: where a parser needs a selector
// (a file name, a message type, an ecosystem) it is the input's first line.

@testable import CortexCICD
@testable import CortexCore
@testable import CortexOrchestration
@testable import CortexSecurity
import Foundation

/// The targets by name, as `scripts/fuzz` lists them (and as the corpus directories are named).
let targets: [String: @Sendable (Data) -> Void] = [
    "json": fuzzJSON,
    "envelope": fuzzEnvelope,
    "message-data": fuzzMessageData,
    "stream-entry": fuzzStreamEntry,
    "lockfile": fuzzLockfile,
    "workflow": fuzzWorkflow,
    "osv": fuzzOSV,
    "osv-zip": fuzzOSVZip,
    "version": fuzzVersion,
]

/// The target chosen by `CORTEX_FUZZ_TARGET`, resolved once (a global's initialiser runs once, lazily).
let selected: @Sendable (Data) -> Void = {
    let name = ProcessInfo.processInfo.environment["CORTEX_FUZZ_TARGET"] ?? ""
    guard let target = targets[name] else {
        let known = targets.keys.sorted().joined(separator: ", ")
        FileHandle.standardError.write(Data("cortex-fuzz: set CORTEX_FUZZ_TARGET to one of: \(known) (got '\(name)')\n".utf8))
        exit(2)
    }
    return target
}()

/// One input for the selected target. Exported under libFuzzer's name as well, because
/// -sanitize=fuzzer links all of libFuzzer, whose unused `main` refers to it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    selected(data)
    return 0
}

// MARK: - Helpers

/// The first line (the selector) and the rest of the input.
func splitFirstLine(_ data: Data) -> (String, String) {
    let text = String(decoding: data, as: UTF8.self)
    guard let newline = text.firstIndex(of: "\n") else { return (text, "") }
    return (String(text[..<newline]), String(text[text.index(after: newline)...]))
}

/// Touches every value the way readers do: numbers as integers and doubles, strings, nested members.
func walk(_ value: JSONValue, depth: Int = 0) {
    switch value {
    case .number:
        _ = value.intValue
        _ = value.doubleValue
    case .array(let items):
        for (i, item) in items.enumerated() { _ = value[i]; walk(item, depth: depth + 1) }
    case .object(let members):
        for (key, member) in members { _ = value[key]; walk(member, depth: depth + 1) }
    case .string, .bool, .null:
        _ = value.stringValue
        _ = value.boolValue
    }
}

/// A trap with the reason, so the crash report says which invariant broke.
func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant: \(message())") }
}

// MARK: - Targets

/// `JSONText.parse` (every channel message, catalog record and HTTP body), then what Cortex writes
/// back: compact and pretty text must parse again to the same value.
func fuzzJSON(_ data: Data) {
    guard let value = try? JSONText.parse([UInt8](data)) else { return }
    walk(value)
    let compact = JSONText.serialize(value)
    let again = try? JSONText.parse(compact)
    invariant(again == value, "serialize(parse(x)) does not parse back to the same value: \(compact.prefix(200))")
    invariant((try? JSONText.parse(JSONText.pretty(value))) == value, "pretty(parse(x)) does not parse back")
}

/// `EnvelopeDecoder.decode` on every channel (and none), then the accessors handlers use.
func fuzzEnvelope(_ data: Data) {
    let bytes = [UInt8](data)
    let decoder = EnvelopeDecoder()
    for channel in [nil] + CortexNames.Channel.allCases.map(Optional.some) {
        guard case .success(let envelope) = decoder.decode(bytes, channel: channel) else { continue }
        for spec in envelope.type.fields {
            _ = envelope.string(spec.name)
            _ = envelope.int(spec.name)
        }
        walk(envelope.data)
        // What a process forwards or journals must decode again.
        let again = decoder.decode(envelope.encoded(), channel: channel)
        if case .failure(let rejection) = again {
            fatalError("fuzz invariant: a decoded envelope does not decode after encoding: \(rejection)")
        }
    }
}

/// Each message type's `data`: the first line names the type, the rest is the data object, checked
/// against the type's field specs through a full envelope, then read field by field as handlers do.
func fuzzMessageData(_ data: Data) {
    let (typeName, body) = splitFirstLine(data)
    guard let type = MessageType(rawValue: typeName) else { return }
    guard let payload = try? JSONText.parse(body) else { return }
    let envelope: JSONValue = [
        "v": 1, "id": "fuzz", "type": .string(type.rawValue), "source": "cortex-fuzz", "run_id": "run-fuzz",
        "ts": "2026-11-28T03:00:00.000Z", "data": payload,
    ]
    guard case .success(let decoded) = EnvelopeDecoder().decode(Array(envelope.description.utf8), channel: type.channel) else { return }
    for spec in type.fields {
        _ = decoded.string(spec.name)
        _ = decoded.int(spec.name)
        _ = decoded.data[spec.name]?.doubleValue
    }
    walk(decoded.data)
}

/// Durable stream entries and the hashes read back with them: the first line is the field
/// (`request`, `task`, `item`, `result`, `report`, `checkpoint`, `listing`, or `run:<hash field>`),
/// the rest its value, decoded as the coordinator, masters and workers decode it.
func fuzzStreamEntry(_ data: Data) {
    let (field, text) = splitFirstLine(data)
    switch field {
    case "request":
        if let r = try? WireJSON.decode(RunRequest.self, from: text) { _ = try? WireJSON.encode(r) }
    case "task":
        if let t = try? WireJSON.decode(TaskSpec.self, from: text) { _ = try? WireJSON.encode(t) }
    case "item":
        if let i = try? WireJSON.decode(WorkItem.self, from: text) {
            _ = RepositoryFiles.shard(of: i.target, shards: i.shards)
            _ = try? WireJSON.encode(i)
        }
    case "result":
        if let r = try? WireJSON.decode(WorkResult.self, from: text) { walk(r.output); _ = try? WireJSON.encode(r) }
    case "report":
        if let r = try? WireJSON.decode(MasterReport.self, from: text) { walk(r.details); _ = try? WireJSON.encode(r) }
    case "checkpoint":
        if let c = try? WireJSON.decode(Checkpoint.self, from: text) { c.records.forEach { walk(.object($0)) } }
    case "listing":
        _ = try? WireJSON.decode([String].self, from: text)
    default:
        // A run's hash: `run:<field>` lines; every field at once, as HGETALL returns them.
        guard field.hasPrefix("run:") else { return }
        var fields: [String: String] = [String(field.dropFirst(4)): ""]
        var current = String(field.dropFirst(4))
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("run:") { current = String(line.dropFirst(4)); fields[current] = "" }
            else { fields[current, default: ""] += line }
        }
        _ = RunState(runID: "run-fuzz", fields: fields).isFinished
    }
}

/// The lockfile parsers: the first line is the file's path (its name picks the parser), the rest
/// the file; also the Dockerfile base-image reader.
func fuzzLockfile(_ data: Data) {
    let (path, text) = splitFirstLine(data)
    _ = try? Lockfiles.parse(path: path, text: text)
    if path.hasSuffix("Dockerfile") { _ = Lockfiles.dockerBaseImages(text) }
}

/// The CI pipeline analyzers (through Yams): the first line is the path (`.github/workflows/*.yml`
/// or `.gitlab-ci.yml`), the rest the workflow.
func fuzzWorkflow(_ data: Data) {
    let (path, text) = splitFirstLine(data)
    let file = path.hasPrefix(".github/workflows/") || path.hasSuffix(".gitlab-ci.yml") ? path : ".github/workflows/ci.yml"
    _ = try? PipelineAnalyzer.analyze(file: file, text: text)
}

/// One OSV record as `AdvisoryDatabase.load` reads it, indexed and matched against every package
/// and version it names (its listed versions and range events), as the security master does.
func fuzzOSV(_ data: Data) {
    guard let record = try? JSONText.parse(String(decoding: data, as: UTF8.self)) else { return }
    let database = AdvisoryDatabase(records: [record], source: "fuzz")
    var packages: [PackageOccurrence] = []
    for affected in record["affected"]?.arrayValue ?? [] {
        guard let eco = affected["package"]?["ecosystem"]?.stringValue, let name = affected["package"]?["name"]?.stringValue else { continue }
        var versions = (affected["versions"]?.arrayValue ?? []).compactMap(\.stringValue)
        for range in affected["ranges"]?.arrayValue ?? [] {
            for event in range["events"]?.arrayValue ?? [] {
                for key in ["introduced", "fixed", "last_affected", "limit"] { if let v = event[key]?.stringValue { versions.append(v) } }
            }
        }
        for version in versions.prefix(16) + ["0", "1.0.0"] { packages.append(PackageOccurrence(ecosystem: eco, name: name, version: version)) }
    }
    let findings = database.findings(for: packages)
    for finding in findings { _ = try? WireJSON.encode(finding) }
    // One row per vulnerability, as the security master reports them (twins merged by their ids).
    _ = VulnerabilityFinding.merged(findings)
    _ = AdvisoryDatabase.severity(of: record)
}

/// OSV's `all.zip` exports: the central directory, then every JSON entry's contents.
func fuzzOSVZip(_ data: Data) {
    guard let zip = try? ZipArchive(data: data, path: "fuzz.zip") else { return }
    for entry in zip.entries.prefix(64) { _ = try? zip.contents(of: entry) }
}

/// Version ordering of each ecosystem: the first line names the ecosystem, the next two lines are
/// versions. Ordering must be antisymmetric and reflexive, or sorting fixes and matching ranges breaks.
func fuzzVersion(_ data: Data) {
    let (name, rest) = splitFirstLine(data)
    guard let ecosystem = Ecosystem(rawValue: name) else { return }
    let (a, b) = splitFirstLine(Data(rest.utf8))
    let ab = ecosystem.compare(a, b), ba = ecosystem.compare(b, a)
    invariant(ab == -ba, "\(name): compare(\(a.debugDescription), \(b.debugDescription)) = \(ab) but the reverse is \(ba)")
    invariant(ecosystem.compare(a, a) == 0, "\(name): \(a.debugDescription) does not compare equal to itself")
}
