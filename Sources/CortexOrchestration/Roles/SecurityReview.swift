import CortexCore
import CortexSecurity
import Foundation
import Logging

/// The security master's own step once its workers' records are merged: match the packages against the
/// advisory database (and the OSV API when configured), make the fix branch, hand critical findings to
/// the development and testing masters, and write the severity breakdown with SLA deadlines and the
/// SARIF log into the report.
final class SecurityReview: Sendable {
    let context: ProcessContext
    let databasePath: String?
    let apiURL: String?
    let fixBranches: Bool
    let githubToken: String?
    let githubAPIURL: String
    let githubHost: String
    /// The loaded database and the file signature it was loaded from (reloaded when that changes).
    private let cache = Locked<(signature: String, database: AdvisoryDatabase)?>(nil)
    /// Vulnerability counts of the latest scan of each target, for `cortex_vulnerabilities`.
    private let latest = Locked<[String: [CVSS3.Severity: Int]]>([:])

    init(context: ProcessContext) throws {
        self.context = context
        let s = context.settings
        databasePath = s.raw(.osvDatabase).flatMap { $0.isEmpty ? nil : $0 }
        apiURL = s.raw(.osvAPIURL).flatMap { $0.isEmpty ? nil : $0 }
        fixBranches = try s.bool(.securityFixBranches)
        githubToken = try s.secret(.githubToken, file: .githubTokenFile)
        githubAPIURL = s.string(.githubAPIURL)
        githubHost = s.string(.githubHost)
        for severity in CVSS3.Severity.allCases { context.metrics.vulnerabilities(severity: severity.rawValue, count: 0) }
    }

    /// The advisory sources this master can use, as experts the router chooses among (`osv-api` first: the
    /// freshest data is the default); only those configured.
    var experts: [String: [String]] {
        let sources = (apiURL == nil ? [] : ["osv-api"]) + (databasePath == nil ? [] : ["offline-db"])
        return sources.isEmpty ? [:] : ["advisories": sources]
    }

    /// Adds the review to `report` (its summary, Markdown and details). Returns the handoffs to send: the
    /// master records and publishes them in the same transaction as the report.
    func review(_ report: inout MasterReport, task: TaskSpec, log: Logger) async -> [Envelope] {
        var details = report.details.objectValue ?? [:]
        let packages = (details["packages"]?.arrayValue ?? []).compactMap { $0.decoded(as: PackageOccurrence.self) }
        let configuration = (details["config"]?.arrayValue ?? []).compactMap { $0.decoded(as: ConfigFinding.self) }
        let secrets = (details["secrets"]?.arrayValue ?? []).compactMap { $0.decoded(as: SecretScanner.Finding.self) }
        var notes: [String] = []
        var found: [VulnerabilityFinding] = []
        // Whether the packages were matched against any advisory source: without one, "0 vulnerabilities" would be a lie.
        var matched = false

        if task.skill == .securityScan {
            if databasePath == nil && apiURL == nil {
                notes.append("No advisory database is configured (CORTEX_OSV_DB or CORTEX_OSV_API_URL): \(packages.count) packages were inventoried but not matched.")
            }
            // The router's choice among the sources (nil: every configured one).
            let useDatabase = task.expert == nil || task.expert == "offline-db"
            let useAPI = task.expert == nil || task.expert == "osv-api"
            if let expert = task.expert { notes.append("Advisory source chosen by the router: \(expert).") }
            if useDatabase, let database = loadDatabase(notes: &notes, log: log) {
                matched = true
                found += database.findings(for: packages)
                notes.append("Advisory database: \(database.source), \(database.count) records (\(database.withdrawnCount) withdrawn, ignored)"
                             + (database.problems.isEmpty ? "." : "; \(database.problems.count) unreadable, e.g. \(database.problems[0])."))
            }
            if useAPI, let apiURL, !packages.isEmpty {
                do {
                    let records = try await OSVAPIClient(baseURL: apiURL).records(for: packages)
                    found += AdvisoryDatabase(records: records, source: apiURL).findings(for: packages)
                    matched = true
                    notes.append("OSV API \(apiURL): \(records.count) advisories concern these packages.")
                } catch {
                    notes.append("OSV API not used this time: \(error)")
                    log.warning("OSV API query failed: \(error)")
                }
            }
        }
        // One row per vulnerability: go.mod and go.sum, a GHSA record and its GO- twin, the database and the API.
        let vulnerabilities = VulnerabilityFinding.merged(found)

        var fix: FixResult?
        let plans = Self.plans(vulnerabilities)
        if task.skill == .securityScan && fixBranches && !plans.isEmpty {
            let maker = FixBranchMaker(runID: task.runID, workDirectory: context.coordinationDirectory.appendingPathComponent("security-fixes"),
                                       githubAPIURL: githubAPIURL, githubToken: githubToken, githubHost: githubHost)
            let result = await maker.make(target: task.target, plans: plans)
            for problem in result.problems { log.warning("fix branch: \(problem)") }
            if let pr = result.pullRequest { log.info("pull request opened: \(pr)") }
            fix = result
        }

        let critical = vulnerabilities.filter { $0.severity == .critical }
        let handoffs = critical.isEmpty ? [] : handOff(critical, task: task, branch: fix?.commit != nil ? fix?.branch : nil)
        let sent = handoffs.compactMap { try? $0.payload(HandoffRequest.self) }
        if let first = sent.first { notes.append("Handed off to \(sent.map(\.to).joined(separator: " and ")): \(first.reason)") }

        var counts: [CVSS3.Severity: Int] = [:]
        for v in vulnerabilities { counts[v.severity, default: 0] += 1 }
        if task.skill == .securityScan { updateGauge(target: task.target, counts: counts) }

        report.markdown = Self.markdown(vulnerabilities: vulnerabilities, configuration: configuration, secrets: secrets, fix: fix, notes: notes,
                                        reportedAt: report.finishedAt, vulnerabilitiesChecked: matched || task.skill != .securityScan || packages.isEmpty) + "\n" + report.markdown
        let breakdown = CVSS3.Severity.allCases.compactMap { s in counts[s].map { "\($0) \(s.rawValue)" } }.joined(separator: ", ")
        let distinct = Set(packages.map { "\($0.ecosystem)/\($0.name)@\($0.version)" }).count
        var headline = ""
        if task.skill == .securityScan && !matched && !packages.isEmpty {
            let why = databasePath == nil && apiURL == nil ? "no advisory database (CORTEX_OSV_DB) and no OSV API (CORTEX_OSV_API_URL) configured"
                : task.expert.map { "the advisory source the router chose (\($0)) could not be read (see the notes)" }
                    ?? "the configured advisory sources could not be read (see the notes)"
            let packagesText = "\(distinct) package\(distinct == 1 ? "" : "s") inventoried, none matched"
            headline = "vulnerabilities NOT CHECKED: \(packagesText): \(why); "
            report.notChecked("vulnerabilities (\(packagesText): \(why))")
        } else if task.skill == .securityScan {
            headline = "\(vulnerabilities.count) vulnerabilities" + (breakdown.isEmpty ? "" : " (\(breakdown))") + " in \(distinct) packages"
                + (task.expert.map { " (advisories from \($0) only, chosen by the router)" } ?? "") + "; "
        }
        headline += report.summary
        if let fix, fix.commit != nil { headline += "; fix branch \(fix.branch)" + (fix.pullRequest.map { " (\($0))" } ?? "") }
        report.summary = headline
        details["vulnerabilities"] = .array(vulnerabilities.map(JSONValue.of))
        details["severity_counts"] = .object(Dictionary(uniqueKeysWithValues: CVSS3.Severity.allCases.map { ($0.rawValue, JSONValue.number(Double(counts[$0] ?? 0))) }))
        details["sarif"] = SARIFLog.make(vulnerabilities: vulnerabilities, configuration: configuration, secrets: secrets)
        if let fix { details["fix"] = JSONValue.of(fix) }
        details["notes"] = .array(notes.map(JSONValue.string))
        report.details = .object(details)
        return handoffs
    }

    /// The configured database, loaded once and again whenever its files change; nil (with a note) when
    /// it cannot be read, so the scan still reports everything else.
    private func loadDatabase(notes: inout [String], log: Logger) -> AdvisoryDatabase? {
        guard let path = databasePath else { return nil }
        let signature = Self.signature(path)
        if let cached = cache.value, cached.signature == signature { return cached.database }
        do {
            let started = ContinuousClock.now
            let database = try AdvisoryDatabase.load(path)
            cache.withLock { $0 = (signature, database) }
            log.info("advisory database loaded: \(database.count) records from \(database.source) in \(ContinuousClock.now - started)")
            return database
        } catch {
            notes.append("Advisory database unreadable: \(error)")
            log.error("advisory database unreadable: \(error)")
            return nil
        }
    }

    /// Modification times and sizes of the path and the zip archives or top-level entries in it.
    static func signature(_ path: String) -> String {
        let fm = FileManager.default
        func stamp(_ p: String) -> String {
            let a = try? fm.attributesOfItem(atPath: p)
            return "\(p)@\((a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)/\(a?[.size] as? Int ?? 0)"
        }
        var parts = [stamp(path)]
        if let children = try? fm.contentsOfDirectory(atPath: path) {
            for child in children.sorted() {
                let p = (path as NSString).appendingPathComponent(child)
                parts.append(stamp(p))
                if let zip = try? fm.contentsOfDirectory(atPath: p).filter({ $0.hasSuffix(".zip") }) { parts += zip.map { stamp((p as NSString).appendingPathComponent($0)) } }
            }
        }
        return parts.joined(separator: "|")
    }

    /// One bump per package version and module: to the highest of its advisories' lowest fixes, so one
    /// bump clears every advisory that has a fix, in every file of the module that pins the version.
    static func plans(_ vulnerabilities: [VulnerabilityFinding]) -> [FixPlan] {
        var plans: [String: FixPlan] = [:]
        var order: [String] = []
        for v in vulnerabilities {
            guard let fix = v.lowestFix, let file = v.file, let ecosystem = Ecosystem(rawValue: v.ecosystem) else { continue }
            let key = [VulnerabilityFinding.moduleDirectory(file), v.ecosystem, AdvisoryDatabase.normalizedName(v.package, ecosystem: v.ecosystem), v.version]
                .joined(separator: "\u{0}")
            let files = v.locations.map(\.file)
            if var plan = plans[key] {
                if ecosystem.compare(fix, plan.to) > 0 { plan.to = fix }
                if !plan.advisories.contains(v.advisory) { plan.advisories.append(v.advisory) }
                plan.files += files.filter { !plan.files.contains($0) }
                plans[key] = plan
            } else {
                plans[key] = FixPlan(file: file, ecosystem: v.ecosystem, package: v.package, from: v.version, to: fix, advisories: [v.advisory],
                                     files: files, installedAs: v.installedAs?.first { $0 != v.package })
                order.append(key)
            }
        }
        return order.compactMap { plans[$0] }
    }

    /// The design's "Found 3 critical CVEs, need dev input": to the development master (the change) and
    /// the testing master (the tests around it), at critical priority (the fix may draw on the reserve).
    private func handOff(_ critical: [VulnerabilityFinding], task: TaskSpec, branch: String?) -> [Envelope] {
        let ids = Array(Set(critical.map(\.advisory))).sorted()
        let reason = "Found \(ids.count) critical CVE\(ids.count == 1 ? "" : "s") in \(RepositoryCheckout.name(of: task.target)), need dev input: "
            + critical.prefix(5).map { "\($0.displayName) \($0.version) (\($0.aliases.first { $0.hasPrefix("CVE-") } ?? $0.advisory))" }.joined(separator: ", ")
        return [MasterRole.development, .testing].map { to in
            Envelope(HandoffRequest(from: MasterRole.security.rawValue, to: to.rawValue, reason: reason, taskID: task.id, target: task.target,
                                    advisories: ids, branch: branch, priority: TaskPriority.critical.rawValue),
                     source: context.processName, runID: task.runID)
        }
    }

    private func updateGauge(target: String, counts: [CVSS3.Severity: Int]) {
        let all = latest.withLock { l -> [String: [CVSS3.Severity: Int]] in l[target] = counts; return l }
        for severity in CVSS3.Severity.allCases {
            context.metrics.vulnerabilities(severity: severity.rawValue, count: all.values.reduce(0) { $0 + ($1[severity] ?? 0) })
        }
    }

    // MARK: - The report section

    static func markdown(vulnerabilities: [VulnerabilityFinding], configuration: [ConfigFinding], secrets: [SecretScanner.Finding],
                         fix: FixResult?, notes: [String], reportedAt: Date, vulnerabilitiesChecked: Bool = true) -> String {
        func count(_ s: CVSS3.Severity) -> (Int, Int, Int) {
            (vulnerabilities.filter { $0.severity == s }.count, configuration.filter { $0.severity == s }.count,
             secrets.filter { SARIFLog.secretSeverity($0.rule) == s }.count)
        }
        var md = "### Security findings by severity\n\n| Severity | Vulnerabilities | Configuration | Secrets | SLA | Fix by (UTC) |\n|---|---|---|---|---|---|\n"
        for s in CVSS3.Severity.allCases {
            let (v, c, k) = count(s)
            let due = v + c + k == 0 ? "-" : Timestamp.format(reportedAt.addingTimeInterval(Double(s.slaHours) * 3600))
            md += "| \(s.rawValue) | \(vulnerabilitiesChecked ? "\(v)" : "not checked") | \(c) | \(k) | \(s.slaHours) h | \(due) |\n"
        }
        if !notes.isEmpty { md += "\n" + notes.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        md += "\n### Vulnerable dependencies\n\n"
        if vulnerabilities.isEmpty {
            md += "_none found_\n"
        } else {
            md += "| Severity | Score | Advisory | Aliases | Package | Version | Ecosystem | Fixed in | Where |\n|---|---|---|---|---|---|---|---|---|\n"
            for v in vulnerabilities {
                let place = v.locations.map(\.text).joined(separator: ", ")
                md += "| \(v.severity.rawValue) | \(v.score.map { String(format: "%.1f", $0) } ?? "-") | \(v.advisory) | \(v.aliases.joined(separator: ", ")) | \(v.displayName) | \(v.version) | \(v.ecosystem) | \(v.lowestFix ?? "no fix") | \(place) |\n"
            }
        }
        if let fix {
            md += "\n### Fix branch\n\n"
            if fix.commit != nil {
                md += "Branch `\(fix.branch)` (from `\(fix.base ?? "?")`), commit `\(fix.commit!.prefix(12))`, in \(fix.branchLocation ?? "?")"
                    + (fix.pullRequest.map { "; pull request: \($0)" } ?? "") + ".\n\n" + fix.bumps.map { "- \($0)" }.joined(separator: "\n") + "\n"
            }
            if !fix.notes.isEmpty { md += "\n" + fix.notes.map { "> \($0)" }.joined(separator: "\n") + "\n" }
            if !fix.manual.isEmpty { md += "\nNot changed automatically (run these):\n\n" + fix.manual.map { "    \($0)" }.joined(separator: "\n") + "\n" }
            if !fix.problems.isEmpty { md += "\nProblems:\n\n" + fix.problems.map { "- \($0)" }.joined(separator: "\n") + "\n" }
            if let patch = fix.patch { md += "\nThe patch (`git am` applies it):\n\n```diff\n\(patch)```\n" }
        }
        return md
    }
}
