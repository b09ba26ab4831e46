import CortexCore
import Foundation

/// Limits on what one asset may carry, so that a bad client cannot bloat the catalog.
public enum CatalogLimits {
    public static let maxIDLength = 512
    public static let maxNameLength = 253
    public static let maxLabels = 64
    public static let maxLabelLength = 317
    public static let maxPropertiesBytes = 64 * 1024
    public static let maxReasonLength = 1024
    /// Assets or relations in one batch.
    public static let maxBatch = 5000
    /// Most nodes a lineage walk returns.
    public static let maxLineageNodes = 2000
    public static let maxLineageDepth = 10
}

/// Checks inputs and derives what the store indexes (words, label pairs, a content fingerprint).
public enum CatalogValidation {
    /// Throws `CatalogError.invalid` naming the first problem of `input`.
    public static func check(_ input: AssetInput, at position: String = "asset") throws {
        let id = input.resolvedID
        try checkText(id, "\(position).id", max: CatalogLimits.maxIDLength)
        try checkText(input.name, "\(position).name", max: CatalogLimits.maxNameLength)
        if let ns = input.namespace { try checkText(ns, "\(position).namespace", max: CatalogLimits.maxNameLength, allowEmpty: true) }
        if let owner = input.owner { try checkText(owner, "\(position).owner", max: CatalogLimits.maxNameLength, allowEmpty: true) }
        if let by = input.discoveredBy { try checkText(by, "\(position).discoveredBy", max: CatalogLimits.maxNameLength) }
        if let labels = input.labels {
            guard labels.count <= CatalogLimits.maxLabels else {
                throw CatalogError(.invalid, "\(position).labels: at most \(CatalogLimits.maxLabels) labels, got \(labels.count)")
            }
            for (k, v) in labels {
                try checkText(k, "\(position).labels key", max: CatalogLimits.maxLabelLength)
                guard !k.contains("=") else { throw CatalogError(.invalid, "\(position).labels: key '\(k)' must not contain '='") }
                try checkText(v, "\(position).labels[\(k)]", max: CatalogLimits.maxLabelLength, allowEmpty: true)
            }
        }
        if let properties = input.properties {
            guard case .object = properties else { throw CatalogError(.invalid, "\(position).properties must be a JSON object") }
            let size = properties.description.utf8.count
            guard size <= CatalogLimits.maxPropertiesBytes else {
                throw CatalogError(.invalid, "\(position).properties: \(size) bytes of JSON, at most \(CatalogLimits.maxPropertiesBytes)")
            }
        }
        if let reason = input.health?.reason, reason.count > CatalogLimits.maxReasonLength {
            throw CatalogError(.invalid, "\(position).health.reason: at most \(CatalogLimits.maxReasonLength) characters")
        }
        if let v = input.expectedVersion, v < 1 {
            throw CatalogError(.invalid, "\(position).expectedVersion must be 1 or more, got \(v)")
        }
    }

    public static func check(_ relation: RelationInput, at position: String = "relation") throws {
        try checkText(relation.from, "\(position).from", max: CatalogLimits.maxIDLength)
        try checkText(relation.to, "\(position).to", max: CatalogLimits.maxIDLength)
        if let by = relation.discoveredBy { try checkText(by, "\(position).discoveredBy", max: CatalogLimits.maxNameLength) }
    }

    static func checkText(_ text: String, _ field: String, max: Int, allowEmpty: Bool = false) throws {
        if text.isEmpty && !allowEmpty { throw CatalogError(.invalid, "\(field) must not be empty") }
        // Characters are never more than UTF-8 bytes: most texts are decided without counting characters.
        guard text.utf8.count <= max || text.count <= max else {
            throw CatalogError(.invalid, "\(field): at most \(max) characters, got \(text.count)")
        }
        // Control characters (tab, newline, NUL...) would break the edge-field encoding and every log line.
        guard !containsControl(text) else { throw CatalogError(.invalid, "\(field) contains a control character") }
    }

    /// Whether `text` holds a control character (general category Cc: U+0000-U+001F, U+007F-U+009F),
    /// read from the UTF-8 bytes: a batch checks a dozen texts per asset, and asking each scalar for
    /// its general category was a tenth of a batch's time.
    static func containsControl(_ text: String) -> Bool {
        var previous: UInt8 = 0
        for byte in text.utf8 {
            // U+0080-U+009F are 0xC2 0x80-0x9F in UTF-8.
            if byte < 0x20 || byte == 0x7F || (previous == 0xC2 && (0x80...0x9F).contains(byte)) { return true }
            previous = byte
        }
        return false
    }

    /// `label` filter text `key=value` split, or an error.
    public static func labelPair(_ text: String) throws -> (String, String) {
        // Split at the first "=" scalar: as a Character, "=" followed by a combining mark or an emoji
        // modifier is another character, and `key=value` would not be found (schemathesis sent "õ=🏻").
        let scalars = text.unicodeScalars
        guard let eq = scalars.firstIndex(of: "="), eq != scalars.startIndex else {
            throw CatalogError(.invalid, "label filter must be key=value, got '\(text)'")
        }
        return (String(scalars[..<eq]), String(scalars[scalars.index(after: eq)...]))
    }

    /// The words of a text: lower-cased runs of letters and digits (ids, names, namespaces and search text alike).
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        for ch in text.lowercased() {
            if ch.isLetter || ch.isNumber { current.append(ch) } else if !current.isEmpty { out.append(current); current = "" }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// The distinct words an asset is found by.
    static func indexWords(id: String, input: AssetInput) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for w in words(id) + words(input.name) + words(input.namespace ?? "") where w.count <= 64 && seen.insert(w).inserted {
            result.append(w)
        }
        return result
    }
}
