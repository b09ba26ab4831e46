import CortexCore
import Foundation
import Yams

/// Security and speed review of one GitHub Actions workflow file.
public enum GitHubActionsAnalyzer {
    /// Package managers whose installs a cache speeds up: (name, command pattern, how setup-* caches it, cache snippet).
    static let installers: [(name: String, pattern: NSRegularExpression, setup: (action: String, value: String)?, cache: String)] = [
        ("npm", try! NSRegularExpression(pattern: #"\b(npm (ci|install)|yarn( install)?$|yarn install|pnpm install)\b"#, options: .anchorsMatchLines),
         ("actions/setup-node", "npm"), "path: ~/.npm\nkey: ${{ runner.os }}-npm-${{ hashFiles('**/package-lock.json') }}"),
        ("pip", try! NSRegularExpression(pattern: #"\b(pip3? install|python -m pip install|poetry install)\b"#), ("actions/setup-python", "pip"),
         "path: ~/.cache/pip\nkey: ${{ runner.os }}-pip-${{ hashFiles('**/requirements*.txt') }}"),
        ("SwiftPM", try! NSRegularExpression(pattern: #"\bswift (build|test)\b"#), nil,
         "path: .build\nkey: ${{ runner.os }}-spm-${{ hashFiles('Package.resolved') }}"),
        ("Go", try! NSRegularExpression(pattern: #"\bgo (build|test|mod download)\b"#), nil,
         "path: |\n  ~/go/pkg/mod\n  ~/.cache/go-build\nkey: ${{ runner.os }}-go-${{ hashFiles('**/go.sum') }}"),
        ("Cargo", try! NSRegularExpression(pattern: #"\bcargo (build|test)\b"#), nil,
         "path: |\n  ~/.cargo/registry\n  target\nkey: ${{ runner.os }}-cargo-${{ hashFiles('**/Cargo.lock') }}"),
        ("Gradle", try! NSRegularExpression(pattern: #"(\./gradlew|\bgradle) "#), ("actions/setup-java", "gradle"),
         "path: ~/.gradle/caches\nkey: ${{ runner.os }}-gradle-${{ hashFiles('**/*.gradle*') }}"),
        ("Maven", try! NSRegularExpression(pattern: #"\bmvn "#), ("actions/setup-java", "maven"),
         "path: ~/.m2/repository\nkey: ${{ runner.os }}-maven-${{ hashFiles('**/pom.xml') }}"),
    ]

    /// GitHub's default job timeout, in minutes.
    static let defaultTimeout = 360

    /// Findings of one workflow: the security audits (`WorkflowAudits`, zizmor's depth), checkouts of
    /// untrusted code, and speed advice that never trades safety for time. `lockfiles` are the paths of
    /// the repository's dependency lockfiles (nil: not known, and no cache is suggested then).
    public static func analyze(file: String, text: String, lockfiles: Set<String>? = nil) throws -> [PipelineFinding] {
        let root = try PipelineYAML.compose(text, file: file)
        guard let jobsNode = root.value("jobs"), let jobs = jobsNode.mapping else {
            throw PipelineParseError(file: file, line: root.line, message: "no `jobs:` mapping: not a GitHub Actions workflow")
        }
        let jobsLine = root.mapping?.first { $0.key.string == "jobs" }?.key.line ?? 1
        let workflow = Workflow(file: file, text: text, root: root)
        let triggers = workflow.triggerNames
        var out = WorkflowAudits.run(workflow)
        let untrustedTrigger = triggers.contains("pull_request_target") || triggers.contains("workflow_run")
        let sensitive = SensitiveWork(workflow)

        out += concurrencyFindings(file: file, text: text, root: root, jobs: jobs, jobsLine: jobsLine, triggers: triggers, sensitive: sensitive)
        for job in workflow.jobs {
            let matrixSize = Self.matrixSize(job.node)
            let steps = job.steps.map(\.node)
            if untrustedTrigger {
                for step in job.steps where step.uses?.isAction("actions/checkout") == true {
                    out += untrustedCheckout(file: file, text: text, job: job.id, step: step)
                }
            }
            if !sensitive.publishes(job) {
                out += cacheFindings(file: file, text: text, job: job.id, jobLine: job.line, steps: steps, matrixSize: matrixSize, lockfiles: lockfiles)
            }
            out += needsFindings(file: file, text: text, job: job.id, node: job.node, steps: steps, jobs: jobs, sensitive: sensitive)
            out += timeoutFindings(file: file, text: text, job: job.id, node: job.node, jobLine: job.line, matrixSize: matrixSize)
            out += Self.matrixFindings(file: file, text: text, job: job.id, node: job.node)
        }
        return out
    }

    // MARK: workflow-level rules

    /// A pull-request workflow without a `concurrency:` group. Not for workflows that deploy,
    /// publish, or run when a pull request is closed or merged: cancelling those half-way leaves a
    /// release or deployment half done, which no saving is worth.
    static func concurrencyFindings(file: String, text: String, root: Node, jobs: Node.Mapping, jobsLine: Int, triggers: Set<String>, sensitive: SensitiveWork) -> [PipelineFinding] {
        guard triggers.contains("pull_request") && root.value("concurrency") == nil && !jobs.contains(where: { $0.value.value("concurrency") != nil }) else { return [] }
        guard sensitive.reason == nil else { return [] }
        return [PipelineFinding(file: file, line: jobsLine, category: "speed", rule: "gha-no-concurrency", severity: "low",
            message: "No `concurrency:` group: every push to a pull request starts a full run while the previous one keeps going.",
            patch: Patch.insert(file: file, text: text, after: jobsLine - 1, lines: [
                "concurrency:", "  group: ${{ github.workflow }}-${{ github.event.pull_request.number || github.run_id }}",
                "  cancel-in-progress: true", ""]),
            saving: "each push that supersedes a running one cancels that run: \(jobs.count) job(s) × their run time per superseded push (the workflow holds no timing data to size it further)",
            risk: "a superseded pull-request run stops before it reports; every other event gets a group of its own (github.run_id), so no push run is cancelled or queued; this workflow neither deploys nor publishes")]
    }

    // MARK: job-level speed rules

    /// The lockfiles that can key each installer's cache (any directory).
    static let lockfileNames: [String: [String]] = [
        "npm": ["package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"],
        "pip": ["requirements.txt", "poetry.lock", "Pipfile.lock", "uv.lock", "pdm.lock"],
        "SwiftPM": ["Package.resolved"], "Go": ["go.sum"], "Cargo": ["Cargo.lock"],
        "Gradle": ["gradle.lockfile"],
    ]

    /// Speed: installs without a cache, where a lockfile exists to key one (a cache keyed on nothing
    /// restores stale dependencies). Never for a job that publishes: the caller skips those (cache poisoning).
    static func cacheFindings(file: String, text: String, job id: String, jobLine: Int, steps: [Node], matrixSize: Int, lockfiles: Set<String>?) -> [PipelineFinding] {
        guard let lockfiles else { return [] }
        var out: [PipelineFinding] = []
        let runText = steps.compactMap { $0.value("run")?.string }.joined(separator: "\n")
        let uses = steps.compactMap { $0.value("uses")?.string }
        // Any step that already restores a cache (the cache-poisoning audit's table of 20 actions).
        // setup-node caches on its own only from v5 (package-manager-cache); before, only with `cache:`.
        let hasCacheAction = steps.contains { step in
            guard let u = step.value("uses")?.string.map(ActionUses.init), WorkflowAudits.caches(u, with: step.value("with")) != nil else { return false }
            return !(u.isAction("actions/setup-node") && step.value("with")?.value("cache") == nil && (u.majorVersion ?? 0) < 5)
        }
        for installer in installers where installer.pattern.firstMatch(in: runText, range: NSRange(runText.startIndex..., in: runText)) != nil {
            if hasCacheAction { continue }
            if installer.name == "Go", uses.contains(where: { $0.hasPrefix("actions/setup-go@v4") || $0.hasPrefix("actions/setup-go@v5") }) { continue }  // caches by default
            let setupStep = installer.setup.flatMap { setup in steps.first { ($0.value("uses")?.string ?? "").hasPrefix(setup.action + "@") } }
            if let setupStep, setupStep.value("with")?.value("cache") != nil { continue }
            let names = lockfileNames[installer.name] ?? []
            guard let lockfile = lockfiles.sorted().first(where: { path in names.contains { PathText.lastComponent(path) == $0 || (installer.name == "pip" && PathText.lastComponent(path).hasPrefix("requirements") && PathText.lastComponent(path).hasSuffix(".txt")) } }) else { continue }
            let saving = "dependency downloads skipped on a warm cache, on every run of \(id)" + (matrixSize > 1 ? " × \(matrixSize) matrix jobs" : "")
                + " (the workflow has no timing data; the size of the saving is the job's download time)"
            var patch: String?
            var suggestion: String?
            // setup-node keys npm's cache on a root package-lock.json (yarn/pnpm on theirs); setup-python's pip cache on
            // requirements files: the patch only where that is the lockfile found, else the snippet keyed on it.
            let setupKeysOn: [String: [String]] = ["npm": ["package-lock.json", "npm-shrinkwrap.json"], "pip": ["requirements.txt"]]
            if let setupStep, let setup = installer.setup, setupKeysOn[installer.name]?.contains(lockfile) == true,
               let usesLine = setupStep.mapping?.first(where: { $0.key.string == "uses" })?.key.line {
                patch = Self.addWith(file: file, text: text, step: setupStep, usesLine: usesLine, key: "cache", value: setup.value)
            } else {
                let keyed = installer.cache.replacingOccurrences(of: #"hashFiles\('[^']*'\)"#, with: "hashFiles('\(lockfile)')", options: .regularExpression)
                suggestion = "add before the install step:\n- uses: actions/cache@v4\n  with:\n" + keyed.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
            }
            out.append(PipelineFinding(file: file, line: jobLine, job: id, category: "speed", rule: "gha-no-dependency-cache", severity: "low",
                message: "\(installer.name) dependencies are installed without a cache.", patch: patch, suggestion: suggestion, saving: saving,
                risk: "the cache is keyed on \(lockfile) and restored only for the same lockfile; the job does not publish, so a poisoned cache cannot reach a release (never add one to a release job)"))
        }
        return out
    }

    /// Speed: a job waits for another it takes nothing from. Kept when the order carries meaning: the
    /// needed job shares outputs or artifacts, deploys or publishes, pushes (commits, tags, images),
    /// holds an environment, or the waiting job deploys or publishes itself.
    static func needsFindings(file: String, text: String, job id: String, node job: Node, steps: [Node], jobs: Node.Mapping, sensitive: SensitiveWork) -> [PipelineFinding] {
        guard let needs = job.value("needs"), !sensitive.publishes(id: id, node: job) else { return [] }
        var out: [PipelineFinding] = []
        let jobIDs = jobs.compactMap(\.key.string)
        let uses = steps.compactMap { $0.value("uses")?.string }
        let needed = needs.string.map { [$0] } ?? needs.sequence?.compactMap(\.string) ?? []
        let jobText = Self.source(of: job, text: text)
        for n in needed where jobIDs.contains(n) {
            guard let other = jobs.first(where: { $0.key.string == n })?.value else { continue }
            let otherUses = other.value("steps")?.sequence?.compactMap { $0.value("uses")?.string } ?? []
            // A condition on the needed job's result (failure(), always(), needs.*.result) is why the job waits.
            let condition = job.value("if")?.string ?? ""
            let conditional = ["failure()", "always()", "cancelled()", "needs"].contains { condition.contains($0) }
            let shares = conditional || jobText.contains("toJSON(needs)") || jobText.contains("needs.*") || other.value("outputs") != nil || otherUses.contains { $0.hasPrefix("actions/upload-artifact") || $0.hasPrefix("actions/cache") }
                || jobText.contains("needs.\(n).") || jobText.contains("needs['\(n)']") || uses.contains { $0.hasPrefix("actions/download-artifact") }
                || sensitive.publishes(id: n, node: other) || SensitiveWork.pushes(other)
            guard !shares else { continue }
            let bound = other.value("timeout-minutes")?.int.map { "at most its timeout-minutes, \($0) min" } ?? "no timeout-minutes to bound it"
            let needsLine = job.mapping?.first { $0.key.string == "needs" }?.key.line
            out.append(PipelineFinding(file: file, line: needsLine, job: id, category: "speed", rule: "gha-needless-needs", severity: "low",
                message: "\(id) waits for \(n) but uses no artefact, output or cache of it; unless the order matters, they can run in parallel.",
                patch: needed.count == 1 && needs.string != nil ? needsLine.map { Patch.edit(file: file, text: text, start: $0, remove: 1, add: []) } : nil,
                saving: "\(id) starts as soon as a runner is free instead of after \(n): the saving is \(n)'s run time (\(bound))",
                risk: "\(id) also runs when \(n) fails (nothing gates it any more); \(n) shares no output, artifact or cache with it and neither job deploys, publishes or pushes — if \(n) is a gate (lint before an expensive suite), keep the needs"))
        }
        return out
    }

    /// Speed: no timeout (GitHub's default is 6 hours). A job that calls a reusable workflow (`uses:`) takes none.
    static func timeoutFindings(file: String, text: String, job id: String, node job: Node, jobLine: Int, matrixSize: Int) -> [PipelineFinding] {
        guard job.value("timeout-minutes")?.int == nil && job.value("uses") == nil else { return [] }
        let childIndent = job.mapping?.first.flatMap { $0.key.mark.map { String(repeating: " ", count: $0.column - 1) } } ?? "    "
        return [PipelineFinding(file: file, line: jobLine, job: id, category: "speed", rule: "gha-no-timeout", severity: "low",
            message: "No `timeout-minutes`: a hung \(id) holds a runner for GitHub's default of \(defaultTimeout) minutes.",
            patch: Patch.insert(file: file, text: text, after: jobLine, lines: [childIndent + "timeout-minutes: 30"]),
            saving: "a hung run stops after 30 instead of \(defaultTimeout) minutes: up to \(defaultTimeout - 30) runner-minutes per hung job" + (matrixSize > 1 ? " (× \(matrixSize) matrix jobs)" : ""),
            risk: "a job that legitimately runs longer than 30 minutes fails: raise the value to its longest normal run time")]
    }

    /// The text of a node's lines (a job's), for searching references like `needs.build.outputs`.
    static func source(of node: Node, text: String) -> String {
        guard let start = node.line else { return "" }
        let lines = text.components(separatedBy: "\n")
        let indent = lines[max(0, start - 1)].prefix { $0 == " " }.count
        var out: [Substring] = []
        for line in lines[(start - 1)...] {
            if !out.isEmpty && !line.trimmingCharacters(in: .whitespaces).isEmpty && line.prefix(while: { $0 == " " }).count < indent { break }
            out.append(Substring(line))
        }
        return out.joined(separator: "\n")
    }

    static func matrixSize(_ job: Node) -> Int {
        guard let matrix = job.value("strategy")?.value("matrix"), matrix.mapping != nil else { return 1 }
        let axes = matrix.pairs.filter { $0.key != "include" && $0.key != "exclude" }.map { $0.value.sequence?.count ?? 1 }
        let base = axes.isEmpty ? 0 : axes.reduce(1, *)
        return max(1, base - (matrix.value("exclude")?.sequence?.count ?? 0) + (matrix.value("include")?.sequence?.count ?? 0))
    }

    /// pull_request_target/workflow_run checking out the pull request's head: its author's code runs
    /// with the repository's secrets and a write token (zizmor flags the trigger; this names the step).
    static func untrustedCheckout(file: String, text: String, job: String, step: Workflow.Step) -> [PipelineFinding] {
        let with = step.node.value("with")
        guard let ref = with?.value("ref"), let refText = ref.string,
              ["github.event.pull_request.head", "github.head_ref", "github.event.workflow_run.head"].contains(where: { refText.contains($0) }) else { return [] }
        let refLine = with?.mapping?.first { $0.key.string == "ref" }?.key.line
        return [PipelineFinding(file: file, line: refLine, job: job, step: step.name, stepIndex: step.index, category: "security", rule: "gha-untrusted-checkout", severity: "critical",
            confidence: "high", message: "pull_request_target/workflow_run runs with the repository's secrets and a write token; checking out the pull request's code (\(refText)) lets its author run code with them.",
            patch: refLine.map { line in
                // `with:` holding only `ref:` goes too: an empty `with:` is not a valid step.
                let withLine = step.line(of: "with")
                return (with?.mapping?.count == 1 && withLine != nil) ? Patch.edit(file: file, text: text, start: withLine!, remove: line - withLine! + 1, add: [])
                    : Patch.edit(file: file, text: text, start: line, remove: 1, add: [])
            },
            suggestion: "check out the base branch (drop `ref:`), or run the pull request's code in a `pull_request` workflow without secrets")]
    }

    /// The patch that moves `expressions` (each `${{ … }}` text) of a `run:` script into the step's
    /// `env:` and uses the variables in the script instead.
    static func injectionPatch(file: String, text: String, step: Node, run: Node, expressions: [String]) -> String? {
        guard let script = run.string, !expressions.isEmpty else { return nil }
        let runKeyLine = step.mapping?.first { $0.key.string == "run" }?.key.line ?? run.line ?? 1
        let lines = text.components(separatedBy: "\n")
        // The script's lines: from the run key to the last line holding one of the expressions.
        var last = runKeyLine
        for n in runKeyLine...min(lines.count, runKeyLine + script.split(separator: "\n", omittingEmptySubsequences: false).count + 1) {
            if expressions.contains(where: { lines[n - 1].contains($0) }) { last = n }
        }
        func envName(_ expr: String) -> String {
            let inner = expr.dropFirst(3).dropLast(2).trimmingCharacters(in: .whitespaces)
            return inner.replacingOccurrences(of: "github.event.", with: "").replacingOccurrences(of: "github.", with: "")
                .uppercased().map { $0.isLetter || $0.isNumber ? $0 : "_" }.reduce("") { $0 + String($1) }
        }
        let indent = Patch.indent(text, line: runKeyLine)
        // No mechanical edit where it would be wrong: `- run:` (env would land before the dash), two
        // expressions with one variable name, or an expression inside '…' (the shell would not expand "$X").
        if lines[runKeyLine - 1].trimmingCharacters(in: .whitespaces).hasPrefix("-") { return nil }
        if Set(expressions.map(envName)).count != expressions.count { return nil }
        for n in runKeyLine...last {
            let line = lines[n - 1]
            for e in expressions { if let r = line.range(of: e), line[..<r.lowerBound].filter({ $0 == "'" }).count % 2 == 1 { return nil } }
        }
        var replaced = (runKeyLine...last).map { lines[$0 - 1] }
        for e in expressions { replaced = replaced.map { $0.replacingOccurrences(of: e, with: "\"$\(envName(e))\"") } }
        if let envKeyLine = step.mapping?.first(where: { $0.key.string == "env" })?.key.line, envKeyLine < runKeyLine {
            // The step has an env block above run: the variables go into it, the script lines use them.
            let envIndent = step.value("env")?.mapping?.first?.key.mark.map { String(repeating: " ", count: $0.column - 1) } ?? indent + "  "
            let rewritten = applyEdit(text: text, start: runKeyLine, remove: last - runKeyLine + 1, add: replaced)
            let final = applyInsert(text: rewritten, after: envKeyLine, lines: expressions.map { "\(envIndent)\(envName($0)): \($0)" })
            return Patch.combine(original: text, edited: final, file: file)
        }
        if step.value("env") != nil { return nil }  // env below run, or a computed env: no mechanical edit
        return Patch.edit(file: file, text: text, start: runKeyLine, remove: last - runKeyLine + 1,
                          add: ["\(indent)env:"] + expressions.map { "\(indent)  \(envName($0)): \($0)" } + replaced)
    }

    static func applyEdit(text: String, start: Int, remove: Int, add: [String]) -> String {
        var lines = text.components(separatedBy: "\n")
        lines.replaceSubrange((start - 1)..<(start - 1 + remove), with: add)
        return lines.joined(separator: "\n")
    }

    static func applyInsert(text: String, after: Int, lines new: [String]) -> String {
        applyEdit(text: text, start: after + 1, remove: 0, add: new)
    }

    /// `key: value` under the step's `with:` (created after `uses:` when missing).
    static func addWith(file: String, text: String, step: Node, usesLine: Int, key: String, value: String) -> String {
        let stepIndent = step.mapping?.first { $0.key.string == "uses" }?.key.mark.map { String(repeating: " ", count: $0.column - 1) } ?? Patch.indent(text, line: usesLine)
        if let with = step.value("with"), let withKey = step.mapping?.first(where: { $0.key.string == "with" })?.key.line {
            let childIndent = with.mapping?.first?.key.mark.map { String(repeating: " ", count: $0.column - 1) } ?? stepIndent + "  "
            return Patch.insert(file: file, text: text, after: withKey, lines: ["\(childIndent)\(key): \(value)"])
        }
        return Patch.insert(file: file, text: text, after: usesLine, lines: ["\(stepIndent)with:", "\(stepIndent)  \(key): \(value)"])
    }

    /// Matrix values listed twice, and `include` entries that repeat a combination the axes already make.
    static func matrixFindings(file: String, text: String, job: String, node: Node) -> [PipelineFinding] {
        guard let matrix = node.value("strategy")?.value("matrix"), matrix.mapping != nil else { return [] }
        var out: [PipelineFinding] = []
        let axes = matrix.pairs.filter { $0.key != "include" && $0.key != "exclude" }
        let total = matrixSize(node)
        for (axis, values) in axes {
            let list = values.sequence?.compactMap(\.string) ?? []
            let duplicates = Dictionary(grouping: list, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
            guard !duplicates.isEmpty else { continue }
            let extra = list.count - Set(list).count
            let others = total / max(1, list.count)
            out.append(PipelineFinding(file: file, line: values.line, job: job, category: "speed", rule: "gha-redundant-matrix", severity: "low",
                message: "matrix `\(axis)` lists \(duplicates.joined(separator: ", ")) more than once.",
                patch: values.line.flatMap { line -> String? in
                    let original = text.components(separatedBy: "\n")[line - 1]
                    guard original.contains("["), original.contains("]") else { return nil }
                    let unique = list.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                    guard let open = original.firstIndex(of: "["), let close = original.lastIndex(of: "]") else { return nil }
                    return Patch.edit(file: file, text: text, start: line, remove: 1, add: [String(original[...open]) + unique.joined(separator: ", ") + String(original[close...])])
                },
                saving: "\(extra * others) of \(total) matrix jobs run an identical configuration: \(extra * others) job run(s) per trigger (computed from the matrix)",
                risk: "none: the removed entries repeat a configuration that still runs"))
        }
        let axisValues = Dictionary(uniqueKeysWithValues: axes.map { ($0.key, Set($0.value.sequence?.compactMap(\.string) ?? [])) })
        for entry in matrix.value("include")?.sequence ?? [] {
            let pairs = entry.pairs
            guard !pairs.isEmpty, !axisValues.isEmpty,
                  Set(pairs.map(\.key)) == Set(axisValues.keys),
                  pairs.allSatisfy({ axisValues[$0.key]?.contains($0.value.string ?? "") == true }) else { continue }
            out.append(PipelineFinding(file: file, line: entry.line, job: job, category: "speed", rule: "gha-redundant-matrix", severity: "low",
                message: "matrix `include` entry \(pairs.map { "\($0.key)=\($0.value.string ?? "")" }.joined(separator: ", ")) repeats a combination the axes already make.",
                saving: "1 of \(total) matrix jobs is a duplicate: one job run per trigger (computed from the matrix)",
                risk: "none, unless the entry adds keys the axes do not have (it does not here)"))
        }
        return out
    }
}

extension Patch {
    /// The whole-file diff between two versions that differ in a few places (one hunk spanning them).
    static func combine(original: String, edited: String, file: String) -> String {
        let a = original.components(separatedBy: "\n"), b = edited.components(separatedBy: "\n")
        var prefix = 0
        while prefix < min(a.count, b.count) && a[prefix] == b[prefix] { prefix += 1 }
        var suffix = 0
        while suffix < min(a.count, b.count) - prefix && a[a.count - 1 - suffix] == b[b.count - 1 - suffix] { suffix += 1 }
        let removed = Array(a[prefix..<(a.count - suffix)])
        let added = Array(b[prefix..<(b.count - suffix)])
        return edit(file: file, text: original, start: prefix + 1, remove: removed.count, add: added)
    }
}
