import Foundation
import Yams

/// A GitHub Actions workflow as the audits see it: triggers, jobs in file order, steps with their
/// index (the index zizmor and GitHub's logs use), and the text for line-level questions (comments).
struct Workflow {
    let file: String
    let text: String
    /// The file's lines as "\n" separates them (a "\r" of CRLF removed), as the patches count them.
    let lines: [String]
    /// Lines inside `|` and `>` block scalars: there `#` is the script's text, not a YAML comment.
    let blockScalarLines: Set<Int>
    let root: Node
    /// Trigger name → its configuration node (nil for `on: push` or `on: [push]`).
    let triggers: [(name: String, node: Node?, line: Int?)]
    let jobs: [Job]

    struct Job {
        let id: String
        let node: Node
        /// The line of the job's key.
        let line: Int
        /// `uses:` of a job that calls a reusable workflow.
        let reusable: String?
        let steps: [Step]
        /// A job whose `if:` is constant false never runs: step and job audits skip it.
        let staticallyFalse: Bool
    }

    struct Step {
        let index: Int
        let node: Node
        let line: Int
        let uses: ActionUses?
        let run: String?
        let staticallyFalse: Bool
        var name: String? { node.value("name")?.string ?? node.value("uses")?.string ?? node.value("run")?.string.map { String($0.prefix(40)) } }
        /// The line of a key of the step (`uses`, `run`, `with`).
        func line(of key: String) -> Int? { node.mapping?.first { $0.key.string == key }?.key.line }
    }

    init(file: String, text: String, root: Node) {
        self.file = file
        self.text = text
        // Not split(separator:): "\r\n" is one Character in Swift, and a CRLF file would be one line.
        self.lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        self.root = root
        let onPair = root.mapping?.first { $0.key.string == "on" }
        if let on = onPair?.value {
            if let s = on.string { triggers = [(s, nil, on.line)] }
            else if let seq = on.sequence { triggers = seq.compactMap { n in n.string.map { ($0, nil, n.line) } } }
            else { triggers = on.mapping?.map { ($0.key.string ?? "", $0.value.mapping == nil && $0.value.sequence == nil ? nil : $0.value, $0.key.line) } ?? [] }
        } else {
            triggers = []
        }
        jobs = (root.value("jobs")?.mapping ?? Node.Mapping([])).map { key, node in
            // Steps of a `parallel:` group run side by side; each is audited, under its group's index.
            let steps = (node.value("steps")?.sequence.map(Array.init) ?? []).enumerated().flatMap { i, group in
                (group.value("parallel")?.sequence.map(Array.init) ?? [group]).map { s in
                    Step(index: i, node: s, line: s.line ?? key.line ?? 1, uses: s.value("uses")?.string.map(ActionUses.init), run: s.value("run")?.string,
                         staticallyFalse: Self.isStaticallyFalse(s.value("if")) || Self.isStaticallyFalse(group.value("if")))
                }
            }
            return Job(id: key.string ?? "?", node: node, line: key.line ?? 1, reusable: node.value("uses")?.string, steps: steps,
                       staticallyFalse: Self.isStaticallyFalse(node.value("if")))
        }
        // Every block scalar's lines, found once from the parser's nodes.
        var block = Set<Int>()
        var stack = [root]
        let lines = self.lines
        while let node = stack.popLast() {
            if let mapping = node.mapping { stack.append(contentsOf: mapping.map(\.value)) }
            else if let sequence = node.sequence { stack.append(contentsOf: sequence) }
            else if let scalar = node.scalar, scalar.style == .literal || scalar.style == .folded, let start = node.line {
                // The indicator's line is the key's; the text is every following line indented deeper (or blank).
                let indent = start <= lines.count ? lines[start - 1].prefix { $0 == " " }.count : 0
                var n = start + 1
                while n <= lines.count, lines[n - 1].trimmingCharacters(in: .whitespaces).isEmpty || lines[n - 1].prefix(while: { $0 == " " }).count > indent {
                    block.insert(n)
                    n += 1
                }
            }
        }
        blockScalarLines = block
    }

    var triggerNames: Set<String> { Set(triggers.map(\.name)) }
    func trigger(_ name: String) -> (name: String, node: Node?, line: Int?)? { triggers.first { $0.name == name } }

    /// Only `workflow_call`: a reusable workflow, whose caller decides permissions and concurrency.
    var reusableOnly: Bool { triggers.count == 1 && triggers[0].name == "workflow_call" }

    /// `if: false`, `if: ${{ false }}`, or any condition that evaluates to false without context.
    static func isStaticallyFalse(_ node: Node?) -> Bool {
        guard let node else { return false }
        if node.bool == false { return true }
        guard let s = node.string else { return false }
        var body = s.trimmingCharacters(in: .whitespacesAndNewlines)
        if body.hasPrefix("${{") && body.hasSuffix("}}") && ActionsExpressionParser.fenced(in: body).count == 1 { body = String(body.dropFirst(3).dropLast(2)) }
        guard let value = (try? ActionsExpressionParser.parse(body))?.constantValue else { return false }
        return !value.truthy
    }

    /// The lines of the YAML block that starts on line `n`: it and the lines after it indented deeper
    /// than its first character (a `- ` item's keys count as deeper than the dash).
    func span(ofLine n: Int) -> ClosedRange<Int> {
        guard n >= 1, n <= lines.count else { return n...n }
        let indent = lines[n - 1].prefix { $0 == " " }.count
        var end = n
        for i in n..<lines.count {
            let l = lines[i]
            let trimmed = l.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if l.prefix(while: { $0 == " " }).count <= indent { break }
            end = i + 1
        }
        return n...end
    }

    /// The comment on a line (text after an unquoted ` #`), if any.
    func comment(onLine n: Int) -> String? {
        guard let start = commentStart(onLine: n) else { return nil }
        return String(lines[n - 1].dropFirst(start + 1)).trimmingCharacters(in: .whitespaces)
    }

    /// The character offset of a line's comment mark (`#` at the start or after a blank, outside quotes).
    func commentStart(onLine n: Int) -> Int? {
        guard n >= 1, n <= lines.count else { return nil }
        var single = false, double = false
        var previous: Character = " "
        for (i, ch) in lines[n - 1].enumerated() {
            if ch == "'" && !double { single.toggle() }
            else if ch == "\"" && !single { double.toggle() }
            else if ch == "#" && !single && !double && (previous == " " || previous == "\t") { return i }
            previous = ch
        }
        return nil
    }

    /// The shell a `run:` step runs in: the step's `shell`, the job's then the workflow's
    /// `defaults.run.shell`, else the runner's default (bash on Linux and macOS, pwsh on Windows).
    /// Nil when it cannot be known (an expression, an unknown runner).
    func shell(of step: Step, in job: Job) -> (name: String, line: Int?)? {
        for (node, line) in [(step.node.value("shell"), step.line(of: "shell")),
                             (job.node.value("defaults")?.value("run")?.value("shell"), job.node.value("defaults")?.value("run")?.value("shell")?.line),
                             (root.value("defaults")?.value("run")?.value("shell"), root.value("defaults")?.value("run")?.value("shell")?.line)] {
            if let s = node?.string {
                if s.contains("${{") { return nil }
                let first = s.split(separator: " ").first.map(String.init) ?? s
                return (first.split(separator: "/").last.map(String.init) ?? first, line)
            }
        }
        let labels = (job.node.value("runs-on")?.string.map { [$0] } ?? job.node.value("runs-on")?.sequence?.compactMap(\.string) ?? []).map { $0.lowercased() }
        for label in labels {
            if label == "linux" || label == "macos" || label.contains("ubuntu-") || label.contains("macos") { return ("bash", job.node.value("runs-on")?.line) }
            if label == "windows" || label.contains("windows-") { return ("pwsh", job.node.value("runs-on")?.line) }
        }
        return nil
    }
}

/// A `uses:` value: a local path, a Docker image, or `owner/repo[/path]@ref`.
struct ActionUses: Equatable {
    enum Kind: Equatable { case local, docker, repository }
    let raw: String
    let kind: Kind
    let owner: String
    let repo: String
    let subpath: String?
    let ref: String?

    init(_ value: String) {
        let raw = value.trimmingCharacters(in: .whitespaces)
        self.raw = raw
        if raw.hasPrefix("./") || raw.hasPrefix("$/") {
            kind = .local; owner = ""; repo = ""; subpath = nil; ref = nil
        } else if raw.hasPrefix("docker://") {
            kind = .docker; owner = ""; repo = String(raw.dropFirst(9)); subpath = nil; ref = nil
        } else {
            kind = .repository
            let at = raw.lastIndex(of: "@")
            let path = at.map { String(raw[..<$0]) } ?? raw
            ref = at.map { String(raw[raw.index(after: $0)...]) }
            let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            owner = parts.first ?? ""
            repo = parts.count > 1 ? parts[1] : ""
            subpath = parts.count > 2 ? parts[2] : nil
        }
    }

    /// `owner/repo`, lower-cased.
    var slug: String { "\(owner)/\(repo)".lowercased() }

    /// The action `owner/repo` with no subpath (how the audits' tables name actions).
    func isAction(_ name: String) -> Bool { kind == .repository && subpath == nil && slug == name.lowercased() }

    /// Pinned to a full commit SHA (exactly 40 hex characters).
    var pinnedToCommit: Bool { ref.map { $0.count == 40 && $0.allSatisfy(\.isHexDigit) } ?? false }

    /// The major version of a `vN[.M[.P]]` ref.
    var majorVersion: Int? {
        guard let ref else { return nil }
        let digits = (ref.hasPrefix("v") ? ref.dropFirst() : Substring(ref)).split(separator: ".").first ?? ""
        return Int(digits)
    }
}

/// What speed advice must leave alone: jobs that deploy, publish or release (a cache there is cache
/// poisoning, a cancelled run a half-done release, a removed `needs:` a release out of order), and
/// workflows that run when a pull request is closed or merged.
struct SensitiveWork {
    let workflow: Workflow
    /// Actions that deploy (beyond the publishers of `AuditTables.publishers`).
    static let deployers: Set<String> = ["actions/deploy-pages", "peaceiris/actions-gh-pages", "jamesives/github-pages-deploy-action", "docker/login-action",
                                         "azure/webapps-deploy", "azure/k8s-deploy", "google-github-actions/get-gke-credentials", "aws-actions/amazon-ecr-login",
                                         "helm/chart-releaser-action", "changesets/action", "ncipollo/release-action", "svenstaro/upload-release-action"]
    /// Commands that publish, deploy or push somewhere others consume.
    static let pushCommands = try! NSRegularExpression(pattern: #"\b(git push|git tag|docker push|podman push|gh release|helm push|helm upgrade|kubectl apply|kubectl rollout|terraform apply|flyctl deploy|vercel deploy|netlify deploy|npm publish|twine upload|cargo publish|gem push)\b"#)

    init(_ workflow: Workflow) { self.workflow = workflow }

    /// A tag push, a push to a release branch or a release event: every job of the workflow is part of a
    /// release (the one definition the speed advice and the cache-poisoning audit share).
    var releaseTrigger: Bool {
        let push = workflow.trigger("push")?.node
        let branches = push?.value("branches")?.sequence?.compactMap(\.string) ?? push?.value("branches")?.string.map { [$0] } ?? []
        return workflow.triggerNames.contains("release") || push?.value("tags") != nil || push?.value("tags-ignore") != nil
            || branches.contains { $0.lowercased().contains("release") }
    }

    /// Why the workflow as a whole must not be cancelled half-way, or nil.
    var reason: String? {
        if releaseTrigger { return "it runs for releases" }
        for name in ["pull_request", "pull_request_target"] {
            let types = workflow.trigger(name)?.node?.value("types")
            if (types?.sequence?.compactMap(\.string) ?? types?.string.map { [$0] } ?? []).contains("closed") { return "it runs when a pull request is closed or merged" }
        }
        if let job = workflow.jobs.first(where: publishes) { return "job \(job.id) deploys or publishes" }
        return nil
    }

    func publishes(_ job: Workflow.Job) -> Bool { publishes(id: job.id, node: job.node) }

    /// Whether a job deploys, publishes or releases: by its name, its environment, its actions or its commands.
    func publishes(id: String, node: Node) -> Bool {
        if releaseTrigger { return true }
        if ["deploy", "release", "publish"].contains(where: { id.lowercased().contains($0) }) || node.value("environment") != nil { return true }
        for step in node.value("steps")?.sequence ?? [] {
            if let u = step.value("uses")?.string.map(ActionUses.init), u.kind == .repository,
               AuditTables.publishers.contains(u.slug) || Self.deployers.contains(u.slug) { return true }
            if let run = step.value("run")?.string, ShellScript.commands(run).contains(where: { WorkflowAudits.publishes($0.program) }) { return true }
        }
        return Self.pushes(node)
    }

    /// Whether a job's scripts push commits, tags or images, or deploy.
    static func pushes(_ node: Node) -> Bool {
        let scripts = (node.value("steps")?.sequence ?? []).compactMap { $0.value("run")?.string }.joined(separator: "\n")
        return pushCommands.firstMatch(in: scripts, range: NSRange(scripts.startIndex..., in: scripts)) != nil
    }
}
