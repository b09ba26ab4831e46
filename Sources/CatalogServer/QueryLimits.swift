import CortexCatalog
import GraphQL

/// Refuses GraphQL documents that are too deep or too costly before any resolver runs.
///
/// Depth counts nested fields. Cost counts one per field, and a list field multiplies what is under it
/// by how many items it may return (`first`, or the page cap; lineage by its node cap scaled to depth),
/// so `assets(first: 500) { edges { node { ... } } }` costs what it may really read.
/// Introspection (`__schema`, `__type`) is not counted: tools need its deep `ofType` chains.
public struct QueryLimits: Sendable {
    public var maxDepth: Int
    public var maxCost: Int
    public var maxPage: Int

    public init(maxDepth: Int = 12, maxCost: Int = 50_000, maxPage: Int = 500) {
        self.maxDepth = maxDepth
        self.maxCost = maxCost
        self.maxPage = maxPage
    }

    /// The depth and cost of the operation `operationName` (or the only one); throws when over a limit.
    @discardableResult
    public func check(_ document: Document, operationName: String?, variables: [String: Map]) throws -> (depth: Int, cost: Int) {
        var fragments: [String: FragmentDefinition] = [:]
        var operations: [OperationDefinition] = []
        for definition in document.definitions {
            if let f = definition as? FragmentDefinition { fragments[f.name.value] = f }
            if let o = definition as? OperationDefinition { operations.append(o) }
        }
        let chosen = operationName.map { name in operations.filter { $0.name?.value == name } } ?? operations
        var worst = (depth: 0, cost: 0)
        for operation in chosen {
            var walker = Walker(fragments: fragments, variables: variables, maxPage: maxPage)
            let (depth, cost) = walker.measure(operation.selectionSet, visiting: [])
            worst = (max(worst.depth, depth), max(worst.cost, cost))
        }
        if worst.depth > maxDepth {
            throw CatalogError(.invalid, "query depth \(worst.depth) exceeds the limit of \(maxDepth)")
        }
        if worst.cost > maxCost {
            throw CatalogError(.invalid, "query cost \(worst.cost) exceeds the limit of \(maxCost) (lower `first` or select fewer fields)")
        }
        return worst
    }

    struct Walker {
        let fragments: [String: FragmentDefinition]
        let variables: [String: Map]
        let maxPage: Int

        /// Depth and cost of a selection set; `visiting` guards against fragment cycles (validation reports those).
        mutating func measure(_ set: SelectionSet, visiting: Set<String>) -> (Int, Int) {
            var depth = 0
            var cost = 0
            for selection in set.selections {
                switch selection {
                case let field as Field:
                    if field.name.value.hasPrefix("__") { continue }
                    var childDepth = 0
                    var childCost = 0
                    if let sub = field.selectionSet { (childDepth, childCost) = measure(sub, visiting: visiting) }
                    depth = max(depth, 1 + childDepth)
                    cost += 1 + multiplier(field) * childCost
                case let spread as FragmentSpread:
                    let name = spread.name.value
                    guard !visiting.contains(name), let fragment = fragments[name] else { continue }
                    let (d, c) = measure(fragment.selectionSet, visiting: visiting.union([name]))
                    depth = max(depth, d)
                    cost += c
                case let inline as InlineFragment:
                    let (d, c) = measure(inline.selectionSet, visiting: visiting)
                    depth = max(depth, d)
                    cost += c
                default:
                    continue
                }
            }
            return (depth, cost)
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
                return 1
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
