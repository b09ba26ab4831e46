import CortexCore
import CortexKubernetes
import CortexSecurity
import Foundation

/// security: the live cluster's workloads audited (one work item per namespace, read through the Kubernetes
/// API). Records carry `ConfigFinding`s and the resources that were not listable.
public struct ClusterAuditSkill: WorkSkill {
    public init() {}

    /// One namespace's workloads (all namespaces' when one item takes the whole cluster) read through the
    /// API and audited. Objects a controller owns (a Deployment's ReplicaSets and Pods, a CronJob's Jobs)
    /// are audited through their owner, once. Records: the findings, how many objects, what was not listable.
    public func perform(_ item: WorkItem, context: SkillContext) async throws -> SkillOutcome {
        let log = context.logger
        guard let access = try KubeAccess.configured(context.settings.string(.kubernetes) == "off" ? "off" : "on") else {
            throw ConfigurationError("the cluster audit was asked for but CORTEX_KUBERNETES is off on this worker")
        }
        let namespace = ClusterSurvey.namespace(of: item.target)
        // The cluster-scoped item has no workloads to audit.
        if namespace == nil && item.target == ClusterSurvey.target { return .succeeded([["audited": 0]], examined: 0) }
        let client = KubernetesClient(access: access)
        let kinds: [(kind: String, base: String, resource: String)] = [
            ("Deployment", "/apis/apps/v1", "deployments"), ("StatefulSet", "/apis/apps/v1", "statefulsets"), ("DaemonSet", "/apis/apps/v1", "daemonsets"),
            ("ReplicaSet", "/apis/apps/v1", "replicasets"), ("CronJob", "/apis/batch/v1", "cronjobs"), ("Job", "/apis/batch/v1", "jobs"), ("Pod", "/api/v1", "pods"),
        ]
        var findings: [ConfigFinding] = []
        var records: [SkillRecord] = []
        var audited = 0
        for k in kinds {
            let path = namespace.map { "\(k.base)/namespaces/\($0)/\(k.resource)" } ?? "\(k.base)/\(k.resource)"
            do {
                for object in try await client.list(path) {
                    if let owners = object["metadata"]?["ownerReferences"]?.arrayValue, !owners.isEmpty { continue }
                    guard var fields = object.objectValue else { continue }
                    fields["kind"] = .string(k.kind)  // list items do not carry their kind
                    audited += 1
                    findings += KubernetesAudit.audit(.object(fields))
                }
            } catch let e as KubernetesClient.APIError {
                records.append(["skipped": .string(path), "reason": .string(e.forbidden ? "forbidden: \(e.message)" : "\(e.status) \(e.message)")])
                log.warning("not listable, skipped: \(path): \(e.message)")
            }
        }
        records.append(["audited": .number(Double(audited)), "config": .array(findings.map(JSONValue.of))])
        log.info("audited \(audited) workloads in \(namespace ?? "(all namespaces)"): \(findings.count) findings")
        return .succeeded(records, examined: audited)
    }

    public func summarize(_ records: [SkillRecord]) -> SkillSummary {
        let config = records.flatMap { ($0["config"]?.arrayValue ?? []).compactMap { $0.decoded(as: ConfigFinding.self) } }
        let audited = records.reduce(0) { $0 + ($1["audited"]?.intValue ?? 0) }
        let skipped = records.compactMap { r in r["skipped"]?.stringValue.map { "\($0): \(r["reason"]?.stringValue ?? "")" } }
        var md = "### Kubernetes configuration (live objects)\n\n\(audited) workloads audited.\n\n" + ConfigurationTable.markdown(config)
        if !skipped.isEmpty { md += "\n### Not listable (reported and skipped)\n\n" + skipped.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        return SkillSummary(headline: "cluster: \(audited) workloads audited, \(config.count) configuration findings" + (skipped.isEmpty ? "" : "; \(skipped.count) resources not listable"),
                            markdown: md, details: .object(["config": .array(config.map(JSONValue.of)), "audited": .number(Double(audited))]))
    }
}
