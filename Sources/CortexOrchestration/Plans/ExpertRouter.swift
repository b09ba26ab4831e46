import CortexCore
import Foundation

/// Mixture-of-experts routing with learned weights: where a master can do a subtask in more than one way
/// (its experts, e.g. the advisory source: the OSV API or the offline database), the router picks one by
/// the outcomes of earlier subtasks of the same kind on the same target, and learns from each outcome.
///
/// The rule (docs/architecture.md, "Plans and routing"): each (kind, expert, target feature) keeps a Beta
/// posterior over "this expert succeeds here": weight = (α₀ + successes) / (α₀ + β₀ + trials), with
/// β₀ = 1 and α₀ = 1, or 3 for the dimension's preferred expert (two pseudo-successes: one bad run does not
/// abandon the default). A subtask's report counts as a success when it `succeeded`, a failure when it
/// ended `partial` or `failed`; `skipped` and `denied` are not the expert's doing and teach nothing.
/// The best weight wins; a tie between experts both tried goes to more findings per run, then the faster
/// one; any other tie to the preference order. The target's own record is used once any expert has been tried on
/// it, else the record over all targets (`*`). With probability `exploration` (decided by a hash of run and
/// subtask, so a resumed run decides the same) the least-tried expert is taken instead.
public struct ExpertRouter: Sendable {
    let redis: RedisClient
    /// Share of decisions that try the least-tried expert (CORTEX_ROUTING_EXPLORATION).
    let exploration: Double

    public init(redis: RedisClient, exploration: Double) {
        self.redis = redis
        self.exploration = exploration
    }

    /// The expert dimension of a kind, if it has one, and its experts in preference order.
    public static func dimension(of kind: SubtaskKind) -> (name: String, experts: [String])? {
        switch kind {
        // An analyze (the first step of "fix CVE-…") is not routed: every configured source, so the named advisory is not missed.
        case .scan: return ("advisories", ["osv-api", "offline-db"])
        default: return nil
        }
    }

    /// Kinds that are the same work for the router (an `analyze` is a security scan read for named advisories).
    static func routingKind(_ kind: SubtaskKind) -> String { kind == .analyze ? SubtaskKind.scan.rawValue : kind.rawValue }

    /// The target feature weights are kept for: the repository's name (`repo:shop`), or `cluster`.
    public static func feature(of target: String) -> String {
        target == ClusterSurvey.target ? "cluster" : "repo:\(RepositoryCheckout.name(of: target))"
    }

    /// What the router knows of one expert at one feature.
    public struct Record: Sendable, Equatable {
        public var trials = 0.0, successes = 0.0, milliseconds = 0.0, findings = 0.0, tokens = 0.0

        public init() {}

        /// The posterior mean with the prior for a preferred (α₀ = 3) or other (α₀ = 1) expert.
        public func weight(preferred: Bool) -> Double {
            let alpha = preferred ? 3.0 : 1.0
            return (alpha + successes) / (alpha + 1 + trials)
        }
        var meanFindings: Double { trials > 0 ? findings / trials : 0 }
        var meanMilliseconds: Double { trials > 0 ? milliseconds / trials : 0 }
    }

    /// The stats a record keeps, as the weights hash names them.
    static let stats = ["trials", "successes", "ms", "findings", "tokens"]

    /// Every record in the weights hash, by (kind, dimension, expert, feature).
    public static func records(_ fields: [String: String]) -> [RecordKey: Record] {
        var out: [RecordKey: Record] = [:]
        for (field, value) in fields {
            let parts = field.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 5, let v = Double(value) else { continue }
            let key = RecordKey(kind: parts[0], dimension: parts[1], expert: parts[2], feature: parts[3])
            var r = out[key] ?? Record()
            switch parts[4] {
            case "trials": r.trials = v
            case "successes": r.successes = v
            case "ms": r.milliseconds = v
            case "findings": r.findings = v
            case "tokens": r.tokens = v
            default: continue
            }
            out[key] = r
        }
        return out
    }

    /// Where a record is kept.
    public struct RecordKey: Hashable, Sendable, Comparable {
        public var kind, dimension, expert, feature: String

        public init(kind: String, dimension: String, expert: String, feature: String) {
            self.kind = kind
            self.dimension = dimension
            self.expert = expert
            self.feature = feature
        }
        func field(_ stat: String) -> String { [kind, dimension, expert, feature, stat].joined(separator: "|") }
        public static func < (a: RecordKey, b: RecordKey) -> Bool {
            (a.kind, a.dimension, a.feature, a.expert) < (b.kind, b.dimension, b.feature, b.expert)
        }
    }

    /// Picks an expert for `subtask` among `available` (what its master offers; in preference order of the
    /// dimension). Nil when the kind has no alternatives or fewer than two are available.
    public func decide(_ subtask: Subtask, runID: String, available: [String]) async throws -> RoutingDecision? {
        guard let dimension = Self.dimension(of: subtask.kind) else { return nil }
        let experts = dimension.experts.filter(available.contains)
        guard experts.count > 1 else { return nil }
        // Only the fields this decision reads (the hash holds every target's records and keeps growing).
        let kind = Self.routingKind(subtask.kind)
        let fields = experts.flatMap { expert in
            [Self.feature(of: subtask.target), "*"].flatMap { feature in
                Self.stats.map { RecordKey(kind: kind, dimension: dimension.name, expert: expert, feature: feature).field($0) }
            }
        }
        let values = try await redis.send(.hmget(CortexNames.routingWeights, fields)).orThrow().array ?? []
        let records = Self.records(Dictionary(zip(fields, values).compactMap { f, v in v.string.map { (f, $0) } }, uniquingKeysWith: { a, _ in a }))
        return Self.decide(subtask, runID: runID, dimension: dimension.name, experts: experts, records: records, exploration: exploration)
    }

    /// The decision itself, from the records (pure: the tests and `cortexctl routing` use it too).
    public static func decide(_ subtask: Subtask, runID: String, dimension: String, experts: [String], records: [RecordKey: Record],
                              exploration: Double) -> RoutingDecision {
        let kind = routingKind(subtask.kind)
        let targetFeature = feature(of: subtask.target)
        func record(_ expert: String, _ feature: String) -> Record {
            records[RecordKey(kind: kind, dimension: dimension, expert: expert, feature: feature)] ?? Record()
        }
        let known = experts.contains { record($0, targetFeature).trials > 0 }
        let feature = known ? targetFeature : "*"
        let preferred = experts.first
        let scored = experts.enumerated().map { i, e -> (expert: String, order: Int, record: Record, weight: Double) in
            let r = record(e, feature)
            return (e, i, r, r.weight(preferred: e == preferred))
        }
        let ranked = scored.sorted { a, b in
            if a.weight != b.weight { return a.weight > b.weight }
            // Findings and speed break a tie only between experts that have both been tried.
            if a.record.trials > 0 && b.record.trials > 0 {
                if a.record.meanFindings != b.record.meanFindings { return a.record.meanFindings > b.record.meanFindings }
                if a.record.meanMilliseconds != b.record.meanMilliseconds { return a.record.meanMilliseconds < b.record.meanMilliseconds }
            }
            return a.order < b.order
        }
        var chosen = ranked[0].expert
        var why = "best weight"
        if exploration > 0, unitHash("\(runID)|\(subtask.id)") < exploration {
            let leastTried = scored.min { ($0.record.trials, $0.order) < ($1.record.trials, $1.order) }!.expert
            if leastTried != chosen {
                chosen = leastTried
                why = "exploring: the least-tried expert (exploration \(exploration))"
            }
        }
        return RoutingDecision(dimension: dimension, chosen: chosen, feature: feature,
                               candidates: scored.map { .init(expert: $0.expert, weight: ($0.weight * 1000).rounded() / 1000, trials: $0.record.trials, successes: $0.record.successes) },
                               why: why)
    }

    /// A number in [0, 1) from a string (FNV-1a): the same run and subtask always explore or never.
    static func unitHash(_ text: String) -> Double {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Double(h >> 11) / Double(1 << 53)
    }

    /// Learns from one routed subtask's report, once per task (a resumed run or a second look adds
    /// nothing): the record at the target's feature and the one over all targets. Returns false when the
    /// outcome teaches nothing or it was learned before.
    @discardableResult
    public func learn(runID: String, taskID: String, subtask: Subtask, decision: RoutingDecision, outcome: Outcome, milliseconds: Int,
                      findings: Int, tokens: Int, retentionSeconds: Int) async throws -> Bool {
        guard outcome != .skipped && outcome != .denied else { return false }
        let kind = Self.routingKind(subtask.kind)
        var args: [any RedisArgument] = [taskID, retentionSeconds]
        for feature in Set([Self.feature(of: subtask.target), "*"]).sorted() {
            let key = RecordKey(kind: kind, dimension: decision.dimension, expert: decision.chosen, feature: feature)
            let increments: [(String, Double)] = [("trials", 1), ("successes", outcome == .succeeded ? 1 : 0), ("ms", Double(milliseconds)),
                                                  ("findings", Double(findings)), ("tokens", Double(tokens))]
            for (stat, by) in increments { args += [key.field(stat), String(by)] }
        }
        let reply = try await Self.learnScript.run(redis, keys: [CortexNames.runRouted(runID), CortexNames.routingWeights], args: args)
        try reply.orThrow()
        return reply.int == 1
    }

    /// Adds a report's outcome to the weights once per task: HSETNX guards, HINCRBYFLOAT adds.
    static let learnScript = RedisScript("""
        if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then return 0 end
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        for i = 3, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
        return 1
        """)

    /// The weights as a table (`cortexctl routing`): one row per (kind, dimension, feature, expert).
    public static func table(_ fields: [String: String]) -> String {
        let records = records(fields)
        guard !records.isEmpty else { return "No routing weights yet: the router learns from subtasks that had more than one expert.\n" }
        func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
            let t = String(s.prefix(n))
            let fill = String(repeating: " ", count: n - t.count)
            return right ? fill + t : t + fill
        }
        func number(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
        var out = [pad("KIND", 6), pad("DIMENSION", 11), pad("FEATURE", 28), pad("EXPERT", 11), pad("TRIALS", 7, right: true),
                   pad("SUCCESSES", 9, right: true), pad("WEIGHT", 7, right: true), pad("MEAN MS", 9, right: true), pad("FINDINGS", 9, right: true)].joined(separator: " ") + "\n"
        for (key, r) in records.sorted(by: { $0.key < $1.key }) {
            let preferred = SubtaskKind(rawValue: key.kind).flatMap { dimension(of: $0) }?.experts.first == key.expert
            out += [pad(key.kind, 6), pad(key.dimension, 11), pad(key.feature, 28), pad(key.expert, 11), pad(number(r.trials, 0), 7, right: true),
                    pad(number(r.successes, 0), 9, right: true), pad(number(r.weight(preferred: preferred), 3), 7, right: true),
                    pad(number(r.meanMilliseconds, 0), 9, right: true), pad(number(r.meanFindings, 1), 9, right: true)].joined(separator: " ") + "\n"
        }
        return out
    }
}
