import CortexCatalog
import CortexControl
import CortexCore
import CortexKubernetes
import CortexOrchestration
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

/// A local server answering like the Kubernetes API: list kinds with metadata.continue pagination,
/// ownerReferences and statuses, and a 403 for a resource the service account may not list.
final class FakeKubernetesAPI: @unchecked Sendable {
    let requests = Locked<[(path: String, query: String, authorization: String?, accept: String?)]>([])
    private var task: Task<Void, Error>?
    private(set) var port = 0

    static func meta(_ name: String, _ ns: String? = nil, labels: [String: String] = [:], owner: (String, String)? = nil) -> JSONValue {
        var m: [String: JSONValue] = ["name": .string(name), "uid": .string("uid-\(name)"), "creationTimestamp": "2026-11-01T10:00:00Z"]
        if let ns { m["namespace"] = .string(ns) }
        if !labels.isEmpty { m["labels"] = .object(labels.mapValues(JSONValue.string)) }
        if let (kind, n) = owner { m["ownerReferences"] = [["apiVersion": "apps/v1", "kind": .string(kind), "name": .string(n), "uid": .string("uid-\(n)"), "controller": true]] }
        return .object(m)
    }

    static func container(_ name: String, _ image: String, ready: Bool = true, restarts: Int = 0, waiting: String? = nil, lastTerminated: String? = nil) -> (spec: JSONValue, status: JSONValue) {
        var status: [String: JSONValue] = ["name": .string(name), "ready": .bool(ready), "restartCount": .number(Double(restarts)), "image": .string(image)]
        status["state"] = waiting.map { ["waiting": ["reason": .string($0)]] } ?? ["running": ["startedAt": "2026-11-01T10:00:05Z"]]
        if let r = lastTerminated { status["lastState"] = ["terminated": ["reason": .string(r), "exitCode": 137]] }
        return (["name": .string(name), "image": .string(image)], .object(status))
    }

    static func pod(_ name: String, _ ns: String, node: String, labels: [String: String], owner: String?, containers: [(spec: JSONValue, status: JSONValue)],
                    phase: String = "Running", claim: String? = nil) -> JSONValue {
        var spec: [String: JSONValue] = ["nodeName": .string(node), "containers": .array(containers.map(\.spec))]
        if let claim { spec["volumes"] = [["name": "data", "persistentVolumeClaim": ["claimName": .string(claim)]]] }
        return ["kind": "Pod", "metadata": meta(name, ns, labels: labels, owner: owner.map { ("ReplicaSet", $0) }), "spec": .object(spec),
                "status": ["phase": .string(phase), "containerStatuses": .array(containers.map(\.status))]]
    }

    /// Items per API path (a test may change them between runs).
    let objects = Locked(FakeKubernetesAPI.initialObjects)

    static let initialObjects: [String: [JSONValue]] = [
        "/api/v1/nodes": [
            ["metadata": meta("k3s-1"), "status": ["conditions": [["type": "Ready", "status": "True"], ["type": "MemoryPressure", "status": "False"]], "nodeInfo": ["kubeletVersion": "v1.30.4+k3s1"]]],
            ["metadata": meta("k3s-2"), "status": ["conditions": [["type": "Ready", "status": "True"], ["type": "DiskPressure", "status": "True"]]]],
            ["metadata": meta("k3s-3"), "status": ["conditions": [["type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"]]]],
        ],
        "/api/v1/namespaces": [["metadata": meta("shop"), "status": ["phase": "Active"]]],
        "/apis/apps/v1/deployments": [
            ["metadata": meta("web", "shop", labels: ["app": "web"]), "spec": ["replicas": 3, "template": ["spec": ["containers": [["name": "web", "image": "ghcr.io/acme/web:1.4.2"]]]]],
             "status": ["replicas": 3, "readyReplicas": 2]],
            ["metadata": meta("db-migrate", "shop"), "spec": ["replicas": 1, "template": ["spec": ["containers": [["name": "m", "image": "ghcr.io/acme/migrate"]]]]], "status": [:]],
        ],
        "/apis/apps/v1/replicasets": [
            ["metadata": meta("web-7d9f", "shop", labels: ["app": "web"], owner: ("Deployment", "web")), "spec": ["replicas": 3], "status": ["readyReplicas": 2]],
        ],
        "/apis/apps/v1/statefulsets": [], "/apis/apps/v1/daemonsets": [], "/apis/batch/v1/cronjobs": [],
        "/api/v1/pods": [
            pod("web-7d9f-a", "shop", node: "k3s-1", labels: ["app": "web", "pod-template-hash": "7d9f"], owner: "web-7d9f", containers: [container("web", "ghcr.io/acme/web:1.4.2")], claim: "uploads"),
            pod("web-7d9f-b", "shop", node: "k3s-2", labels: ["app": "web", "pod-template-hash": "7d9f"], owner: "web-7d9f",
                containers: [container("web", "ghcr.io/acme/web:1.4.2", ready: false, restarts: 7, waiting: "CrashLoopBackOff")]),
            pod("web-7d9f-c", "shop", node: "k3s-2", labels: ["app": "web", "pod-template-hash": "7d9f"], owner: "web-7d9f",
                containers: [container("web", "ghcr.io/acme/web:1.4.2", restarts: 1, lastTerminated: "OOMKilled")]),
            pod("cache-0", "shop", node: "k3s-1", labels: ["app": "cache"], owner: nil, containers: [container("redis", "redis:latest")], phase: "Pending"),
        ],
        "/api/v1/services": [
            ["metadata": meta("web", "shop"), "spec": ["type": "ClusterIP", "clusterIP": "10.43.0.10", "selector": ["app": "web"]]],
            ["metadata": meta("external", "shop"), "spec": ["type": "ExternalName"]],
        ],
        "/apis/networking.k8s.io/v1/ingresses": [
            ["metadata": meta("shop", "shop"), "spec": ["rules": [["host": "shop.example", "http": ["paths": [["path": "/", "pathType": "Prefix", "backend": ["service": ["name": "web", "port": ["number": 80]]]]]]]]]],
        ],
        "/api/v1/persistentvolumeclaims": [["metadata": meta("uploads", "shop"), "spec": ["storageClassName": "local-path"], "status": ["phase": "Bound"]]],
        "/api/v1/secrets": [
            ["kind": "PartialObjectMetadata", "metadata": meta("sh.helm.release.v1.shop.v1", "shop", labels: ["owner": "helm", "name": "shop", "version": "1", "status": "superseded"])],
            ["kind": "PartialObjectMetadata", "metadata": meta("sh.helm.release.v1.shop.v2", "shop", labels: ["owner": "helm", "name": "shop", "version": "2", "status": "deployed"])],
        ],
    ]

    func start() async throws {
        let router = Router()
        router.get("**") { [self] request, _ -> Response in
            let path = request.uri.path
            let query = request.uri.query ?? ""
            requests.withLock { $0.append((path, query, request.headers[.authorization], request.headers[.accept])) }
            func json(_ status: HTTPResponse.Status, _ body: JSONValue) -> Response {
                Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body.description)))
            }
            if path.hasPrefix("/apis/batch/v1/") && path.hasSuffix("/jobs") {
                return json(.forbidden, ["kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                                         "message": "jobs.batch is forbidden: User \"system:serviceaccount:cortex:cortex-inventory\" cannot list resource \"jobs\" in API group \"batch\" at the cluster scope"])
            }
            // Namespaced lists (`/api/v1/namespaces/shop/pods`) are the cluster-wide list filtered by namespace.
            var lookup = path
            var namespace: String?
            let parts = path.split(separator: "/").map(String.init)
            if let i = parts.firstIndex(of: "namespaces"), i + 2 < parts.count {
                namespace = parts[i + 1]
                lookup = "/" + (parts[..<i] + parts[(i + 2)...]).joined(separator: "/")
            }
            guard let all = objects.value[lookup] else { return json(.notFound, ["kind": "Status", "code": 404, "message": "the server could not find the requested resource"]) }
            let items = namespace.map { ns in all.filter { $0["metadata"]?["namespace"]?.stringValue == ns } } ?? all
            // Pages of `limit` items; the continue token is the next offset, opaque to the client.
            let params = request.uri.queryParameters
            let limit = Int(params.get("limit") ?? "") ?? 500
            let offset = Int(params.get("continue") ?? "") ?? 0
            let page = Array(items.dropFirst(offset).prefix(limit))
            let next = offset + page.count < items.count ? String(offset + page.count) : nil
            return json(.ok, ["kind": "List", "apiVersion": "v1", "metadata": ["resourceVersion": "1234", "continue": next.map(JSONValue.string) ?? .null], "items": .array(page)])
        }
        (task, port) = try await startLocalServer(router, name: "fake Kubernetes API")
    }

    func stop() { task?.cancel() }
}

@Suite(.serialized) struct KubernetesDiscoveryTests {
    static let kubeconfig = """
        apiVersion: v1
        kind: Config
        current-context: k3s
        clusters:
        - name: k3s
          cluster:
            server: SERVER
            certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lCQURBS0JnZ3Foa2pPUFFRREFqQWpNU0V3SHdZRFZRUUREQmhyTTNNdGMyVnkKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
        - name: lab
          cluster:
            server: https://10.0.0.5:6443
            insecure-skip-tls-verify: true
        contexts:
        - name: k3s
          context: {cluster: k3s, user: inventory}
        - name: lab-cert
          context: {cluster: lab, user: admin-cert}
        - name: lab-exec
          context: {cluster: lab, user: sso}
        users:
        - name: inventory
          user:
            token: eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.payload.signature
        - name: admin-cert
          user:
            client-certificate-data: Q0VSVA==
            client-key-data: S0VZ
        - name: sso
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1beta1
              command: kubelogin
              args: [get-token]
        """

    @Test func kubeconfigContextsTokensCertificatesAndUnsupportedExec() throws {
        let base = URL(fileURLWithPath: "/tmp")
        let access = try KubeAccess.kubeconfig(yaml: Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "https://127.0.0.1:6443/"), origin: "test", relativeTo: base)
        #expect(access.server == "https://127.0.0.1:6443" && access.bearerToken == "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.payload.signature")
        #expect(String(decoding: access.tls.caPEM ?? [], as: UTF8.self).hasPrefix("-----BEGIN CERTIFICATE-----"))
        let cert = try KubeAccess.kubeconfig(yaml: Self.kubeconfig, origin: "test", relativeTo: base, context: "lab-cert")
        #expect(cert.tls.clientCertificatePEM == Array("CERT".utf8) && cert.tls.clientKeyPEM == Array("KEY".utf8) && cert.tls.insecureSkipVerify)
        #expect(cert.bearerToken == nil && cert.origin == "kubeconfig test context lab-cert")
        #expect(throws: KubeConfigError("test: context 'lab-exec' authenticates with an exec plugin (kubelogin), which Cortex does not support; give it a service-account token or a client certificate")) {
            try KubeAccess.kubeconfig(yaml: Self.kubeconfig, origin: "test", relativeTo: base, context: "lab-exec")
        }
        #expect(throws: KubeConfigError("test: no context named 'nope'")) { try KubeAccess.kubeconfig(yaml: Self.kubeconfig, origin: "test", relativeTo: base, context: "nope") }
        #expect(throws: KubeConfigError("test has no current-context (set one with kubectl config use-context)")) {
            try KubeAccess.kubeconfig(yaml: "apiVersion: v1\nclusters: []\n", origin: "test", relativeTo: base)
        }
        #expect(throws: KubeConfigError.self) { try KubeAccess.kubeconfig(yaml: "{{{", origin: "test", relativeTo: base) }
    }

    @Test func inClusterReadsTheServiceAccount() throws {
        let dir = try temporaryDirectory("sa")
        try Data("token-abc\n".utf8).write(to: dir.appendingPathComponent("token"))
        try Data("-----BEGIN CERTIFICATE-----\n".utf8).write(to: dir.appendingPathComponent("ca.crt"))
        let access = try #require(try KubeAccess.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: dir.path))
        #expect(access.server == "https://10.43.0.1:443" && access.bearerToken == "token-abc" && access.tls.caPEM != nil)
        #expect(try KubeAccess.inCluster(environment: [:], directory: dir.path) == nil)
        #expect(throws: KubeConfigError.self) { try KubeAccess.inCluster(environment: ["KUBERNETES_SERVICE_HOST": "10.43.0.1"], directory: "/nonexistent") }
    }

    @Test func discoveryPagesMapsLineageJudgesHealthAndSkipsForbidden() async throws {
        let api = FakeKubernetesAPI()
        try await api.start()
        defer { api.stop() }
        let yaml = Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "http://127.0.0.1:\(api.port)")
        let access = try KubeAccess.kubeconfig(yaml: yaml, origin: "test", relativeTo: URL(fileURLWithPath: "/tmp"))
        let discovery = ClusterDiscovery(client: KubernetesClient(access: access, pageSize: 2), discoveredBy: "worker-test")
        let result = try await discovery.discover(.all)

        // Pagination: 4 pods in pages of 2, the second page asked with the continue token; the bearer token sent.
        let podRequests = api.requests.value.filter { $0.path == "/api/v1/pods" }
        #expect(podRequests.map(\.query) == ["limit=2", "limit=2&continue=2"])
        #expect(api.requests.value.allSatisfy { $0.authorization == "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.payload.signature" })
        // Helm releases from the release secrets' metadata only.
        let secrets = try #require(api.requests.value.first { $0.path == "/api/v1/secrets" })
        #expect(secrets.query.contains("labelSelector=owner%3Dhelm") && secrets.accept?.contains("as=PartialObjectMetadataList") == true)
        // The forbidden resource is reported and skipped; the rest is inventoried.
        #expect(result.skipped.count == 1 && result.skipped[0].resource == "/apis/batch/v1/jobs" && result.skipped[0].reason.hasPrefix("forbidden: jobs.batch is forbidden"))

        let byID = Dictionary(uniqueKeysWithValues: result.assets.map { ($0.resolvedID, $0) })
        func health(_ id: String) -> String { byID[id].map { "\($0.health!.status.rawValue)\($0.health!.reason.map { " \($0)" } ?? "")" } ?? "missing" }
        #expect(health("node:k3s-1") == "OK")
        #expect(health("node:k3s-2") == "DEGRADED DiskPressure")
        #expect(health("node:k3s-3") == "FAILING NotReady: NodeStatusUnknown")
        #expect(health("deployment:shop/web") == "DEGRADED 2/3 ready")
        #expect(health("deployment:shop/db-migrate") == "FAILING 0/1 ready")
        #expect(health("pod:shop/web-7d9f-a") == "OK")
        #expect(health("pod:shop/web-7d9f-b") == "FAILING container web: CrashLoopBackOff")
        #expect(health("pod:shop/web-7d9f-c") == "DEGRADED container web was OOMKilled (1 restarts)")
        #expect(health("pod:shop/cache-0") == "DEGRADED Pending")
        #expect(health("persistent_volume_claim:shop/uploads") == "OK")
        #expect(health("helm_release:shop/shop") == "OK" && byID["helm_release:shop/shop"]?.properties?["revision"] == "2")
        #expect(byID["container_image:redis:latest"]?.properties?["tagged"] == false && byID["container_image:ghcr.io/acme/web:1.4.2"]?.properties?["tagged"] == true)

        let edges = Set(result.relations.map { "\($0.from) \($0.kind.rawValue) \($0.to)" })
        for e in [
            "pod:shop/web-7d9f-a RUNS_ON node:k3s-1", "pod:shop/web-7d9f-b RUNS_ON node:k3s-2",
            "pod:shop/web-7d9f-a MANAGED_BY replicaset:shop/web-7d9f", "replicaset:shop/web-7d9f MANAGED_BY deployment:shop/web",
            "service:shop/web SELECTS pod:shop/web-7d9f-a", "service:shop/web SELECTS pod:shop/web-7d9f-c",
            "pod:shop/web-7d9f-a USES_IMAGE container_image:ghcr.io/acme/web:1.4.2", "deployment:shop/web USES_IMAGE container_image:ghcr.io/acme/web:1.4.2",
            "pod:shop/web-7d9f-a MOUNTS persistent_volume_claim:shop/uploads", "ingress:shop/shop EXPOSES service:shop/web",
        ] { #expect(edges.contains(e), "missing \(e)") }
        #expect(!edges.contains { $0.hasPrefix("service:shop/web SELECTS pod:shop/cache-0") } && !edges.contains { $0.hasPrefix("service:shop/external") })

        // Registered through catalog-api: every asset and edge lands, and the lineage reads back.
        let work = try temporaryDirectory("k8s-catalog")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work, binDirectory: binDirectory)
        let (_, port) = try await suite.startCatalog()
        let catalog = CatalogClient(baseURL: "http://127.0.0.1:\(port)", token: nil)
        let summary = try await catalog.upsert(result.assets, relations: result.relations)
        #expect(summary.created == result.assets.count && summary.relations == result.relations.count)
        let lineage = try await catalog.graphQL(#"{ lineage(id: "deployment:shop/web", direction: UPSTREAM, depth: 2) { nodes { id } } }"#, variables: [:])
        #expect(Set(lineage["lineage"]?["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) ==
                ["deployment:shop/web", "replicaset:shop/web-7d9f", "pod:shop/web-7d9f-a", "pod:shop/web-7d9f-b", "pod:shop/web-7d9f-c"])
        await suite.stop()
    }

    /// An inventory run with a cluster: the master splits it by namespace, the workers discover and
    /// register through catalog-api, and the report lists the cluster by type and who found what.
    @Test func inventoryRunDiscoversTheClusterThroughTheWorkers() async throws {
        let api = FakeKubernetesAPI()
        try await api.start()
        defer { api.stop() }
        let work = try temporaryDirectory("k8s-run")
        let kubeconfig = work.appendingPathComponent("kubeconfig")
        try Data(Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "http://127.0.0.1:\(api.port)").utf8).write(to: kubeconfig)
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["KUBECONFIG": kubeconfig.path, "CORTEX_KUBERNETES": "on"])
        let (_, port) = try await suite.startCatalog()
        try suite.startAll(workers: 2)
        let bus = MessageBus(redis: RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)), source: "test",
                             metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: .init(label: "test"))
        let client = RunClient(bus: bus)
        let runID = try await client.submit(RunRequest(goal: "inventory", targets: [try makeRepository().path], requestedBy: "test"))
        let state = try await client.follow(runID: runID, timeout: .seconds(60)) { _ in }

        // The cluster changes: cache-0 goes, a new pod comes, node k3s-3 recovers. A second run says so.
        api.objects.withLock { o in
            o["/api/v1/pods"] = (o["/api/v1/pods"] ?? []).filter { $0["metadata"]?["name"] != "cache-0" }
                + [FakeKubernetesAPI.pod("web-7d9f-d", "shop", node: "k3s-3", labels: ["app": "web"], owner: "web-7d9f", containers: [FakeKubernetesAPI.container("web", "ghcr.io/acme/web:1.4.2")])]
            o["/api/v1/nodes"] = (o["/api/v1/nodes"] ?? []).map { n in
                n["metadata"]?["name"] == "k3s-3" ? ["metadata": FakeKubernetesAPI.meta("k3s-3"), "status": ["conditions": [["type": "Ready", "status": "True"]]]] : n
            }
        }
        let second = try await client.follow(runID: try await client.submit(RunRequest(goal: "inventory", targets: [try makeRepository().path], requestedBy: "test")),
                                             timeout: .seconds(60)) { _ in }
        let catalog = CatalogClient(baseURL: "http://127.0.0.1:\(port)", token: nil)
        let gone = try await catalog.graphQL(#"{ asset(id: "pod:shop/cache-0") { id } }"#, variables: [:])
        let found = try await catalog.graphQL("""
            { stats { byType { key count } }
              lineage(id: "deployment:shop/web", direction: UPSTREAM, depth: 2) { nodes { id } }
              pod: asset(id: "pod:shop/web-7d9f-b") { health { status reason } discoveredBy } }
            """, variables: [:])
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let summary = try String(contentsOfFile: dir + "/summary.md", encoding: .utf8)
        // Two items; one worker or both may take them (a worker reads several entries at once, so on a
        // loaded machine the first worker to read can take both).
        let line = "inventory-master    succeeded cluster: 4 pod, 3 container_image, 3 node, 2 deployment, 2 service, 1 helm_release, 1 ingress, 1 namespace, 1 persistent_volume_claim, 1 replicaset; 1 resources not listable"
        #expect(summary.contains(line + " [2 items, 2 workers]") || summary.contains(line + " [2 items, 1 worker]"), "\(summary)")
        let report = try String(contentsOfFile: dir + "/masters/inventory-cluster.md", encoding: .utf8)
        #expect(report.contains("### Cluster inventory by type") && report.contains("| POD | 4 |") && report.contains("| HELM_RELEASE | 1 |"), "\(report)")
        #expect(report.contains("- /apis/batch/v1/namespaces/shop/jobs: forbidden: jobs.batch is forbidden"))
        // Two work items, the cluster-scoped kinds and namespace shop, each done by a worker on a node.
        #expect(report.contains("| (cluster) | worker-") && report.contains("| shop | worker-"), "\(report)")
        let byType = Dictionary(uniqueKeysWithValues: (found["stats"]?["byType"]?.arrayValue ?? []).compactMap { c in
            c["key"]?.stringValue.map { ($0, c["count"]?.intValue ?? 0) } })
        #expect(byType["POD"] == 4 && byType["NODE"] == 3 && byType["NAMESPACE"] == 1 && byType["REPLICASET"] == 1 && byType["HELM_RELEASE"] == 1)
        #expect(Set(found["lineage"]?["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []) ==
                ["deployment:shop/web", "replicaset:shop/web-7d9f", "pod:shop/web-7d9f-a", "pod:shop/web-7d9f-b", "pod:shop/web-7d9f-c", "pod:shop/web-7d9f-d"])
        #expect(found["pod"]?["health"] == ["status": "FAILING", "reason": "container web: CrashLoopBackOff"])
        #expect(found["pod"]?["discoveredBy"]?.stringValue?.hasPrefix("worker-") == true)
        #expect(report.contains("No change (or the first inventory of these scopes)."))
        #expect(second.status == "succeeded")
        let changed = try String(contentsOfFile: try #require(second.reportDir) + "/masters/inventory-cluster.md", encoding: .utf8)
        #expect(changed.contains("1 appeared, 1 disappeared, 1 changed health."), "\(changed)")
        #expect(changed.contains("- appeared: pod:shop/web-7d9f-d") && changed.contains("- disappeared: pod:shop/cache-0")
                && changed.contains("- health of node:k3s-3: FAILING -> OK"))
        #expect(gone["asset"] == .null, "a pod gone from the cluster is gone from the catalog")
    }

    /// A security run with a cluster: the live workloads are audited through the same API, one item per
    /// namespace; objects a controller owns are audited through their owner; a forbidden list is reported.
    @Test func securityRunAuditsTheLiveWorkloads() async throws {
        let api = FakeKubernetesAPI()
        try await api.start()
        defer { api.stop() }
        let work = try temporaryDirectory("k8s-audit")
        let kubeconfig = work.appendingPathComponent("kubeconfig")
        try Data(Self.kubeconfig.replacingOccurrences(of: "SERVER", with: "http://127.0.0.1:\(api.port)").utf8).write(to: kubeconfig)
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work.appendingPathComponent("reports"), binDirectory: binDirectory,
                                         environment: ["KUBECONFIG": kubeconfig.path, "CORTEX_KUBERNETES": "on"].merging(checkedAdvisories) { $1 })
        try suite.startAll(workers: 2)
        let bus = MessageBus(redis: RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: suite.redis.port)), source: "test",
                             metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: .init(label: "test"))
        let state = try await RunClient(bus: bus).follow(runID: try await RunClient(bus: bus).submit(
            RunRequest(goal: "security", targets: [try makeRepository().path], requestedBy: "test")), timeout: .seconds(60)) { _ in }
        await suite.stop()

        #expect(state.status == "succeeded", "\(state.reason ?? "")")
        let dir = try #require(state.reportDir)
        let report = try String(contentsOfFile: dir + "/masters/security-cluster.md", encoding: .utf8)
        // web and db-migrate (Deployments) and cache-0 (a bare Pod); the ReplicaSet and its pods belong to web.
        #expect(report.contains("3 workloads audited."), "\(report)")
        #expect(report.contains("| medium | Deployment shop/db-migrate | m | k8s-mutable-image | image ghcr.io/acme/migrate is not pinned to a version or digest | live |"), "\(report)")
        #expect(report.contains("| medium | Pod shop/cache-0 | redis | k8s-mutable-image | image redis:latest is not pinned to a version or digest | live |"))
        #expect(!report.contains("web-7d9f"))
        #expect(report.contains("- /apis/batch/v1/namespaces/shop/jobs: forbidden: jobs.batch is forbidden"))
        let json = try JSONText.parse(try String(contentsOfFile: dir + "/masters/security-cluster.json", encoding: .utf8))
        let config = json["details"]?["config"]?.arrayValue ?? []
        // web: default SA, runAsNonRoot, privilege escalation, limits, probes; db-migrate: the same and its untagged image; cache-0: no probes rule for a Pod.
        #expect(config.count == 16, "\(config)")
        let sarif = try JSONText.parse(try String(contentsOfFile: dir + "/masters/security-cluster.sarif", encoding: .utf8))
        let results = sarif["runs"]?[0]?["results"]?.arrayValue ?? []
        #expect(results.count == 16 && results.allSatisfy { $0["locations"]?[0]?["logicalLocations"]?[0]?["kind"] == "resource" })
        #expect(api.requests.value.contains { $0.path == "/apis/apps/v1/namespaces/shop/deployments" })
    }
}
