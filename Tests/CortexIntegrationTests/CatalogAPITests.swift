import CortexCatalog
import CortexControl
import CortexCore
import Foundation
import Logging
import Testing

/// catalog-api as users run it: the real executable on a private redis-server, driven over HTTP, GraphQL,
/// WebSocket (graphql-transport-ws) and Server-Sent Events, with the reference client in scripts/catalog-stream.
@Suite(.serialized) struct CatalogAPITests {
    static let writer = "write:cortex-test-writer-token-0001:test-writer"
    static let reader = "read:cortex-test-reader-token-0001:test-reader"
    static let writeToken = "cortex-test-writer-token-0001"
    static let readToken = "cortex-test-reader-token-0001"

    /// A private redis-server and one catalog-api with a write and a read token (and a small body cap).
    struct Fixture {
        let suite: LocalSuite
        let port: Int
        var base: String { "http://127.0.0.1:\(port)" }

        static func start(_ name: String, extra: [String: String] = [:]) async throws -> Fixture {
            let work = try temporaryDirectory(name)
            let suite = try await LocalSuite(workDirectory: work, outputDirectory: work, binDirectory: binDirectory)
            let env = ["CORTEX_CATALOG_TOKENS": "\(CatalogAPITests.writer),\(CatalogAPITests.reader)", "CORTEX_CATALOG_MAX_BODY": "200000"].merging(extra) { $1 }
            let (_, port) = try await suite.startCatalog(environment: env)
            // Ready: its event relay is subscribed, so no change event published from here on is missed.
            guard await eventually(timeout: .seconds(60), { (try? await HTTPClient.request(url: "http://127.0.0.1:\(port)/readyz"))?.status == 200 }) else {
                throw CortexError(.failed, "catalog-api on port \(port) did not become ready within 60 s")
            }
            return Fixture(suite: suite, port: port)
        }

        /// One request; the body is JSON text. Returns the status and the parsed JSON body (nil if none).
        func call(_ method: String, _ path: String, _ body: String? = nil, token: String? = CatalogAPITests.writeToken,
                  headers: [String: String] = [:]) async throws -> (status: Int, json: JSONValue?, headers: [String: String]) {
            var h = headers
            if let token { h["Authorization"] = "Bearer \(token)" }
            if body != nil { h["Content-Type"] = "application/json" }
            let r = try await HTTPClient.request(method, url: base + path, headers: h, body: body.map { Array($0.utf8) }, timeout: .seconds(60))
            return (r.status, try? JSONDecoder().decode(JSONValue.self, from: Data(r.body)), r.headers)
        }

        func graphQL(_ query: String, variables: JSONValue = [:], token: String? = CatalogAPITests.writeToken) async throws -> (status: Int, json: JSONValue) {
            let body: JSONValue = ["query": .string(query), "variables": variables]
            let r = try await call("POST", "/graphql", body.description, token: token)
            return (r.status, r.json ?? .null)
        }

        func stop() async { await suite.stop() }
    }

    static func errorCode(_ json: JSONValue?) -> String? { json?["error"]?["code"]?.stringValue }
    static func gqlCode(_ json: JSONValue) -> String? { json["errors"]?.arrayValue?.first?["extensions"]?["code"]?.stringValue }
    static func ids(_ page: JSONValue?) -> [String] { page?["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [] }

    @Test func restReadsAndWritesWithVersionsFiltersPagesLineageAndStats() async throws {
        let f = try await Fixture.start("catalog-rest")
        defer { Task { await f.stop() } }
        // Create, read, refuse a duplicate.
        var r = try await f.call("POST", "/api/v1/assets", #"{"type":"NODE","name":"k3s-1","labels":{"role":"worker"},"health":{"status":"OK","reason":"Ready"}}"#)
        #expect(r.status == 201)
        #expect(r.json?["id"] == "node:k3s-1" && r.json?["version"] == 1 && r.json?["discoveredBy"] == "test-writer")
        r = try await f.call("POST", "/api/v1/assets", #"{"type":"NODE","name":"k3s-1"}"#)
        #expect(r.status == 409 && Self.errorCode(r.json) == "CONFLICT")
        r = try await f.call("GET", "/api/v1/assets/node%3Ak3s-1", token: Self.readToken)
        #expect(r.status == 200 && r.json?["labels"]?["role"] == "worker" && r.json?["health"]?["status"] == "OK")
        r = try await f.call("GET", "/api/v1/assets/node%3Anope")
        #expect(r.status == 404 && Self.errorCode(r.json) == "NOT_FOUND")

        // Optimistic concurrency: a stale If-Match is a conflict; the current one updates; the same content changes nothing.
        r = try await f.call("PUT", "/api/v1/assets/node%3Ak3s-1", #"{"type":"NODE","name":"k3s-1","health":{"status":"DEGRADED","reason":"MemoryPressure"}}"#, headers: ["If-Match": "7"])
        #expect(r.status == 409 && (r.json?["error"]?["message"]?.stringValue ?? "").contains("version 1, not 7"))
        r = try await f.call("PUT", "/api/v1/assets/node%3Ak3s-1", #"{"type":"NODE","name":"k3s-1","health":{"status":"DEGRADED","reason":"MemoryPressure"}}"#, headers: ["If-Match": "1"])
        #expect(r.status == 200 && r.json?["version"] == 2 && r.json?["health"]?["status"] == "DEGRADED")
        r = try await f.call("PUT", "/api/v1/assets/node%3Ak3s-1", #"{"type":"NODE","name":"k3s-1","health":{"status":"DEGRADED","reason":"MemoryPressure"}}"#)
        #expect(r.status == 200 && r.json?["version"] == 2)
        r = try await f.call("PUT", "/api/v1/assets/pod%3Ashop%2Fweb-0", #"{"type":"POD","name":"web-0","namespace":"shop"}"#)
        #expect(r.status == 201 && r.json?["id"] == "pod:shop/web-0")

        // A batch: 30 pods over two namespaces and two owners, with RUNS_ON edges; sent twice, the second changes nothing.
        var assets: [JSONValue] = []
        var relations: [JSONValue] = []
        for i in 1...30 {
            let ns = i % 2 == 0 ? "shop" : "blog"
            assets.append(["type": "POD", "name": .string("web-\(i)"), "namespace": .string(ns), "owner": .string(i % 3 == 0 ? "team-a" : "team-b"),
                           "labels": ["app": .string(i <= 10 ? "frontend" : "backend")], "health": ["status": .string(i == 7 ? "FAILING" : "OK")]])
            relations.append(["from": .string("pod:\(ns)/web-\(i)"), "to": "node:k3s-1", "kind": "RUNS_ON"])
        }
        let batch = JSONValue.object(["assets": .array(assets), "relations": .array(relations)]).description
        r = try await f.call("POST", "/api/v1/batch", batch)
        #expect(r.status == 200 && r.json == ["created": 30, "updated": 0, "unchanged": 0, "relations": 30])
        r = try await f.call("POST", "/api/v1/batch", batch)
        #expect(r.json == ["created": 0, "updated": 0, "unchanged": 30, "relations": 0])

        // A batch that fails (an edge to a missing asset) writes nothing, not even its valid assets.
        r = try await f.call("POST", "/api/v1/batch", #"{"assets":[{"type":"POD","name":"ghost","namespace":"shop"}],"relations":[{"from":"pod:shop/ghost","to":"node:missing","kind":"RUNS_ON"}]}"#)
        #expect(r.status == 404 && (r.json?["error"]?["message"]?.stringValue ?? "").contains("node:missing"))
        #expect(try await f.call("GET", "/api/v1/assets/pod%3Ashop%2Fghost").status == 404)

        // Filters (each, and combined), text search, and cursor pages that cover the set exactly once.
        #expect(Self.ids(try await f.call("GET", "/api/v1/assets?namespace=shop&health=FAILING").json).isEmpty)
        #expect(Self.ids(try await f.call("GET", "/api/v1/assets?namespace=blog&health=FAILING").json) == ["pod:blog/web-7"])
        #expect(Self.ids(try await f.call("GET", "/api/v1/assets?label=app%3Dfrontend&owner=team-a").json) == ["pod:blog/web-3", "pod:blog/web-9", "pod:shop/web-6"])
        #expect(Self.ids(try await f.call("GET", "/api/v1/assets?type=NODE").json) == ["node:k3s-1"])
        #expect(Self.ids(try await f.call("GET", "/api/v1/search?text=WEB%2012").json) == ["pod:shop/web-12"])
        var seen: [String] = []
        var after = ""
        var pages = 0
        repeat {
            let page = try await f.call("GET", "/api/v1/assets?type=POD&limit=7" + (after.isEmpty ? "" : "&after=\(after)")).json
            seen += Self.ids(page)
            pages += 1
            after = page?["pageInfo"]?["endCursor"]?.stringValue ?? ""
            if page?["pageInfo"]?["hasNextPage"] != true { break }
        } while pages < 20
        #expect(pages == 5 && seen.count == 31 && Set(seen).count == 31 && seen == seen.sorted())

        // Lineage both ways, and stats.
        r = try await f.call("GET", "/api/v1/assets/node%3Ak3s-1/lineage?direction=UPSTREAM&depth=1")
        #expect(r.json?["nodes"]?.arrayValue?.count == 31 && r.json?["edges"]?.arrayValue?.count == 30)
        r = try await f.call("GET", "/api/v1/assets/pod%3Ashop%2Fweb-2/lineage?direction=BOTH&depth=2")
        #expect(r.json?["nodes"]?.arrayValue?.count == 31, "2 hops: the node, then every pod on it")
        r = try await f.call("GET", "/api/v1/assets/pod%3Ashop%2Fweb-2/lineage?direction=DOWNSTREAM&depth=3")
        #expect(r.json?["nodes"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["pod:shop/web-2", "node:k3s-1"])
        r = try await f.call("GET", "/api/v1/stats", token: Self.readToken)
        #expect(r.json?["total"] == 32 && r.json?["relations"] == 30)
        #expect(r.json?["byType"] == [["key": "POD", "count": 31], ["key": "NODE", "count": 1]])
        #expect(r.json?["byNamespace"] == [["key": "shop", "count": 16], ["key": "blog", "count": 15]])
        #expect(r.json?["byHealth"] == [["key": "OK", "count": 29], ["key": "DEGRADED", "count": 1], ["key": "FAILING", "count": 1], ["key": "UNKNOWN", "count": 1]])
        #expect(r.json?["discoveriesPerHour"]?.arrayValue?.reduce(0) { $0 + ($1["count"]?.intValue ?? 0) } == 32)

        // Relations: remove one, add it back; delete the node and every edge to it goes too.
        r = try await f.call("DELETE", "/api/v1/relations?from=pod%3Ashop%2Fweb-2&to=node%3Ak3s-1&kind=RUNS_ON")
        #expect(r.status == 204)
        #expect(try await f.call("DELETE", "/api/v1/relations?from=pod%3Ashop%2Fweb-2&to=node%3Ak3s-1&kind=RUNS_ON").status == 404)
        r = try await f.call("POST", "/api/v1/relations", #"{"from":"pod:shop/web-2","to":"node:k3s-1","kind":"RUNS_ON"}"#)
        #expect(r.status == 201 && r.json?["kind"] == "RUNS_ON")
        #expect(try await f.call("DELETE", "/api/v1/assets/node%3Ak3s-1").status == 204)
        #expect(try await f.call("DELETE", "/api/v1/assets/node%3Ak3s-1").status == 404)
        r = try await f.call("GET", "/api/v1/assets/pod%3Ashop%2Fweb-2/lineage")
        #expect(r.json?["edges"]?.arrayValue?.isEmpty == true)
        r = try await f.call("GET", "/api/v1/stats")
        #expect(r.json?["total"] == 31 && r.json?["relations"] == 0 && r.json?["byType"] == [["key": "POD", "count": 31]])
        await f.stop()
    }

    @Test func badInputAndAuthGetClearErrorsAndLoseNothing() async throws {
        let f = try await Fixture.start("catalog-bad")
        defer { Task { await f.stop() } }
        _ = try await f.call("POST", "/api/v1/assets", #"{"type":"NODE","name":"keep-me"}"#)
        let cases: [(String, String, String?, String?, Int, String)] = [
            ("POST", "/api/v1/assets", "{not json", Self.writeToken, 400, "BAD_USER_INPUT"),
            ("POST", "/api/v1/assets", #"{"type":"SPACESHIP","name":"x"}"#, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("POST", "/api/v1/assets", #"{"type":"NODE"}"#, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("POST", "/api/v1/assets", #"{"type":"NODE","name":"a\u0000b"}"#, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("POST", "/api/v1/assets", #"{"type":"NODE","name":"x","properties":[1]}"#, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("GET", "/api/v1/assets?label=novalue", nil, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("GET", "/api/v1/assets?limit=0", nil, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("GET", "/api/v1/assets?after=%21%21", nil, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("GET", "/api/v1/assets/node%3Akeep-me/lineage?depth=11", nil, Self.writeToken, 400, "BAD_USER_INPUT"),
            ("POST", "/api/v1/batch", "{\"assets\":[" + Array(repeating: #"{"type":"NODE","name":"n"}"#, count: 8000).joined(separator: ",") + "]}", Self.writeToken, 413, "PAYLOAD_TOO_LARGE"),
            ("GET", "/api/v1/stats", nil, nil, 401, "UNAUTHENTICATED"),
            ("GET", "/api/v1/stats", nil, "not-a-known-token-at-all", 401, "UNAUTHENTICATED"),
            ("POST", "/api/v1/assets", #"{"type":"NODE","name":"y"}"#, Self.readToken, 403, "FORBIDDEN"),
            ("DELETE", "/api/v1/assets/node%3Akeep-me", nil, Self.readToken, 403, "FORBIDDEN"),
            ("PATCH", "/api/v1/assets/node%3Akeep-me", "{}", Self.writeToken, 405, "METHOD_NOT_ALLOWED"),
        ]
        for (method, path, body, token, status, code) in cases {
            let r = try await f.call(method, path, body, token: token)
            #expect(r.status == status, "\(method) \(path): \(String(describing: r.json))")
            #expect(Self.errorCode(r.json) == code, "\(method) \(path): \(String(describing: r.json))")
            #expect((r.json?["error"]?["message"]?.stringValue ?? "").count > 5)
        }
        #expect(try await f.call("PATCH", "/api/v1/assets/x", "{}").headers["allow"] == "DELETE, GET, PUT")
        // GraphQL: the same scopes, plus syntax, validation, depth and cost limits.
        var g = try await f.graphQL("{ stats { total } }", token: nil)
        #expect(g.status == 401 && Self.gqlCode(g.json) == "UNAUTHENTICATED")
        g = try await f.graphQL(#"mutation { deleteAsset(id: "node:keep-me") }"#, token: Self.readToken)
        #expect(g.status == 403 && Self.gqlCode(g.json) == "FORBIDDEN")
        g = try await f.graphQL("{ stats { total ")
        #expect(g.status == 400 && Self.gqlCode(g.json) == "GRAPHQL_PARSE_FAILED")
        g = try await f.graphQL("{ stats { nope } }")
        #expect(g.status == 400 && Self.gqlCode(g.json) == "GRAPHQL_VALIDATION_FAILED")
        // Each alias may read 500 assets with 7 fields each: 13 of them cost 52,013, over the default 50,000.
        let costly = "{ " + (0..<13).map { "a\($0): assets(first: 500) { nodes { id labels { key value } health { status reason } } }" }.joined(separator: " ") + " }"
        g = try await f.graphQL(costly)
        #expect(g.status == 400 && g.json["errors"]?[0]?["message"] == "query cost 52013 exceeds the limit of 50000 (lower `first` or select fewer fields)")
        #expect(try await f.graphQL(costly.replacingOccurrences(of: "first: 500", with: "first: 400")).status == 200)
        let tooDeep = try await Fixture.start("catalog-depth", extra: ["CORTEX_CATALOG_MAX_DEPTH": "3"])
        g = try await tooDeep.graphQL("{ assets { edges { node { health { status } } } } }")
        #expect(g.status == 400 && (g.json["errors"]?[0]?["message"]?.stringValue ?? "") == "query depth 5 exceeds the limit of 3")
        g = try await tooDeep.graphQL("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }")
        #expect(g.status == 200, "introspection is exempt from the depth limit")
        await tooDeep.stop()
        // Nothing was lost along the way, and the server is still up.
        #expect(try await f.call("GET", "/api/v1/stats").json?["total"] == 1)
        #expect(try await f.call("GET", "/readyz", token: nil).status == 200)
        await f.stop()
    }

    @Test func startWithoutTokensIsRefusedUnlessAnonymousIsAskedFor() async throws {
        let work = try temporaryDirectory("catalog-notokens")
        let suite = try await LocalSuite(workDirectory: work, outputDirectory: work, binDirectory: binDirectory)
        let child = try suite.supervisor.start(name: "catalog-api", executable: ExecutableLocator.path(of: "catalog-api", in: binDirectory),
                                               environment: ["CORTEX_REDIS_URL": suite.redis.url, "CORTEX_HTTP_PORT": "0"])
        #expect(await child.wait(timeout: .seconds(60)) == 2)
        #expect(child.output().contains("catalog-api has no tokens: set CORTEX_CATALOG_TOKENS"))
        let bad = try suite.supervisor.start(name: "catalog-api-bad", executable: ExecutableLocator.path(of: "catalog-api", in: binDirectory),
                                             environment: ["CORTEX_REDIS_URL": suite.redis.url, "CORTEX_HTTP_PORT": "0", "CORTEX_CATALOG_TOKENS": "admin:short"])
        #expect(await bad.wait(timeout: .seconds(60)) == 2)
        #expect(bad.output().contains("catalog token entry 1 must be read:<token> or write:<token>"))
        #expect(!bad.output().contains("short"), "a token never appears in the log")
        await suite.stop()
    }

    @Test func graphQLQueriesAndMutations() async throws {
        let f = try await Fixture.start("catalog-graphql")
        defer { Task { await f.stop() } }
        var g = try await f.graphQL("""
            mutation($a: AssetInput!) { addAsset(input: $a) { id version labels { key value } properties health { status } } }
            """, variables: ["a": ["type": "DEPLOYMENT", "name": "web", "namespace": "shop", "labels": [["key": "app", "value": "web"]], "properties": ["replicas": 3]]])
        #expect(g.json["data"]?["addAsset"] == ["id": "deployment:shop/web", "version": 1, "labels": [["key": "app", "value": "web"]], "properties": ["replicas": 3], "health": ["status": "UNKNOWN"]])
        g = try await f.graphQL(#"mutation { addAsset(input: {type: DEPLOYMENT, name: "web", namespace: "shop"}) { id } }"#)
        #expect(Self.gqlCode(g.json) == "CONFLICT")
        g = try await f.graphQL(#"mutation { updateAsset(id: "deployment:shop/web", expectedVersion: 2, input: {type: DEPLOYMENT, name: "web", namespace: "shop"}) { version } }"#)
        #expect(Self.gqlCode(g.json) == "CONFLICT")
        g = try await f.graphQL(#"mutation { updateAsset(id: "deployment:shop/web", expectedVersion: 1, input: {type: DEPLOYMENT, name: "web", namespace: "shop", health: {status: FAILING, reason: "0/3 ready"}}) { version health { status reason } } }"#)
        #expect(g.json["data"]?["updateAsset"] == ["version": 2, "health": ["status": "FAILING", "reason": "0/3 ready"]])
        let upsert = """
            mutation { upsertAssets(assets: [{type: REPLICASET, name: "web-7d9f", namespace: "shop"}, {type: POD, name: "web-7d9f-a", namespace: "shop"}],
                                    relations: [{from: "pod:shop/web-7d9f-a", to: "replicaset:shop/web-7d9f", kind: MANAGED_BY},
                                                {from: "replicaset:shop/web-7d9f", to: "deployment:shop/web", kind: MANAGED_BY}]) { created updated unchanged relations } }
            """
        g = try await f.graphQL(upsert)
        #expect(g.json["data"]?["upsertAssets"] == ["created": 2, "updated": 0, "unchanged": 0, "relations": 2])
        g = try await f.graphQL(upsert)
        #expect(g.json["data"]?["upsertAssets"] == ["created": 0, "updated": 0, "unchanged": 2, "relations": 0])
        g = try await f.graphQL(#"mutation { addRelation(input: {from: "pod:shop/web-7d9f-a", to: "deployment:shop/web", kind: DEPENDS_ON}) { from to kind discoveredBy } }"#)
        #expect(g.json["data"]?["addRelation"] == ["from": "pod:shop/web-7d9f-a", "to": "deployment:shop/web", "kind": "DEPENDS_ON", "discoveredBy": "test-writer"])
        g = try await f.graphQL(#"mutation { removeRelation(from: "pod:shop/web-7d9f-a", to: "deployment:shop/web", kind: DEPENDS_ON) }"#)
        #expect(g.json["data"]?["removeRelation"] == true)
        g = try await f.graphQL("""
            { asset(id: "pod:shop/web-7d9f-a") { name namespace }
              assets(filter: {namespace: "shop", type: POD}, first: 1) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
              search(text: "web 7d9f") { nodes { id } }
              up: lineage(id: "pod:shop/web-7d9f-a", direction: DOWNSTREAM, depth: 2) { nodes { id } edges { from to kind } truncated }
              one: lineage(id: "deployment:shop/web", direction: UPSTREAM, depth: 1) { nodes { id } }
              missing: lineage(id: "nope") { root }
              stats { total relations byType { key count } byHealth { key count } } }
            """, token: Self.readToken)
        let d = g.json["data"]
        #expect(g.json["errors"] == nil, "\(g.json)")
        #expect(d?["asset"] == ["name": "web-7d9f-a", "namespace": "shop"])
        #expect(d?["assets"]?["edges"]?[0]?["node"]?["id"] == "pod:shop/web-7d9f-a" && d?["assets"]?["pageInfo"]?["hasNextPage"] == false)
        #expect(d?["search"]?["nodes"] == [["id": "pod:shop/web-7d9f-a"], ["id": "replicaset:shop/web-7d9f"]])
        #expect(d?["up"]?["nodes"] == [["id": "pod:shop/web-7d9f-a"], ["id": "replicaset:shop/web-7d9f"], ["id": "deployment:shop/web"]])
        #expect(d?["up"]?["truncated"] == false && d?["up"]?["edges"]?.arrayValue?.count == 2)
        #expect(d?["one"]?["nodes"] == [["id": "deployment:shop/web"], ["id": "replicaset:shop/web-7d9f"]])
        #expect(d?["missing"] == .null)
        #expect(d?["stats"]?["total"] == 3 && d?["stats"]?["relations"] == 2)
        #expect(d?["stats"]?["byHealth"] == [["key": "UNKNOWN", "count": 2], ["key": "FAILING", "count": 1]])
        g = try await f.graphQL(#"mutation { deleteAsset(id: "replicaset:shop/web-7d9f") }"#)
        #expect(g.json["data"]?["deleteAsset"] == true)
        g = try await f.graphQL(#"{ stats { total relations } }"#)
        #expect(g.json["data"]?["stats"] == ["total": 2, "relations": 0])
        // /metrics: latency by route and by GraphQL operation, assets by type.
        let text = try await scrape(port: f.port)
        #expect(text.contains(#"cortex_catalog_graphql_seconds_count{operation="mutation",field="upsertAssets"} 2"#))
        #expect(text.contains(#"cortex_catalog_request_seconds_count{route="/graphql",method="POST",status="200"}"#))
        #expect(metric(text, #"cortex_catalog_assets{type="POD"}"#) == 1)
        #expect(metric(text, #"cortex_catalog_assets{type="REPLICASET"}"#) == 0)
        await f.stop()
    }

    /// Runs scripts/catalog-stream (a Python graphql-transport-ws / SSE client) and returns it.
    static func streamClient(_ suite: LocalSuite, name: String, _ arguments: [String]) throws -> ChildProcess {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try suite.supervisor.start(name: name, executable: URL(fileURLWithPath: try python(root)),
                                          arguments: [root.appendingPathComponent("scripts/catalog-stream").path] + arguments)
    }

    /// The Python with `websockets`: CORTEX_TEST_PYTHON (scripts/test sets it), else whatever scripts/python-env makes.
    static func python(_ root: URL) throws -> String {
        if let p = ProcessInfo.processInfo.environment["CORTEX_TEST_PYTHON"] { return p }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/python-env").path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let path = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0, !path.isEmpty else { throw ConfigurationError("scripts/python-env failed: no Python with websockets for the catalog-stream client") }
        return path
    }

    static func messages(_ client: ChildProcess) -> [JSONValue] {
        client.output().split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    @Test func subscriptionsAndEventsReachClientsOfEveryReplica() async throws {
        let f = try await Fixture.start("catalog-live")
        defer { Task { await f.stop() } }
        // A second replica on the same Redis: writes go to it, subscribers sit on the first.
        let (_, port2) = try await f.suite.startCatalog(name: "catalog-api-2", environment: ["CORTEX_CATALOG_TOKENS": "\(Self.writer),\(Self.reader)"])
        let second = Fixture(suite: f.suite, port: port2)
        let added = try Self.streamClient(f.suite, name: "ws-added", ["ws", f.base, "--token", Self.readToken, "--count", "2", "--timeout", "120",
                                                                     "--query", "subscription { assetAdded(type: NODE) { id type version } }"])
        let changed = try Self.streamClient(f.suite, name: "ws-changed", ["ws", f.base, "--token", Self.readToken, "--header-auth", "--count", "1", "--timeout", "120",
                                                                         "--query", "subscription { assetChanged { id version health { status } } }"])
        let deleted = try Self.streamClient(f.suite, name: "ws-deleted", ["ws", f.base, "--token", Self.readToken, "--count", "1", "--timeout", "120",
                                                                         "--query", "subscription { assetDeleted { id type } }"])
        let progress = try Self.streamClient(f.suite, name: "ws-progress", ["ws", f.base, "--token", Self.readToken, "--count", "1", "--timeout", "120",
                                                                           "--query", #"subscription { workerProgress(worker: "worker-k3s01-1") { event worker itemId done total runId } }"#])
        let sse = try Self.streamClient(f.suite, name: "sse", ["sse", f.base, "--token", Self.readToken, "--count", "3", "--timeout", "120",
                                                               "--types", "ASSET_ADDED,ASSET_DELETED"])
        // Every stream is registered with the relay before anything is written.
        // (The clients' own timeouts count from their start, Python's start-up and this wait included: they are
        // far longer than any of it, and a client exits as soon as it has its messages.)
        let listening = await eventually(timeout: .seconds(60)) {
            metric((try? await scrape(port: f.port)) ?? "", "cortex_catalog_event_listeners") == 5
        }
        #expect(listening, "\(Self.messages(added)) \(Self.messages(sse))")

        #expect(try await second.call("POST", "/api/v1/assets", #"{"type":"POD","name":"not-a-node"}"#).status == 201)
        #expect(try await second.call("POST", "/api/v1/assets", #"{"type":"NODE","name":"n1"}"#).status == 201)
        #expect(try await second.call("PUT", "/api/v1/assets/node%3An1", #"{"type":"NODE","name":"n1","health":{"status":"FAILING"}}"#).status == 200)
        #expect(try await second.call("POST", "/api/v1/assets", #"{"type":"NODE","name":"n2"}"#).status == 201)
        #expect(try await second.call("DELETE", "/api/v1/assets/pod%3Anot-a-node").status == 204)
        // Worker progress travels on cortex:workers:status, as the workers publish it.
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: f.suite.redis.port))
        defer { redis.close() }
        let bus = MessageBus(redis: redis, source: "worker", metrics: CortexMetrics(), decoder: EnvelopeDecoder(), logger: Logger(label: "test"))
        try await bus.publish(.TASK_PROGRESS, runID: "run-1", data: ["item_id": "run-1.inventory.0.1", "worker": "someone-else", "done": 1, "total": 9])
        try await bus.publish(.TASK_PROGRESS, runID: "run-1", data: ["item_id": "run-1.inventory.0.1", "worker": "worker-k3s01-1", "done": 3, "total": 9])

        for client in [added, changed, deleted, progress, sse] { #expect(await client.wait(timeout: .seconds(150)) == 0, "\(client.name): \(client.output())") }
        let nexts = { (c: ChildProcess) in Self.messages(c).filter { $0["type"] == "next" }.map { $0["payload"]?["data"] ?? .null } }
        #expect(nexts(added) == [["assetAdded": ["id": "node:n1", "type": "NODE", "version": 1]], ["assetAdded": ["id": "node:n2", "type": "NODE", "version": 1]]])
        #expect(nexts(changed) == [["assetChanged": ["id": "node:n1", "version": 2, "health": ["status": "FAILING"]]]])
        #expect(nexts(deleted) == [["assetDeleted": ["id": "pod:not-a-node", "type": "POD"]]])
        #expect(nexts(progress) == [["workerProgress": ["event": "TASK_PROGRESS", "worker": "worker-k3s01-1", "itemId": "run-1.inventory.0.1", "done": 3, "total": 9, "runId": "run-1"]]])
        let events = Self.messages(sse).filter { $0["event"] != nil }
        #expect(events.map { $0["event"]?.stringValue ?? "" } == ["ASSET_ADDED", "ASSET_ADDED", "ASSET_ADDED"])
        #expect(events.map { $0["data"]?["data"]?["asset"]?["id"]?.stringValue ?? "" } == ["pod:not-a-node", "node:n1", "node:n2"])
        #expect(events.allSatisfy { $0["data"]?["source"] == "catalog-api" })
        #expect(Self.messages(added).first == ["type": "open", "subprotocol": "graphql-transport-ws"])
        await f.stop()
    }

    @Test func graphQLTransportWSProtocolErrorsCloseWithTheirCodes() async throws {
        let f = try await Fixture.start("catalog-wsproto")
        defer { Task { await f.stop() } }
        let runs: [(String, [String], JSONValue)] = [
            ("ws-no-init", ["--no-init", "--query", "{ stats { total } }"], ["type": "closed", "code": 4401, "reason": "Unauthorized"]),
            ("ws-bad-token", ["--token", "wrong-token-wrong-token", "--query", "{ stats { total } }"], ["type": "closed", "code": 4403, "reason": "Forbidden: unknown bearer token"]),
            ("ws-twice", ["--token", Self.readToken, "--raw", #"{"type":"connection_init"}"#], ["type": "closed", "code": 4429, "reason": "Too many initialisation requests"]),
            ("ws-garbage", ["--token", Self.readToken, "--raw", "not json"], ["type": "closed", "code": 4400, "reason": "Invalid message received: not a JSON object with a type"]),
        ]
        for (name, args, last) in runs {
            let c = try Self.streamClient(f.suite, name: name, ["ws", f.base, "--timeout", "120"] + args)
            #expect(await c.wait(timeout: .seconds(150)) == 0)
            #expect(Self.messages(c).last == last, "\(name): \(c.output())")
        }
        // A read token can query over the socket but not mutate; the answer is an `error` for that operation only.
        let c = try Self.streamClient(f.suite, name: "ws-mutation", ["ws", f.base, "--token", Self.readToken, "--count", "1", "--timeout", "120",
                                                                    "--query", #"mutation { deleteAsset(id: "x") }"#])
        #expect(await c.wait(timeout: .seconds(150)) == 0)
        #expect(Self.messages(c).contains { $0["type"] == "error" && $0["payload"]?[0]?["extensions"]?["code"] == "FORBIDDEN" })
        let q = try Self.streamClient(f.suite, name: "ws-query", ["ws", f.base, "--token", Self.readToken, "--timeout", "120", "--query", "{ stats { total } }"])
        #expect(await q.wait(timeout: .seconds(150)) == 0)
        // (The pong for the client's ping may come in between; it belongs to no operation.)
        #expect(Self.messages(q).filter { $0["id"] == "1" } == [["id": "1", "type": "next", "payload": ["data": ["stats": ["total": 0]]]], ["id": "1", "type": "complete"]])
        await f.stop()
    }

    @Test func filtersAndLineageReadOnlyTheirIndexesNotTheCatalog() async throws {
        let f = try await Fixture.start("catalog-indexes")
        defer { Task { await f.stop() } }
        // 2,000 pods across 40 namespaces, each on one of 10 nodes.
        for chunk in 0..<4 {
            var assets: [JSONValue] = []
            var relations: [JSONValue] = []
            for i in (chunk * 500)..<((chunk + 1) * 500) {
                assets.append(["type": "POD", "name": .string("p\(i)"), "namespace": .string("ns\(i % 40)")])
                relations.append(["from": .string("pod:ns\(i % 40)/p\(i)"), "to": .string("node:n\(i % 10)"), "kind": "RUNS_ON"])
            }
            if chunk == 0 { for n in 0..<10 { assets.append(["type": "NODE", "name": .string("n\(n)")]) } }
            let r = try await f.call("POST", "/api/v1/batch", JSONValue.object(["assets": .array(assets), "relations": .array(relations)]).description)
            #expect(r.status == 200, "\(String(describing: r.json))")
        }
        let redis = RedisClient(endpoint: RedisEndpoint(host: "127.0.0.1", port: f.suite.redis.port))
        defer { redis.close() }
        func calls() async throws -> [String: Int] {
            let info = try await redis.send("INFO", "commandstats").orThrow().string ?? ""
            var out: [String: Int] = [:]
            for line in info.split(separator: "\r\n") where line.hasPrefix("cmdstat_") {
                let name = line.dropFirst(8).prefix { $0 != ":" }
                let parts = line.split(separator: "calls=")  // calls=N,usec=...,rejected_calls=...,failed_calls=...
                if parts.count > 1 { out[String(name)] = Int(parts[1].prefix(while: { $0.isNumber })) }
            }
            return out
        }
        try await redis.send("CONFIG", "RESETSTAT").orThrow()
        // ns7 holds 50 of the 2,000 pods: the listing walks that index and checks the type index per id.
        let page = try await f.call("GET", "/api/v1/assets?namespace=ns7&type=POD&limit=500").json
        #expect(Self.ids(page).count == 50)
        var c = try await calls()
        #expect((c["zscore"] ?? 0) <= 50, "only the smaller index is walked: \(c)")
        #expect((c["zrangebylex"] ?? 0) <= 2 && c["scan"] == nil && c["keys"] == nil && (c["hmget"] ?? 0) == 50, "\(c)")
        try await redis.send("CONFIG", "RESETSTAT").orThrow()
        let lineage = try await f.call("GET", "/api/v1/assets/node%3An3/lineage?direction=UPSTREAM&depth=3").json
        #expect(lineage?["nodes"]?.arrayValue?.count == 201)
        c = try await calls()
        #expect((c["hgetall"] ?? 0) == 201 && c["scan"] == nil && c["keys"] == nil && (c["hmget"] ?? 0) == 201, "one edge-hash read per node reached: \(c)")
        await f.stop()
    }
}
