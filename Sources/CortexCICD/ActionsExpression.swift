import Foundation

/// A GitHub Actions expression (`${{ … }}`), parsed: contexts, literals, function calls and the
/// operators GitHub documents. The audits ask three questions of it: which contexts can flow into the
/// value (template injection), what it is when it is constant (statically false conditions,
/// obfuscation, pseudo-ternaries), and where comparisons with contexts sit (bot and contains checks).
public indirect enum ActionsExpression: Equatable, Sendable {
    case string(String)
    case number(Double)
    case boolean(Bool)
    case null
    /// `github.event.issue.title`, `matrix['os']`, `fromJSON(x).y`: a head and its accessors.
    case context(ActionsContext)
    case call(name: String, arguments: [ActionsExpression])
    case binary(op: String, lhs: ActionsExpression, rhs: ActionsExpression)
    case not(ActionsExpression)

    /// A context expression: `head` is an identifier (`github`) or, for `fromJSON(x).y`, a call.
    public struct ActionsContext: Equatable, Sendable {
        public enum Part: Equatable, Sendable {
            case name(String)
            case star
            case index(ActionsExpression)
        }
        public var head: String?
        public var call: ActionsExpression?
        public var parts: [Part]
        /// The source text, for messages.
        public var text: String

        /// The lower-cased dotted pattern (`github.event.commits.*.message`): literal string indices
        /// become names, numbers and computed indices `*`. Nil when the head is a call.
        public var pattern: String? {
            guard let head else { return nil }
            return ([head.lowercased()] + parts.map { part -> String in
                switch part {
                case .name(let n): return n.lowercased()
                case .star: return "*"
                case .index(.string(let s)): return s.lowercased()
                case .index: return "*"
                }
            }).joined(separator: ".")
        }

        /// Whether this context is `prefix` or below it (`secrets.X` is a child of `secrets`).
        public func isChild(of prefix: String) -> Bool {
            guard let p = pattern else { return false }
            return p == prefix || p.hasPrefix(prefix + ".")
        }

        /// Indices that are computed (`x[format(…)]`), not a literal or `*`.
        var computedIndices: [ActionsExpression] {
            parts.compactMap { if case .index(let e) = $0, !e.isLiteral { return e } else { return nil } }
        }
    }

    var isLiteral: Bool {
        switch self {
        case .string, .number, .boolean, .null: return true
        default: return false
        }
    }

    /// Every context in the expression, wherever it is.
    public var allContexts: [ActionsContext] {
        switch self {
        case .context(let c):
            var out = [c]
            if let call = c.call { out += call.allContexts }
            for part in c.parts { if case .index(let e) = part { out += e.allContexts } }
            return out
        case .call(_, let args): return args.flatMap(\.allContexts)
        case .binary(_, let l, let r): return l.allContexts + r.allContexts
        case .not(let e): return e.allContexts
        default: return []
        }
    }

    /// The contexts whose value can end up in the expression's value: `a || b` either side, `a && b`
    /// only b, format/join/toJSON/fromJSON their arguments, case its values; comparisons, `!` and
    /// predicates (contains, startsWith, hashFiles…) yield booleans or hashes, never the text.
    public var flowingContexts: [ActionsContext] {
        switch self {
        case .context(let c): return [c]
        case .binary("||", let l, let r): return l.flowingContexts + r.flowingContexts
        case .binary("&&", _, let r): return r.flowingContexts
        case .call(let name, let args):
            switch name.lowercased() {
            case "format", "join", "tojson", "fromjson": return args.flatMap(\.flowingContexts)
            case "case":
                return args.enumerated().filter { $0.offset % 2 == 1 || $0.offset == args.count - 1 }.flatMap { $0.element.flowingContexts }
            default: return []
            }
        default: return []
        }
    }

    /// The expression's value when it needs no context (`false`, `'a' == 'A'`, `format('{0}', 1)`).
    public var constantValue: ConstantValue? {
        switch self {
        case .string(let s): return .string(s)
        case .number(let n): return .number(n)
        case .boolean(let b): return .boolean(b)
        case .null: return .null
        case .context: return nil
        case .not(let e): return e.constantValue.map { .boolean(!$0.truthy) }
        case .binary(let op, let l, let r):
            guard let a = l.constantValue else { return nil }
            if op == "&&" { return a.truthy ? r.constantValue : a }
            if op == "||" { return a.truthy ? a : r.constantValue }
            guard let b = r.constantValue else { return nil }
            switch op {
            case "==": return .boolean(a.looselyEquals(b))
            case "!=": return .boolean(!a.looselyEquals(b))
            case "<", "<=", ">", ">=":
                let x = a.asNumber, y = b.asNumber
                guard !x.isNaN, !y.isNaN else { return .boolean(false) }
                return .boolean(op == "<" ? x < y : op == "<=" ? x <= y : op == ">" ? x > y : x >= y)
            default: return nil
            }
        case .call(let name, let args):
            let values = args.map(\.constantValue)
            guard values.allSatisfy({ $0 != nil }) else { return nil }
            let v = values.map { $0! }
            switch name.lowercased() {
            case "format":
                guard case .string(var template)? = v.first else { return nil }
                for (i, arg) in v.dropFirst().enumerated() { template = template.replacingOccurrences(of: "{\(i)}", with: arg.text) }
                return .string(template)
            case "contains":
                guard v.count == 2 else { return nil }
                if case .array(let items) = v[0] { return .boolean(items.contains { $0.looselyEquals(v[1]) }) }
                return .boolean(v[0].text.lowercased().contains(v[1].text.lowercased()))
            case "startswith": return v.count == 2 ? .boolean(v[0].text.lowercased().hasPrefix(v[1].text.lowercased())) : nil
            case "endswith": return v.count == 2 ? .boolean(v[0].text.lowercased().hasSuffix(v[1].text.lowercased())) : nil
            case "tojson": return v.count == 1 ? .string(v[0].text) : nil
            case "fromjson":
                guard v.count == 1, let data = v[0].text.data(using: .utf8),
                      let json = try? JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) else { return nil }
                return ConstantValue(json: json)
            case "join":
                guard case .array(let items)? = v.first else { return v.first.map { .string($0.text) } }
                return .string(items.map(\.text).joined(separator: v.count > 1 ? v[1].text : ","))
            default: return nil
            }
        }
    }

    /// A constant's value, with GitHub's coercions.
    public enum ConstantValue: Equatable, Sendable {
        case string(String), number(Double), boolean(Bool), null, array([ConstantValue]), object

        init(json: Any) {
            switch json {
            case let s as String: self = .string(s)
            case let n as NSNumber: self = ["true", "false"].contains("\(json)") ? .boolean(n.boolValue) : .number(n.doubleValue)
            case let a as [Any]: self = .array(a.map(ConstantValue.init(json:)))
            case is [String: Any]: self = .object
            default: self = .null
            }
        }

        public var truthy: Bool {
            switch self {
            case .string(let s): return !s.isEmpty
            case .number(let n): return n != 0 && !n.isNaN
            case .boolean(let b): return b
            case .null: return false
            case .array, .object: return true
            }
        }

        var asNumber: Double {
            switch self {
            case .number(let n): return n
            case .boolean(let b): return b ? 1 : 0
            case .null: return 0
            case .string(let s): return s.trimmingCharacters(in: .whitespaces).isEmpty ? 0 : Double(s.trimmingCharacters(in: .whitespaces)) ?? .nan
            case .array, .object: return .nan
            }
        }

        var text: String {
            switch self {
            case .string(let s): return s
            case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n)
            case .boolean(let b): return b ? "true" : "false"
            case .null: return ""
            case .array: return "Array"
            case .object: return "Object"
            }
        }

        /// `==`: strings compare case-insensitively; mixed types compare as numbers.
        func looselyEquals(_ other: ConstantValue) -> Bool {
            switch (self, other) {
            case (.string(let a), .string(let b)): return a.lowercased() == b.lowercased()
            case (.array, _), (_, .array), (.object, _), (_, .object): return false
            default: return asNumber == other.asNumber
            }
        }
    }
}

/// One `${{ … }}` in a string: where it is (UTF-8 byte offsets of the fence in the string) and its parse.
public struct FencedExpression: Sendable {
    /// The text between the fences, trimmed.
    public var body: String
    /// The whole `${{ … }}`.
    public var fenced: String
    /// Character offset of `${{` in the string it came from (Characters, not bytes).
    public var offset: Int
    /// Nil when the body does not parse (reported by no audit: GitHub rejects such workflows).
    public var expression: ActionsExpression?
}

public enum ActionsExpressionParser {
    /// Every `${{ … }}` in `text`. The closing `}}` is the first outside a '…' string literal.
    public static func fenced(in text: String) -> [FencedExpression] {
        var out: [FencedExpression] = []
        let chars = Array(text)
        var i = 0
        while i + 2 < chars.count {
            guard chars[i] == "$", chars[i + 1] == "{", chars[i + 2] == "{" else { i += 1; continue }
            var j = i + 3, inString = false
            var end: Int?
            while j < chars.count {
                if chars[j] == "'" { inString.toggle() }
                else if !inString, chars[j] == "}", j + 1 < chars.count, chars[j + 1] == "}" { end = j; break }
                j += 1
            }
            guard let end else { break }
            let body = String(chars[(i + 3)..<end]).trimmingCharacters(in: .whitespacesAndNewlines)
            out.append(FencedExpression(body: body, fenced: String(chars[i...(end + 1)]), offset: i, expression: try? parse(body)))
            i = end + 2
        }
        return out
    }

    /// Expressions longer or deeper than GitHub's own would accept are refused rather than walked:
    /// the audits' recursion stays shallow whatever a hostile file holds.
    static let maxTokens = 400, maxDepth = 40

    /// Parses an expression body (without the fences).
    public static func parse(_ text: String) throws -> ActionsExpression {
        let tokens = try tokenize(text)
        guard tokens.count <= maxTokens else { throw ExpressionError(message: "expression of \(tokens.count) tokens (more than \(maxTokens))") }
        var p = Parser(tokens: tokens, text: text, chars: Array(text))
        let e = try p.orExpr()
        guard p.at >= p.tokens.count else { throw ExpressionError(message: "unexpected `\(p.tokens[p.at].text)` in `\(text)`") }
        return e
    }

    public struct ExpressionError: Error, Sendable { public var message: String }

    struct Token { var kind: Kind; var text: String; var start: Int; var end: Int
        enum Kind { case identifier, string, number, op, punct }
    }

    static func tokenize(_ text: String) throws -> [Token] {
        let c = Array(text)
        var out: [Token] = []
        var i = 0
        while i < c.count {
            let ch = c[i]
            if ch.isWhitespace { i += 1; continue }
            if ch == "'" {
                var s = "", j = i + 1
                while true {
                    guard j < c.count else { throw ExpressionError(message: "unterminated string in `\(text)`") }
                    if c[j] == "'" { if j + 1 < c.count, c[j + 1] == "'" { s.append("'"); j += 2; continue }; break }
                    s.append(c[j]); j += 1
                }
                out.append(Token(kind: .string, text: s, start: i, end: j + 1)); i = j + 1; continue
            }
            if ch.isNumber || (ch == "-" && i + 1 < c.count && c[i + 1].isNumber && (out.last.map { $0.kind == .op || $0.text == "(" || $0.text == "," || $0.text == "[" } ?? true)) {
                var j = i + 1
                while j < c.count, c[j].isHexDigit || c[j] == "." || c[j] == "x" || c[j] == "e" || c[j] == "E" || ((c[j] == "+" || c[j] == "-") && (c[j - 1] == "e" || c[j - 1] == "E")) { j += 1 }
                out.append(Token(kind: .number, text: String(c[i..<j]), start: i, end: j)); i = j; continue
            }
            if ch.isLetter || ch == "_" {
                var j = i + 1
                while j < c.count, c[j].isLetter || c[j].isNumber || c[j] == "_" || c[j] == "-" { j += 1 }
                out.append(Token(kind: .identifier, text: String(c[i..<j]), start: i, end: j)); i = j; continue
            }
            let two = i + 1 < c.count ? String(c[i...(i + 1)]) : ""
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) { out.append(Token(kind: .op, text: two, start: i, end: i + 2)); i += 2; continue }
            if "<>!".contains(ch) { out.append(Token(kind: .op, text: String(ch), start: i, end: i + 1)); i += 1; continue }
            if "()[],.*".contains(ch) { out.append(Token(kind: .punct, text: String(ch), start: i, end: i + 1)); i += 1; continue }
            throw ExpressionError(message: "unexpected character `\(ch)` in `\(text)`")
        }
        return out
    }

    struct Parser {
        var tokens: [Token]
        var text: String
        var chars: [Character]
        var at = 0
        var depth = 0

        mutating func enter() throws {
            depth += 1
            guard depth <= ActionsExpressionParser.maxDepth else { throw ExpressionError(message: "expression nested more than \(ActionsExpressionParser.maxDepth) deep") }
        }

        var peek: Token? { at < tokens.count ? tokens[at] : nil }
        mutating func take(_ s: String) -> Bool { if peek?.text == s, peek?.kind != .string { at += 1; return true }; return false }
        mutating func expect(_ s: String) throws { guard take(s) else { throw ExpressionError(message: "expected `\(s)` in `\(text)`") } }

        mutating func orExpr() throws -> ActionsExpression {
            try enter()
            defer { depth -= 1 }
            var l = try andExpr()
            while take("||") { l = .binary(op: "||", lhs: l, rhs: try andExpr()) }
            return l
        }
        mutating func andExpr() throws -> ActionsExpression {
            var l = try equality()
            while take("&&") { l = .binary(op: "&&", lhs: l, rhs: try equality()) }
            return l
        }
        mutating func equality() throws -> ActionsExpression {
            var l = try comparison()
            while let op = peek, op.kind == .op, op.text == "==" || op.text == "!=" { at += 1; l = .binary(op: op.text, lhs: l, rhs: try comparison()) }
            return l
        }
        mutating func comparison() throws -> ActionsExpression {
            var l = try unary()
            while let op = peek, op.kind == .op, ["<", "<=", ">", ">="].contains(op.text) { at += 1; l = .binary(op: op.text, lhs: l, rhs: try unary()) }
            return l
        }
        mutating func unary() throws -> ActionsExpression {
            if take("!") {
                try enter()
                defer { depth -= 1 }
                return .not(try unary())
            }
            return try postfix()
        }
        mutating func postfix() throws -> ActionsExpression {
            guard let t = peek else { throw ExpressionError(message: "unexpected end of `\(text)`") }
            let start = t.start
            var base: ActionsExpression
            var head: String?
            var call: ActionsExpression?
            at += 1
            switch t.kind {
            case .string: base = .string(t.text)
            case .number:
                let n = t.text.lowercased().hasPrefix("0x") ? Double(Int(t.text.dropFirst(2), radix: 16) ?? 0) : Double(t.text) ?? .nan
                base = .number(n)
            case .identifier:
                switch t.text.lowercased() {
                case "true": base = .boolean(true)
                case "false": base = .boolean(false)
                case "null": base = .null
                default:
                    if take("(") {
                        var args: [ActionsExpression] = []
                        if !take(")") {
                            repeat { args.append(try orExpr()) } while take(",")
                            try expect(")")
                        }
                        call = .call(name: t.text, arguments: args)
                        base = call!
                    } else {
                        head = t.text
                        base = .context(.init(head: t.text, parts: [], text: t.text))
                    }
                }
            case .punct where t.text == "(":
                let inner = try orExpr()
                try expect(")")
                return inner
            default:
                throw ExpressionError(message: "unexpected `\(t.text)` in `\(text)`")
            }
            var parts: [ActionsExpression.ActionsContext.Part] = []
            while let p = peek, p.kind == .punct, p.text == "." || p.text == "[" {
                at += 1
                if p.text == "." {
                    if take("*") { parts.append(.star); continue }
                    guard let name = peek, name.kind == .identifier else { throw ExpressionError(message: "expected a property name in `\(text)`") }
                    at += 1
                    parts.append(.name(name.text))
                } else {
                    if take("*") { try expect("]"); parts.append(.star); continue }
                    parts.append(.index(try orExpr()))
                    try expect("]")
                }
            }
            guard !parts.isEmpty || head != nil else { return base }
            let end = at > 0 ? tokens[at - 1].end : start
            let source = String(chars[start..<min(end, chars.count)])
            return .context(.init(head: head, call: head == nil ? call ?? base : nil, parts: parts, text: source))
        }
    }
}
