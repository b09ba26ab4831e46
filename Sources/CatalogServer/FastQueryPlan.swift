import GraphQL
import OrderedCollections

/// What the fast path does not handle; the operation then runs on the GraphQL library, which gives
/// the answer (or the error) it always gave.
struct FastPathUnsupported: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// One field of a response object as the fast path writes it: its response key (alias or name), the
/// field, its arguments (root fields only) and, for an object field, the fields of that object.
///
/// Fields that share a response key are merged, in the order the query first selected each key, as
/// the library's `collectFields` does: the first field of a key gives the name and arguments, and the
/// sub-selections of all of them are merged. GraphQLSwift 4.3.0 does not run the rule that fields
/// merged under one key agree (`OverlappingFieldsCanBeMergedRule` is commented out), so conflicting
/// fields are answered as the library answers them; CatalogFastPathTests pins both cases.
struct PlannedField: Sendable {
    let key: String
    let name: String
    /// The arguments as the library coerces them (a dictionary Map), for the root fields' resolvers.
    let arguments: Map
    let fields: [PlannedField]
}

/// A validated query document turned into the fields to write, for the fast path: `@skip`/`@include`
/// applied, fragments expanded, variables and arguments coerced the way the library does it.
///
/// Anything outside what the fast path writes (another root field, a field of the schema it does not
/// know, a variable or argument the library would refuse) throws `FastPathUnsupported`, before any
/// resolver ran.
struct FastQueryPlan {
    /// The fields of each object type the fast path writes, and the object type of each object
    /// field (nil: a leaf). `__typename` is allowed everywhere. A field added to the schema but not
    /// here makes the fast path step aside for queries that select it.
    static let objectFields: [String: [String: String?]] = [
        "Query": ["asset": "Asset", "assets": "AssetConnection", "lineage": "Lineage"],
        "AssetConnection": ["edges": "AssetEdge", "nodes": "Asset", "pageInfo": "PageInfo"],
        "AssetEdge": ["cursor": nil, "node": "Asset"],
        "PageInfo": ["hasNextPage": nil, "endCursor": nil],
        "Asset": ["id": nil, "type": nil, "name": nil, "namespace": nil, "owner": nil, "labels": "Label", "properties": nil,
                  "health": "Health", "discoveredBy": nil, "firstSeen": nil, "lastSeen": nil, "version": nil],
        "Label": ["key": nil, "value": nil],
        "Health": ["status": nil, "reason": nil, "checkedAt": nil],
        "Lineage": ["root": nil, "nodes": "Asset", "edges": "Relation", "truncated": nil],
        "Relation": ["from": nil, "to": nil, "kind": nil, "discoveredBy": nil, "observedAt": nil],
    ]

    /// The root fields' argument definitions, read from the schema once.
    struct RootArguments: Sendable {
        let byField: [String: [(name: String, type: GraphQLInputType, defaultValue: Map?)]]
        let schema: GraphQLSchema

        init(schema: GraphQLSchema) throws {
            self.schema = schema
            var byField: [String: [(name: String, type: GraphQLInputType, defaultValue: Map?)]] = [:]
            let fields = try schema.queryType?.fields() ?? [:]
            for name in (FastQueryPlan.objectFields["Query"] ?? [:]).keys {
                guard let field = fields[name] else { continue }
                byField[name] = field.args.map { ($0.key, $0.value.type, $0.value.defaultValue) }
            }
            self.byField = byField
        }
    }

    let roots: RootArguments
    let fragments: [String: FragmentDefinition]
    /// The operation's variables, coerced.
    let variables: [String: Map]

    /// Plans `operation` of `document`; throws `FastPathUnsupported` for anything the fast path leaves
    /// to the library.
    static func plan(_ operation: OperationDefinition, in document: Document, variables inputs: [String: Map],
                     roots: RootArguments) throws -> [PlannedField] {
        guard operation.operation == .query else { throw FastPathUnsupported("not a query") }
        var fragments: [String: FragmentDefinition] = [:]
        for case let f as FragmentDefinition in document.definitions { fragments[f.name.value] = f }
        var variables: [String: Map] = [:]
        for definition in operation.variableDefinitions {
            let name = definition.variable.name.value
            variables[name] = try coerceVariable(definition, input: inputs[name] ?? .undefined, schema: roots.schema)
        }
        let planner = FastQueryPlan(roots: roots, fragments: fragments, variables: variables)
        return try planner.collect([operation.selectionSet], type: "Query")
    }

    // MARK: fields

    /// The merged fields of an object of `type` selected by `sets` (the selection sets of every field
    /// merged into this one).
    func collect(_ sets: [SelectionSet], type: String) throws -> [PlannedField] {
        var groups = OrderedDictionary<String, [Field]>()
        var visited = Set<String>()
        for set in sets { try gather(set, type: type, into: &groups, visited: &visited) }
        guard let known = Self.objectFields[type] else { throw FastPathUnsupported("type \(type)") }
        return try groups.map { key, fields in
            let field = fields[0]
            let name = field.name.value
            if name == "__typename" { return PlannedField(key: key, name: name, arguments: [:], fields: []) }
            guard let child = known[name] else { throw FastPathUnsupported("field \(type).\(name)") }
            let arguments: Map = type == "Query" ? try rootArguments(field) : [:]
            let sub = try child.map { try collect(fields.compactMap(\.selectionSet), type: $0) } ?? []
            return PlannedField(key: key, name: name, arguments: arguments, fields: sub)
        }
    }

    /// Adds the fields of one selection set, fragments expanded, to `groups` by response key.
    private func gather(_ set: SelectionSet, type: String, into groups: inout OrderedDictionary<String, [Field]>,
                        visited: inout Set<String>) throws {
        for selection in set.selections {
            switch selection {
            case let field as Field:
                guard try included(field.directives) else { continue }
                groups[field.alias?.value ?? field.name.value, default: []].append(field)
            case let inline as InlineFragment:
                guard try included(inline.directives) else { continue }
                if let condition = inline.typeCondition, condition.name.value != type {
                    throw FastPathUnsupported("type condition \(condition.name.value) on \(type)")
                }
                try gather(inline.selectionSet, type: type, into: &groups, visited: &visited)
            case let spread as FragmentSpread:
                let name = spread.name.value
                guard try included(spread.directives), !visited.contains(name) else { continue }
                visited.insert(name)
                guard let fragment = fragments[name] else { throw FastPathUnsupported("fragment \(name)") }
                // Every catalog type is an object type, so a condition matches only its own type.
                guard fragment.typeCondition.name.value == type else {
                    throw FastPathUnsupported("type condition \(fragment.typeCondition.name.value) on \(type)")
                }
                try gather(fragment.selectionSet, type: type, into: &groups, visited: &visited)
            default:
                throw FastPathUnsupported("selection \(selection.kind)")
            }
        }
    }

    /// `@skip(if:)` and `@include(if:)` as the library reads them (skip wins); any other directive,
    /// or an `if` the library would refuse, leaves the query to the library.
    private func included(_ directives: [Directive]) throws -> Bool {
        var include = true
        for directive in directives {
            let name = directive.name.value
            guard name == "skip" || name == "include" else { throw FastPathUnsupported("directive @\(name)") }
            guard directive.arguments.count == 1, directive.arguments[0].name.value == "if",
                  case .bool(let flag) = try Self.literal(directive.arguments[0].value, GraphQLNonNull(GraphQLBoolean), variables) else {
                throw FastPathUnsupported("@\(name) without a boolean if")
            }
            if name == "skip" && flag { include = false }
            if name == "include" && !flag { include = false }
        }
        return include
    }

    /// A root field's arguments as the library's `getArgumentValues` builds them: each defined
    /// argument from the query (literal or variable) or its default, then checked against its type.
    private func rootArguments(_ field: Field) throws -> Map {
        guard let definitions = roots.byField[field.name.value] else { throw FastPathUnsupported("root field \(field.name.value)") }
        var out = OrderedDictionary<String, Map>()
        for definition in definitions {
            let value: Map
            if let given = field.arguments.first(where: { $0.name.value == definition.name }) {
                value = try Self.literal(given.value, definition.type, variables)
            } else {
                value = definition.defaultValue ?? .undefined
            }
            guard Self.isValid(value, definition.type) else { throw FastPathUnsupported("argument \(definition.name)") }
            out[definition.name] = value
        }
        return .dictionary(out)
    }

    // MARK: values (mirrors of the library's internal valueFromAST, validate and coerceValue)

    /// A value in the query text, as the library's `valueFromAST` reads it.
    static func literal(_ ast: Value, _ type: GraphQLInputType, _ variables: [String: Map]) throws -> Map {
        if let nonNull = type as? GraphQLNonNull {
            guard !(ast is NullValue), let inner = nonNull.ofType as? GraphQLInputType else { throw FastPathUnsupported("null for \(type)") }
            return try literal(ast, inner, variables)
        }
        if ast is NullValue { return .null }
        if let variable = ast as? Variable { return variables[variable.name.value] ?? .undefined }
        if let list = type as? GraphQLList {
            guard let item = list.ofType as? GraphQLInputType else { throw FastPathUnsupported("list of \(list.ofType)") }
            if let values = ast as? ListValue { return .array(try values.values.map { try literal($0, item, variables) }) }
            return .array([try literal(ast, item, variables)])
        }
        if let object = type as? GraphQLInputObjectType {
            guard !object.isOneOf, let given = ast as? ObjectValue else { throw FastPathUnsupported("input object \(object.name)") }
            var out = OrderedDictionary<String, Map>()
            for (name, field) in try object.fields() {
                if let f = given.fields.first(where: { $0.name.value == name }) {
                    out[name] = try literal(f.value, field.type, variables)
                } else {
                    out[name] = field.defaultValue ?? .undefined
                }
            }
            return .dictionary(out)
        }
        if let leaf = type as? GraphQLLeafType {
            // The library reads a literal its type refuses as null (validation has refused those).
            return (try? leaf.parseLiteral(valueAST: ast)) ?? .null
        }
        throw FastPathUnsupported("input type \(type)")
    }

    /// Whether the library's `validate(value:forType:)` finds no error.
    static func isValid(_ value: Map, _ type: GraphQLInputType) -> Bool {
        if let nonNull = type as? GraphQLNonNull {
            guard value != .null, value != .undefined, let inner = nonNull.ofType as? GraphQLInputType else { return false }
            return isValid(value, inner)
        }
        if value == .null || value == .undefined { return true }
        if let list = type as? GraphQLList {
            guard let item = list.ofType as? GraphQLInputType else { return false }
            if case .array(let items) = value { return items.allSatisfy { isValid($0, item) } }
            return isValid(value, item)
        }
        if let object = type as? GraphQLInputObjectType {
            guard !object.isOneOf, case .dictionary(let given) = value, let fields = try? object.fields() else { return false }
            guard given.keys.allSatisfy({ fields[$0] != nil }) else { return false }
            return fields.allSatisfy { name, field in isValid(given[name] ?? .undefined, field.type) }
        }
        if let leaf = type as? GraphQLLeafType {
            guard let parsed = try? leaf.parseValue(value: value) else { return false }
            return parsed != .null && parsed != .undefined
        }
        return false
    }

    /// A value given in `variables`, as the library's `coerceValue` turns it into what resolvers see
    /// (only called on a value `isValid` accepted).
    static func coerce(_ value: Map, _ type: GraphQLInputType) throws -> Map {
        if let nonNull = type as? GraphQLNonNull {
            guard let inner = nonNull.ofType as? GraphQLInputType else { throw FastPathUnsupported("non-null of \(nonNull.ofType)") }
            return try coerce(value, inner)
        }
        if value == .undefined || value == .null { return value }
        if let list = type as? GraphQLList {
            guard let item = list.ofType as? GraphQLInputType else { throw FastPathUnsupported("list of \(list.ofType)") }
            if case .array(let items) = value { return .array(try items.map { try coerce($0, item) }) }
            return .array([try coerce(value, item)])
        }
        if let object = type as? GraphQLInputObjectType {
            guard case .dictionary(let given) = value else { throw FastPathUnsupported("input object \(object.name)") }
            var out = OrderedDictionary<String, Map>()
            for (name, field) in try object.fields() {
                if let v = given[name], v != .undefined {
                    out[name] = try coerce(v, field.type)
                } else {
                    out[name] = field.defaultValue ?? .undefined
                }
            }
            return .dictionary(out)
        }
        if let leaf = type as? GraphQLLeafType { return try leaf.parseValue(value: value) }
        throw FastPathUnsupported("input type \(type)")
    }

    /// One variable as the library's `getVariableValue` coerces it: the given value or the
    /// definition's default, checked against its type. A value the library would refuse is left to
    /// it (its error message is the one clients get).
    static func coerceVariable(_ definition: VariableDefinition, input: Map, schema: GraphQLSchema) throws -> Map {
        let type = try inputType(definition.type, schema)
        var value = input
        if input == .undefined, let defaultValue = definition.defaultValue {
            value = try literal(defaultValue, type, [:])
        }
        guard isValid(value, type) else { throw FastPathUnsupported("variable $\(definition.variable.name.value)") }
        return try coerce(value, type)
    }

    /// The input type a variable definition names.
    static func inputType(_ ast: Type, _ schema: GraphQLSchema) throws -> GraphQLInputType {
        switch ast {
        case let named as NamedType:
            guard let type = schema.getType(name: named.name.value) as? GraphQLInputType else {
                throw FastPathUnsupported("type \(named.name.value)")
            }
            return type
        case let list as ListType:
            return GraphQLList(try inputType(list.type, schema))
        case let nonNull as NonNullType:
            guard let inner = try inputType(nonNull.type, schema) as? GraphQLNullableType else { throw FastPathUnsupported("type \(nonNull)") }
            return GraphQLNonNull(inner)
        default:
            throw FastPathUnsupported("type \(ast)")
        }
    }
}
