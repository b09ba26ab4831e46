import CortexCore
import Foundation

/// One dependency to raise, and why.
public struct FixPlan: Sendable, Equatable {
    /// The file the package was found in (the bump may land in its manifest, see `DependencyBump`).
    public var file: String
    public var ecosystem: String
    public var package: String
    public var from: String
    public var to: String
    public var advisories: [String]
    /// Every file of the module that pins the version (`file` among them): each one's declaring file is
    /// bumped once (go.mod for go.mod and go.sum together).
    public var files: [String]
    /// The npm alias the package is installed under, when it is (`"x": "npm:y@^1.0.0"` is bumped as x).
    public var installedAs: String?

    public init(file: String, ecosystem: String, package: String, from: String, to: String, advisories: [String], files: [String] = [],
                installedAs: String? = nil) {
        self.file = file
        self.ecosystem = ecosystem
        self.package = package
        self.from = from
        self.to = to
        self.advisories = advisories
        self.files = files.contains(file) ? files : [file] + files
        self.installedAs = installedAs
    }

    /// The package as reports show it: `y (as x)` for y installed under the npm alias x.
    public var displayName: String { installedAs.map { "\(package) (as \($0))" } ?? package }

    /// The files the bump is made in: each pinning file's declaring file, once.
    public var declaringFiles: [String] {
        var out: [String] = []
        for f in files.map(DependencyBump.declaringFile(for:)) where !out.contains(f) { out.append(f) }
        return out
    }
}

/// What a fix attempt produced.
public struct FixResult: Sendable, Codable, Equatable {
    public var branch: String
    public var base: String?
    public var commit: String?
    /// `lodash 4.17.20 -> 4.17.21 in package.json (GHSA-35jh-r3h4-6jhm)`.
    public var bumps: [String] = []
    /// Fixes this process could not make, with the command that makes them.
    public var manual: [String] = []
    public var notes: [String] = []
    /// `git format-patch` of the commit: applies with `git am`.
    public var patch: String?
    /// Where the branch is: the target repository (local targets) or the clone.
    public var branchLocation: String?
    public var pullRequest: String?
    public var problems: [String] = []
}

/// Makes the fix branch for one repository: a clone, a branch `cortex/security/<run>`, one commit with
/// every bump (its message names each advisory), the branch fetched back into a local target, and —
/// with a GitHub token and a GitHub `origin` — the branch pushed and one pull request opened. It never
/// commits to, or pushes, the default branch.
public struct FixBranchMaker: Sendable {
    public var runID: String
    public var workDirectory: URL
    let publisher: BranchPublisher

    public init(runID: String, workDirectory: URL, githubAPIURL: String? = nil, githubToken: String? = nil, githubHost: String = "github.com") {
        self.runID = runID
        self.workDirectory = workDirectory
        self.publisher = BranchPublisher(githubAPIURL: githubAPIURL, githubToken: githubToken, githubHost: githubHost)
    }

    public var branchName: String { "cortex/security/\(runID)" }

    public func make(target: String, plans: [FixPlan]) async -> FixResult {
        var result = FixResult(branch: branchName)
        let isRemote = ["https://", "http://", "ssh://", "git://", "file://", "git@"].contains { target.hasPrefix($0) }
        if !isRemote && !FileManager.default.fileExists(atPath: URL(fileURLWithPath: target).appendingPathComponent(".git").path) {
            result.problems.append("\(target) is not a git repository: no fix branch (the bumps are listed for manual work)")
            result.manual = plans.map { "raise \($0.displayName) to \($0.to) in \($0.files.joined(separator: " and ")) (\($0.advisories.joined(separator: ", ")))" }
            return result
        }
        let clone = workDirectory.appendingPathComponent("fix-\(runID)-\(abs(target.hashValue) % 1_000_000)")
        do {
            try? FileManager.default.removeItem(at: clone)
            try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
            _ = try await Git.runAsync(["clone", "--quiet", "--no-tags", "--", target, clone.path], in: workDirectory)
            let base = try await Git.runAsync(["rev-parse", "--abbrev-ref", "HEAD"], in: clone)
            result.base = base
            guard base != branchName else { throw Git.Failure(description: "the checked-out branch is \(base): refusing to commit to it") }
            _ = try await Git.runAsync(["checkout", "--quiet", "-b", branchName], in: clone)

            // One edit per declaring file, every bump for it applied in turn; a plan whose version is pinned
            // in several files of its module (go.mod and go.sum, requirements.txt and poetry.lock) is made in
            // each one's declaring file once, and listed once.
            var changed: [String] = []
            var edited: [Int: [String]] = [:]
            var byFile: [String: [Int]] = [:]
            for (i, plan) in plans.enumerated() {
                for file in plan.declaringFiles { byFile[file, default: []].append(i) }
            }
            for (file, group) in byFile.sorted(by: { $0.key < $1.key }) {
                let url = clone.appendingPathComponent(file)
                guard var text = try? String(contentsOf: url, encoding: .utf8) else {
                    result.manual += group.map { "raise \(plans[$0].displayName) to \(plans[$0].to) (\(plans[$0].file): \(file) not found)" }
                    continue
                }
                let original = text
                for i in group {
                    let plan = plans[i]
                    switch DependencyBump.bump(file: file, text: text, ecosystem: plan.ecosystem, package: plan.package, from: plan.from, to: plan.to,
                                               installedAs: plan.installedAs) {
                    case .edited(let newText, let note):
                        text = newText
                        edited[i, default: []].append(file)
                        if let note, !result.notes.contains(note) { result.notes.append(note) }
                    case .manual(let command):
                        result.manual.append("\(command)  # \(plan.displayName) \(plan.from) in \(file): \(plan.advisories.joined(separator: ", "))")
                    }
                }
                if text != original {
                    try Data(text.utf8).write(to: url)
                    changed.append(file)
                }
            }
            for (i, plan) in plans.enumerated() {
                guard let files = edited[i] else { continue }
                result.bumps.append("\(plan.displayName) \(plan.from) -> \(plan.to) in \(files.joined(separator: " and ")) (\(plan.advisories.joined(separator: ", ")))")
            }
            guard !changed.isEmpty else {
                result.problems.append("no file could be edited here: nothing committed")
                return result
            }
            _ = try await Git.runAsync(["add", "--"] + changed, in: clone)
            let subject = "security: " + result.bumps.map { $0.components(separatedBy: " in ").first ?? $0 }.prefix(3).joined(separator: ", ")
                + (result.bumps.count > 3 ? " and \(result.bumps.count - 3) more" : "")
            var message = subject + "\n\nFixes, raising each package to the lowest version that fixes the advisory:\n\n"
            message += plans.filter { p in result.bumps.contains { $0.hasPrefix("\(p.displayName) \(p.from) -> ") } }
                .map { "- \($0.advisories.joined(separator: ", ")): \($0.displayName) \($0.from) -> \($0.to)" }.joined(separator: "\n")
            if !result.notes.isEmpty { message += "\n\n" + result.notes.map { "Note: \($0)." }.joined(separator: "\n") }
            message += "\n\nMade by Cortex security-master in run \(runID)."
            _ = try await Git.runAsync(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m", message], in: clone, environment: Git.identity)
            result.commit = try await Git.runAsync(["rev-parse", "HEAD"], in: clone)
            result.patch = try await Git.runAsync(["format-patch", "-1", "--stdout", "HEAD"], in: clone, trim: false)

            let body = "Cortex security-master found vulnerable dependencies in run `\(runID)`.\n\n"
                + plans.map { "- **\($0.advisories.joined(separator: ", "))**: `\($0.displayName)` \($0.from) → \($0.to) (\($0.files.joined(separator: ", ")))" }.joined(separator: "\n")
                + (result.notes.isEmpty ? "" : "\n\n" + result.notes.map { "> \($0)" }.joined(separator: "\n"))
                + (result.manual.isEmpty ? "" : "\n\nNot changed here (run these):\n\n" + result.manual.map { "    \($0)" }.joined(separator: "\n"))
            let published = try await publisher.publish(clone: clone, target: target, branch: branchName, title: subject, body: body)
            result.branchLocation = published.location
            result.pullRequest = published.pullRequest
            result.notes += published.notes
        } catch {
            result.problems.append("\(error)")
        }
        return result
    }
}

/// Runs git without a shell: arguments are passed as they are, never interpreted.
public enum Git {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public static let identity = ["GIT_AUTHOR_NAME": "Cortex security-master", "GIT_AUTHOR_EMAIL": "cortex-security@localhost",
                           "GIT_COMMITTER_NAME": "Cortex security-master", "GIT_COMMITTER_EMAIL": "cortex-security@localhost"]

    /// The files of a working tree: tracked and untracked, without ignored ones.
    public static func lsFiles(in root: URL) throws -> [String] {
        try run(["ls-files", "--cached", "--others", "--exclude-standard"], in: root).split(separator: "\n").map(String.init)
    }

    /// Runs git and returns its standard output; a non-zero exit or the timeout throws `Failure` with
    /// git's last line of standard error. Blocks the calling thread: async code uses `runAsync`.
    @discardableResult
    public static func run(_ arguments: [String], in directory: URL, environment extra: [String: String] = [:], trim: Bool = true, timeout: TimeInterval = 300) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_TERMINAL_PROMPT"] = "0"  // never wait for a password
        for (k, v) in extra { environment[k] = v }
        let result: SubprocessResult
        do {
            result = try Subprocess.run("git", arguments, directory: directory, environment: environment,
                                        timeout: .milliseconds(Int64(max(1, min(timeout, 86_400)) * 1000)))
        } catch {
            throw Failure(description: "git \(arguments.first ?? ""): \(error)")
        }
        if result.timedOut { throw Failure(description: "git \(arguments.first ?? "") took longer than \(Int(timeout)) s; stopped") }
        if result.truncated { throw Failure(description: "git \(arguments.first ?? ""): output larger than \(Subprocess.defaultOutputLimit) bytes; not used") }
        guard result.status == 0 else {
            let message = result.stderrText.split(separator: "\n").last.map(String.init) ?? "exit \(result.status)"
            throw Failure(description: "git \(arguments.prefix(2).joined(separator: " ")): \(message)")
        }
        let text = result.stdoutText
        return trim ? text.trimmingCharacters(in: .whitespacesAndNewlines) : text
    }

    /// `run` on a thread of its own, so a slow clone or push never holds up the cooperative pool.
    @discardableResult
    public static func runAsync(_ arguments: [String], in directory: URL, environment extra: [String: String] = [:], trim: Bool = true, timeout: TimeInterval = 300) async throws -> String {
        try await BlockingExecutor.offload("cortex-git") { try run(arguments, in: directory, environment: extra, trim: trim, timeout: timeout) }
    }
}
