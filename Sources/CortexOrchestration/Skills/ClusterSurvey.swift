import Foundation

/// How cluster work items name their scope: the task target "kubernetes", and one item target per
/// namespace (or the cluster-scoped kinds), shared by cluster discovery and the cluster audit.
public enum ClusterSurvey {
    /// The task target that means "the Kubernetes cluster" rather than a repository path.
    public static let target = "kubernetes"
    /// An item's target: the cluster-scoped kinds, or one namespace's.
    public static func itemTarget(namespace: String?) -> String { namespace.map { "\(target)/namespace/\($0)" } ?? target }
    /// The namespace an item target names (nil for the cluster-scoped kinds and the whole cluster).
    public static func namespace(of itemTarget: String) -> String? {
        let prefix = "\(target)/namespace/"
        return itemTarget.hasPrefix(prefix) ? String(itemTarget.dropFirst(prefix.count)) : nil
    }
}
