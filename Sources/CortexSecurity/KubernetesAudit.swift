import CortexCore
import Foundation
import Yams

/// A configuration problem in one Kubernetes object.
public struct ConfigFinding: Sendable, Codable, Equatable {
    public var rule: String
    public var severity: CVSS3.Severity
    /// `Kind namespace/name`.
    public var object: String
    public var container: String?
    public var message: String
    /// The manifest file and the line of the object's `kind:` (nil for live objects).
    public var file: String?
    public var line: Int?
}

/// Audits workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) for the
/// risky settings of the Pod Security Standards and common hardening guides. Works on live objects
/// (from the API) and on manifest files alike: both become the same JSON.
public enum KubernetesAudit {
    /// Every rule: id, severity, and what it means (also the SARIF rule descriptions).
    public static let rules: [(id: String, severity: CVSS3.Severity, title: String)] = [
        ("k8s-privileged", .critical, "Container runs privileged: it has every capability of the node's root."),
        ("k8s-host-path", .high, "hostPath volume: the pod reads or writes the node's filesystem."),
        ("k8s-host-network", .high, "hostNetwork: the pod shares the node's network namespace."),
        ("k8s-host-pid", .high, "hostPID / hostIPC: the pod sees the node's processes or IPC."),
        ("k8s-run-as-root", .high, "Container runs as user 0 (root)."),
        ("k8s-no-run-as-non-root", .medium, "runAsNonRoot is not set: the image's user decides, often root."),
        ("k8s-privilege-escalation", .medium, "allowPrivilegeEscalation is not false: setuid binaries can gain privileges."),
        ("k8s-no-resource-limits", .medium, "No CPU or memory limit: one pod can starve its node."),
        ("k8s-mutable-image", .medium, "Image uses :latest or no tag: what runs changes without a deploy."),
        ("k8s-secret-in-env", .high, "Secret-looking value set in plain env instead of a Secret reference."),
        ("k8s-no-probes", .low, "No liveness or readiness probe: failures are not detected or traffic goes to a pod not ready."),
        ("k8s-default-service-account", .medium, "Default service account with its token mounted: any compromise gets an API credential."),
    ]

    static func severity(_ rule: String) -> CVSS3.Severity { rules.first { $0.id == rule }?.severity ?? .medium }

    /// The pod template of a workload, or nil for other kinds.
    static func podSpec(_ object: JSONValue) -> JSONValue? {
        switch object["kind"]?.stringValue ?? "" {
        case "Pod": return object["spec"]
        case "CronJob": return object["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"]
        case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController": return object["spec"]?["template"]?["spec"]
        default: return nil
        }
    }

    static let secretName = try! NSRegularExpression(pattern: #"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?|ACCESS_?KEY)"#, options: [.caseInsensitive])

    /// The findings for one object (an empty list for kinds without a pod template).
    public static func audit(_ object: JSONValue, file: String? = nil, line: Int? = nil) -> [ConfigFinding] {
        guard let spec = podSpec(object) else { return [] }
        let kind = object["kind"]?.stringValue ?? "?"
        let name = object["metadata"]?["name"]?.stringValue ?? "?"
        let namespace = object["metadata"]?["namespace"]?.stringValue ?? "default"
        let subject = "\(kind) \(namespace)/\(name)"
        var out: [ConfigFinding] = []
        func add(_ rule: String, _ container: String?, _ message: String) {
            out.append(ConfigFinding(rule: rule, severity: severity(rule), object: subject, container: container, message: message, file: file, line: line))
        }
        if spec["hostNetwork"]?.boolValue == true { add("k8s-host-network", nil, "hostNetwork: true") }
        if spec["hostPID"]?.boolValue == true { add("k8s-host-pid", nil, "hostPID: true") }
        if spec["hostIPC"]?.boolValue == true { add("k8s-host-pid", nil, "hostIPC: true") }
        for volume in spec["volumes"]?.arrayValue ?? [] {
            if let hostPath = volume["hostPath"]?["path"]?.stringValue {
                add("k8s-host-path", nil, "volume \(volume["name"]?.stringValue ?? "?") mounts the node's \(hostPath)")
            }
        }
        let account = spec["serviceAccountName"]?.stringValue ?? spec["serviceAccount"]?.stringValue ?? "default"
        if account == "default" && spec["automountServiceAccountToken"]?.boolValue != false {
            add("k8s-default-service-account", nil, "runs as the default service account and automountServiceAccountToken is not false")
        }
        let podContext = spec["securityContext"]
        let containers = (spec["containers"]?.arrayValue ?? []).map { ($0, false) } + (spec["initContainers"]?.arrayValue ?? []).map { ($0, true) }
        for (container, isInit) in containers {
            let cname = container["name"]?.stringValue ?? "?"
            let context = container["securityContext"]
            if context?["privileged"]?.boolValue == true { add("k8s-privileged", cname, "securityContext.privileged: true") }
            let user = context?["runAsUser"]?.intValue ?? podContext?["runAsUser"]?.intValue
            if user == 0 { add("k8s-run-as-root", cname, "runAsUser: 0") }
            else if (context?["runAsNonRoot"]?.boolValue ?? podContext?["runAsNonRoot"]?.boolValue) != true && user == nil {
                add("k8s-no-run-as-non-root", cname, "neither the container nor the pod sets runAsNonRoot: true")
            }
            if context?["allowPrivilegeEscalation"]?.boolValue != false {
                add("k8s-privilege-escalation", cname, "allowPrivilegeEscalation is not set to false")
            }
            let limits = container["resources"]?["limits"]
            let missing = ["cpu", "memory"].filter { limits?[$0] == nil }
            if !missing.isEmpty { add("k8s-no-resource-limits", cname, "no \(missing.joined(separator: " or ")) limit") }
            if let image = container["image"]?.stringValue, mutableImage(image) {
                add("k8s-mutable-image", cname, "image \(image) is not pinned to a version or digest")
            }
            for env in container["env"]?.arrayValue ?? [] {
                guard let key = env["name"]?.stringValue, let value = env["value"]?.stringValue, !value.isEmpty,
                      secretName.firstMatch(in: key, range: NSRange(key.startIndex..., in: key)) != nil,
                      !value.hasPrefix("$(") else { continue }
                add("k8s-secret-in-env", cname, "env \(key) holds a literal value (\(SecretScanner.mask(value))); use valueFrom.secretKeyRef")
            }
            // Init containers run to completion; probes do not apply to them. Neither to Jobs.
            if !isInit && !["Job", "CronJob", "Pod"].contains(kind) && (container["livenessProbe"] == nil || container["readinessProbe"] == nil) {
                let which = [container["livenessProbe"] == nil ? "liveness" : nil, container["readinessProbe"] == nil ? "readiness" : nil].compactMap { $0 }
                add("k8s-no-probes", cname, "no \(which.joined(separator: " or ")) probe")
            }
        }
        return out
    }

    /// `:latest`, or no tag and no digest (which pulls latest).
    static func mutableImage(_ image: String) -> Bool {
        if image.contains("@sha256:") { return false }
        let last = image.split(separator: "/").last.map(String.init) ?? image
        guard let colon = last.lastIndex(of: ":") else { return true }
        return last[last.index(after: colon)...] == "latest"
    }

    public struct ManifestError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Audits every object of a multi-document YAML manifest (and the items of a `List`).
    public static func auditManifest(path: String, text: String) throws -> [ConfigFinding] {
        var out: [ConfigFinding] = []
        // Line of each document's top-level `kind:`, in document order, to point findings at.
        var kindLines: [Int] = []
        var documentHasKind = false
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if raw.hasPrefix("---") { documentHasKind = false }
            if raw.hasPrefix("kind:") && !documentHasKind { kindLines.append(i + 1); documentHasKind = true }
        }
        // Iterated by hand: the sequence Yams.load_all returns ends quietly at a syntax error.
        var documents: [Any?] = []
        do {
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { documents.append(node.any) }
        } catch {
            throw ManifestError(description: "\(path): not valid YAML: \(error)")
        }
        var kindIndex = 0
        for document in documents {
            guard let document else { continue }
            let object = jsonValue(document)
            guard object["kind"] != nil else { continue }
            let line = kindIndex < kindLines.count ? kindLines[kindIndex] : nil
            kindIndex += 1
            if object["kind"]?.stringValue == "List" {
                for item in object["items"]?.arrayValue ?? [] { out += audit(item, file: path, line: line) }
            } else {
                out += audit(object, file: path, line: line)
            }
        }
        return out
    }

    /// YAML as decoded by Yams, as JSON.
    static func jsonValue(_ any: Any) -> JSONValue {
        switch any {
        case let d as [String: Any]: return .object(d.mapValues(jsonValue))
        case let d as [AnyHashable: Any]: return .object(Dictionary(uniqueKeysWithValues: d.map { ("\($0.key)", jsonValue($0.value)) }))
        case let a as [Any]: return .array(a.map(jsonValue))
        case let b as Bool: return .bool(b)
        case let i as Int: return .number(Double(i))
        case let x as Double: return .number(x)
        case let s as String: return .string(s)
        default: return .null
        }
    }
}
