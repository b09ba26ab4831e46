import CortexCore
import Foundation

/// Rewrites one dependency's version in the file that declares it, keeping everything else byte for
/// byte. Formats whose lockfiles carry checksums this process cannot compute (Cargo.lock, poetry.lock,
/// yarn.lock, Gemfile.lock, Package.resolved, Pipfile.lock) are not edited: the outcome names the
/// package manager's own command instead.
public enum DependencyBump {
    public enum Outcome: Equatable, Sendable {
        /// The file's new text, and a note for the commit (e.g. a lockfile to refresh).
        case edited(String, note: String?)
        /// Not editable here: what to run instead.
        case manual(String)
    }

    /// Where the bump for a package found in `file` is made: npm's lockfile entries are bumped in the
    /// package.json beside them, go.sum's in go.mod.
    public static func declaringFile(for file: String) -> String {
        let name = PathText.lastComponent(file)
        let dir = (file as NSString).deletingLastPathComponent
        func sibling(_ n: String) -> String { dir.isEmpty ? n : "\(dir)/\(n)" }
        switch name {
        case "package-lock.json", "npm-shrinkwrap.json": return sibling("package.json")
        case "go.sum": return sibling("go.mod")
        default: return file
        }
    }

    /// The bump of `package` from `from` to `to` in `file` (whose text is `text`). `installedAs` names
    /// the npm alias the package is installed under, when it is: package.json declares it under that name.
    public static func bump(file: String, text: String, ecosystem: String, package: String, from: String, to: String,
                            installedAs: String? = nil) -> Outcome {
        let name = PathText.lastComponent(file)
        switch name {
        case "package.json": return packageJSON(text, package: package, to: to, alias: installedAs == package ? nil : installedAs)
        case "go.mod": return goMod(text, module: package, to: to)
        case "pom.xml": return pom(text, coordinate: package, from: from, to: to)
        case "Cargo.lock", "Cargo.toml": return .manual("cargo update -p \(package) --precise \(to)")
        case "poetry.lock": return .manual("poetry add \(package)@\(to)")
        case "Pipfile.lock": return .manual("pipenv install \(package)==\(to)")
        case "yarn.lock": return .manual("yarn up \(package)@\(to)")
        case "Gemfile.lock": return .manual("bundle update \(package) --conservative (to \(to) or later)")
        case "Package.resolved": return .manual("swift package update \(PathText.lastComponent(package).replacingOccurrences(of: ".git", with: "")) (require from: \"\(to)\" in Package.swift)")
        default:
            if name.hasPrefix("requirements") && name.hasSuffix(".txt") { return requirements(text, package: package, to: to) }
            return .manual("raise \(package) to \(to) in \(file)")
        }
    }

    /// `name==1.2.3` (with extras, markers or hashes after it) → `name==to`. PEP 503 name comparison.
    static func requirements(_ text: String, package: String, to: String) -> Outcome {
        let wanted = AdvisoryDatabase.normalizedName(package, ecosystem: "PyPI")
        var lines = text.components(separatedBy: "\n")
        var changed = false
        for (i, line) in lines.enumerated() {
            guard let eq = line.range(of: "==") else { continue }
            let rawName = line[..<eq.lowerBound].split(separator: "[").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard AdvisoryDatabase.normalizedName(rawName, ecosystem: "PyPI") == wanted else { continue }
            let rest = line[eq.upperBound...]
            let versionEnd = rest.firstIndex { $0 == " " || $0 == ";" || $0 == "\\" || $0 == "#" } ?? rest.endIndex
            lines[i] = String(line[..<eq.upperBound]) + to + String(rest[versionEnd...])
            changed = true
        }
        guard changed else { return .manual("pin \(package)==\(to)") }
        let hashed = text.contains("--hash=")
        return .edited(lines.joined(separator: "\n"), note: hashed ? "requirements use --hash: regenerate the hashes (pip-compile --generate-hashes)" : nil)
    }

    /// The dependency's range in dependencies / devDependencies / optionalDependencies / peerDependencies
    /// keeps its operator (`^`, `~`, `>=` or exact) and gets the fixed version. A package only the
    /// lockfile has (a transitive dependency) is pinned through `overrides`. An npm alias (`alias`: the
    /// package is installed as that name) is declared as `"alias": "npm:package@^1.0.0"`: its range is
    /// bumped the same way, the `npm:package@` kept; a transitive alias gets npm's command instead of an
    /// override, since `overrides` would be keyed by a name package.json does not use for it.
    static func packageJSON(_ text: String, package: String, to: String, alias: String? = nil) -> Outcome {
        let key = NSRegularExpression.escapedPattern(for: alias ?? package)
        let spec = alias == nil ? "" : "npm:" + NSRegularExpression.escapedPattern(for: package) + "@"
        let regex = try! NSRegularExpression(pattern: "(\"\(key)\"\\s*:\\s*\"\(spec))([~^]|>=\\s*)?([^\"]*)(\")")
        let ns = text as NSString
        let matches = regex.matches(in: text, range: NSRange(location: 0, length: ns.length))
        // Only entries of a dependencies-like object (not scripts or a resolutions block) are ranges.
        let sections: Set<String> = ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "overrides"]
        var result = text
        var changed = false
        for m in matches.reversed() {
            guard let section = enclosingKey(ns.substring(to: m.range.location)), sections.contains(section) else { continue }
            let op = m.range(at: 2).location == NSNotFound ? "" : ns.substring(with: m.range(at: 2))
            let replacement = ns.substring(with: m.range(at: 1)) + op + to + "\""
            let r = Range(m.range, in: result)!
            result.replaceSubrange(r, with: replacement)
            changed = true
        }
        if changed { return .edited(result, note: "run `npm install` to refresh package-lock.json") }
        if let alias { return .manual("npm install \(alias)@npm:\(package)@\(to)") }
        // Transitive: add (or extend) top-level "overrides".
        guard let open = text.firstIndex(of: "{") else { return .manual("npm install \(package)@\(to)") }
        if let existing = text.range(of: "\"overrides\"\\s*:\\s*\\{", options: .regularExpression) {
            var t = text
            t.insert(contentsOf: "\n    \"\(package)\": \"\(to)\",", at: existing.upperBound)
            return .edited(t, note: "transitive dependency pinned through overrides; run `npm install` to refresh package-lock.json")
        }
        var t = text
        t.insert(contentsOf: "\n  \"overrides\": {\n    \"\(package)\": \"\(to)\"\n  },", at: t.index(after: open))
        return .edited(t, note: "transitive dependency pinned through overrides; run `npm install` to refresh package-lock.json")
    }

    /// The key of the innermost JSON object that is still open at the end of `prefix`.
    static func enclosingKey(_ prefix: String) -> String? {
        var depth = 0
        var index = prefix.endIndex
        while index > prefix.startIndex {
            index = prefix.index(before: index)
            switch prefix[index] {
            case "}": depth += 1
            case "{":
                if depth == 0 {
                    let before = prefix[..<index].trimmingCharacters(in: .whitespacesAndNewlines)
                    guard before.hasSuffix(":") else { return nil }
                    let key = before.dropLast().trimmingCharacters(in: .whitespaces)
                    guard key.hasSuffix("\""), let open = key.dropLast().lastIndex(of: "\"") else { return nil }
                    return String(key[key.index(after: open)..<key.index(before: key.endIndex)])
                }
                depth -= 1
            default: continue
            }
        }
        return nil
    }

    /// `require` lines (single or in a block) naming the module: its version becomes `v<to>`.
    static func goMod(_ text: String, module: String, to: String) -> Outcome {
        let target = to.hasPrefix("v") ? to : "v\(to)"
        var lines = text.components(separatedBy: "\n")
        var inRequire = false
        var changed = false
        for (i, line) in lines.enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("require (") { inRequire = true; continue }
            if inRequire && trimmed == ")" { inRequire = false; continue }
            var fields = trimmed.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            if fields.first == "require" { fields.removeFirst() } else if !inRequire { continue }
            guard fields.count >= 2, fields[0] == module else { continue }
            let indent = line.prefix { $0 == " " || $0 == "\t" }
            let head = trimmed.hasPrefix("require ") ? "require " : ""
            let incompatible = fields[1].hasSuffix("+incompatible") && !target.hasPrefix("v0.") && !target.hasPrefix("v1.") ? "+incompatible" : ""
            lines[i] = indent + head + ([module, target + incompatible] + fields.dropFirst(2)).joined(separator: " ")
            changed = true
        }
        return changed ? .edited(lines.joined(separator: "\n"), note: "run `go mod tidy` to refresh go.sum") : .manual("go get \(module)@\(target)")
    }

    /// The `<version>` of the `<dependency>` with this `groupId:artifactId`; when that is a
    /// `${property}`, the property's value.
    static func pom(_ text: String, coordinate: String, from: String, to: String) -> Outcome {
        let parts = coordinate.split(separator: ":").map(String.init)
        guard parts.count == 2 else { return .manual("raise \(coordinate) to \(to) in pom.xml") }
        var search = text.startIndex..<text.endIndex
        while let a = text.range(of: "<dependency>", range: search), let b = text.range(of: "</dependency>", range: a.upperBound..<text.endIndex) {
            let block = text[a.upperBound..<b.lowerBound]
            if block.contains("<groupId>\(parts[0])</groupId>"), block.contains("<artifactId>\(parts[1])</artifactId>"),
               let v1 = block.range(of: "<version>"), let v2 = block.range(of: "</version>", range: v1.upperBound..<block.endIndex) {
                let value = block[v1.upperBound..<v2.lowerBound].trimmingCharacters(in: .whitespaces)
                var t = text
                if value.hasPrefix("${"), value.hasSuffix("}") {
                    let property = String(value.dropFirst(2).dropLast())
                    guard let p1 = t.range(of: "<\(property)>"), let p2 = t.range(of: "</\(property)>", range: p1.upperBound..<t.endIndex) else {
                        return .manual("set the property \(property) to \(to) in pom.xml")
                    }
                    t.replaceSubrange(p1.upperBound..<p2.lowerBound, with: to)
                } else {
                    t.replaceSubrange(v1.upperBound..<v2.lowerBound, with: to)
                }
                return .edited(t, note: nil)
            }
            search = b.upperBound..<text.endIndex
        }
        return .manual("raise \(coordinate) to \(to) in pom.xml")
    }
}
