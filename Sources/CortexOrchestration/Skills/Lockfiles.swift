import CortexCore
import Foundation

/// A dependency with its exact version, as a lockfile pins it.
public struct LockedPackage: Sendable, Equatable, Hashable, Codable {
    public var ecosystem: String
    public var name: String
    public var version: String
    /// Where in the file (1-based line) when the format makes that easy to know.
    public var line: Int?
    /// The name it is installed under when that is not `name`: npm's aliases (`"x": "npm:y@^1.0.0"`
    /// installs the package y as x). `name` is the real package, the one advisories name.
    public var installedAs: String?

    public init(_ ecosystem: String, _ name: String, _ version: String, line: Int? = nil, installedAs: String? = nil) {
        self.ecosystem = ecosystem
        self.name = name
        self.version = version
        self.line = line
        self.installedAs = installedAs
    }
}

/// A lockfile that could not be read, naming the file and line.
public struct LockfileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Parsers for the lockfiles (and pinned manifests) of each ecosystem, and Dockerfile base images.
public enum Lockfiles {
    /// The packages pinned by `text`, the contents of `path`; nil when the file is not a format read here.
    public static func parse(path: String, text: String) throws -> [LockedPackage]? {
        let name = PathText.lastComponent(path)
        switch name {
        case "package-lock.json", "npm-shrinkwrap.json": return try packageLock(path, text)
        case "yarn.lock": return try yarnLock(path, text)
        case "poetry.lock": return try tomlPackages(path, text, ecosystem: "PyPI")
        case "Cargo.lock": return try tomlPackages(path, text, ecosystem: "crates.io")
        case "Pipfile.lock": return try pipfileLock(path, text)
        case "go.mod": return try goMod(path, text)
        case "go.sum": return try goSum(path, text)
        case "Gemfile.lock": return try gemfileLock(path, text)
        case "pom.xml": return try pom(path, text)
        case "Package.resolved": return try packageResolved(path, text)
        default:
            if name.hasPrefix("requirements") && name.hasSuffix(".txt") { return try requirements(path, text) }
            return nil
        }
    }

    static func json(_ path: String, _ text: String) throws -> JSONValue {
        do { return try JSONText.parse(text) } catch let e as JSONText.SyntaxError {
            let line = text.utf8.prefix(e.offset).filter { $0 == 0x0A }.count + 1
            throw LockfileError(file: path, line: line, message: "not valid JSON: \(e.reason)")
        }
    }

    /// npm lockfileVersion 2 and 3 (`packages`, keyed by node_modules path; an alias has the real name in
    /// `name`), and 1 (`dependencies`, nested; an alias's version is `npm:real@1.2.3`).
    static func packageLock(_ path: String, _ text: String) throws -> [LockedPackage] {
        let root = try json(path, text)
        var out: [LockedPackage] = []
        if let packages = root["packages"]?.objectValue {
            // Keyed by the quoted key: `"node_modules/x": {`.
            let lines = entryLines(text) { line in
                guard line.hasPrefix("\"node_modules/"), let close = line.dropFirst().firstIndex(of: "\"") else { return nil }
                return String(line[...close])
            }
            // In file order, so the line kept for a version installed at several paths is always its first.
            let keys = packages.keys.sorted { (lines["\"\($0)\""] ?? .max, $0) < (lines["\"\($1)\""] ?? .max, $1) }
            for key in keys where !key.isEmpty {
                let value = packages[key]!
                guard let range = key.range(of: "node_modules/", options: .backwards) else { continue }  // workspace links
                guard let version = value["version"]?.stringValue else { continue }
                let installed = String(key[range.upperBound...])
                let real = value["name"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? installed
                out.append(.init("npm", real, version, line: lines["\"\(key)\""], installedAs: real == installed ? nil : installed))
            }
        } else if let deps = root["dependencies"]?.objectValue {
            func walk(_ deps: [String: JSONValue]) {
                for (name, value) in deps {
                    if let v = value["version"]?.stringValue {
                        if let alias = npmAlias(v) { out.append(.init("npm", alias.name, alias.version, installedAs: name)) }
                        else { out.append(.init("npm", name, v)) }
                    }
                    if let nested = value["dependencies"]?.objectValue { walk(nested) }
                }
            }
            walk(deps)
        } else {
            throw LockfileError(file: path, line: 1, message: "neither `packages` nor `dependencies`: not an npm lockfile")
        }
        return unique(out)
    }

    /// `npm:real@1.2.3` (and `npm:@scope/real@1.2.3`), an alias's spec: the real name and what follows the `@`.
    static func npmAlias(_ spec: String) -> (name: String, version: String)? {
        guard spec.hasPrefix("npm:") else { return nil }
        let rest = spec.dropFirst(4)
        guard let at = rest.dropFirst().lastIndex(of: "@") else { return nil }
        let name = String(rest[..<at]), version = String(rest[rest.index(after: at)...])
        return name.isEmpty || version.isEmpty ? nil : (name, version)
    }

    /// The 1-based line where each entry of a pretty-printed JSON lockfile starts, by what `entry` makes of
    /// the line (indentation removed; nil: not an entry's line); the first line wins. One pass, so a large
    /// lockfile stays linear. Minified files have no such lines: their entries get no line.
    static func entryLines(_ text: String, _ entry: (Substring) -> String?) -> [String: Int] {
        var lines: [String: Int] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard let key = entry(raw.drop { $0 == " " || $0 == "\t" }) else { continue }
            if lines[key] == nil { lines[key] = i + 1 }
        }
        return lines
    }

    /// yarn.lock, classic (`version "1.2.3"`) and berry (`version: 1.2.3`).
    static func yarnLock(_ path: String, _ text: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        var current: (name: String, line: Int)?
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if !line.hasPrefix(" ") {
                guard line.hasSuffix(":") else { throw LockfileError(file: path, line: i + 1, message: "expected a package header ending in ':'") }
                let first = line.dropLast().split(separator: ",").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"")) } ?? ""
                if first == "__metadata" { current = nil; continue }
                // `@scope/name@^1.0.0` or `name@npm:^1.0.0`: the name ends at the last '@' that is not the first character.
                guard let at = first.dropFirst().lastIndex(of: "@") else { throw LockfileError(file: path, line: i + 1, message: "no version range in '\(first)'") }
                current = (String(first[..<at]), i + 1)
            } else if let c = current, line.hasPrefix("  version") {
                let value = line.dropFirst("  version".count).trimmingCharacters(in: CharacterSet(charactersIn: " :\""))
                guard !value.isEmpty else { throw LockfileError(file: path, line: i + 1, message: "empty version") }
                // An alias's header is `x@npm:y@^1.0.0` (berry: `x@npm:y@npm:^1.0.0`), its name so far `x@npm:y`:
                // installed as x, the package is y.
                if let alias = c.name.dropFirst().range(of: "@npm:") {
                    out.append(.init("npm", String(c.name[alias.upperBound...]), value, line: c.line, installedAs: String(c.name[..<alias.lowerBound])))
                } else {
                    out.append(.init("npm", c.name, value, line: c.line))
                }
                current = nil
            }
        }
        return unique(out)
    }

    /// `[[package]]` tables with `name` and `version` (poetry.lock, Cargo.lock).
    static func tomlPackages(_ path: String, _ text: String, ecosystem: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        var inPackage = false
        var name: String?
        var version: String?
        var start = 0
        func flush(_ line: Int) throws {
            if inPackage {
                guard let name, let version else { throw LockfileError(file: path, line: start, message: "[[package]] without name and version") }
                out.append(.init(ecosystem, name, version, line: start))
            }
        }
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                try flush(i + 1)
                inPackage = line == "[[package]]"
                name = nil
                version = nil
                start = i + 1
                continue
            }
            guard inPackage, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard key == "name" || key == "version" else { continue }
            guard value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 else {
                throw LockfileError(file: path, line: i + 1, message: "\(key) must be a quoted string")
            }
            if key == "name" { name = String(value.dropFirst().dropLast()) } else { version = String(value.dropFirst().dropLast()) }
        }
        try flush(0)
        return unique(out)
    }

    static func pipfileLock(_ path: String, _ text: String) throws -> [LockedPackage] {
        let root = try json(path, text)
        guard root["default"] != nil || root["develop"] != nil else { throw LockfileError(file: path, line: 1, message: "no default or develop section") }
        var out: [LockedPackage] = []
        for section in ["default", "develop"] {
            for (name, value) in root[section]?.objectValue ?? [:] {
                if let v = value["version"]?.stringValue, v.hasPrefix("==") { out.append(.init("PyPI", name, String(v.dropFirst(2)))) }
            }
        }
        return unique(out)
    }

    /// `name==1.2.3` pins (with extras and environment markers); ranges are not versions and are left out.
    static func requirements(_ path: String, _ text: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            line = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            line = line.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("-") || line.hasPrefix("\\") || line.contains("://") { continue }
            if line.hasSuffix("\\") { line = String(line.dropLast()).trimmingCharacters(in: .whitespaces) }
            guard let range = line.range(of: "==") else { continue }
            var name = line[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
            if let bracket = name.firstIndex(of: "[") { name = String(name[..<bracket]) }
            let version = line[range.upperBound...].split(separator: " ").first.map(String.init) ?? ""
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !version.isEmpty else {
                throw LockfileError(file: path, line: i + 1, message: "cannot read requirement '\(line)'")
            }
            out.append(.init("PyPI", name, version, line: i + 1))
        }
        return unique(out)
    }

    static func goMod(_ path: String, _ text: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        var inBlock = false
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = (raw.components(separatedBy: "//").first ?? "").trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("require (") { inBlock = true; continue }
            if inBlock && line == ")" { inBlock = false; continue }
            var spec: Substring?
            if inBlock, !line.isEmpty { spec = Substring(line) } else if line.hasPrefix("require ") { spec = line.dropFirst(8) }
            guard let spec else { continue }
            let parts = spec.split(separator: " ")
            guard parts.count == 2, parts[1].hasPrefix("v") else { throw LockfileError(file: path, line: i + 1, message: "expected 'module vX.Y.Z'") }
            out.append(.init("Go", String(parts[0]), String(parts[1]), line: i + 1))
        }
        return unique(out)
    }

    static func goSum(_ path: String, _ text: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let parts = raw.split(separator: " ")
            guard parts.count == 3, parts[2].hasPrefix("h1:") else { throw LockfileError(file: path, line: i + 1, message: "expected 'module version h1:hash'") }
            if parts[1].hasSuffix("/go.mod") { continue }
            out.append(.init("Go", String(parts[0]), String(parts[1]), line: i + 1))
        }
        return unique(out)
    }

    /// The `specs:` of the GEM section: `    name (version)` (four spaces; six are dependencies).
    static func gemfileLock(_ path: String, _ text: String) throws -> [LockedPackage] {
        var out: [LockedPackage] = []
        var inSpecs = false
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw)
            if !line.hasPrefix(" ") { inSpecs = false; continue }
            if line == "  specs:" { inSpecs = true; continue }
            guard inSpecs, line.hasPrefix("    "), !line.hasPrefix("     ") else { continue }
            let body = line.trimmingCharacters(in: .whitespaces)
            guard let open = body.firstIndex(of: "("), body.hasSuffix(")") else { throw LockfileError(file: path, line: i + 1, message: "expected 'name (version)'") }
            var version = String(body[body.index(after: open)..<body.index(before: body.endIndex)])
            // Platform gems carry the platform after the version: 1.15.5-x86_64-linux, 1.15.5-arm64-darwin.
            if let dash = version.firstIndex(where: { $0 == "-" }),
               ["x86", "x64", "arm", "aarch64", "java", "darwin", "linux", "mingw", "universal"].contains(where: { version[version.index(after: dash)...].hasPrefix($0) }) {
                version = String(version[..<dash])
            }
            out.append(.init("RubyGems", body[..<open].trimmingCharacters(in: .whitespaces), version, line: i + 1))
        }
        return unique(out)
    }

    /// `<dependency>` groupId:artifactId with a literal or `${property}` version (unversioned ones are managed elsewhere).
    static func pom(_ path: String, _ text: String) throws -> [LockedPackage] {
        guard text.contains("<project") else { throw LockfileError(file: path, line: 1, message: "no <project> element") }
        func tag(_ name: String, in s: Substring) -> String? {
            guard let a = s.range(of: "<\(name)>"), let b = s.range(of: "</\(name)>", range: a.upperBound..<s.endIndex) else { return nil }
            return s[a.upperBound..<b.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var properties: [String: String] = [:]
        if let p = text.range(of: "<properties>"), let q = text.range(of: "</properties>", range: p.upperBound..<text.endIndex) {
            var rest = text[p.upperBound..<q.lowerBound]
            while let open = rest.range(of: "<"), let close = rest.range(of: ">", range: open.upperBound..<rest.endIndex) {
                let name = String(rest[open.upperBound..<close.lowerBound])
                guard !name.hasPrefix("/"), !name.hasPrefix("!"), let end = rest.range(of: "</\(name)>", range: close.upperBound..<rest.endIndex) else {
                    rest = rest[close.upperBound...]
                    continue
                }
                properties[name] = rest[close.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
                rest = rest[end.upperBound...]
            }
        }
        if let v = tag("version", in: text[(text.range(of: "<project")?.upperBound ?? text.startIndex)...]) { properties["project.version"] = v }
        var out: [LockedPackage] = []
        var rest = Substring(text)
        while let a = rest.range(of: "<dependency>") {
            guard let b = rest.range(of: "</dependency>", range: a.upperBound..<rest.endIndex) else {
                let line = text[..<a.lowerBound].filter { $0 == "\n" }.count + 1
                throw LockfileError(file: path, line: line, message: "<dependency> is not closed")
            }
            let block = rest[a.upperBound..<b.lowerBound]
            if let g = tag("groupId", in: block), let art = tag("artifactId", in: block), var v = tag("version", in: block) {
                if v.hasPrefix("${"), v.hasSuffix("}") { v = properties[String(v.dropFirst(2).dropLast())] ?? v }
                if !v.hasPrefix("${") {
                    out.append(.init("Maven", "\(g):\(art)", v, line: text[..<a.lowerBound].filter { $0 == "\n" }.count + 1))
                }
            }
            rest = rest[b.upperBound...]
        }
        return unique(out)
    }

    /// SwiftPM's Package.resolved, versions 1 (`object.pins`, `repositoryURL`) and 2/3 (`pins`, `location`).
    static func packageResolved(_ path: String, _ text: String) throws -> [LockedPackage] {
        let root = try json(path, text)
        guard let pins = (root["pins"] ?? root["object"]?["pins"])?.arrayValue else {
            throw LockfileError(file: path, line: 1, message: "no pins")
        }
        // Each pin's line is its URL's: `"location" : "https://..."` (v2, v3) or `"repositoryURL"` (v1).
        let lines = entryLines(text) { line in
            guard line.hasPrefix("\"location\"") || line.hasPrefix("\"repositoryURL\""), let colon = line.firstIndex(of: ":") else { return nil }
            return line[line.index(after: colon)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t\",\r"))
        }
        return unique(pins.compactMap { pin in
            guard let url = (pin["location"] ?? pin["repositoryURL"])?.stringValue else { return nil }
            let version = pin["state"]?["version"]?.stringValue ?? pin["state"]?["revision"]?.stringValue ?? pin["state"]?["branch"]?.stringValue
            return version.map { LockedPackage("SwiftURL", url, $0, line: lines[url]) }
        })
    }

    /// The base images of a Dockerfile's FROM lines (stage names and `scratch` left out; ARG defaults substituted).
    public static func dockerBaseImages(_ text: String) -> [String] {
        var args: [String: String] = [:]
        var stages: Set<String> = []
        var images: [String] = []
        for raw in text.split(separator: "\n") {
            let parts = raw.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let instruction = parts.first?.uppercased() else { continue }
            if instruction == "ARG", parts.count > 1, let eq = parts[1].firstIndex(of: "=") {
                args[String(parts[1][..<eq])] = String(parts[1][parts[1].index(after: eq)...])
            }
            guard instruction == "FROM" else { continue }
            let rest = parts.dropFirst().filter { !$0.hasPrefix("--") }
            guard var image = rest.first else { continue }
            for (k, v) in args { image = image.replacingOccurrences(of: "${\(k)}", with: v).replacingOccurrences(of: "$\(k)", with: v) }
            if rest.count >= 3, rest[rest.startIndex + 1].uppercased() == "AS" { stages.insert(rest[rest.startIndex + 2].lowercased()) }
            if image != "scratch" && !stages.contains(image.lowercased()) && !images.contains(image) { images.append(image) }
        }
        return images
    }

    /// Each package version once (an alias of it is another entry: it is installed twice), sorted.
    static func unique(_ packages: [LockedPackage]) -> [LockedPackage] {
        var seen = Set<String>()
        return packages.filter { seen.insert("\($0.ecosystem)\u{0}\($0.name)\u{0}\($0.version)\u{0}\($0.installedAs ?? "")").inserted }
            .sorted { ($0.name, $0.version, $0.installedAs ?? "") < ($1.name, $1.version, $1.installedAs ?? "") }
    }
}
