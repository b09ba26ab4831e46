import CortexCore
import Foundation

/// What a caller may do.
public enum Scope: String, Sendable, Comparable {
    case read, write
    public static func < (a: Scope, b: Scope) -> Bool { a == .read && b == .write }
}

/// Who is calling, as far as the API knows: the name recorded as `discoveredBy` by default, and a scope.
public struct Principal: Sendable {
    public var name: String
    public var scope: Scope
}

/// Bearer tokens with read or write scope (write includes read).
///
/// Entries are `scope:token` or `scope:token:name`, comma- or newline-separated, from
/// `CORTEX_CATALOG_TOKENS` or a file (`CORTEX_CATALOG_TOKENS_FILE`, e.g. a mounted Secret). Without
/// any token the API refuses to start unless token-less access was asked for explicitly
/// (`CORTEX_CATALOG_ALLOW_ANONYMOUS=true`), in which case every caller has write scope.
public struct CatalogAuth: Sendable {
    private let tokens: [(token: [UInt8], principal: Principal)]
    public let anonymous: Bool

    public init(entries: String, anonymous: Bool) throws {
        var parsed: [(token: [UInt8], principal: Principal)] = []
        let items = entries.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { $0.trimmingCharacters(in: .whitespaces) }
        for (i, item) in items.enumerated() where !item.isEmpty && !item.hasPrefix("#") {
            let parts = item.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count >= 2, let scope = Scope(rawValue: parts[0]), parts[1].count >= 16 else {
                // The entry itself is a secret: say which one, never what it holds.
                throw ConfigurationError("catalog token entry \(i + 1) must be read:<token> or write:<token>[:name] with a token of 16 characters or more")
            }
            let name = parts.count == 3 && !parts[2].isEmpty ? parts[2] : "\(scope.rawValue)-token-\(i + 1)"
            parsed.append((Array(parts[1].utf8), Principal(name: name, scope: scope)))
        }
        if parsed.isEmpty && !anonymous {
            throw ConfigurationError("catalog-api has no tokens: set CORTEX_CATALOG_TOKENS (or CORTEX_CATALOG_TOKENS_FILE), or CORTEX_CATALOG_ALLOW_ANONYMOUS=true for token-less local use")
        }
        tokens = parsed
        self.anonymous = anonymous
    }

    /// Builds the table from the process settings.
    public init(settings: SettingValues) throws {
        var entries = settings.raw(.catalogTokens) ?? ""
        if let file = settings.raw(.catalogTokensFile), !file.isEmpty {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError("cannot read CORTEX_CATALOG_TOKENS_FILE \(file)")
            }
            entries += "\n" + text
        }
        try self.init(entries: entries, anonymous: try settings.bool(.catalogAllowAnonymous))
    }

    /// The principal for an `Authorization` header value (or a `connection_init` token), requiring `scope`.
    public func authorize(_ header: String?, requires scope: Scope) throws -> Principal {
        guard let header, !header.isEmpty else {
            if anonymous { return Principal(name: "anonymous", scope: .write) }
            throw CatalogError(.unauthenticated, "missing bearer token (Authorization: Bearer <token>)")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw CatalogError(.unauthenticated, "Authorization must be 'Bearer <token>'")
        }
        let presented = Array(parts[1].utf8)
        // Compare against every token without stopping early, so timing says nothing about which matched.
        var match: Principal?
        for entry in tokens where Self.constantTimeEqual(entry.token, presented) { match = entry.principal }
        guard let principal = match else { throw CatalogError(.unauthenticated, "unknown bearer token") }
        guard principal.scope >= scope else {
            throw CatalogError(.forbidden, "this token has \(principal.scope.rawValue) scope; \(scope.rawValue) is needed")
        }
        return principal
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}
