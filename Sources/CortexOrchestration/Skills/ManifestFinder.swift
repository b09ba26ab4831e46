import CortexCore
import Foundation

/// security: finds the dependency manifests and lockfiles a vulnerability scan will read.
public struct ManifestFinder: Skill {
    public init() {}
    /// See `Skill.version`: raise it when the records a file yields change. 2: npm aliases under their
    /// real name (`installedAs`), lines for package-lock.json and Package.resolved entries.
    public var version: Int { 2 }

    /// (ecosystem, kind) for a file name, or nil when it is not a dependency file.
    public static func classify(_ path: String) -> (ecosystem: String, kind: String)? {
        let name = PathText.lastComponent(path)
        switch name {
        case "Package.swift": return ("SwiftURL", "manifest")
        case "Package.resolved": return ("SwiftURL", "lockfile")
        case "package.json": return ("npm", "manifest")
        case "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml": return ("npm", "lockfile")
        case "pyproject.toml", "Pipfile", "setup.py", "setup.cfg": return ("PyPI", "manifest")
        case "poetry.lock", "Pipfile.lock", "uv.lock": return ("PyPI", "lockfile")
        case "go.mod": return ("Go", "manifest")
        case "go.sum": return ("Go", "lockfile")
        case "Cargo.toml": return ("crates.io", "manifest")
        case "Cargo.lock": return ("crates.io", "lockfile")
        case "Gemfile", "gems.rb": return ("RubyGems", "manifest")
        case "Gemfile.lock", "gems.locked": return ("RubyGems", "lockfile")
        case "pom.xml", "build.gradle", "build.gradle.kts": return ("Maven", "manifest")
        case "gradle.lockfile": return ("Maven", "lockfile")
        case "composer.json": return ("Packagist", "manifest")
        case "composer.lock": return ("Packagist", "lockfile")
        case "Dockerfile", "Containerfile": return ("docker", "dockerfile")
        case "Chart.yaml": return ("helm", "chart")
        default:
            if name.hasPrefix("Dockerfile.") || name.hasSuffix(".Dockerfile") { return ("docker", "dockerfile") }
            if name.hasPrefix("requirements") && name.hasSuffix(".txt") { return ("PyPI", "lockfile") }
            return nil
        }
    }

    /// Only dependency files and YAML (Kubernetes manifests, Helm templates).
    public func considers(_ path: String) -> Bool { Self.classify(path) != nil || path.hasSuffix(".yaml") || path.hasSuffix(".yml") }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        files.compactMap { Self.record(path: $0, text: readText(root, $0)) }
    }

    /// The record for one file given its text (nil text: unreadable or binary), or nil when it is not a
    /// dependency file or a Kubernetes manifest.
    public static func record(path: String, text: String?) -> SkillRecord? {
        guard let c = classify(path) else { return kubernetesManifest(path, text) }
        let lines = text?.split(separator: "\n", omittingEmptySubsequences: true).count ?? 0
        var record: SkillRecord = ["path": .string(path), "ecosystem": .string(c.ecosystem), "kind": .string(c.kind), "lines": .number(Double(lines))]
        guard let text else { return record }
        if c.kind == "dockerfile" {
            record["base_images"] = .array(Lockfiles.dockerBaseImages(text).map(JSONValue.string))
            return record
        }
        // A broken lockfile is reported with its file and line; the rest of the repository is still inventoried.
        do {
            if let packages = try Lockfiles.parse(path: path, text: text) {
                record["packages"] = .array(packages.map { p in
                    var entry: [String: JSONValue] = ["name": .string(p.name), "version": .string(p.version)]
                    if let line = p.line { entry["line"] = .number(Double(line)) }
                    if let alias = p.installedAs { entry["installedAs"] = .string(alias) }
                    return .object(entry)
                })
            }
        } catch {
            record["error"] = .string("\(error)")
        }
        return record
    }

    /// A YAML file holding Kubernetes objects (`apiVersion` and `kind` at the top level of a document):
    /// its kinds, e.g. Deployment, Service.
    static func kubernetesManifest(_ path: String, _ text: String?) -> SkillRecord? {
        guard path.hasSuffix(".yaml") || path.hasSuffix(".yml"), let text else { return nil }
        // A Helm chart's templates are Go templates, not YAML until rendered: listed as such, not parsed.
        if (path.hasPrefix("templates/") || path.contains("/templates/")) && text.contains("{{") {
            return ["path": .string(path), "ecosystem": "helm", "kind": "helm-template", "lines": .number(Double(text.split(separator: "\n").count))]
        }
        var kinds: [String] = []
        for document in text.components(separatedBy: "\n---") {
            let lines = document.split(separator: "\n")
            guard lines.contains(where: { $0.hasPrefix("apiVersion:") }), let kind = lines.first(where: { $0.hasPrefix("kind:") }) else { continue }
            let name = kind.dropFirst(5).trimmingCharacters(in: .whitespaces)
            if !name.isEmpty && !kinds.contains(name) { kinds.append(name) }
        }
        guard !kinds.isEmpty else { return nil }
        return ["path": .string(path), "ecosystem": "kubernetes", "kind": "k8s-manifest", "lines": .number(Double(text.split(separator: "\n").count)),
                "objects": .array(kinds.map(JSONValue.string))]
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let lockfiles = rows.filter { $0["kind"]?.stringValue == "lockfile" }.count
        let ecosystems = Set(rows.compactMap { $0["ecosystem"]?.stringValue }).sorted()
        let pinned = rows.reduce(0) { $0 + ($1["packages"]?.arrayValue?.count ?? 0) }
        let broken = rows.compactMap { $0["error"]?.stringValue }
        let headline = "\(rows.count) dependency files (\(lockfiles) lockfiles)" + (ecosystems.isEmpty ? "" : " for \(ecosystems.joined(separator: ", "))")
            + (pinned > 0 ? ", \(pinned) packages pinned" : "") + (broken.isEmpty ? "" : "; \(broken.count) unreadable")
        var md = "### Dependency manifests and lockfiles\n\n" + table(["File", "Ecosystem", "Kind", "Lines", "Packages"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["ecosystem"]?.stringValue ?? "", $0["kind"]?.stringValue ?? "", "\($0["lines"]?.intValue ?? 0)",
             $0["error"] != nil ? "unreadable" : ($0["packages"]?.arrayValue.map { "\($0.count)" } ?? ($0["base_images"]?.arrayValue.map { "base: " + $0.compactMap(\.stringValue).joined(separator: ", ") }
                ?? ($0["objects"]?.arrayValue.map { $0.compactMap(\.stringValue).joined(separator: ", ") } ?? "")))]
        }) + (lockfiles == 0 && !rows.isEmpty ? "\nNo lockfile: versions are not pinned, so a scan can only report ranges.\n" : "")
        if !broken.isEmpty { md += "\nUnreadable files (the rest was inventoried):\n\n" + broken.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        return SkillSummary(headline: headline, markdown: md, details: .object(["manifests": .array(rows.map { .object($0) })]))
    }
}
