import CortexCore
import Foundation

/// security: finds the dependency manifests and lockfiles a vulnerability scan will read.
public struct ManifestFinder: Skill {
    public init() {}

    /// (ecosystem, kind) for a file name, or nil when it is not a dependency file.
    public static func classify(_ path: String) -> (ecosystem: String, kind: String)? {
        let name = (path as NSString).lastPathComponent
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
        default:
            if name.hasPrefix("requirements") && name.hasSuffix(".txt") { return ("PyPI", "lockfile") }
            return nil
        }
    }

    public func examine(root: URL, files: [String], progress: (Int) -> Void) throws -> [SkillRecord] {
        files.compactMap { path in
            guard let c = Self.classify(path) else { return nil }
            let lines = readText(root, path)?.split(separator: "\n", omittingEmptySubsequences: true).count ?? 0
            return ["path": .string(path), "ecosystem": .string(c.ecosystem), "kind": .string(c.kind), "lines": .number(Double(lines))]
        }
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let rows = sorted(records)
        let lockfiles = rows.filter { $0["kind"]?.stringValue == "lockfile" }.count
        let ecosystems = Set(rows.compactMap { $0["ecosystem"]?.stringValue }).sorted()
        let headline = "\(rows.count) dependency files (\(lockfiles) lockfiles)" + (ecosystems.isEmpty ? "" : " for \(ecosystems.joined(separator: ", "))")
        let md = "### Dependency manifests and lockfiles\n\n" + table(["File", "Ecosystem", "Kind", "Lines"], rows.map {
            [$0["path"]?.stringValue ?? "", $0["ecosystem"]?.stringValue ?? "", $0["kind"]?.stringValue ?? "", "\($0["lines"]?.intValue ?? 0)"]
        }) + (lockfiles == 0 && !rows.isEmpty ? "\nNo lockfile: versions are not pinned, so a scan can only report ranges.\n" : "")
        return SkillSummary(headline: headline, markdown: md, details: .object(["manifests": .array(rows.map { .object($0) })]))
    }
}
