import Foundation
import Yams

/// The security audits of a GitHub Actions workflow, at the depth of zizmor 1.32's offline audits:
/// the same audit ids, severities, confidences and personas (docs/cicd-audits.md lists each), so a
/// finding reads the same in Cortex and in zizmor, and `Tests/Fixtures/zizmor-corpus` checks that
/// nothing zizmor finds on real workflows is missed. Each audit is a function over the parsed
/// workflow; jobs and steps whose `if:` is constant false are skipped, as GitHub skips them.
enum WorkflowAudits {
    static func run(_ w: Workflow) -> [PipelineFinding] {
        let c = Collector(w)
        artipacked(c)
        unsoundContains(c)
        unsoundTernary(c)
        excessivePermissions(c)
        dangerousTriggers(c)
        useTrustedPublishing(c)
        templateInjection(c)
        hardcodedContainerCredentials(c)
        selfHostedRunner(c)
        unpinnedUses(c)
        undocumentedPermissions(c)
        insecureCommands(c)
        githubEnv(c)
        cachePoisoning(c)
        secretsInherit(c)
        botConditions(c)
        secretsInExpressions(c)
        obfuscation(c)
        unpinnedImages(c)
        anonymousDefinition(c)
        unsoundCondition(c)
        concurrencyLimits(c)
        archivedAndTyposquatUses(c)
        misfeature(c)
        secretsOutsideEnvironment(c)
        superfluousActions(c)
        githubApp(c)
        unpinnedTools(c)
        adhocPackages(c)
        selfRepository(c)
        return acknowledge(c.out, in: c.w)
    }

    /// Marks findings the workflow acknowledges with `# zizmor: ignore[rule]` (zizmor's syntax, so a
    /// repository annotated for zizmor reads the same here; `# cortex: ignore[rule]` too) on a line the
    /// finding covers: its own line, its step or job, or for trigger findings the `on:` block.
    static func acknowledge(_ findings: [PipelineFinding], in w: Workflow) -> [PipelineFinding] {
        let regex = try! NSRegularExpression(pattern: #"^(zizmor|cortex): ignore\[([^\]]+)\]"#)
        var ignores: [Int: (rules: Set<String>, text: String)] = [:]
        for n in 1...max(1, w.lines.count) {
            guard let comment = w.comment(onLine: n), comment.contains("ignore["), !WorkflowAudits.inBlockScalar(w, line: n),
                  let m = regex.firstMatch(in: comment, range: NSRange(comment.startIndex..., in: comment)) else { continue }
            let ids = (comment as NSString).substring(with: m.range(at: 2)).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            ignores[n] = (Set(ids), "# " + (comment as NSString).substring(with: m.range))
        }
        guard !ignores.isEmpty else { return findings }
        let onLine = w.root.mapping?.first { $0.key.string == "on" }?.key.line
        return findings.map { finding in
            var f = finding
            var lines: [ClosedRange<Int>] = f.line.map { [$0...$0] } ?? []
            if let jobID = f.job, let job = w.jobs.first(where: { $0.id == jobID }) {
                if let i = f.stepIndex, let step = job.steps.first(where: { $0.index == i }) { lines.append(w.span(ofLine: step.line)) }
                else { lines.append(w.span(ofLine: job.line)) }
            } else if f.rule == "dangerous-triggers", let onLine {
                lines.append(w.span(ofLine: onLine))
            }
            if let hit = ignores.sorted(by: { $0.key < $1.key }).first(where: { n, entry in entry.rules.contains(f.rule) && lines.contains { $0.contains(n) } }) {
                f.ignoredBy = "`\(hit.value.text)` on line \(hit.key)"
            }
            return f
        }
    }

    /// Collects findings with the workflow's file filled in.
    final class Collector {
        let w: Workflow
        var out: [PipelineFinding] = []
        /// The file's fenced expressions outside comments, for the audits that read the raw text.
        lazy var raw: [(fenced: FencedExpression, line: Int)] = WorkflowAudits.rawExpressions(w)
        init(_ w: Workflow) { self.w = w }

        var jobs: [Workflow.Job] { w.jobs.filter { !$0.staticallyFalse } }
        var normalJobs: [Workflow.Job] { jobs.filter { $0.reusable == nil } }
        func steps(_ job: Workflow.Job) -> [Workflow.Step] { job.steps.filter { !$0.staticallyFalse } }

        func add(_ rule: String, _ severity: String, _ confidence: String, persona: String? = nil, line: Int?, job: Workflow.Job? = nil, step: Workflow.Step? = nil,
                 _ message: String, patch: String? = nil, suggestion: String? = nil) {
            out.append(PipelineFinding(file: w.file, line: line, job: job?.id, step: step?.name, stepIndex: step?.index, category: "security", rule: rule,
                                       severity: severity, confidence: confidence, persona: persona, message: message, patch: patch, suggestion: suggestion))
        }
    }

    // MARK: - Checkout credentials

    /// actions/checkout without `persist-credentials: false` leaves the token in .git/config; an
    /// upload of the whole workspace after it publishes that token.
    static func artipacked(_ c: Collector) {
        for job in c.normalJobs {
            var checkouts: [(step: Workflow.Step, persona: String?)] = []
            var uploads: [Workflow.Step] = []
            for step in c.steps(job) {
                guard let uses = step.uses else { continue }
                let with = step.node.value("with")
                if uses.isAction("actions/checkout") {
                    if with?.string != nil { continue }  // `with:` is one expression: nothing to read
                    let persist = with?.value("persist-credentials").map { $0.string ?? "" }
                    if persist == "false" { continue }
                    let persona: String? = persist == "true" ? "auditor" : (persist?.hasPrefix("${{") == true ? "pedantic" : nil)
                    checkouts.append((step, persona))
                } else if uses.isAction("actions/upload-artifact"), let path = with?.value("path")?.string {
                    let risky = path.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }.contains { p in
                        [".", "./", "..", "../"].contains(p) || (p.hasPrefix("${{") && p.hasSuffix("}}") && p.contains("github.workspace"))
                    }
                    if risky { uploads.append(step) }
                }
            }
            for (checkout, persona) in checkouts {
                let v6 = (checkout.uses?.majorVersion ?? 0) >= 6
                let usesLine = checkout.line(of: "uses") ?? checkout.line
                let patch = GitHubActionsAnalyzer.addWith(file: c.w.file, text: c.w.text, step: checkout.node, usesLine: usesLine, key: "persist-credentials", value: "false")
                if uploads.isEmpty {
                    c.add("artipacked", v6 ? "low" : "medium", "low", persona: persona, line: usesLine, job: job, step: checkout,
                          "actions/checkout leaves the token in .git/config (persist-credentials defaults to true); later steps and anything they run can read it.", patch: patch)
                } else {
                    for upload in uploads where upload.index > checkout.index {
                        c.add("artipacked", v6 ? "medium" : "high", "high", persona: persona, line: usesLine, job: job, step: checkout,
                              "the token actions/checkout persisted in .git/config is uploaded with the workspace by step \(upload.index + 1) (\(upload.name ?? "upload-artifact")): anyone who can download the artifact gets it.",
                              patch: patch)
                    }
                }
            }
        }
    }

    // MARK: - Conditions

    /// The condition of a job or step, parsed (`if:` may be fenced or bare).
    static func condition(_ node: Node?) -> (text: String, line: Int?, expression: ActionsExpression?)? {
        guard let node, let s = node.string else { return nil }
        let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
        let fenced = ActionsExpressionParser.fenced(in: trimmed)
        let body = fenced.count == 1 && trimmed.hasPrefix("${{") && trimmed.hasSuffix("}}") ? fenced[0].body : trimmed
        return (s, node.line, try? ActionsExpressionParser.parse(body))
    }

    /// Every `if:` of the workflow's jobs and steps: (job, step or nil, node).
    static func conditions(_ c: Collector, reusable: Bool = true) -> [(job: Workflow.Job, step: Workflow.Step?, node: Node)] {
        var out: [(Workflow.Job, Workflow.Step?, Node)] = []
        for job in c.jobs where reusable || job.reusable == nil {
            if let n = job.node.value("if") { out.append((job, nil, n)) }
            for step in c.steps(job) { if let n = step.node.value("if") { out.append((job, step, n)) } }
        }
        return out
    }

    /// `contains('a b c', github.ref)`: a substring test on a string the attacker may shape.
    static func unsoundContains(_ c: Collector) {
        let controllable = ["env", "inputs", "github.actor", "github.base_ref", "github.head_ref", "github.ref", "github.ref_name", "github.sha", "github.triggering_actor"]
        for (job, step, node) in conditions(c, reusable: false) {
            guard let cond = condition(node), let e = cond.expression else { continue }
            for case let .call(name, args) in e.subexpressions where name.lowercased() == "contains" && args.count == 2 {
                guard case .string = args[0], case .context(let ctx) = args[1] else { continue }
                let high = controllable.contains { ctx.isChild(of: $0) }
                c.add("unsound-contains", high ? "high" : "info", "high", line: cond.line, job: job, step: step,
                      "contains(..) condition can be bypassed if an attacker can control '\(ctx.text)': a string literal is searched for a substring, not a list for an item; use contains(fromJSON('[…]'), \(ctx.text)).")
            }
        }
    }

    /// `if: ${{ x }} && y` or a block scalar with a trailing newline: the result is a non-empty string, always true.
    static func unsoundCondition(_ c: Collector) {
        for (job, step, node) in conditions(c) {
            guard let s = node.string, s.contains("${{") else { continue }
            let fenced = ActionsExpressionParser.fenced(in: s)
            if fenced.count == 1 && s.hasPrefix("${{") && s.hasSuffix("}}") { continue }
            c.add("unsound-condition", "high", "high", line: node.line, job: job, step: step,
                  "condition always evaluates to true: text outside `${{ }}` (here \(s.hasSuffix("\n") ? "a trailing newline of a block scalar; use `|-`" : "`\(s.trimmingCharacters(in: .whitespacesAndNewlines).prefix(60))`")) makes the whole value a non-empty string.")
        }
    }

    /// `github.actor == 'dependabot[bot]'`: the actor of a re-run or a synchronise can be someone else.
    static func botConditions(_ c: Collector) {
        let botIDs: Set<Double> = [29110, 49699333, 27856297, 29139614]
        for (job, step, node) in conditions(c) {
            guard let cond = condition(node), let e = cond.expression else { continue }
            func visit(_ e: ActionsExpression, dominant: Bool) {
                switch e {
                case .binary(let op, let l, let r):
                    if op == "==" {
                        for (ctx, lit) in [(l, r), (r, l)] {
                            guard case .context(let x) = ctx else { continue }
                            let bot: Bool
                            switch lit {
                            case .string(let s): bot = (x.pattern == "github.actor" || x.pattern == "github.triggering_actor") && s.hasSuffix("[bot]")
                            case .number(let n): bot = x.pattern == "github.actor_id" && botIDs.contains(n)
                            default: bot = false
                            }
                            if bot {
                                c.add("bot-conditions", "high", dominant ? "high" : "medium", line: cond.line, job: job, step: step,
                                      "spoofable bot actor check: `\(x.text)` names who triggered this run, which is not always the bot (a re-run or a push to its pull request by someone else); check `github.event.pull_request.user.login` instead.")
                            }
                        }
                    }
                    let keep = op == "||" ? true : (op == "==" ? dominant : false)
                    visit(l, dominant: keep); visit(r, dominant: keep)
                case .not(let inner): visit(inner, dominant: false)
                case .call(_, let args): args.forEach { visit($0, dominant: false) }
                default: break
                }
            }
            visit(e, dominant: true)
        }
    }

    // MARK: - Permissions

    static func excessivePermissions(_ c: Collector) {
        let w = c.w
        let top = w.root.value("permissions")
        let everyJobHasOwn = c.jobs.allSatisfy { $0.node.value("permissions") != nil }
        let topPersona: String? = (w.jobs.count == 1 || everyJobHasOwn || w.reusableOnly) ? "pedantic" : nil
        let jobsLine = w.root.mapping?.first { $0.key.string == "jobs" }?.key.line ?? 1
        if let top {
            if top.string == "read-all" {
                c.add("excessive-permissions", "medium", "high", persona: topPersona, line: top.line, "`permissions: read-all` at the workflow level: every job reads every scope; grant what each job needs.")
            } else if top.string == "write-all" {
                c.add("excessive-permissions", "high", "high", persona: topPersona, line: top.line, "`permissions: write-all` at the workflow level: every scope of every job's token can write.",
                      patch: top.line.map { Patch.edit(file: w.file, text: w.text, start: $0, remove: 1, add: [Patch.indent(w.text, line: $0) + "permissions:", Patch.indent(w.text, line: $0) + "  contents: read"]) })
            } else {
                for (scope, value) in top.pairs where value.string == "write" {
                    c.add("excessive-permissions", AuditTables.writeSeverity(scope), "high", persona: topPersona, line: value.line,
                          "`\(scope): write` is overly broad at the workflow level: every job gets it; grant it in the job that needs it.")
                }
            }
        } else {
            c.add("excessive-permissions", "medium", "medium", persona: topPersona, line: w.root.line ?? 1,
                  "default permissions used due to no `permissions:` block: the GITHUB_TOKEN gets the repository's default, often write to everything. Grant read and add per job what it needs.",
                  patch: Patch.insert(file: w.file, text: w.text, after: jobsLine - 1, lines: ["permissions:", "  contents: read", ""]))
        }
        for job in c.jobs {
            let persona: String? = job.reusable == nil && w.reusableOnly ? "pedantic" : nil
            let p = job.node.value("permissions")
            if p == nil && top == nil {
                c.add("excessive-permissions", "medium", "medium", persona: persona, line: job.line, job: job,
                      "job \(job.id) runs with the default permissions (no `permissions:` for it or the workflow).")
            } else if p?.string == "read-all" {
                c.add("excessive-permissions", "medium", "high", persona: persona, line: p?.line, job: job, "`permissions: read-all` for job \(job.id).")
            } else if p?.string == "write-all" {
                c.add("excessive-permissions", "high", "high", persona: persona, line: p?.line, job: job, "`permissions: write-all` for job \(job.id): every scope of its token can write.",
                      patch: p?.line.map { Patch.edit(file: w.file, text: w.text, start: $0, remove: 1, add: [Patch.indent(w.text, line: $0) + "permissions:", Patch.indent(w.text, line: $0) + "  contents: read"]) })
            }
        }
    }

    /// Explicit permissions without a comment saying why (anything but `contents: read`).
    static func undocumentedPermissions(_ c: Collector) {
        var blocks: [(node: Node, job: Workflow.Job?)] = []
        if let top = c.w.root.value("permissions") { blocks.append((top, nil)) }
        for job in c.jobs { if let p = job.node.value("permissions") { blocks.append((p, job)) } }
        for (node, job) in blocks {
            guard let mapping = node.mapping, !mapping.isEmpty else { continue }
            let undocumented = mapping.filter { pair in
                !(pair.key.string == "contents" && pair.value.string == "read") && (pair.key.line.flatMap { c.w.comment(onLine: $0) } ?? "").isEmpty
            }
            guard let first = undocumented.first else { continue }
            c.add("undocumented-permissions", "low", "high", persona: "pedantic", line: first.key.line, job: job,
                  "permissions without a comment saying why they are needed: \(undocumented.compactMap { "\($0.key.string ?? ""): \($0.value.string ?? "")" }.joined(separator: ", ")).")
        }
    }

    // MARK: - Triggers

    static func dangerousTriggers(_ c: Collector) {
        for name in ["pull_request_target", "workflow_run", "issue_comment"] {
            guard let t = c.w.trigger(name) else { continue }
            if name == "pull_request_target", c.w.jobs.count == 1, let only = c.w.jobs.first, only.steps.count == 1, only.steps[0].uses?.isAction("actions/labeler") == true { continue }
            c.add("dangerous-triggers", "high", "medium", line: t.line,
                  "\(name) is almost always used insecurely: it runs with the repository's secrets and a write token on behalf of someone outside it; make sure no job runs their code or text.")
        }
    }

    // MARK: - Template injection

    /// `${{ }}` expanded into code (`run:`, or an action input that is code) with a value someone else chooses.
    static func templateInjection(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) {
                var sinks: [(key: String, text: String, line: Int?)] = []
                if let run = step.run { sinks.append(("run", run, step.line(of: "run"))) }
                if let uses = step.uses, uses.kind == .repository, uses.subpath == nil,
                   let inputs = AuditTables.codeInputs.first(where: { $0.key == uses.slug })?.value, let with = step.node.value("with") {
                    for (key, value) in with.pairs where inputs.contains(key) { if let s = value.string { sinks.append(("with.\(key)", s, value.line)) } }
                }
                for sink in sinks {
                    var dangerous: [String] = []
                    for fenced in ActionsExpressionParser.fenced(in: sink.text) {
                        guard let e = fenced.expression else { continue }
                        var flagged = false
                        let flowing = e.flowingContexts
                        for ctx in flowing {
                            guard let (severity, confidence, persona, why) = capability(of: ctx, job: job, step: step, c: c) else { continue }
                            flagged = true
                            if severity == "high" || severity == "medium", sink.key == "run", flowing.count == 1 { dangerous.append(fenced.fenced) }
                            c.add("template-injection", severity, confidence, persona: persona, line: sink.line, job: job, step: step,
                                  "`\(ctx.text)` in \(fenced.fenced) is expanded into \(sink.key == "run" ? "the shell script" : "`\(sink.key)`, which runs as code,") before it runs: \(why).")
                        }
                        if !flagged {
                            c.add("template-injection", "low", "high", persona: "pedantic", line: sink.line, job: job, step: step,
                                  "\(fenced.fenced) is expanded into \(sink.key == "run" ? "the script" : "`\(sink.key)`") as text; its value is not attacker-controlled here, but an environment variable is the habit that keeps it so.")
                        }
                    }
                    // One patch per step moves every dangerous single-context expression into `env:`.
                    if !dangerous.isEmpty, let run = step.node.value("run"), ["bash", "sh", "zsh"].contains(c.w.shell(of: step, in: job)?.name ?? "bash"),
                       let i = c.out.lastIndex(where: { $0.rule == "template-injection" && $0.stepIndex == step.index && $0.job == job.id && ($0.severity == "high" || $0.severity == "medium") }) {
                        c.out[i].patch = GitHubActionsAnalyzer.injectionPatch(file: c.w.file, text: c.w.text, step: step.node, run: run, expressions: Array(Set(dangerous)).sorted())
                    }
                }
            }
        }
    }

    /// How much of a context's value an outsider controls: (severity, confidence, persona, why), or
    /// nil when nothing (secrets, fixed values, results of steps).
    static func capability(of ctx: ActionsExpression.ActionsContext, job: Workflow.Job, step: Workflow.Step, c: Collector)
        -> (String, String, String?, String)? {
        guard let pattern = ctx.pattern else { return ("info", "low", nil, "its value comes from a function result Cortex cannot follow") }
        let leaf = pattern.split(separator: ".").last.map(String.init) ?? pattern
        if ctx.isChild(of: "secrets") || pattern.hasPrefix("needs.") && pattern.hasSuffix(".result")
            || pattern.hasPrefix("steps.") && (pattern.hasSuffix(".outcome") || pattern.hasSuffix(".conclusion")) { return nil }
        if AuditTables.fixedGitHubContexts.contains(pattern) || AuditTables.fixedRunnerContexts.contains(pattern) { return nil }
        if pattern.hasPrefix("github.event.") {
            if AuditTables.fixedEventLeaves.contains(leaf) || leaf.hasSuffix("_id") || leaf.hasSuffix("_at") || leaf.hasSuffix("_count") { return nil }
            if leaf.hasSuffix("_url") && leaf != "html_url" || leaf == "email" {
                return ("medium", "high", nil, "whoever sends the event shapes `\(ctx.text)` within a fixed structure")
            }
            return ("high", "high", nil, "whoever opens the issue, pull request, comment, branch or release writes `\(ctx.text)`, so they write code here; pass it through an environment variable")
        }
        if pattern.hasPrefix("github.") {
            return ("high", "high", nil, "`\(ctx.text)` can carry text chosen by whoever triggered the run (a branch name, an actor, an input); pass it through an environment variable")
        }
        if pattern.hasPrefix("inputs."), pattern.split(separator: ".").count == 2 {
            let name = String(pattern.dropFirst(7))
            var types: [String] = []
            for trigger in ["workflow_dispatch", "workflow_call"] {
                guard let inputs = c.w.trigger(trigger)?.node?.value("inputs") else { continue }
                if let input = inputs.mapping?.first(where: { $0.key.string?.lowercased() == name })?.value {
                    types.append(input.value("type")?.string ?? "string")
                }
            }
            if types.isEmpty { return ("low", "low", nil, "`\(ctx.text)` is not declared by workflow_dispatch or workflow_call here, so its type is unknown") }
            if types.contains("string") { return ("high", "high", nil, "`\(ctx.text)` is a free-text input: whoever dispatches or calls the workflow writes it") }
            return ("low", "high", "pedantic", "`\(ctx.text)` is a \(types.joined(separator: "/")) input, limited to values GitHub checks")
        }
        if pattern.hasPrefix("env."), pattern.split(separator: ".").count == 2 {
            let name = String(ctx.text.split(separator: ".").last ?? "")
            if AuditTables.defaultEnvironment.contains(name.uppercased()) { return ("low", "high", "pedantic", "`\(ctx.text)` is set by the runner") }
            for env in [step.node.value("env"), job.node.value("env"), c.w.root.value("env")] {
                guard let env else { continue }
                if env.string != nil { break }
                if let value = env.mapping?.first(where: { $0.key.string == name })?.value {
                    if let s = value.string, s.contains("${{") { break }
                    return ("low", "high", "pedantic", "`\(ctx.text)` is a constant set in this workflow")
                }
            }
            return ("low", "high", nil, "`\(ctx.text)` is not a constant of this workflow, so it may carry anything; in a script, use `$\(name)` instead")
        }
        if pattern.hasPrefix("matrix.") {
            guard let matrix = job.node.value("strategy")?.value("matrix") else { return nil }
            if matrix.string != nil { return ("medium", "medium", nil, "the matrix is computed (`\(matrix.string ?? "")`), so `\(ctx.text)` may carry anything") }
            let key = String(pattern.dropFirst(7))
            let values = (matrix.value(key)?.sequence?.compactMap(\.string) ?? []) + (matrix.value("include")?.sequence?.compactMap { $0.value(key)?.string } ?? [])
            if matrix.value(key)?.string?.contains("${{") == true || values.contains(where: { $0.contains("${{") }) {
                return ("medium", "medium", nil, "the matrix value of `\(ctx.text)` is itself an expression")
            }
            return nil
        }
        return ("info", "low", nil, "`\(ctx.text)` may carry text from elsewhere (a step's or job's output, a variable) that Cortex cannot follow")
    }

    // MARK: - Containers and runners

    static func hardcodedContainerCredentials(_ c: Collector) {
        for job in c.normalJobs {
            var places: [(Node?, String)] = [(job.node.value("container")?.value("credentials"), "the job's container")]
            for (name, service) in job.node.value("services")?.pairs ?? [] { places.append((service.value("credentials"), "service \(name)")) }
            for (credentials, what) in places {
                guard let credentials, let password = credentials.value("password")?.string else { continue }
                if password.hasPrefix("${{") && password.hasSuffix("}}") { continue }
                let keyLine = (what == "the job's container" ? job.node.value("container") : job.node.value("services")?.value(String(what.dropFirst(8))))?
                    .mapping?.first { $0.key.string == "credentials" }?.key.line
                c.add("hardcoded-container-credentials", "high", "high", line: keyLine ?? credentials.line, job: job,
                      "\(what): the registry password is written in the workflow; anyone who can read the repository has it. Use a secret.")
            }
        }
    }

    static func selfHostedRunner(_ c: Collector) {
        for job in c.normalJobs {
            guard let runsOn = job.node.value("runs-on") else { continue }
            let line = job.node.mapping?.first { $0.key.string == "runs-on" }?.key.line
            if runsOn.value("group") != nil {
                c.add("self-hosted-runner", "medium", "high", persona: "auditor", line: line, job: job, "runs on runner group `\(runsOn.value("group")?.string ?? "")`: self-hosted machines keep state between jobs.")
                continue
            }
            let labels = runsOn.string.map { [$0] } ?? runsOn.sequence?.compactMap(\.string) ?? runsOn.value("labels").flatMap { $0.string.map { [$0] } ?? $0.sequence?.compactMap(\.string) } ?? []
            for label in labels {
                if label.lowercased() == "self-hosted" {
                    c.add("self-hosted-runner", "medium", "high", persona: "auditor", line: line, job: job, "runs on a self-hosted runner: it keeps state between jobs, and a pull request's code can reach the machine.")
                } else if label.contains("${{") {
                    let matrix = job.node.value("strategy")?.value("matrix")
                    let contexts = ActionsExpressionParser.fenced(in: label).compactMap(\.expression).flatMap(\.flowingContexts)
                    let viaMatrix = contexts.contains { ctx in
                        guard let p = ctx.pattern, p.hasPrefix("matrix.") else { return false }
                        let key = String(p.dropFirst(7))
                        let values = (matrix?.value(key)?.sequence?.compactMap(\.string) ?? []) + (matrix?.value("include")?.sequence?.compactMap { $0.value(key)?.string } ?? [])
                        return values.contains { $0.lowercased().contains("self-hosted") }
                    }
                    if viaMatrix || (label.contains("self-hosted") && !label.contains("'self-hosted'")) {
                        c.add("self-hosted-runner", "medium", viaMatrix ? "high" : "low", persona: "auditor", line: line, job: job, "`runs-on: \(label)` may expand into a self-hosted runner.")
                    }
                }
            }
        }
    }

    static func unpinnedImages(_ c: Collector) {
        func check(_ image: String, line: Int?, job: Workflow.Job, step: Workflow.Step? = nil) {
            let image = image.trimmingCharacters(in: .whitespaces)
            guard !image.isEmpty else { return }
            if image.contains("${{") {
                let fenced = ActionsExpressionParser.fenced(in: image)
                let contexts = fenced.compactMap(\.expression).flatMap(\.flowingContexts)
                let literals = fenced.compactMap(\.expression).flatMap(\.subexpressions).compactMap { e -> String? in if case .string(let s) = e { return s } else { return nil } }
                for lit in literals { check(lit, line: line, job: job, step: step) }
                if !contexts.isEmpty {
                    c.add("unpinned-images", "high", "low", line: line, job: job, step: step, "container image `\(image)` may be unpinned: its reference is computed, so nothing guarantees a digest.")
                }
                return
            }
            if image.contains("@") { return }
            let last = image.split(separator: "/").last ?? ""
            let tag = last.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init)
            switch tag {
            case nil, "":
                c.add("unpinned-images", "high", "high", line: line, job: job, step: step, "container image `\(image)` is unpinned: no tag means `latest`, which changes under you. Pin a digest (`\(image)@sha256:…`).")
            case "latest":
                c.add("unpinned-images", "high", "high", line: line, job: job, step: step, "container image `\(image)` uses the floating `latest` tag. Pin a digest (`@sha256:…`).")
            default:
                c.add("unpinned-images", "high", "high", persona: "pedantic", line: line, job: job, step: step, "container image `\(image)` is pinned to a tag, not a SHA-256 digest; tags can be moved.")
            }
        }
        for job in c.normalJobs {
            if let container = job.node.value("container") {
                if let s = container.string { check(s, line: container.line, job: job) }
                else if let s = container.value("image")?.string { check(s, line: container.value("image")?.line, job: job) }
            }
            for (_, service) in job.node.value("services")?.pairs ?? [] {
                if let s = service.value("image")?.string { check(s, line: service.value("image")?.line, job: job) }
            }
            for step in c.steps(job) where step.uses?.kind == .docker {
                check(String(step.uses!.raw.dropFirst(9)), line: step.line(of: "uses"), job: job, step: step)
            }
        }
    }

    // MARK: - Actions used

    static func unpinnedUses(_ c: Collector) {
        func check(_ uses: ActionUses, line: Int?, job: Workflow.Job, step: Workflow.Step?) {
            guard uses.kind == .repository, !uses.pinnedToCommit else { return }
            let repo = "\(uses.owner)/\(uses.repo)"
            let ref = uses.ref ?? ""
            c.add("unpinned-uses", "high", "high", line: line, job: job, step: step,
                  "\(uses.raw) is pinned to `\(ref)`, which its owner (or anyone who takes over the repository) can move to other code; only a full commit SHA cannot move.",
                  suggestion: "pin the commit: `git ls-remote https://github.com/\(repo) \(ref)` gives the SHA; write `uses: \(uses.raw.split(separator: "@").first ?? "")@<sha> # \(ref)`")
        }
        for job in c.jobs {
            if let r = job.reusable { check(ActionUses(r), line: job.node.value("uses")?.line, job: job, step: nil) }
            for step in c.steps(job) { if let u = step.uses { check(u, line: step.line(of: "uses"), job: job, step: step) } }
        }
    }

    static func selfRepository(_ c: Collector) {
        for job in c.jobs {
            if let r = job.reusable, r.hasPrefix("./") {
                c.add("self-repository", "low", "high", line: job.node.value("uses")?.line, job: job, "`\(r)`: use `$/\(r.dropFirst(2))`, GitHub's self-repository syntax, which always means this repository at this commit.")
            }
            for step in c.steps(job) where step.uses?.raw.hasPrefix("./") == true {
                c.add("self-repository", "low", "high", line: step.line(of: "uses"), job: job, step: step, "`\(step.uses!.raw)`: use `$/\(step.uses!.raw.dropFirst(2))`, GitHub's self-repository syntax.")
            }
        }
    }

    static func secretsInherit(_ c: Collector) {
        for job in c.jobs where job.reusable != nil && job.node.value("secrets")?.string == "inherit" {
            c.add("secrets-inherit", "medium", "high", line: job.node.value("uses")?.line, job: job,
                  "`secrets: inherit` passes every secret of this repository to \(job.reusable!); pass only the ones it needs.")
        }
    }

    static func superfluousActions(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) {
                guard let u = step.uses, u.kind == .repository, u.subpath == nil, let entry = AuditTables.superfluous[u.slug] else { continue }
                c.add("superfluous-actions", "info", entry.confidence, persona: entry.persona, line: step.line(of: "uses"), job: job, step: step,
                      "\(u.slug) does what the runner already does: use \(entry.instead), one dependency less to trust.")
            }
        }
    }

    static func archivedAndTyposquatUses(_ c: Collector) {
        let popular = Set(AuditTables.popular)
        for job in c.jobs {
            var uses: [(ActionUses, Int?, Workflow.Step?)] = job.reusable.map { [(ActionUses($0), job.node.value("uses")?.line, nil)] } ?? []
            for step in c.steps(job) { if let u = step.uses { uses.append((u, step.line(of: "uses"), step)) } }
            for (u, line, step) in uses where u.kind == .repository {
                if AuditTables.archived.contains(u.slug) {
                    c.add("archived-uses", "medium", "high", line: line, job: job, step: step, "\(u.slug) is archived: it gets no fixes, security ones included. Replace it.")
                }
                if !popular.contains(u.slug), let target = popular.first(where: { $0.split(separator: "/").first != u.slug.split(separator: "/").first && Self.oneEditApart($0, u.slug) }) {
                    c.add("typosquat-uses", "high", "low", line: line, job: job, step: step,
                          "\(u.slug) is one character away from the popular \(target), under another owner: check it is the action you meant.")
                }
            }
        }
    }

    /// One insertion, deletion, substitution or swap of neighbours apart.
    static func oneEditApart(_ a: String, _ b: String) -> Bool {
        let x = Array(a), y = Array(b)
        if x == y || abs(x.count - y.count) > 1 { return false }
        if x.count == y.count {
            let diff = (0..<x.count).filter { x[$0] != y[$0] }
            return diff.count == 1 || (diff.count == 2 && diff[1] == diff[0] + 1 && x[diff[0]] == y[diff[1]] && x[diff[1]] == y[diff[0]])
        }
        let (long, short) = x.count > y.count ? (x, y) : (y, x)
        var i = 0
        while i < short.count && long[i] == short[i] { i += 1 }
        return Array(long[(i + 1)...]) == Array(short[i...])
    }

    static func githubApp(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) where step.uses?.isAction("actions/create-github-app-token") == true {
                guard let with = step.node.value("with"), with.mapping != nil else {
                    c.add("github-app", "high", "high", line: step.line(of: "uses"), job: job, step: step, "the app token inherits every permission of the installation: name `permission-*` inputs for what the job needs.")
                    continue
                }
                if let skip = with.value("skip-token-revoke") {
                    if skip.string?.lowercased() == "true" || skip.bool == true {
                        c.add("github-app", "high", "high", line: skip.line, job: job, step: step, "token revocation disabled here: the app token stays valid for an hour after the job.")
                    } else if skip.string?.hasPrefix("${{") == true {
                        c.add("github-app", "high", "low", line: skip.line, job: job, step: step, "token revocation conditionally disabled here.")
                    }
                }
                let permissions = with.pairs.map(\.key).filter { $0.hasPrefix("permission-") }
                if with.value("owner") != nil && with.value("repositories") == nil && (permissions.isEmpty || !permissions.allSatisfy(AuditTables.isOrganizationOnlyPermission)) {
                    c.add("github-app", "high", "high", line: with.value("owner")?.line, job: job, step: step, "`owner:` without `repositories:`: the token reaches every repository of the installation.")
                }
                if permissions.isEmpty {
                    c.add("github-app", "high", "high", line: step.line(of: "uses"), job: job, step: step, "the app token inherits every permission of the installation: name `permission-*` inputs for what the job needs.")
                }
            }
        }
    }

    static func unpinnedTools(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) {
                guard let u = step.uses, u.kind == .repository, u.subpath == nil, let tool = AuditTables.toolInstallers[u.slug] else { continue }
                let with = step.node.value("with")
                if with?.string != nil { continue }
                if let v = with?.value(tool.input) {
                    if v.string == tool.unpinned {
                        c.add("unpinned-tools", "medium", "high", line: v.line, job: job, step: step, "`\(tool.input): \(tool.unpinned)` installs whatever version is newest when the job runs.")
                    } else if v.string?.contains("${{") == true {
                        c.add("unpinned-tools", "medium", "low", line: v.line, job: job, step: step, "the tool version is computed and may be unpinned.")
                    }
                } else {
                    c.add("unpinned-tools", "medium", "high", line: step.line(of: "uses"), job: job, step: step, "omitting `\(tool.input)` installs whatever version is newest when the job runs.")
                }
            }
        }
    }

    static func misfeature(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) {
                if step.uses?.isAction("actions/setup-python") == true, let p = step.node.value("with")?.value("pip-install") {
                    c.add("misfeature", "low", "high", line: p.line, job: job, step: step, "`pip-install` installs packages outside any lockfile or virtualenv: use a requirements file and a pip step.")
                }
                guard step.run != nil, let shell = c.w.shell(of: step, in: job) else { continue }
                let fromStep = step.node.value("shell") != nil
                let fromJob = !fromStep && (job.node.value("defaults")?.value("run")?.value("shell") != nil || c.w.root.value("defaults")?.value("run")?.value("shell") == nil)
                if shell.name == "cmd" || shell.name == "cmd.exe" {
                    c.add("misfeature", "low", "high", line: shell.line, job: job, step: fromStep ? step : nil, "the Windows CMD shell has no reliable quoting or error handling; use pwsh or bash.")
                } else if !["bash", "pwsh", "python", "sh", "powershell"].contains(shell.name) {
                    c.add("misfeature", "low", "high", persona: "auditor", line: shell.line, job: fromStep || fromJob ? job : nil, step: fromStep ? step : nil,
                          "`\(shell.name)` is not one of the shells GitHub documents the behaviour of (bash, sh, pwsh, powershell, python).")
                }
            }
        }
    }

    // MARK: - Environment and commands

    static func insecureCommands(_ c: Collector) {
        func check(_ env: Node?, job: Workflow.Job?, step: Workflow.Step?) {
            guard let env else { return }
            if env.string?.contains("${{") == true {
                c.add("insecure-commands", "high", "low", persona: "auditor", line: env.line, job: job, step: step, "a computed `env:` may set ACTIONS_ALLOW_UNSECURE_COMMANDS.")
                return
            }
            guard let v = env.value("ACTIONS_ALLOW_UNSECURE_COMMANDS") else { return }
            if v.bool == true || v.string?.trimmingCharacters(in: .whitespaces).lowercased() == "true" {
                c.add("insecure-commands", "high", "high", line: v.line, job: job, step: step,
                      "ACTIONS_ALLOW_UNSECURE_COMMANDS re-enables `::set-env` and `::add-path` on stdout: any output the job prints (a log line from a dependency, a test name) can set variables and PATH.")
            }
        }
        check(c.w.root.value("env"), job: nil, step: nil)
        for job in c.normalJobs {
            check(job.node.value("env"), job: job, step: nil)
            for step in c.steps(job) where step.run != nil { check(step.node.value("env"), job: job, step: step) }
        }
    }

    static func githubEnv(_ c: Collector) {
        guard c.w.triggerNames.contains("pull_request_target") || c.w.triggerNames.contains("workflow_run") else { return }
        let targets: Set<String> = ["$GITHUB_ENV", "${GITHUB_ENV}", "\"$GITHUB_ENV\"", "\"${GITHUB_ENV}\"", "$GITHUB_PATH", "${GITHUB_PATH}", "\"$GITHUB_PATH\"", "\"${GITHUB_PATH}\""]
        for job in c.normalJobs {
            for step in c.steps(job) {
                guard let run = step.run else { continue }
                let shell = c.w.shell(of: step, in: job)?.name ?? "bash"
                var hits: [String] = []
                if ["bash", "sh", "zsh"].contains(shell) {
                    for command in ShellScript.commands(run) {
                        if let t = command.redirectTargets.first(where: targets.contains) {
                            let program = command.program.first ?? ""
                            let staticEcho = (program == "echo" || program == "printf") && command.arguments.allSatisfy(ShellScript.isStatic)
                            if !staticEcho { hits.append(t.contains("PATH") ? "GITHUB_PATH" : "GITHUB_ENV") }
                        } else if command.program.first == "tee", let t = command.arguments.first(where: targets.contains) {
                            hits.append(t.contains("PATH") ? "GITHUB_PATH" : "GITHUB_ENV")
                        }
                    }
                } else if shell == "pwsh" || shell == "powershell" {
                    let regex = try! NSRegularExpression(pattern: #"(>>?|Out-File|Add-Content|Set-Content|Tee-Object)[^\n]*\$\{?env:(GITHUB_ENV|GITHUB_PATH)"#, options: [.caseInsensitive])
                    for m in regex.matches(in: run, range: NSRange(run.startIndex..., in: run)) { hits.append((run as NSString).substring(with: m.range(at: 2))) }
                } else if shell == "cmd" {
                    let regex = try! NSRegularExpression(pattern: #"(?mi)^.+\s*>>?\s*"?%(GITHUB_ENV|GITHUB_PATH)%"?.*$"#)
                    for m in regex.matches(in: run, range: NSRange(run.startIndex..., in: run)) { hits.append((run as NSString).substring(with: m.range(at: 1))) }
                }
                for hit in hits {
                    c.add("github-env", "high", "low", line: step.line(of: "run"), job: job, step: step,
                          "write to \(hit) in a workflow that runs for outsiders (pull_request_target/workflow_run): a value they control becomes an environment variable or PATH entry of every later step (LD_PRELOAD, BASH_ENV, NODE_OPTIONS run code).")
                }
            }
        }
    }

    /// Commands that publish with a long-lived token where the registry supports OIDC trusted publishing.
    static func useTrustedPublishing(_ c: Collector) {
        let message = "uses a manually configured credential instead of Trusted Publishing (OIDC, `id-token: write`): a token that lives in secrets can leak and keeps working."
        for job in c.normalJobs {
            let permissions = job.node.value("permissions") ?? c.w.root.value("permissions")
            let hasIDToken = permissions?.string == "write-all" || permissions?.value("id-token")?.string == "write"
            for step in c.steps(job) {
                if let u = step.uses, let with = step.node.value("with"), with.mapping != nil {
                    func set(_ k: String) -> String? { with.value(k).map { $0.string ?? "x" }.flatMap { $0.isEmpty ? nil : $0 } }
                    var input: String?
                    if u.isAction("pypa/gh-action-pypi-publish"), set("password") != nil,
                       [set("repository-url"), set("repository_url")].allSatisfy({ $0 == nil || ["https://upload.pypi.org/legacy/", "https://test.pypi.org/legacy/"].contains($0!) }) { input = "password" }
                    if u.isAction("rubygems/release-gem"), let v = set("setup-trusted-publisher"), v == "false" || v.hasPrefix("${{") { input = "setup-trusted-publisher" }
                    if u.isAction("rubygems/configure-rubygems-credentials"), set("api-token") != nil, set("gem-server") == nil || set("gem-server") == "https://rubygems.org" { input = "api-token" }
                    if u.isAction("actions/setup-node"), let v = set("always-auth"), v != "false",
                       set("registry-url") == nil || ["https://registry.npmjs.org", "https://registry.npmjs.org/"].contains(set("registry-url")!) { input = "always-auth" }
                    if let input {
                        c.add("use-trusted-publishing", "info", "high", line: with.value(input)?.line ?? step.line(of: "uses"), job: job, step: step, "`\(input)`: " + message)
                    }
                }
                guard let run = step.run, !hasIDToken else { continue }
                let shell = c.w.shell(of: step, in: job)?.name ?? "bash"
                guard ["bash", "sh", "zsh", "pwsh", "powershell"].contains(shell) else { continue }
                for command in ShellScript.commands(run) where Self.publishes(command.program) {
                    c.add("use-trusted-publishing", "info", "high", line: step.line(of: "run"), job: job, step: step, "`\(command.text.prefix(80))` " + message)
                }
            }
        }
    }

    /// Whether a command publishes a package with a registry token.
    static func publishes(_ w: [String]) -> Bool {
        guard let program = w.first else { return false }
        let args = Array(w.dropFirst())
        let dry = args.contains("--dry-run")
        func then(_ words: [String]) -> Bool {
            var i = 0
            for a in args where i < words.count && a == words[i] { i += 1 }
            return i == words.count
        }
        let name = program.split(separator: "/").last.map(String.init) ?? program
        switch name {
        case "cargo": return then(["publish"]) && !dry && !args.contains("-n")
        case "uv": return (args.first == "publish" && !dry) || (args.first == "run" && args.contains { $0.hasPrefix("twine") } && args.contains("upload"))
        case "uvx", "pipx": return args.contains { $0.hasPrefix("twine") } && args.contains("upload")
        case "hatch", "pdm": return args.first == "publish"
        case "poetry": return args.first == "publish" && !dry
        case "twine": return args.first == "upload"
        case "gem": return args.first == "push"
        case "bundle": return then(["exec", "gem", "push"])
        case "npm", "pnpm", "bun": return args.first == "publish" && !dry
        case "yarn": return args.first == "publish" || (then(["npm", "publish"]) && !dry && !args.contains("-n"))
        case "bunx": return args.first.map { $0 == "npm" || $0.hasPrefix("npm@") } == true && args.contains("publish") && !dry
        case "nuget", "nuget.exe": return args.first == "push"
        case "dotnet": return then(["nuget", "push"])
        default:
            return name.hasPrefix("python") && then(["-m", "twine", "upload"])
        }
    }

    /// Packages installed by name outside any lockfile (`npm install x`, `gem install x`, `yarn add x`).
    static func adhocPackages(_ c: Collector) {
        for job in c.normalJobs {
            for step in c.steps(job) {
                guard let run = step.run else { continue }
                let shell = c.w.shell(of: step, in: job)?.name ?? "bash"
                guard ["bash", "sh", "zsh", "pwsh", "powershell"].contains(shell) else { continue }
                for command in ShellScript.commands(run) where Self.installsAdHoc(command.program) {
                    c.add("adhoc-packages", "low", "high", line: step.line(of: "run"), job: job, step: step,
                          "`\(command.text.prefix(80))` installs a package outside of a lockfile: whatever version is newest when the job runs, unreviewed.")
                }
            }
        }
    }

    static func installsAdHoc(_ w: [String]) -> Bool {
        guard let program = w.first else { return false }
        let args = Array(w.dropFirst())
        func positionalAfter(_ i: Int) -> Bool { args.dropFirst(i + 1).contains { !$0.hasPrefix("-") } }
        switch program {
        case "gem": return args.firstIndex { $0 == "install" || $0 == "i" }.map(positionalAfter) ?? false
        case "bundle": return args.firstIndex(of: "add").map(positionalAfter) ?? false
        case "npm":
            guard let i = args.firstIndex(where: { !$0.hasPrefix("-") }) else { return false }
            return ["install", "i", "in", "ins", "inst", "insta", "instal", "isnt", "isnta", "isntal", "isntall", "add"].contains(args[i]) && positionalAfter(i)
        case "yarn", "pnpm":
            var i = 0
            let valued: Set<String> = program == "pnpm" ? ["-C", "--dir", "-F", "--filter", "--filter-prod"] : ["--cwd", "--mutex", "--cache-folder"]
            while i < args.count, args[i].hasPrefix("-") { i += valued.contains(args[i]) ? 2 : 1 }
            guard i < args.count else { return false }
            if args[i] == "add" { return positionalAfter(i) }
            if program == "yarn", args[i] == "global", i + 1 < args.count, args[i + 1] == "add" { return positionalAfter(i + 1) }
            if program == "yarn", args[i] == "workspace", i + 2 < args.count, args[i + 2] == "add" { return positionalAfter(i + 2) }
            if program == "pnpm", ["recursive", "multi", "m"].contains(args[i]), i + 1 < args.count, args[i + 1] == "add" { return positionalAfter(i + 1) }
            return false
        default: return false
        }
    }

    // MARK: - Caches

    /// Caches that a release build restores, or that a workflow run for outsiders writes.
    static func cachePoisoning(_ c: Collector) {
        let w = c.w
        let dangerous = ["pull_request_target", "workflow_run", "issue_comment"].contains(where: w.triggerNames.contains)
        let releaseTrigger = SensitiveWork(w).releaseTrigger
        for job in c.jobs {
            let mode = job.node.value("cache-mode")?.string ?? w.root.value("cache-mode")?.string
            if dangerous, mode == "write" || mode == "write-only" {
                let own = job.node.value("cache-mode") != nil
                c.add("cache-poisoning", "high", "high", line: own ? job.node.value("cache-mode")?.line : w.root.value("cache-mode")?.line, job: own ? job : nil,
                      "job \(job.id) writes the cache in a workflow outsiders trigger: what it saves, later trusted runs restore.")
            }
            guard job.reusable == nil, mode != "none" else { continue }
            let steps = c.steps(job)
            let publisher = steps.first { s in
                guard let u = s.uses, u.kind == .repository, u.subpath == nil, AuditTables.publishers.contains(u.slug) else { return false }
                return !(u.slug == "docker/build-push-action" && s.node.value("with")?.value("push")?.string == "false")
            }
            guard releaseTrigger || publisher != nil else { continue }
            for step in steps {
                guard let u = step.uses, let caching = Self.caches(u, with: step.node.value("with")) else { continue }
                c.add("cache-poisoning", "high", "low", line: step.line(of: "uses"), job: job, step: step,
                      "\(u.slug) restores a cache (\(caching)) in a job that publishes (\(publisher.flatMap { $0.uses?.slug } ?? "a release or tag trigger")): a cache poisoned by any other workflow run ends up in the release. Build releases without caches.")
            }
        }
    }

    /// Why a step restores a cache, or nil when it does not.
    static func caches(_ u: ActionUses, with: Node?) -> String? {
        guard u.kind == .repository else { return nil }
        let key = u.subpath.map { "\(u.slug)/\($0.lowercased())" } ?? u.slug
        guard let controls = AuditTables.cacheActions[key] else {
            if u.slug == "astral-sh/setup-uv" {
                let v = with?.value("enable-cache")?.string
                if v == "true" { return "enable-cache: true" }
                if (u.majorVersion ?? 99) < 10 && v != "false" { return "caching on by default before v10" }
                return nil
            }
            if u.slug == "docker/setup-buildx-action", with?.value("cache-binary")?.string != "false", with?.value("version")?.string?.isEmpty == false { return "cache-binary on by default" }
            if u.slug == "ramsey/composer-install", !["yes", "true", "1"].contains(with?.value("ignore-cache")?.string?.lowercased() ?? "") { return "caching on by default" }
            return nil
        }
        if with?.string != nil { return "its `with:` is computed and may enable caching" }
        for control in controls {
            switch control {
            case .always: return "it always restores from its cache"
            case .onUnlessTrue(let input): if with?.value(input)?.string?.lowercased() != "true" { return "caching on unless `\(input): true`" }
            case .onWhenSet(let input): if let v = with?.value(input)?.string, !v.isEmpty { return "`\(input): \(v)`" }
            case .boolean(let input, let def):
                let v = with?.value(input)?.string?.lowercased()
                if v == "true" || (v == nil && def) || v?.hasPrefix("${{") == true { return v == nil ? "omitting `\(input)` enables caching" : "`\(input): \(v!)`" }
            }
        }
        return nil
    }

    // MARK: - Secrets and raw expressions

    /// Every fenced expression in the file outside YAML comments, with its line.
    static func rawExpressions(_ w: Workflow) -> [(fenced: FencedExpression, line: Int)] {
        var out: [(FencedExpression, Int)] = []
        for (i, line) in w.lines.enumerated() where line.contains("${{") {
            // After a YAML comment mark, `${{ }}` is commentary, unless the line is inside a block
            // scalar (then `#` is the script's own text).
            let cut = w.commentStart(onLine: i + 1).flatMap { Self.inBlockScalar(w, line: i + 1) ? nil : $0 }
            for f in ActionsExpressionParser.fenced(in: String(line)) where cut.map({ f.offset < $0 }) ?? true { out.append((f, i + 1)) }
        }
        return out
    }

    /// Whether a line belongs to a `|` or `>` block scalar (its `#` is text, not a YAML comment).
    static func inBlockScalar(_ w: Workflow, line n: Int) -> Bool { w.blockScalarLines.contains(n) }

    /// overprovisioned-secrets (`toJSON(secrets)`, `secrets[computed]`) and unredacted-secrets (`fromJSON(secrets.X)`).
    static func secretsInExpressions(_ c: Collector) {
        for (f, line) in c.raw {
            guard let e = f.expression else { continue }
            for sub in e.subexpressions {
                if case .call(let name, let args) = sub, args.count == 1, case .context(let ctx) = args[0] {
                    if name.lowercased() == "tojson", ctx.pattern == "secrets" {
                        c.add("overprovisioned-secrets", "medium", "high", line: line, "\(f.fenced) hands every secret of the repository to this step; name the ones it needs.")
                    }
                    if name.lowercased() == "fromjson", ctx.isChild(of: "secrets"), ctx.pattern != "secrets" {
                        c.add("unredacted-secrets", "medium", "high", line: line, "\(f.fenced): a value taken out of a JSON secret is not masked in logs, since GitHub masks only whole secret values.")
                    }
                }
                if case .context(let ctx) = sub, ctx.head?.lowercased() == "secrets", ctx.parts.count == 1, case .index(let i) = ctx.parts[0], !i.isLiteral {
                    c.add("overprovisioned-secrets", "medium", "high", line: line, "\(f.fenced) picks a secret by a computed name, so the job gets access to every secret.")
                }
            }
        }
    }

    /// `a && '' || b`: a pseudo-ternary whose "true" value is falsy always yields b.
    static func unsoundTernary(_ c: Collector) {
        for (f, line) in c.raw {
            guard let e = f.expression else { continue }
            for sub in e.orChains where sub.constantValue == nil {
                let operands = sub.orOperands
                for operand in operands.dropLast() {
                    if case .binary("&&", _, let t) = operand, let v = t.constantValue, !v.truthy {
                        c.add("unsound-ternary", "low", "high", line: line, "pseudo-ternary in \(f.fenced) has a falsy 'true' value, so it always yields the 'false' branch.")
                    }
                }
            }
        }
    }

    static func obfuscation(_ c: Collector) {
        for job in c.jobs {
            for step in c.steps(job) {
                guard let u = step.uses else { continue }
                if u.kind == .repository, let sub = u.subpath {
                    let parts = sub.split(separator: "/", omittingEmptySubsequences: false)
                    for bad in [".", ".."] where parts.contains(Substring(bad)) {
                        c.add("obfuscation", "low", "high", line: step.line(of: "uses"), job: job, step: step, "\(u.raw): the action path contains `\(bad)`, which hides which action runs.")
                    }
                    if parts.contains("") { c.add("obfuscation", "low", "high", line: step.line(of: "uses"), job: job, step: step, "\(u.raw): the action path has an empty component.") }
                }
                if let with = step.node.value("with"), with.string?.contains("${{") == true {
                    c.add("obfuscation", "info", "high", line: with.line, job: job, step: step, "`with:` is one expression, which prevents any analysis of the inputs.")
                }
            }
        }
        for (f, line) in c.raw {
            guard let e = f.expression else { continue }
            if let v = e.constantValue {
                if case .string(let s) = v, s.contains("${{") { continue }
                if case .array = v { continue }
                if case .object = v { continue }
                c.add("obfuscation", "low", "high", line: line, "\(f.fenced) can be replaced by its value (`\(v.text)`).")
                continue
            }
            var notes: [(String, String?)] = []
            func visit(_ e: ActionsExpression) {
                if !e.isLiteral, let v = e.constantValue {
                    if case .array = v {} else if case .object = v {} else { notes.append(("a part can be reduced to the constant `\(v.text)`", nil)); return }
                }
                switch e {
                case .context(let ctx):
                    if let call = ctx.call { visit(call) }
                    for i in ctx.computedIndices { notes.append(("index expression is computed", "pedantic")); visit(i) }
                case .call(_, let args): args.forEach(visit)
                case .binary(_, let l, let r): visit(l); visit(r)
                case .not(let x): visit(x)
                default: break
                }
            }
            visit(e)
            guard let last = notes.last else { continue }
            c.add("obfuscation", "low", "high", persona: last.1, line: line, "\(f.fenced): \(notes.map(\.0).joined(separator: "; ")).")
        }
    }

    // MARK: - Hygiene

    static func anonymousDefinition(_ c: Collector) {
        if c.w.root.value("name") == nil { c.add("anonymous-definition", "low", "high", persona: "pedantic", line: c.w.root.line ?? 1, "the workflow has no `name:`; GitHub shows its path instead.") }
        for job in c.normalJobs where job.node.value("name") == nil {
            c.add("anonymous-definition", "info", "high", persona: "pedantic", line: job.line, job: job, "job \(job.id) has no `name:`.")
        }
    }

    static func concurrencyLimits(_ c: Collector) {
        guard !c.w.reusableOnly else { return }
        if let conc = c.w.root.value("concurrency") {
            if conc.string != nil {
                c.add("concurrency-limits", "low", "high", persona: "pedantic", line: conc.line, "workflow concurrency has no `cancel-in-progress`; superseded runs queue instead of stopping.")
            }
            return
        }
        let onLine = c.w.root.mapping?.first { $0.key.string == "on" }?.key.line
        let bare = c.normalJobs.filter { $0.node.value("concurrency")?.string != nil }
        let none = c.normalJobs.filter { $0.node.value("concurrency") == nil }
        if !bare.isEmpty {
            c.add("concurrency-limits", "low", "high", persona: "pedantic", line: onLine, "no workflow concurrency, and job concurrency without `cancel-in-progress` in \(bare.map(\.id).joined(separator: ", ")).")
        }
        if !none.isEmpty {
            c.add("concurrency-limits", "low", "high", persona: "pedantic", line: onLine, "no workflow `concurrency:`: runs for the same ref pile up (jobs \(none.map(\.id).joined(separator: ", "))).")
        }
    }

    /// Secrets used in a job with no `environment:` (whose protection rules would gate them).
    static func secretsOutsideEnvironment(_ c: Collector) {
        guard !c.w.triggerNames.contains("workflow_call") else { return }
        for job in c.normalJobs where job.node.value("environment") == nil {
            var seen = Set<String>()
            for s in job.node.allStrings {
                for f in ActionsExpressionParser.fenced(in: s) {
                    for ctx in f.expression?.allContexts ?? [] where ctx.isChild(of: "secrets") && ctx.pattern != "secrets.github_token" {
                        guard seen.insert(ctx.text).inserted else { continue }
                        c.add("secrets-outside-env", "medium", "high", persona: "auditor", line: job.line, job: job,
                              "`\(ctx.text)` is used by a job without an `environment:`, so no deployment protection rule gates it.")
                    }
                }
            }
        }
    }
}

extension ActionsExpression {
    /// The expression and every expression inside it (one array, filled in place: linear in the size).
    var subexpressions: [ActionsExpression] {
        var out: [ActionsExpression] = []
        collect(into: &out)
        return out
    }

    private func collect(into out: inout [ActionsExpression]) {
        out.append(self)
        switch self {
        case .context(let ctx):
            ctx.call?.collect(into: &out)
            for part in ctx.parts { if case .index(let e) = part { e.collect(into: &out) } }
        case .call(_, let args): for a in args { a.collect(into: &out) }
        case .binary(_, let l, let r): l.collect(into: &out); r.collect(into: &out)
        case .not(let e): e.collect(into: &out)
        default: break
        }
    }

    /// `a || b || c` as [a, b, c].
    var orOperands: [ActionsExpression] {
        var out: [ActionsExpression] = []
        var stack = [self]
        while let e = stack.popLast() {
            if case .binary("||", let l, let r) = e { stack.append(r); stack.append(l) } else { out.append(e) }
        }
        return out
    }

    /// The `||` chains of the expression, each once (a chain's inner `||` nodes are not chains of their own).
    var orChains: [ActionsExpression] {
        var out: [ActionsExpression] = []
        func visit(_ e: ActionsExpression, inChain: Bool) {
            switch e {
            case .binary(let op, let l, let r):
                if op == "||" && !inChain { out.append(e) }
                visit(l, inChain: op == "||"); visit(r, inChain: op == "||")
            case .context(let ctx):
                if let c = ctx.call { visit(c, inChain: false) }
                for part in ctx.parts { if case .index(let i) = part { visit(i, inChain: false) } }
            case .call(_, let args): for a in args { visit(a, inChain: false) }
            case .not(let x): visit(x, inChain: false)
            default: break
            }
        }
        visit(self, inChain: false)
        return out
    }
}

extension Node {
    /// Every string scalar under the node.
    var allStrings: [String] {
        if let m = mapping { return m.flatMap { [$0.key.string].compactMap { $0 } + $0.value.allStrings } }
        if let s = sequence { return s.flatMap(\.allStrings) }
        return string.map { [$0] } ?? []
    }
}
