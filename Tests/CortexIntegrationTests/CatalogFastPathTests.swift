import CortexCatalog
import CortexControl
import CortexCore
import Foundation
import Testing

/// catalog-api's GraphQL fast path (FastQueryExecutor) against the GraphQL library's execution: two real
/// catalog-api processes on one private redis-server, one with the fast path and one with
/// CORTEX_CATALOG_FAST_PATH=false. Every query must get the same status and the same bytes from both,
/// and the fast process's /metrics must show which path answered, so a fast path that silently stepped
/// aside would fail the test rather than pass it by comparing the library with itself.
@Suite(.serialized) struct CatalogFastPathTests {
    struct Fixture {
        let suite: LocalSuite
        let fast: Int
        let library: Int

        static func start(_ name: String, extra: [String: String] = [:]) async throws -> Fixture {
            let work = try temporaryDirectory(name)
            let suite = try await LocalSuite(workDirectory: work, outputDirectory: work, binDirectory: binDirectory)
            let env = ["CORTEX_CATALOG_TOKENS": "\(CatalogAPITests.writer),\(CatalogAPITests.reader)"].merging(extra) { $1 }
            let (_, fast) = try await suite.startCatalog(name: "catalog-fast", environment: env)
            let (_, library) = try await suite.startCatalog(name: "catalog-library", environment: env.merging(["CORTEX_CATALOG_FAST_PATH": "false"]) { $1 })
            return Fixture(suite: suite, fast: fast, library: library)
        }

        /// POSTs a GraphQL request and returns the status and the raw body.
        static func post(_ port: Int, _ query: String, variables: JSONValue = [:], operationName: String? = nil) async throws -> (status: Int, body: String) {
            var request: [String: JSONValue] = ["query": .string(query), "variables": variables]
            if let operationName { request["operationName"] = .string(operationName) }
            let r = try await HTTPClient.request("POST", url: "http://127.0.0.1:\(port)/graphql",
                                                 headers: ["Authorization": "Bearer \(CatalogAPITests.readToken)", "Content-Type": "application/json"],
                                                 body: Array(JSONValue.object(request).description.utf8))
            return (r.status, String(decoding: r.body, as: UTF8.self))
        }

        /// The fast process's executions by path and documents by outcome.
        func counters() async throws -> (fast: Double, library: Double, cached: Double, parsed: Double) {
            let text = try await scrape(port: fast)
            return (metric(text, #"cortex_catalog_graphql_executions_total{path="fast"}"#) ?? 0,
                    metric(text, #"cortex_catalog_graphql_executions_total{path="library"}"#) ?? 0,
                    metric(text, #"cortex_catalog_graphql_documents_total{outcome="cached"}"#) ?? 0,
                    metric(text, #"cortex_catalog_graphql_documents_total{outcome="parsed"}"#) ?? 0)
        }

        /// Sends the request to both processes and expects the same status and bytes; `fast` says
        /// which path the fast process must have taken (nil: neither, the request was refused before
        /// execution). Returns the body.
        @discardableResult
        func compare(_ query: String, variables: JSONValue = [:], operationName: String? = nil, fast expectFast: Bool?,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
            let before = try await counters()
            let a = try await Self.post(fast, query, variables: variables, operationName: operationName)
            let after = try await counters()
            let b = try await Self.post(library, query, variables: variables, operationName: operationName)
            #expect(a.status == b.status, "\(query)", sourceLocation: sourceLocation)
            #expect(a.body == b.body, "fast:\n\(a.body)\nlibrary:\n\(b.body)", sourceLocation: sourceLocation)
            #expect(after.fast - before.fast == (expectFast == true ? 1 : 0), "fast path \(expectFast == true ? "not taken" : "taken"): \(query)",
                    sourceLocation: sourceLocation)
            #expect(after.library - before.library == (expectFast == false ? 1 : 0), "\(query)", sourceLocation: sourceLocation)
            return a.body
        }

        func stop() async { await suite.stop() }
    }

    /// A small cluster: assets with labels, owners, health reasons and properties that exercise the
    /// JSON writer (nested objects, arrays, fractions, large and negative numbers, escapes, non-ASCII),
    /// one without a namespace, and relations three levels deep.
    static func seed(_ port: Int) async throws {
        let assets: [JSONValue] = [
            ["type": "NODE", "name": "n1", "labels": ["zone": "a", "arch": "amd64"], "owner": "platform",
             "health": ["status": "OK", "reason": "Ready"],
             "properties": ["cpu": 8, "load": 0.75, "big": 12_345_678_901, "neg": -3, "tiny": 1.5e-7, "huge": 1e300,
                            "nested": ["list": [1, "two", true, .null, ["deep": "x"]]], "quote": "say \"hi\"\\ \n\t/ é 漢 🙂", "empty": [:]]],
            ["type": "DEPLOYMENT", "name": "web", "namespace": "shop", "labels": ["app": "web"], "properties": ["replicas": 3]],
            ["type": "REPLICASET", "name": "web-1", "namespace": "shop", "labels": ["app": "web"]],
            ["type": "POD", "name": "web-1-a", "namespace": "shop", "labels": ["app": "web", "tier": "front"],
             "health": ["status": "FAILING", "reason": "CrashLoopBackOff"]],
            ["type": "POD", "name": "web-1-b", "namespace": "shop", "labels": ["app": "web"]],
            ["type": "POD", "name": "db-0", "namespace": "data", "owner": "dba"],
        ]
        let relations: [JSONValue] = [
            ["from": "pod:shop/web-1-a", "to": "replicaset:shop/web-1", "kind": "MANAGED_BY"],
            ["from": "pod:shop/web-1-b", "to": "replicaset:shop/web-1", "kind": "MANAGED_BY"],
            ["from": "replicaset:shop/web-1", "to": "deployment:shop/web", "kind": "MANAGED_BY"],
            ["from": "pod:shop/web-1-a", "to": "node:n1", "kind": "RUNS_ON"],
            ["from": "pod:data/db-0", "to": "node:n1", "kind": "RUNS_ON"],
            ["from": "pod:shop/web-1-a", "to": "pod:data/db-0", "kind": "DEPENDS_ON"],
        ]
        let r = try await HTTPClient.request("POST", url: "http://127.0.0.1:\(port)/api/v1/batch",
                                             headers: ["Authorization": "Bearer \(CatalogAPITests.writeToken)", "Content-Type": "application/json"],
                                             body: Array(JSONValue.object(["assets": .array(assets), "relations": .array(relations)]).description.utf8))
        #expect(r.status == 200, "\(r.text)")
    }

    static let allAssetFields = "__typename id type name namespace owner labels { __typename key value } properties health { __typename status reason checkedAt } discoveredBy firstSeen lastSeen version"

    @Test func fastPathWritesTheLibrarysBytes() async throws {
        let f = try await Fixture.start("catalog-fastpath")
        defer { Task { await f.stop() } }
        try await Self.seed(f.fast)

        // Every field of every type the fast path writes, with __typename everywhere.
        var body = try await f.compare(#"{ asset(id: "node:n1") { \#(Self.allAssetFields) } }"#, fast: true)
        #expect(body.contains(#""big":12345678901"#) && body.contains(#""huge":1e+300"#), "\(body)")
        try await f.compare("""
            query Page($filter: AssetFilter, $first: Int) {
              __typename
              assets(filter: $filter, first: $first) {
                __typename
                edges { __typename cursor node { \(Self.allAssetFields) } }
                nodes { id }
                pageInfo { __typename hasNextPage endCursor }
              }
            }
            """, variables: ["filter": ["namespace": "shop", "type": "POD"], "first": 1], fast: true)
        // The next page, from the cursor of the first.
        body = try await f.compare(#"{ assets(filter: {namespace: "shop"}, first: 2) { pageInfo { endCursor } } }"#, fast: true)
        let cursor = try JSONText.parse(body)["data"]?["assets"]?["pageInfo"]?["endCursor"]?.stringValue
        #expect(cursor != nil)
        try await f.compare(#"query($after: String) { assets(filter: {namespace: "shop"}, first: 2, after: $after) { nodes { id name } pageInfo { hasNextPage endCursor } } }"#,
                            variables: ["after": .string(cursor ?? "")], fast: true)
        // Filters by label, owner, health, text; the defaults of `first`.
        try await f.compare(#"{ a: assets(filter: {label: "app=web"}) { nodes { id labels { key value } } } b: assets(filter: {owner: "dba", health: UNKNOWN}) { nodes { id owner health { status } } } c: assets(filter: {text: "web"}) { edges { cursor } } }"#, fast: true)

        // Lineage, nested, with aliases, an enum variable and a variable's default.
        try await f.compare("""
            query Walk($id: ID!, $dir: LineageDirection, $depth: Int = 3) {
              down: lineage(id: $id, direction: $dir, depth: $depth) {
                __typename root truncated
                nodes { id type labels { key } health { status reason } properties }
                edges { __typename from to kind discoveredBy observedAt }
              }
              up: lineage(id: "deployment:shop/web", direction: UPSTREAM) { root nodes { id name } edges { from to } }
              both: lineage(id: "node:n1", depth: 1) { nodes { id } }
            }
            """, variables: ["id": "pod:shop/web-1-a", "dir": "DOWNSTREAM"], fast: true)

        // Missing: a nullable asset and lineage are null; an ID given as a number is an ID.
        try await f.compare(#"query($id: ID!) { asset(id: "nope") { id } lineage(id: "nope") { root } byNumber: asset(id: $id) { id } }"#,
                            variables: ["id": 42], fast: true)

        // Fragments: named, inline with and without a type condition, nested, a key selected twice
        // (merged, at its first place), and one fragment spread twice.
        try await f.compare("""
            query {
              assets(filter: {namespace: "shop"}, first: 3) {
                edges { node { ...Core ... on Asset { labels { key } } } }
                edges { cursor node { name ...Core } }
                ... { pageInfo { hasNextPage } }
              }
              lineage(id: "replicaset:shop/web-1") { ...Walk }
            }
            fragment Core on Asset { id type ... { version } health { status } }
            fragment Walk on Lineage { root nodes { ...Core } edges { from } }
            """, fast: true)

        // @skip and @include, with literals and variables.
        try await f.compare("""
            query($yes: Boolean!, $no: Boolean!) {
              asset(id: "node:n1") { id name @skip(if: $yes) owner @include(if: $yes) labels @include(if: $no) { key }
                                     ... on Asset @skip(if: false) { version } health @include(if: true) @skip(if: $yes) { status } }
            }
            """, variables: ["yes": true, "no": false], fast: true)

        // Conflicting fields under one response key (the library does not refuse them): the first one's
        // name and arguments, every one's sub-selections.
        try await f.compare(#"{ asset(id: "node:n1") { x: id x: name } }"#, fast: true)
        try await f.compare(#"{ a: asset(id: "node:n1") { id } a: asset(id: "pod:data/db-0") { name } }"#, fast: true)

        // Several operations, one chosen by name.
        try await f.compare(#"query A { asset(id: "node:n1") { id } } query B { asset(id: "pod:data/db-0") { id owner } }"#, operationName: "B", fast: true)
        await f.stop()
    }

    @Test func whatTheFastPathLeavesToTheLibraryIsAnsweredTheSame() async throws {
        let f = try await Fixture.start("catalog-fallback")
        defer { Task { await f.stop() } }
        try await Self.seed(f.fast)

        // Another root field beside the fast ones: the library answers the whole operation.
        let body = try await f.compare(#"{ stats { total relations } assets(first: 1) { nodes { id } } }"#, fast: false)
        #expect(try JSONText.parse(body)["data"]?["stats"]?["total"] == 6, "\(body)")
        try await f.compare(#"{ search(text: "web") { nodes { id } } }"#, fast: false)
        try await f.compare("{ __schema { queryType { name } } }", fast: false)
        // Resolver errors (a page below 1, a depth past 10) are reported by the library, located.
        try await f.compare(#"{ assets(first: 0) { nodes { id } } }"#, fast: false)
        try await f.compare(#"{ ok: asset(id: "node:n1") { id } bad: lineage(id: "node:n1", depth: 11) { root } }"#, fast: false)
        // Variables the library refuses: a string for an Int, a missing required one, an unknown enum value.
        try await f.compare(#"query($n: Int) { assets(first: $n) { nodes { id } } }"#, variables: ["n": "5"], fast: false)
        try await f.compare(#"query($id: ID!) { asset(id: $id) { id } }"#, fast: false)
        try await f.compare(#"query($d: LineageDirection) { lineage(id: "node:n1", direction: $d) { root } }"#, variables: ["d": "SIDEWAYS"], fast: false)
        try await f.compare(#"query($f: AssetFilter) { assets(filter: $f) { nodes { id } } }"#, variables: ["f": ["colour": "red"]], fast: false)
        // A directive whose condition is a required variable not given.
        try await f.compare(#"query($c: Boolean!) { asset(id: "node:n1") { id @skip(if: $c) } }"#, fast: false)
        // Requests refused before execution (validation, limits) reach neither path.
        try await f.compare(#"{ asset(id: "node:n1") { nosuchfield } }"#, fast: nil)
        try await f.compare(#"query($c: Boolean) { asset(id: "node:n1") { id @skip(if: $c) } }"#, fast: nil)

        // Mutations run on the library and are visible to the fast path's next read.
        let r = try await HTTPClient.request("POST", url: "http://127.0.0.1:\(f.fast)/graphql",
                                             headers: ["Authorization": "Bearer \(CatalogAPITests.writeToken)", "Content-Type": "application/json"],
                                             body: Array(#"{"query":"mutation { addAsset(input: {type: NODE, name: \"n2\"}) { id version } }"}"#.utf8))
        #expect(String(decoding: r.body, as: UTF8.self).trimmingCharacters(in: .newlines) == #"{"data":{"addAsset":{"id":"node:n2","version":1}}}"#)
        try await f.compare(#"{ asset(id: "node:n2") { id version discoveredBy } }"#, fast: true)
        await f.stop()
    }

    @Test func documentCacheServesRepeatedTextsAndLimitsStillReadVariables() async throws {
        // A cost limit that a page of 500 exceeds and a page of 5 does not.
        let f = try await Fixture.start("catalog-doccache", extra: ["CORTEX_CATALOG_MAX_COST": "5000"])
        defer { Task { await f.stop() } }
        try await Self.seed(f.fast)
        let query = "query($n: Int) { assets(first: $n) { edges { cursor node { id name type namespace owner discoveredBy firstSeen lastSeen version } } } }"
        let c0 = try await f.counters()
        let first = try await Fixture.post(f.fast, query, variables: ["n": 5])
        let c1 = try await f.counters()
        #expect(c1.parsed - c0.parsed == 1 && c1.cached == c0.cached)
        let second = try await Fixture.post(f.fast, query, variables: ["n": 5])
        let c2 = try await f.counters()
        #expect(c2.cached - c1.cached == 1 && c2.parsed == c1.parsed, "the second request of the same text comes from the cache")
        #expect(first.status == 200 && second.body == first.body && first.body.contains("node:n1"), "\(first.body)")
        #expect(c2.fast - c0.fast == 2)
        // The same (cached) text with a variable that makes it too costly is still refused.
        let costly = try await Fixture.post(f.fast, query, variables: ["n": 500])
        #expect(costly.status == 400 && costly.body.contains("QUERY_TOO_COSTLY"), "\(costly.body)")
        // Different variables, same cached document: the answer follows the variables.
        let one = try await Fixture.post(f.fast, query, variables: ["n": 1])
        #expect(try JSONText.parse(one.body)["data"]?["assets"]?["edges"]?.arrayValue?.count == 1, "\(one.body)")
        // A cached document still needs the scope: an unauthenticated caller is refused.
        let anonymous = try await HTTPClient.request("POST", url: "http://127.0.0.1:\(f.fast)/graphql", headers: ["Content-Type": "application/json"],
                                                     body: Array(JSONValue.object(["query": .string(query), "variables": ["n": 1]]).description.utf8))
        #expect(anonymous.status == 401, "\(anonymous.text)")
        await f.stop()
    }

    @Test func resultSizeLimitCountsTheFastPathsValuesAsTheLibrarysResult() async throws {
        let f = try await Fixture.start("catalog-fastsize")
        defer { Task { await f.stop() } }
        try await Self.seed(f.fast)
        let query = "{ assets { nodes { id name type namespace owner discoveredBy firstSeen lastSeen version labels { key value } properties health { status reason } } pageInfo { hasNextPage } } }"
        let reference = try await Fixture.post(f.library, query)
        // Every object, list, leaf and null in `data`, `data` itself included: what the limit counts.
        func count(_ v: JSONValue) -> Int {
            switch v {
            case .array(let a): return a.reduce(1) { $0 + count($1) }
            case .object(let o): return o.values.reduce(1) { $0 + count($1) }
            default: return 1
            }
        }
        let nodes = count(try JSONText.parse(reference.body)["data"] ?? .null)
        #expect(nodes >= 100, "the limit cannot be set below 100: \(nodes)")
        // A third process whose limit is exactly this result's size: it passes; one value more does not.
        let (_, limited) = try await f.suite.startCatalog(name: "catalog-limited", environment: [
            "CORTEX_CATALOG_TOKENS": "\(CatalogAPITests.writer),\(CatalogAPITests.reader)", "CORTEX_CATALOG_MAX_RESULT_NODES": String(nodes),
        ])
        let exact = try await Fixture.post(limited, query)
        #expect(exact.body == reference.body, "\(exact.body)")
        let oneMore = try await Fixture.post(limited, query.replacingOccurrences(of: "{ assets", with: "{ __typename assets"))
        #expect(oneMore.body.contains("RESULT_TOO_LARGE"), "\(oneMore.body)")
        let text = try await scrape(port: limited)
        #expect(metric(text, #"cortex_catalog_graphql_executions_total{path="fast"}"#) == 2, "both answered by the fast path")
        await f.stop()
    }
}
