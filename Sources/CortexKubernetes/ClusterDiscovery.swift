import CortexCatalog
import CortexCore
import Foundation

/// Lists a cluster's objects (read-only), and turns them into catalog assets with lineage and health.
public struct ClusterDiscovery: Sendable {
    public let client: KubernetesClient
    /// Who discovered (the worker's id).
    public let discoveredBy: String

    public init(client: KubernetesClient, discoveredBy: String) {
        self.client = client
        self.discoveredBy = discoveredBy
    }

    /// One resource kind: its asset type and its API path (cluster-wide, or within a namespace).
    struct Resource: Sendable {
        var type: AssetType
        var group: String  // "" for the core API
        var plural: String
        var namespaced: Bool
        var labelSelector: String?
        var metadataOnly = false

        func path(namespace: String?) -> String {
            let prefix = group.isEmpty ? "/api/v1" : "/apis/\(group)"
            if namespaced, let namespace { return "\(prefix)/namespaces/\(namespace)/\(plural)" }
            return "\(prefix)/\(plural)"
        }
    }

    static let resources: [Resource] = [
        .init(type: .NODE, group: "", plural: "nodes", namespaced: false),
        .init(type: .NAMESPACE, group: "", plural: "namespaces", namespaced: false),
        .init(type: .DEPLOYMENT, group: "apps/v1", plural: "deployments", namespaced: true),
        .init(type: .STATEFULSET, group: "apps/v1", plural: "statefulsets", namespaced: true),
        .init(type: .DAEMONSET, group: "apps/v1", plural: "daemonsets", namespaced: true),
        .init(type: .REPLICASET, group: "apps/v1", plural: "replicasets", namespaced: true),
        .init(type: .JOB, group: "batch/v1", plural: "jobs", namespaced: true),
        .init(type: .CRONJOB, group: "batch/v1", plural: "cronjobs", namespaced: true),
        .init(type: .POD, group: "", plural: "pods", namespaced: true),
        .init(type: .SERVICE, group: "", plural: "services", namespaced: true),
        .init(type: .INGRESS, group: "networking.k8s.io/v1", plural: "ingresses", namespaced: true),
        .init(type: .PERSISTENT_VOLUME_CLAIM, group: "", plural: "persistentvolumeclaims", namespaced: true),
        // Helm keeps each release revision in a secret labelled owner=helm: only its metadata is fetched.
        .init(type: .HELM_RELEASE, group: "", plural: "secrets", namespaced: true, labelSelector: "owner=helm", metadataOnly: true),
    ]

    /// What a discovery found, and what it could not list (a 403 is reported and skipped, not fatal).
    public struct Result: Sendable {
        public var assets: [AssetInput] = []
        public var relations: [RelationInput] = []
        public var skipped: [(resource: String, reason: String)] = []
    }

    /// What one discovery covers.
    public enum Scope: Sendable, Equatable {
        /// Every kind, cluster-wide.
        case all
        /// Nodes and namespaces only.
        case clusterScoped
        /// One namespace's objects, plus the nodes (so that its pods' RUNS_ON edges have both ends in one
        /// all-or-nothing catalog batch).
        case namespace(String)
    }

    /// Lists the scope's kinds and maps the objects.
    public func discover(_ scope: Scope = .all) async throws -> Result {
        var objects: [AssetType: [JSONValue]] = [:]
        var result = Result()
        for r in Self.resources {
            var namespace: String?
            switch scope {
            case .all: break
            case .clusterScoped: if r.namespaced { continue }
            case .namespace(let ns):
                if !r.namespaced && r.type != .NODE { continue }
                namespace = ns
            }
            let path = r.path(namespace: namespace)
            do {
                objects[r.type] = try await client.list(path, labelSelector: r.labelSelector, metadataOnly: r.metadataOnly)
            } catch let e as KubernetesClient.APIError {
                result.skipped.append((path, e.forbidden ? "forbidden: \(e.message)" : "\(e.status) \(e.message)"))
            }
        }
        return Self.map(objects, discoveredBy: discoveredBy, skipped: result.skipped)
    }

    // MARK: mapping (pure, so tests can feed it objects directly)

    static func map(_ objects: [AssetType: [JSONValue]], discoveredBy: String, skipped: [(resource: String, reason: String)] = []) -> Result {
        var mapper = Mapper(discoveredBy: discoveredBy)
        mapper.result.skipped = skipped
        mapper.nodes(objects[.NODE] ?? [])
        mapper.namespaces(objects[.NAMESPACE] ?? [])
        mapper.workloads(objects)
        let podLabels = mapper.pods(objects[.POD] ?? [])
        mapper.services(objects[.SERVICE] ?? [], pods: podLabels)
        mapper.ingresses(objects[.INGRESS] ?? [])
        mapper.claims(objects[.PERSISTENT_VOLUME_CLAIM] ?? [])
        mapper.helmReleases(objects[.HELM_RELEASE] ?? [])
        return mapper.finish()
    }
}

extension ClusterDiscovery {
    /// One mapping's state: the assets and edges so far, and the container images seen on the way (registered
    /// at the end, once each). The kinds are mapped in `map`'s order, which is the order of the assets.
    fileprivate struct Mapper {
        let discoveredBy: String
        var result = Result()
        var images: Set<String> = []

        init(discoveredBy: String) {
            self.discoveredBy = discoveredBy
        }

        // MARK: building blocks

        mutating func add(_ type: AssetType, _ o: JSONValue, health: Health, properties extra: [String: JSONValue] = [:], name: String? = nil) -> String {
            let meta = o["metadata"] ?? .object([:])
            var labels: [String: String] = [:]
            for (k, v) in meta["labels"]?.objectValue ?? [:] { if let s = v.stringValue { labels[k] = s } }
            var properties: [String: JSONValue] = ["uid": meta["uid"] ?? .null, "createdAt": meta["creationTimestamp"] ?? .null]
            for (k, v) in extra { properties[k] = v }
            let input = AssetInput(type: type, name: name ?? meta["name"]?.stringValue ?? "?", namespace: meta["namespace"]?.stringValue,
                                   labels: labels.isEmpty ? nil : labels, properties: .object(properties.filter { $0.value != .null }),
                                   health: health, discoveredBy: discoveredBy)
            result.assets.append(input)
            return input.resolvedID
        }

        mutating func relate(_ from: String, _ kind: RelationKind, _ to: String) {
            result.relations.append(RelationInput(from: from, to: to, kind: kind, discoveredBy: discoveredBy))
        }

        func id(_ type: AssetType, _ namespace: String?, _ name: String) -> String {
            AssetInput(type: type, name: name, namespace: namespace).resolvedID
        }

        func ownerType(_ kind: String) -> AssetType? {
            ["ReplicaSet": .REPLICASET, "Deployment": .DEPLOYMENT, "StatefulSet": .STATEFULSET, "DaemonSet": .DAEMONSET,
             "Job": .JOB, "CronJob": .CRONJOB, "Node": .NODE][kind]
        }

        mutating func owners(_ o: JSONValue, _ me: String) {
            let ns = o["metadata"]?["namespace"]?.stringValue
            for ref in o["metadata"]?["ownerReferences"]?.arrayValue ?? [] {
                guard let kind = ref["kind"]?.stringValue, let type = ownerType(kind), let name = ref["name"]?.stringValue else { continue }
                relate(me, .MANAGED_BY, id(type, type == .NODE ? nil : ns, name))
            }
        }

        func containerImages(_ spec: JSONValue?) -> [String] {
            ((spec?["containers"]?.arrayValue ?? []) + (spec?["initContainers"]?.arrayValue ?? [])).compactMap { $0["image"]?.stringValue }
        }

        mutating func usesImages(_ me: String, _ spec: JSONValue?) {
            for image in Set(containerImages(spec)) {
                images.insert(image)
                relate(me, .USES_IMAGE, id(.CONTAINER_IMAGE, nil, image))
            }
        }

        // MARK: cluster-scoped kinds

        mutating func nodes(_ objects: [JSONValue]) {
            for o in objects { _ = add(.NODE, o, health: Health.node(o), properties: ["kubeletVersion": o["status"]?["nodeInfo"]?["kubeletVersion"] ?? .null]) }
        }

        mutating func namespaces(_ objects: [JSONValue]) {
            for o in objects {
                let phase = o["status"]?["phase"]?.stringValue ?? "Active"
                _ = add(.NAMESPACE, o, health: Health(status: phase == "Active" ? .OK : .DEGRADED, reason: phase == "Active" ? nil : phase))
            }
        }

        // MARK: workloads and pods

        /// Deployments, stateful sets, daemon sets and replica sets, then cron jobs, then jobs.
        mutating func workloads(_ objects: [AssetType: [JSONValue]]) {
            for type in [AssetType.DEPLOYMENT, .STATEFULSET, .DAEMONSET, .REPLICASET] {
                for o in objects[type] ?? [] {
                    let (health, desired, ready) = Health.workload(type, o)
                    let me = add(type, o, health: health, properties: ["desired": .number(Double(desired)), "ready": .number(Double(ready))])
                    owners(o, me)
                    usesImages(me, o["spec"]?["template"]?["spec"])
                }
            }
            for o in objects[.CRONJOB] ?? [] {
                let me = add(.CRONJOB, o, health: Health(status: o["spec"]?["suspend"]?.boolValue == true ? .DEGRADED : .OK,
                                                         reason: o["spec"]?["suspend"]?.boolValue == true ? "suspended" : nil),
                             properties: ["schedule": o["spec"]?["schedule"] ?? .null])
                usesImages(me, o["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"])
            }
            for o in objects[.JOB] ?? [] {
                let me = add(.JOB, o, health: Health.job(o))
                owners(o, me)
                usesImages(me, o["spec"]?["template"]?["spec"])
            }
        }

        typealias PodLabels = (id: String, namespace: String?, labels: [String: String])

        /// The pods, with their edges to owners, node, images and claims; returns each pod's labels for the services.
        mutating func pods(_ pods: [JSONValue]) -> [PodLabels] {
            var podLabels: [PodLabels] = []
            for o in pods {
                let me = add(.POD, o, health: Health.pod(o), properties: ["phase": o["status"]?["phase"] ?? .null, "node": o["spec"]?["nodeName"] ?? .null,
                                                                         "restarts": .number(Double(Health.restarts(o)))])
                owners(o, me)
                if let node = o["spec"]?["nodeName"]?.stringValue { relate(me, .RUNS_ON, id(.NODE, nil, node)) }
                usesImages(me, o["spec"])
                let ns = o["metadata"]?["namespace"]?.stringValue
                for v in o["spec"]?["volumes"]?.arrayValue ?? [] {
                    if let claim = v["persistentVolumeClaim"]?["claimName"]?.stringValue { relate(me, .MOUNTS, id(.PERSISTENT_VOLUME_CLAIM, ns, claim)) }
                }
                var labels: [String: String] = [:]
                for (k, v) in o["metadata"]?["labels"]?.objectValue ?? [:] { labels[k] = v.stringValue }
                podLabels.append((me, ns, labels))
            }
            return podLabels
        }

        // MARK: networking and storage

        mutating func services(_ objects: [JSONValue], pods podLabels: [PodLabels]) {
            for o in objects {
                let me = add(.SERVICE, o, health: Health(status: .UNKNOWN), properties: ["type": o["spec"]?["type"] ?? .null, "clusterIP": o["spec"]?["clusterIP"] ?? .null])
                let ns = o["metadata"]?["namespace"]?.stringValue
                var selector: [String: String] = [:]
                for (k, v) in o["spec"]?["selector"]?.objectValue ?? [:] { selector[k] = v.stringValue }
                guard !selector.isEmpty else { continue }  // a selector-less service selects nothing
                for pod in podLabels where pod.namespace == ns && selector.allSatisfy({ pod.labels[$0.key] == $0.value }) {
                    relate(me, .SELECTS, pod.id)
                }
            }
        }

        mutating func ingresses(_ objects: [JSONValue]) {
            for o in objects {
                let me = add(.INGRESS, o, health: Health(status: .UNKNOWN))
                let ns = o["metadata"]?["namespace"]?.stringValue
                var backends: Set<String> = []
                if let s = o["spec"]?["defaultBackend"]?["service"]?["name"]?.stringValue { backends.insert(s) }
                for rule in o["spec"]?["rules"]?.arrayValue ?? [] {
                    for p in rule["http"]?["paths"]?.arrayValue ?? [] { if let s = p["backend"]?["service"]?["name"]?.stringValue { backends.insert(s) } }
                }
                for s in backends.sorted() { relate(me, .EXPOSES, id(.SERVICE, ns, s)) }
            }
        }

        mutating func claims(_ objects: [JSONValue]) {
            for o in objects {
                let phase = o["status"]?["phase"]?.stringValue ?? "Pending"
                _ = add(.PERSISTENT_VOLUME_CLAIM, o, health: Health(status: phase == "Bound" ? .OK : (phase == "Lost" ? .FAILING : .DEGRADED), reason: phase == "Bound" ? nil : phase),
                        properties: ["storageClass": o["spec"]?["storageClassName"] ?? .null])
            }
        }

        // MARK: Helm releases

        /// Helm: the newest revision of each release, from the release secret's labels (never its data).
        mutating func helmReleases(_ secrets: [JSONValue]) {
            var releases: [String: JSONValue] = [:]
            for o in secrets {
                guard let name = o["metadata"]?["labels"]?["name"]?.stringValue else { continue }
                let key = "\(o["metadata"]?["namespace"]?.stringValue ?? "")/\(name)"
                let version = Int(o["metadata"]?["labels"]?["version"]?.stringValue ?? "") ?? 0
                if version >= (Int(releases[key]?["metadata"]?["labels"]?["version"]?.stringValue ?? "") ?? -1) { releases[key] = o }
            }
            for (_, o) in releases.sorted(by: { $0.key < $1.key }) {
                let labels = o["metadata"]?["labels"]
                let status = labels?["status"]?.stringValue ?? "unknown"
                let health: Health = status == "deployed" ? Health(status: .OK) : Health(status: status == "failed" ? .FAILING : .DEGRADED, reason: "release \(status)")
                var release = o
                if case .object(var root) = release, case .object(var meta)? = root["metadata"] {
                    meta["uid"] = nil  // the secret's uid is not the release's
                    root["metadata"] = .object(meta)
                    release = .object(root)
                }
                _ = add(.HELM_RELEASE, release, health: health, properties: ["revision": labels?["version"] ?? .null, "status": .string(status)],
                        name: labels?["name"]?.stringValue)
            }
        }

        // MARK: images and edges

        /// Registers the images seen, and keeps only the edges between assets of this result.
        mutating func finish() -> Result {
            for image in images.sorted() {
                result.assets.append(AssetInput(type: .CONTAINER_IMAGE, name: image, properties: ["tagged": .bool(Health.isTagged(image))],
                                                health: Health(status: .UNKNOWN), discoveredBy: discoveredBy))
            }
            // Edges only between assets this discovery registers (an owner it could not list is left out).
            let known = Set(result.assets.map(\.resolvedID))
            result.relations = result.relations.filter { known.contains($0.from) && known.contains($0.to) }
            return result
        }
    }
}

extension Health {
    static func node(_ o: JSONValue) -> Health {
        let conditions = o["status"]?["conditions"]?.arrayValue ?? []
        func condition(_ type: String) -> String? { conditions.first { $0["type"]?.stringValue == type }?["status"]?.stringValue }
        if condition("Ready") != "True" {
            let reason = conditions.first { $0["type"]?.stringValue == "Ready" }?["reason"]?.stringValue ?? "Ready condition \(condition("Ready") ?? "missing")"
            return Health(status: .FAILING, reason: "NotReady: \(reason)")
        }
        let pressures = ["MemoryPressure", "DiskPressure", "PIDPressure"].filter { condition($0) == "True" }
        if !pressures.isEmpty { return Health(status: .DEGRADED, reason: pressures.joined(separator: ", ")) }
        if o["spec"]?["unschedulable"]?.boolValue == true { return Health(status: .DEGRADED, reason: "cordoned") }
        return Health(status: .OK)
    }

    static func workload(_ type: AssetType, _ o: JSONValue) -> (Health, desired: Int, ready: Int) {
        let status = o["status"]
        let desired = type == .DAEMONSET ? (status?["desiredNumberScheduled"]?.intValue ?? 0) : (o["spec"]?["replicas"]?.intValue ?? 1)
        let ready = type == .DAEMONSET ? (status?["numberReady"]?.intValue ?? 0) : (status?["readyReplicas"]?.intValue ?? 0)
        if ready >= desired { return (Health(status: .OK), desired, ready) }
        let health = Health(status: ready == 0 ? .FAILING : .DEGRADED, reason: "\(ready)/\(desired) ready")
        return (health, desired, ready)
    }

    static func restarts(_ o: JSONValue) -> Int {
        (o["status"]?["containerStatuses"]?.arrayValue ?? []).reduce(0) { $0 + ($1["restartCount"]?.intValue ?? 0) }
    }

    static func pod(_ o: JSONValue) -> Health {
        let phase = o["status"]?["phase"]?.stringValue ?? "Unknown"
        let statuses = o["status"]?["containerStatuses"]?.arrayValue ?? []
        for c in statuses {
            let name = c["name"]?.stringValue ?? "?"
            if let waiting = c["state"]?["waiting"]?["reason"]?.stringValue, ["CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"].contains(waiting) {
                return Health(status: .FAILING, reason: "container \(name): \(waiting)")
            }
        }
        if phase == "Failed" { return Health(status: .FAILING, reason: o["status"]?["reason"]?.stringValue ?? "Failed") }
        if phase == "Succeeded" { return Health(status: .OK, reason: "Completed") }
        if phase == "Pending" || phase == "Unknown" { return Health(status: .DEGRADED, reason: phase) }
        for c in statuses where c["lastState"]?["terminated"]?["reason"]?.stringValue == "OOMKilled" {
            return Health(status: .DEGRADED, reason: "container \(c["name"]?.stringValue ?? "?") was OOMKilled (\(c["restartCount"]?.intValue ?? 0) restarts)")
        }
        let restarts = restarts(o)
        if restarts >= 5 { return Health(status: .DEGRADED, reason: "\(restarts) restarts") }
        if statuses.contains(where: { $0["ready"]?.boolValue == false }) { return Health(status: .DEGRADED, reason: "not ready") }
        return Health(status: .OK)
    }

    static func job(_ o: JSONValue) -> Health {
        let s = o["status"]
        if (s?["succeeded"]?.intValue ?? 0) > 0 { return Health(status: .OK, reason: "Complete") }
        if (s?["failed"]?.intValue ?? 0) > 0 && (s?["active"]?.intValue ?? 0) == 0 { return Health(status: .FAILING, reason: "\(s?["failed"]?.intValue ?? 0) failed") }
        return Health(status: .OK, reason: (s?["active"]?.intValue ?? 0) > 0 ? "running" : nil)
    }

    /// `nginx` and `nginx:latest` are not pinned; `nginx:1.25` and `nginx@sha256:...` are.
    static func isTagged(_ image: String) -> Bool {
        if image.contains("@") { return true }
        let last = image.split(separator: "/").last ?? Substring(image)
        guard let colon = last.lastIndex(of: ":") else { return false }
        return last[last.index(after: colon)...] != "latest"
    }
}
