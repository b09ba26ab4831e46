import CortexCore
import Foundation

/// What kind of thing an asset is.
public enum AssetType: String, CaseIterable, Sendable, Codable {
    case NODE, NAMESPACE, DEPLOYMENT, STATEFULSET, DAEMONSET, REPLICASET, JOB, CRONJOB, POD, SERVICE, INGRESS
    case PERSISTENT_VOLUME_CLAIM, HELM_RELEASE, CONTAINER_IMAGE, REPOSITORY, PACKAGE, WORKFLOW, DASHBOARD
    case ALERT_RULE, VULNERABILITY, DOCUMENT, TEST_SUITE, HELM_CHART, MANIFEST
}

/// An asset's judged health.
public enum HealthStatus: String, CaseIterable, Sendable, Codable {
    case OK, DEGRADED, FAILING, UNKNOWN
}

/// The kind of a lineage edge `from -> to`, read as "from KIND to" (a pod RUNS_ON a node).
public enum RelationKind: String, CaseIterable, Sendable, Codable {
    case RUNS_ON, MANAGED_BY, SELECTS, USES_IMAGE, BUILT_FROM, DEPENDS_ON, AFFECTED_BY, MOUNTS, EXPOSES
    case CONTAINS, DEFINED_IN, DEPLOYS, MONITORS, TESTS
}

/// Which way `lineage` walks: DOWNSTREAM follows edges from -> to, UPSTREAM against them.
public enum LineageDirection: String, CaseIterable, Sendable, Codable {
    case UPSTREAM, DOWNSTREAM, BOTH
}

/// An asset's health: status, why, and when it was judged.
public struct Health: Sendable, Codable, Equatable {
    public var status: HealthStatus
    public var reason: String?
    public var checkedAt: String?

    public init(status: HealthStatus, reason: String? = nil, checkedAt: String? = nil) {
        self.status = status
        self.reason = reason
        self.checkedAt = checkedAt
    }
}

/// A registered asset, as the API returns it.
public struct Asset: Sendable, Codable, Equatable {
    public var id: String
    public var type: AssetType
    public var name: String
    public var namespace: String?
    public var owner: String?
    public var labels: [String: String]
    public var properties: JSONValue
    public var health: Health
    public var discoveredBy: String
    public var firstSeen: String
    public var lastSeen: String
    /// Increases by one with every content change; `updateAsset` may require the version it read.
    public var version: Int
}

/// What a client sends to create or update an asset. Missing `id` is derived from type, namespace and name,
/// so that the same thing discovered twice lands on the same asset.
public struct AssetInput: Sendable, Codable, Equatable {
    public var id: String?
    public var type: AssetType
    public var name: String
    public var namespace: String?
    public var owner: String?
    public var labels: [String: String]?
    public var properties: JSONValue?
    public var health: Health?
    public var discoveredBy: String?
    /// For updates: the version the client read; a different current version is a conflict.
    public var expectedVersion: Int?

    public init(id: String? = nil, type: AssetType, name: String, namespace: String? = nil, owner: String? = nil,
                labels: [String: String]? = nil, properties: JSONValue? = nil, health: Health? = nil,
                discoveredBy: String? = nil, expectedVersion: Int? = nil) {
        self.id = id
        self.type = type
        self.name = name
        self.namespace = namespace
        self.owner = owner
        self.labels = labels
        self.properties = properties
        self.health = health
        self.discoveredBy = discoveredBy
        self.expectedVersion = expectedVersion
    }

    /// The id this input addresses: the given one, or `<type>:<namespace>/<name>` (`<type>:<name>` without a namespace).
    public var resolvedID: String {
        if let id, !id.isEmpty { return id }
        let kind = type.rawValue.lowercased()
        if let namespace, !namespace.isEmpty { return "\(kind):\(namespace)/\(name)" }
        return "\(kind):\(name)"
    }
}

/// A lineage edge.
public struct Relation: Sendable, Codable, Equatable, Hashable {
    public var from: String
    public var to: String
    public var kind: RelationKind
    public var discoveredBy: String
    public var observedAt: String

    public init(from: String, to: String, kind: RelationKind, discoveredBy: String, observedAt: String) {
        self.from = from
        self.to = to
        self.kind = kind
        self.discoveredBy = discoveredBy
        self.observedAt = observedAt
    }
}

/// What a client sends to add a lineage edge.
public struct RelationInput: Sendable, Codable, Equatable {
    public var from: String
    public var to: String
    public var kind: RelationKind
    public var discoveredBy: String?

    public init(from: String, to: String, kind: RelationKind, discoveredBy: String? = nil) {
        self.from = from
        self.to = to
        self.kind = kind
        self.discoveredBy = discoveredBy
    }
}

/// The filters of an asset listing; every one given must match (they are ANDed).
public struct AssetFilter: Sendable, Codable, Equatable {
    public var type: AssetType?
    public var namespace: String?
    public var owner: String?
    /// `key=value`.
    public var label: String?
    public var health: HealthStatus?
    /// Words (case-insensitive) that must all occur in the asset's id, name or namespace.
    public var text: String?

    public init(type: AssetType? = nil, namespace: String? = nil, owner: String? = nil, label: String? = nil,
                health: HealthStatus? = nil, text: String? = nil) {
        self.type = type
        self.namespace = namespace
        self.owner = owner
        self.label = label
        self.health = health
        self.text = text
    }

    public var isEmpty: Bool { self == AssetFilter() }
}

/// One page of a listing.
public struct AssetPage: Sendable, Codable, Equatable {
    public var items: [Asset]
    public var hasNextPage: Bool
    /// Pass as `after` for the next page; nil when the page is empty.
    public var endCursor: String?

    public init(items: [Asset], hasNextPage: Bool, endCursor: String?) {
        self.items = items
        self.hasNextPage = hasNextPage
        self.endCursor = endCursor
    }
}

/// A lineage walk's result.
public struct Lineage: Sendable, Codable, Equatable {
    public var root: String
    public var nodes: [Asset]
    public var edges: [Relation]
    /// True when the walk stopped at the node cap before reaching `depth`.
    public var truncated: Bool
}

/// A count under a key (an asset type, a namespace, a health status).
public struct KeyCount: Sendable, Codable, Equatable {
    public var key: String
    public var count: Int
}

/// Assets first seen in one hour.
public struct HourCount: Sendable, Codable, Equatable {
    /// The hour's start, ISO 8601.
    public var hour: String
    public var count: Int
}

/// The catalog's counts.
public struct CatalogStats: Sendable, Codable, Equatable {
    public var total: Int
    public var relations: Int
    public var byType: [KeyCount]
    public var byNamespace: [KeyCount]
    public var byHealth: [KeyCount]
    /// The last 24 hours that saw discoveries, oldest first.
    public var discoveriesPerHour: [HourCount]
}

/// Asset and relation totals of the catalog at one moment (the run report's before and after).
public struct CatalogTotals: Sendable, Codable, Equatable {
    public var assets: Int
    public var relations: Int
    public init(assets: Int, relations: Int) {
        self.assets = assets
        self.relations = relations
    }
}

/// What a batch upsert did.
public struct UpsertSummary: Sendable, Codable, Equatable {
    public var created: Int
    public var updated: Int
    public var unchanged: Int
    public var relations: Int
}

/// A catalog request that cannot be served, with the HTTP status and GraphQL error code it maps to.
public struct CatalogError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case invalid = "BAD_USER_INPUT"
        case notFound = "NOT_FOUND"
        case conflict = "CONFLICT"
        case unauthenticated = "UNAUTHENTICATED"
        case forbidden = "FORBIDDEN"
        case tooLarge = "PAYLOAD_TOO_LARGE"
        case unavailable = "UNAVAILABLE"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The error's class in the Spring for GraphQL `ErrorType` convention (graphql-java's `classification`):
    /// whether the caller or the server is at fault, for clients that branch on that rather than on `code`.
    public var classification: String {
        switch code {
        case .invalid, .notFound, .conflict, .tooLarge: return "BAD_REQUEST"
        case .unauthenticated: return "UNAUTHORIZED"
        case .forbidden: return "FORBIDDEN"
        case .unavailable: return "INTERNAL_ERROR"
        }
    }

    /// The HTTP status for this error.
    public var httpStatus: Int {
        switch code {
        case .invalid: return 400
        case .notFound: return 404
        case .conflict: return 409
        case .unauthenticated: return 401
        case .forbidden: return 403
        case .tooLarge: return 413
        case .unavailable: return 503
        }
    }
}
