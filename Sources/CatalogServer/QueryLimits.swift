import CortexCatalog
import GraphQL

/// A GraphQL document refused by a limit: what the client is told, and the reason the refusal is
/// counted under (`cortex_catalog_requests_refused_total{reason}`).
public struct QueryLimitError: Error, Sendable, Equatable {
    /// `tokens`, `nesting`, `depth`, `cost` or `fragment_cycle`.
    public var reason: String
    /// `extensions.code`: QUERY_TOO_LARGE, QUERY_TOO_DEEP, QUERY_TOO_COSTLY or GRAPHQL_VALIDATION_FAILED.
    public var code: String
    public var message: String
}

/// Refuses GraphQL documents that are too big, too deep or too costly before any resolver runs, and
/// before anything recursive (the library's parser, validation and execution) sees them.
///
/// Two gates:
/// 1. `prescan` reads the raw text once, without recursion: it counts lexical tokens and how deeply
///    `{`, `[` and `(` nest. A document over either cap is refused before it is parsed, so a
///    1,000-level nesting never reaches the recursive-descent parser.
/// 2. `check` walks the parsed document: fragments in dependency order (each measured once, spreads
///    expanded by looking the measure up, cycles refused), then each operation.
///
/// Depth counts nested fields. A path through `__schema` or `__type` is held to `maxIntrospectionDepth`
/// instead of `maxDepth` (tools' introspection queries nest `ofType` up to 9 deep), but it is held to one.
/// Cost counts one per field — every field: aliases are separate fields, and `__typename` and the
/// introspection fields count like any other — and a list field multiplies what is under it by how
/// many items it may return (`first`, or the page cap; lineage by its node cap scaled to depth;
/// introspection lists by the schema's own sizes), so `assets(first: 500) { nodes { ... } }` costs
/// what it may really read. Arithmetic saturates: a fragment that doubles 1,000 times costs `Int.max`.
public struct QueryLimits: Sendable {
    public var maxDepth: Int
    public var maxCost: Int
    public var maxPage: Int
    /// Lexical tokens in the document (names, punctuators, numbers, strings; commas and comments excluded).
    public var maxTokens: Int
    /// Deepest path through `__schema` / `__type` (graphql-js's introspection query needs 13, graphql-core's 15).
    public var maxIntrospectionDepth: Int
    /// Longest chain of fragments spreading fragments.
    public var maxFragmentChain: Int
    /// How many items an introspection list may return, from the schema (see `IntrospectionSizes`).
    public var introspection: IntrospectionSizes

    public init(maxDepth: Int = 12, maxCost: Int = 50_000, maxPage: Int = 500, maxTokens: Int = 10_000,
                maxIntrospectionDepth: Int = 20, maxFragmentChain: Int = 16, introspection: IntrospectionSizes = .init()) {
        self.maxDepth = maxDepth
        self.maxCost = maxCost
        self.maxPage = maxPage
        self.maxTokens = maxTokens
        self.maxIntrospectionDepth = maxIntrospectionDepth
        self.maxFragmentChain = maxFragmentChain
        self.introspection = introspection
    }

    /// How deeply brackets may nest in the raw text: selection sets plus the argument, list and
    /// input-object brackets around them. Kept far below where the library's recursive descent would
    /// exhaust a thread's stack (a debug build survives a few hundred levels).
    public var maxNesting: Int { max(maxDepth, maxIntrospectionDepth) + 24 }

    // MARK: gate 1: the raw text

    /// Token count and bracket nesting of the raw text, read once without recursion; throws when
    /// over `maxTokens` or `maxNesting`, stopping at the first token over the cap.
    @discardableResult
    public func prescan(_ text: String) throws(QueryLimitError) -> (tokens: Int, nesting: Int) {
        var tokens = 0
        var nesting = 0
        var deepest = 0
        var utf8 = text.utf8.makeIterator()
        var pending: UInt8? = nil
        func next() -> UInt8? {
            if let p = pending { pending = nil; return p }
            return utf8.next()
        }
        func isNameByte(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
        }
        while let b = next() {
            switch b {
            case 0x20, 0x09, 0x0A, 0x0D, 0x2C, 0xEF, 0xBB, 0xBF:
                continue  // white space, commas and a BOM are not tokens
            case 0x23:  // a comment runs to the end of the line
                while let c = next(), c != 0x0A, c != 0x0D {}
                continue
            case 0x22:  // a string, or a block string """..."""
                var quotes = 1
                while let c = next() {
                    if c == 0x22 { quotes += 1 } else { pending = c; break }
                    if quotes == 3 { break }
                }
                if quotes == 3 {
                    // Block string: ends at the next unescaped """.
                    var run = 0
                    var escaped = false
                    while let c = next() {
                        if c == 0x22 && !escaped { run += 1; if run == 3 { break } } else { run = 0 }
                        escaped = c == 0x5C
                    }
                } else if quotes == 1 {
                    var escaped = false
                    while let c = next() {
                        if escaped { escaped = false; continue }
                        if c == 0x5C { escaped = true; continue }
                        if c == 0x22 || c == 0x0A || c == 0x0D { break }
                    }
                }  // quotes == 2: the empty string ""
            case 0x7B, 0x5B, 0x28:  // { [ (
                nesting += 1
                if nesting > deepest {
                    deepest = nesting
                    if deepest > maxNesting {
                        throw QueryLimitError(reason: "nesting", code: "QUERY_TOO_LARGE",
                                              message: "the query nests brackets more than \(maxNesting) levels deep")
                    }
                }
            case 0x7D, 0x5D, 0x29:  // } ] )
                nesting = max(0, nesting - 1)  // unbalanced text is the parser's to report
            case 0x2E:  // ... is one token
                if let c = next() {
                    if c == 0x2E { _ = next() } else { pending = c }
                }
            default:
                if isNameByte(b) || b == 0x2D {  // a name or a number (possibly negative, with . and exponent)
                    while let c = next() {
                        if isNameByte(c) || c == 0x2E || c == 0x2B || c == 0x2D { continue }
                        pending = c
                        break
                    }
                }
                // anything else is one punctuator (or a character the parser will refuse)
            }
            tokens += 1
            if tokens > maxTokens {
                throw QueryLimitError(reason: "tokens", code: "QUERY_TOO_LARGE",
                                      message: "the query has more than \(maxTokens) tokens")
            }
        }
        return (tokens, deepest)
    }

    // MARK: gate 2: the parsed document

    /// The depth and cost of the operation `operationName` (or of every one); throws when over a limit.
    /// Every fragment of the document is measured (an unused one still goes through validation), and a
    /// fragment cycle is refused here rather than left to recursive validation.
    @discardableResult
    public func check(_ document: Document, operationName: String?, variables: [String: Map]) throws(QueryLimitError) -> (depth: Int, cost: Int) {
        var fragments: [String: FragmentDefinition] = [:]
        var operations: [OperationDefinition] = []
        for definition in document.definitions {
            if let f = definition as? FragmentDefinition { fragments[f.name.value] = f }
            if let o = definition as? OperationDefinition { operations.append(o) }
        }
        var walker = Walker(variables: variables, maxPage: maxPage, introspection: introspection)
        // Fragments are held to the limits where they are spread, not on their own: a fragment on
        // `__Type` is an introspection path only under `__schema`. One left unused is bounded by the
        // chain limit and the nesting pre-scan, and validation refuses it.
        try walker.measureFragments(fragments, maxChain: maxFragmentChain)
        let chosen = operationName.map { name in operations.filter { $0.name?.value == name } } ?? operations
        var worst = Measure()
        for operation in chosen {
            let m = walker.measure(operation.selectionSet)
            try enforce(m)
            worst = Measure(depth: max(worst.depth, m.depth), introspectionDepth: max(worst.introspectionDepth, m.introspectionDepth),
                            cost: max(worst.cost, m.cost))
        }
        return (max(worst.depth, worst.introspectionDepth), worst.cost)
    }

    private func enforce(_ m: Measure) throws(QueryLimitError) {
        if m.depth > maxDepth {
            throw QueryLimitError(reason: "depth", code: "QUERY_TOO_DEEP", message: "query depth \(m.depth) exceeds the limit of \(maxDepth)")
        }
        if m.introspectionDepth > maxIntrospectionDepth {
            throw QueryLimitError(reason: "depth", code: "QUERY_TOO_DEEP",
                                  message: "introspection depth \(m.introspectionDepth) exceeds the limit of \(maxIntrospectionDepth)")
        }
        if m.cost > maxCost {
            throw QueryLimitError(reason: "cost", code: "QUERY_TOO_COSTLY",
                                  message: "query cost \(m.cost == Int.max ? "beyond \(maxCost)" : String(m.cost)) exceeds the limit of \(maxCost) (lower `first` or select fewer fields)")
        }
    }

    /// Depth of paths without introspection, depth of paths through `__schema` / `__type`, and cost.
    struct Measure: Sendable {
        var depth = 0
        var introspectionDepth = 0
        var cost = 0
    }

    struct Walker {
        let variables: [String: Map]
        let maxPage: Int
        let introspection: IntrospectionSizes
        /// Each fragment's measure, computed once (a spread looks it up: no recursion across fragments).
        var measured: [String: Measure] = [:]

        /// Measures fragments leaves first (Kahn's algorithm over "spreads"), so each fragment's spreads
        /// are measured before it; what is left over sits on a cycle and is refused. Also refuses chains
        /// of fragments longer than `maxChain`.
        mutating func measureFragments(_ fragments: [String: FragmentDefinition], maxChain: Int) throws(QueryLimitError) {
            var spreads: [String: Set<String>] = [:]
            var dependents: [String: [String]] = [:]
            for (name, f) in fragments {
                let used = Self.spreadNames(f.selectionSet).filter { fragments[$0] != nil }
                spreads[name] = used
                for u in used { dependents[u, default: []].append(name) }
            }
            var waiting = spreads.mapValues(\.count)
            var ready = waiting.filter { $0.value == 0 }.map(\.key).sorted()
            var chain: [String: Int] = [:]
            while let name = ready.popLast() {
                let length = 1 + ((spreads[name] ?? []).map { chain[$0] ?? 0 }.max() ?? 0)
                chain[name] = length
                if length > maxChain {
                    throw QueryLimitError(reason: "depth", code: "QUERY_TOO_DEEP",
                                          message: "fragments spread fragments \(length) deep (from fragment \(name)); the limit is \(maxChain)")
                }
                measured[name] = measure(fragments[name]!.selectionSet)
                for d in dependents[name] ?? [] {
                    waiting[d]! -= 1
                    if waiting[d] == 0 { ready.append(d) }
                }
            }
            let cyclic = waiting.filter { $0.value > 0 }.map(\.key).sorted()
            if !cyclic.isEmpty {
                let shown = cyclic.prefix(5).joined(separator: ", ") + (cyclic.count > 5 ? ", ..." : "")
                throw QueryLimitError(reason: "fragment_cycle", code: "GRAPHQL_VALIDATION_FAILED",
                                      message: "fragments spread each other in a cycle: \(shown)")
            }
        }

        /// The fragment names a selection set spreads, directly or in inline fragments (not through
        /// other fragments). Recursion here follows the brackets, which `prescan` has bounded.
        static func spreadNames(_ set: SelectionSet) -> Set<String> {
            var names = Set<String>()
            for selection in set.selections {
                switch selection {
                case let field as Field: if let sub = field.selectionSet { names.formUnion(spreadNames(sub)) }
                case let spread as FragmentSpread: names.insert(spread.name.value)
                case let inline as InlineFragment: names.formUnion(spreadNames(inline.selectionSet))
                default: continue
                }
            }
            return names
        }

        /// Depth and cost of a selection set; spreads use the fragments' measures (unknown fragments
        /// count nothing: validation reports them).
        func measure(_ set: SelectionSet) -> Measure {
            var out = Measure()
            for selection in set.selections {
                let m: Measure
                switch selection {
                case let field as Field:
                    let child = field.selectionSet.map(measure) ?? Measure()
                    let name = field.name.value
                    let cost = add(1, mul(multiplier(field), child.cost))
                    if name == "__schema" || name == "__type" {
                        // Everything under an introspection field is an introspection path.
                        m = Measure(depth: 0, introspectionDepth: 1 + max(child.depth, child.introspectionDepth), cost: cost)
                    } else {
                        m = Measure(depth: 1 + child.depth, introspectionDepth: child.introspectionDepth > 0 ? 1 + child.introspectionDepth : 0, cost: cost)
                    }
                case let spread as FragmentSpread:
                    m = measured[spread.name.value] ?? Measure()
                case let inline as InlineFragment:
                    m = measure(inline.selectionSet)
                default:
                    continue
                }
                out.depth = max(out.depth, m.depth)
                out.introspectionDepth = max(out.introspectionDepth, m.introspectionDepth)
                out.cost = add(out.cost, m.cost)
            }
            return out
        }

        /// How many times a field's children may be resolved.
        func multiplier(_ field: Field) -> Int {
            switch field.name.value {
            case "assets", "search":
                return min(max(intArgument(field, "first") ?? 50, 1), maxPage)
            case "lineage":
                let depth = min(max(intArgument(field, "depth") ?? 3, 1), CatalogLimits.maxLineageDepth)
                return min(CatalogLimits.maxLineageNodes, 50 * depth)
            case "byType", "byNamespace", "byHealth", "discoveriesPerHour":
                return 25
            default:
                return introspection.multiplier(field.name.value)
            }
        }

        func intArgument(_ field: Field, _ name: String) -> Int? {
            guard let argument = field.arguments.first(where: { $0.name.value == name }) else { return nil }
            switch argument.value {
            case let v as IntValue: return Int(v.value)
            case let v as Variable: return variables[v.name.value]?.int
            default: return nil
            }
        }
    }
}

/// Saturating arithmetic: costs of adversarial documents grow past `Int.max`, and Swift traps on overflow.
func add(_ a: Int, _ b: Int) -> Int {
    let (r, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : r
}

func mul(_ a: Int, _ b: Int) -> Int {
    let (r, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? Int.max : r
}

/// How many items each introspection list field returns, from the schema: `types` and `directives`
/// their totals, the lists of one type or field the average over the schema (ceiling, at least 1),
/// so the standard introspection query costs about what it returns.
public struct IntrospectionSizes: Sendable, Equatable {
    public var types = 1
    public var fields = 1
    public var args = 1
    public var inputFields = 1
    public var enumValues = 1
    public var interfaces = 1
    public var possibleTypes = 1
    public var directives = 1
    public var locations = 1

    public init() {}

    /// Sizes read from a schema.
    public init(schema: GraphQLSchema) throws {
        func average(_ total: Int, _ count: Int) -> Int { count == 0 ? 1 : max(1, (total + count - 1) / count) }
        var fieldTotal = 0, fieldOwners = 0, argTotal = 0, inputTotal = 0, inputOwners = 0
        var enumTotal = 0, enumOwners = 0, interfaceTotal = 0, objects = 0
        for (_, type) in schema.typeMap {
            switch type {
            case let o as GraphQLObjectType:
                let fields = try o.fields()
                fieldTotal += fields.count
                fieldOwners += 1
                argTotal += fields.values.reduce(0) { $0 + $1.args.count }
                interfaceTotal += try o.interfaces().count
                objects += 1
            case let i as GraphQLInterfaceType:
                let fields = try i.fields()
                fieldTotal += fields.count
                fieldOwners += 1
                argTotal += fields.values.reduce(0) { $0 + $1.args.count }
            case let e as GraphQLEnumType:
                enumTotal += e.values.count
                enumOwners += 1
            case let input as GraphQLInputObjectType:
                inputTotal += try input.fields().count
                inputOwners += 1
            default:
                continue
            }
        }
        types = max(1, schema.typeMap.count)
        fields = average(fieldTotal, fieldOwners)
        args = average(argTotal, fieldTotal)
        inputFields = average(inputTotal, inputOwners)
        enumValues = average(enumTotal, enumOwners)
        interfaces = average(interfaceTotal, objects)
        // `possibleTypes` is null but for abstract types; each object's interfaces are the members of
        // some interface's list, so over all types it averages out to those declarations.
        possibleTypes = average(interfaceTotal, schema.typeMap.count)
        directives = max(1, schema.directives.count)
        locations = average(schema.directives.reduce(0) { $0 + $1.locations.count }, schema.directives.count)
    }

    /// The multiplier of an introspection field (1 for anything else).
    func multiplier(_ field: String) -> Int {
        switch field {
        case "types": return types
        case "fields": return fields
        case "args": return args
        case "inputFields": return inputFields
        case "enumValues": return enumValues
        case "interfaces": return interfaces
        case "possibleTypes": return possibleTypes
        case "directives": return directives
        case "locations": return locations
        default: return 1
        }
    }
}
