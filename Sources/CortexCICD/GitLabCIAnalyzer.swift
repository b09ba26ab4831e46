import CortexCore
import Foundation
import Yams

/// Security and speed review of a `.gitlab-ci.yml` (the second format).
public enum GitLabCIAnalyzer {
    /// Top-level keys that are configuration, not jobs.
    static let reserved: Set<String> = ["stages", "variables", "default", "include", "workflow", "image", "services", "before_script",
                                        "after_script", "cache", "types", "pages:deploy"]

    /// Predefined variables an outsider controls (commit and merge request text), dangerous in `eval` or `sh -c`.
    static let untrusted = try! NSRegularExpression(pattern: #"(eval|sh -c|bash -c)[^\n]*\$\{?(CI_COMMIT_MESSAGE|CI_COMMIT_TITLE|CI_COMMIT_DESCRIPTION|CI_MERGE_REQUEST_TITLE|CI_MERGE_REQUEST_DESCRIPTION|CI_COMMIT_BRANCH|CI_COMMIT_REF_NAME|CI_MERGE_REQUEST_SOURCE_BRANCH_NAME)\b"#)

    public static func analyze(file: String, text: String) throws -> [PipelineFinding] {
        let root = try PipelineYAML.compose(text, file: file)
        var out: [PipelineFinding] = []
        let defaults = root.value("default")
        let globalCache = root.value("cache") != nil || defaults?.value("cache") != nil
        let globalImage = root.value("image") ?? defaults?.value("image")
        if let image = globalImage?.string ?? globalImage?.value("name")?.string, mutable(image) {
            out.append(imageFinding(file: file, line: globalImage?.line, job: nil, image: image))
        }
        let jobs = (root.mapping.map(Array.init) ?? []).filter { pair in
            guard let key = pair.key.string else { return false }
            return !reserved.contains(key) && !key.hasPrefix(".") && pair.value.mapping != nil
        }
        guard !jobs.isEmpty else { throw PipelineParseError(file: file, line: root.line, message: "no jobs: not a GitLab CI pipeline") }
        let mergeRequests = text.contains("merge_request_event")
        for (keyNode, job) in jobs {
            let id = keyNode.string ?? "?"
            let jobLine = keyNode.line ?? 1
            let childIndent = job.mapping?.first?.key.mark.map { String(repeating: " ", count: $0.column - 1) } ?? "  "
            let script = ["before_script", "script"].flatMap { key -> [String] in
                let node = job.value(key)
                return node?.string.map { [$0] } ?? node?.sequence?.compactMap(\.string) ?? []
            }.joined(separator: "\n")
            if let image = job.value("image")?.string ?? job.value("image")?.value("name")?.string, mutable(image) {
                out.append(imageFinding(file: file, line: job.value("image")?.line, job: id, image: image))
            }
            if let m = untrusted.firstMatch(in: script, range: NSRange(script.startIndex..., in: script)) {
                let snippet = (script as NSString).substring(with: m.range)
                // The line of the script entry holding it (the first such line after the job's key).
                let lines = text.components(separatedBy: "\n")
                let at = lines.indices.first { $0 + 1 > jobLine && lines[$0].contains(snippet) }.map { $0 + 1 }
                out.append(PipelineFinding(file: file, line: at ?? job.value("script")?.line ?? jobLine, job: id, category: "security", rule: "gitlab-script-injection",
                    severity: "high", message: "`\(snippet)`: text from a commit or merge request is run as shell code."))
            }
            for installer in GitHubActionsAnalyzer.installers where installer.pattern.firstMatch(in: script, range: NSRange(script.startIndex..., in: script)) != nil {
                guard !globalCache, job.value("cache") == nil else { break }
                out.append(PipelineFinding(file: file, line: jobLine, job: id, category: "speed", rule: "gitlab-no-dependency-cache", severity: "low",
                    message: "\(installer.name) dependencies are installed without `cache:`.",
                    suggestion: "add to \(id):\ncache:\n  key:\n    files: [\(lockfile(installer.name))]\n  paths: [\(cachePath(installer.name))]",
                    saving: "dependency downloads skipped on a warm cache, on every run of \(id) (the pipeline has no timing data)"))
                break
            }
            if mergeRequests && job.value("interruptible") == nil && defaults?.value("interruptible") == nil {
                out.append(PipelineFinding(file: file, line: jobLine, job: id, category: "speed", rule: "gitlab-not-interruptible", severity: "low",
                    message: "\(id) is not `interruptible`: a newer pipeline of the same merge request does not cancel it.",
                    patch: Patch.insert(file: file, text: text, after: jobLine, lines: [childIndent + "interruptible: true"]),
                    saving: "superseded merge request pipelines stop at once: this job's run time per superseded push"))
            }
            if job.value("timeout") == nil && defaults?.value("timeout") == nil {
                out.append(PipelineFinding(file: file, line: jobLine, job: id, category: "speed", rule: "gitlab-no-timeout", severity: "low",
                    message: "No `timeout:`: a hung \(id) runs until the project's timeout (60 minutes unless changed).",
                    patch: Patch.insert(file: file, text: text, after: jobLine, lines: [childIndent + "timeout: 30m"]),
                    saving: "a hung run stops after 30 instead of 60 minutes (GitLab's default): up to 30 runner-minutes per hung job"))
            }
        }
        return out
    }

    static func mutable(_ image: String) -> Bool {
        if image.contains("@sha256:") || image.contains("$") { return false }
        let last = image.split(separator: "/").last.map(String.init) ?? image
        guard let colon = last.lastIndex(of: ":") else { return true }
        return last[last.index(after: colon)...] == "latest"
    }

    static func imageFinding(file: String, line: Int?, job: String?, image: String) -> PipelineFinding {
        PipelineFinding(file: file, line: line, job: job, category: "security", rule: "gitlab-mutable-image", severity: "medium",
                        message: "image \(image) is not pinned: whatever is pushed as that tag runs with the job's CI_JOB_TOKEN and variables.",
                        suggestion: "pin a version tag or a digest (image: name@sha256:...)")
    }

    static func lockfile(_ installer: String) -> String {
        ["npm": "package-lock.json", "pip": "requirements.txt", "SwiftPM": "Package.resolved", "Go": "go.sum", "Cargo": "Cargo.lock",
         "Gradle": "build.gradle", "Maven": "pom.xml"][installer] ?? "lockfile"
    }

    static func cachePath(_ installer: String) -> String {
        ["npm": ".npm/", "pip": ".cache/pip", "SwiftPM": ".build/", "Go": ".go/pkg/mod/", "Cargo": "target/", "Gradle": ".gradle/", "Maven": ".m2/repository"][installer] ?? ".cache/"
    }
}

/// Which analyzer reads a pipeline file.
public enum PipelineAnalyzer {
    /// The findings of a GitHub Actions workflow or a GitLab CI file (nil for any other file). YAML counts a
    /// lone "\r" as a line break and the patches count "\n" only: a file with lone "\r" is analysed with
    /// them read as "\n" (so line numbers agree) and its findings come without patches, which would not
    /// apply to its bytes (fuzzing found the mismatch: an index out of range, Fuzz/Corpus/workflow).
    /// `lockfiles`: the repository's dependency lockfiles (paths), which a cache suggestion needs to
    /// key on; nil when unknown (then no cache is suggested).
    /// `asWorkflow`: read any file not named .gitlab-ci.yml as a GitHub Actions workflow (`cortexctl audit-ci`).
    public static func analyze(file: String, text: String, lockfiles: Set<String>? = nil, asWorkflow: Bool = false) throws -> [PipelineFinding]? {
        guard hasOtherLineBreaks(text) else {
            // An empty patch is one `Patch.edit` refused to build (lines out of range): none at all.
            return try analyzeText(file: file, text: text, lockfiles: lockfiles, asWorkflow: asWorkflow)?.map { f in
                var f = f
                if f.patch?.isEmpty == true { f.patch = nil }
                return f
            }
        }
        // YAML (1.1, libyaml) also breaks lines at NEL, LS and PS: read as "\n" so line numbers agree.
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\u{85}", with: "\n").replacingOccurrences(of: "\u{2028}", with: "\n").replacingOccurrences(of: "\u{2029}", with: "\n")
        return try analyzeText(file: file, text: normalized, lockfiles: lockfiles, asWorkflow: asWorkflow)?.map { finding in
            var f = finding
            if f.patch != nil {
                f.patch = nil
                f.suggestion = f.suggestion ?? "No patch: the file breaks lines with characters other than \\n (a lone carriage return, NEL, LS or PS); make the change by hand."
            }
            return f
        }
    }

    /// Whether a file name is a dependency lockfile (or the build file) a CI cache can be keyed on.
    public static func isLockfile(_ name: String) -> Bool {
        GitHubActionsAnalyzer.lockfileNames.values.contains { $0.contains(name) } || (name.hasPrefix("requirements") && name.hasSuffix(".txt"))
    }

    /// A "\r" not followed by "\n", or NEL / LS / PS, which YAML reads as line breaks and the patches do not.
    static func hasOtherLineBreaks(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        for (i, b) in bytes.enumerated() where b == 13 && (i + 1 == bytes.count || bytes[i + 1] != 10) { return true }
        return text.unicodeScalars.contains { $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{2029}" }
    }

    static func analyzeText(file: String, text: String, lockfiles: Set<String>?, asWorkflow: Bool) throws -> [PipelineFinding]? {
        let name = PathText.lastComponent(file)
        if (asWorkflow && !name.hasPrefix(".gitlab-ci.")) || (file.hasPrefix(".github/workflows/") && (name.hasSuffix(".yml") || name.hasSuffix(".yaml"))) {
            return try GitHubActionsAnalyzer.analyze(file: file, text: text, lockfiles: lockfiles)
        }
        if name == ".gitlab-ci.yml" || name == ".gitlab-ci.yaml" { return try GitLabCIAnalyzer.analyze(file: file, text: text) }
        return nil
    }
}
