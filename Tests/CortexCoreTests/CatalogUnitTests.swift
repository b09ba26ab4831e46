@testable import CatalogServer
@testable import CortexCatalog
import CortexCore
import GraphQL
import Testing

/// The catalog's pure parts: ids, words, cursors, tokens and the query limits.
@Suite struct CatalogUnitTests {
    @Test func idsAreDerivedFromTypeNamespaceAndName() {
        #expect(AssetInput(type: .POD, name: "web-1", namespace: "shop").resolvedID == "pod:shop/web-1")
        #expect(AssetInput(type: .PERSISTENT_VOLUME_CLAIM, name: "data").resolvedID == "persistent_volume_claim:data")
        #expect(AssetInput(id: "", type: .NODE, name: "n").resolvedID == "node:n")
        #expect(AssetInput(id: "custom", type: .NODE, name: "n").resolvedID == "custom")
    }

    @Test func wordsAreLowercasedRunsOfLettersAndDigits() {
        #expect(CatalogValidation.words("pod:Shop/web-7d9f_A") == ["pod", "shop", "web", "7d9f", "a"])
        #expect(CatalogValidation.words("--//--").isEmpty)
    }

    @Test func validationNamesTheField() {
        #expect(throws: CatalogError(.invalid, "assets[3].name must not be empty")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: ""), at: "assets[3]")
        }
        #expect(throws: CatalogError(.invalid, "asset.labels: key 'a=b' must not contain '='")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: "n", labels: ["a=b": "c"]))
        }
        #expect(throws: CatalogError(.invalid, "asset.properties must be a JSON object")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: "n", properties: [1, 2]))
        }
    }

    /// The hand-written JSON of the hot paths (batches, pages, change events) is what the `Codable`
    /// conformances write and read, so clients and stored records cannot tell them apart.
    @Test func handWrittenJSONMatchesTheCodableForms() throws {
        let full = Asset(id: "pod:shop/web-1", type: .POD, name: "web-1", namespace: "shop", owner: "team-a", labels: ["app": "web", "tier": "1"],
                         properties: ["restarts": 2, "image": "r/web:1", "nested": ["a": [true, .null]]],
                         health: Health(status: .DEGRADED, reason: "CrashLoop", checkedAt: "2026-11-28T03:00:00.000Z"), discoveredBy: "worker-1",
                         firstSeen: "2026-11-28T03:00:00.000Z", lastSeen: "2026-11-28T04:00:00.000Z", version: 3)
        let bare = Asset(id: "node:n", type: .NODE, name: "n", namespace: nil, owner: nil, labels: [:], properties: .object([:]),
                         health: Health(status: .UNKNOWN), discoveredBy: "w", firstSeen: "t", lastSeen: "t", version: 1)
        for asset in [full, bare] {
            #expect(asset.json == JSONValue.of(asset))
            let added = AssetChange.added(asset).envelope(source: "catalog-api")
            #expect(added.type == .ASSET_ADDED && added.data == AssetAdded(asset: JSONValue.of(asset)).data)
            let changed = AssetChange.changed(asset, previousHealth: .OK).envelope(source: "catalog-api")
            #expect(changed.type == .ASSET_CHANGED && changed.data == AssetChanged(asset: JSONValue.of(asset), previousHealth: "OK").data)
            #expect(try changed.payload(AssetChanged.self).previousHealth == "OK")
        }
        let relation = Relation(from: "pod:shop/web-1", to: "node:n", kind: .RUNS_ON, discoveredBy: "w", observedAt: "2026-11-28T03:00:00.000Z")
        #expect(relation.json == JSONValue.of(relation))
        #expect(try Relation(json: relation.json) == relation)

        let inputs = [
            AssetInput(id: "x", type: .POD, name: "web-1", namespace: "shop", owner: "o", labels: ["app": "web"], properties: ["a": 1],
                       health: Health(status: .OK, reason: "fine", checkedAt: "2026-11-28T03:00:00Z"), discoveredBy: "w", expectedVersion: 4),
            AssetInput(type: .NODE, name: "n"),
        ]
        for input in inputs {
            #expect(input.json == JSONValue.of(input))
            #expect(try AssetInput(json: input.json, at: "asset") == input)
            #expect(try AssetInput(json: JSONValue.of(input), at: "asset") == (try JSONValue.of(input).decode(AssetInput.self)))
        }
        let relationInput = RelationInput(from: "a", to: "b", kind: .MOUNTS, discoveredBy: "w")
        #expect(relationInput.json == JSONValue.of(relationInput))
        #expect(try RelationInput(json: relationInput.json, at: "relation") == relationInput)
        // Refusals name the field, as the Decodable path did.
        #expect(throws: CatalogError(.invalid, "missing field 'assets[2].name'")) { try AssetInput(json: ["type": "NODE"], at: "assets[2]") }
        #expect(throws: CatalogError.self) { try AssetInput(json: ["type": "SPACESHIP", "name": "x"], at: "asset") }
        #expect(throws: CatalogError(.invalid, "field 'asset.labels' must map keys to strings")) {
            try AssetInput(json: ["type": "NODE", "name": "x", "labels": ["k": 1]], at: "asset")
        }
        #expect(throws: CatalogError(.invalid, "field 'asset.expectedVersion' must be a whole number")) {
            try AssetInput(json: ["type": "NODE", "name": "x", "expectedVersion": 1.5], at: "asset")
        }
        #expect(throws: CatalogError.self) { try RelationInput(json: ["from": "a", "to": "b", "kind": "LIKES"], at: "relation") }
    }

    /// A stored document reads back as the asset that was written.
    @Test func storedRecordsAssembleIntoTheAssetWritten() throws {
        let input = AssetInput(type: .POD, name: "web-1", namespace: "shop", labels: ["app": "web"], properties: ["restarts": 2],
                               health: Health(status: .FAILING, reason: "OOMKilled"))
        let (record, asset) = try CatalogStore.prepare(input, id: input.resolvedID, by: "worker-1", nowMs: 1_795_000_000_000)
        let doc = try #require(record["doc"]?.stringValue)
        var content = try JSONText.parse(try #require(record["fp"]?.stringValue)).objectValue ?? [:]
        content["discoveredBy"] = "worker-1"
        #expect(try JSONText.parse(doc) == .object(content), "the document is the fingerprinted content plus discoveredBy")
        let parts: [RedisReply] = [.bulk(Array(doc.utf8)), .bulk(Array("1".utf8)), .bulk(Array("1795000000000".utf8)),
                                   .bulk(Array("1795000000000".utf8)), .bulk(Array("1795000000000".utf8))]
        #expect(try CatalogStore.assemble(parts) == asset)
    }

    /// The byte scan for control characters agrees with the Unicode general category on every scalar
    /// up to U+07FF (every one- and two-byte form) and a few beyond.
    @Test func controlCharactersAreFoundFromTheBytes() {
        let scalars = (0...0x7FF).compactMap(Unicode.Scalar.init) + [Unicode.Scalar(0x2028)!, Unicode.Scalar(0x1F600)!, Unicode.Scalar(0xFEFF)!, Unicode.Scalar(0x10FFFF)!]
        for scalar in scalars {
            let text = "a" + String(Character(scalar)) + "b"
            #expect(CatalogValidation.containsControl(text) == (scalar.properties.generalCategory == .control), "U+\(String(scalar.value, radix: 16))")
        }
        #expect(throws: CatalogError(.invalid, "asset.name contains a control character")) {
            try CatalogValidation.check(AssetInput(id: "node:x", type: .NODE, name: "a\u{85}b"))
        }
        #expect(throws: CatalogError(.invalid, "asset.name: at most 253 characters, got 254")) {
            try CatalogValidation.check(AssetInput(type: .NODE, name: String(repeating: "é", count: 254)))
        }
        #expect((try? CatalogValidation.check(AssetInput(type: .NODE, name: String(repeating: "é", count: 253)))) != nil)
    }

    /// Result data is written as the library's encoder writes it, in the order the query selected the fields.
    @Test func resultDataIsWrittenInSelectionOrder() throws {
        let data: Map = .dictionary([
            "zeta": .string("a \"quoted\" line\nand more"), "alpha": .number(Number(3)), "mid": .number(Number(2.5)),
            "list": .array([.null, .bool(true), .dictionary(["b": .string("x"), "a": .undefined])]), "none": .undefined,
        ])
        let text = GraphQLService.encode(GraphQLResult(data: data))
        #expect(text == #"{"data":{"zeta":"a \"quoted\" line\nand more","alpha":3,"mid":2.5,"list":[null,true,{"b":"x"}]}}"#)
        let library = String(decoding: try GraphQLJSONEncoder().encode(data), as: UTF8.self)
        #expect(try JSONText.parse(text)["data"] == (try JSONText.parse(library)))
    }

    /// A label filter splits at the first "=" scalar, even where "=" and what follows form one character.
    @Test func labelFiltersSplitAtTheFirstEqualsScalar() throws {
        for (text, key, value) in [("app=web=1", "app", "web=1"), ("\u{80}õ=\u{1F3FB}ô", "\u{80}õ", "\u{1F3FB}ô"), ("k=\u{301}", "k", "\u{301}")] {
            let (k, v) = try CatalogValidation.labelPair(text)
            #expect(k == key && v == value, "\(text)")
        }
        #expect(throws: CatalogError.self) { try CatalogValidation.labelPair("=v") }
        #expect(throws: CatalogError.self) { try CatalogValidation.labelPair("novalue") }
    }

    @Test func cursorsRoundTripAnyID() throws {
        for id in ["pod:shop/web-1", "ünïcode:ns/✓", "a"] {
            #expect(try CatalogStore.decodeCursor(CatalogStore.encodeCursor(id)) == id)
            #expect(!CatalogStore.encodeCursor(id).contains { "+/=".contains($0) })
        }
        #expect(throws: CatalogError.self) { try CatalogStore.decodeCursor("!!") }
    }

    @Test func tokensHaveScopesAndBadEntriesNeverEchoTheSecret() throws {
        let auth = try CatalogAuth(entries: "write:0123456789abcdef:ci, read:fedcba9876543210", anonymous: false)
        #expect(try auth.authorize("Bearer 0123456789abcdef", requires: .write).name == "ci")
        #expect(try auth.authorize("bearer fedcba9876543210", requires: .read).name == "read-token-2")
        #expect(throws: CatalogError(.forbidden, "this token has read scope; write is needed")) {
            try auth.authorize("Bearer fedcba9876543210", requires: .write)
        }
        #expect(throws: CatalogError(.unauthenticated, "unknown bearer token")) { try auth.authorize("Bearer 0123456789abcdeX", requires: .read) }
        #expect(throws: CatalogError(.unauthenticated, "missing bearer token (Authorization: Bearer <token>)")) { try auth.authorize(nil, requires: .read) }
        #expect(throws: CatalogError(.unauthenticated, "Authorization must be 'Bearer <token>'")) { try auth.authorize("Basic abc", requires: .read) }
        do {
            _ = try CatalogAuth(entries: "write:tooshort", anonymous: false)
            Issue.record("a short token was accepted")
        } catch {
            #expect(!"\(error)".contains("tooshort"))
        }
        #expect(throws: ConfigurationError.self) { try CatalogAuth(entries: "", anonymous: false) }
        #expect(try CatalogAuth(entries: "", anonymous: true).authorize(nil, requires: .write).scope == .write)
    }

    @Test func depthAndCostAreMeasuredBeforeExecution() throws {
        let limits = QueryLimits(maxDepth: 4, maxCost: 1000, maxPage: 500)
        let simple = try parse(source: "{ stats { total byType { key count } } }")
        #expect(try limits.check(simple, operationName: nil, variables: [:]) == (3, 1 + (1 + (1 + 25 * 2))))
        // `first` multiplies what is under the list, from a literal or a variable.
        let page = try parse(source: "query($n: Int) { assets(first: $n) { nodes { id name } } }")
        #expect(try limits.check(page, operationName: nil, variables: ["n": 10]) == (3, 1 + 10 * 3))
        #expect(throws: QueryLimitError(reason: "cost", code: "QUERY_TOO_COSTLY", message: "query cost 1501 exceeds the limit of 1000 (lower `first` or select fewer fields)")) {
            try limits.check(page, operationName: nil, variables: ["n": 500])
        }
        // Fragments count where they are spread; a fragment cycle is refused (not walked, not left to validation).
        let fragments = try parse(source: "fragment F on Asset { health { status } } { asset(id: \"x\") { ...F } }")
        #expect(try limits.check(fragments, operationName: nil, variables: [:]).depth == 3)
        let cycle = try parse(source: "fragment F on Asset { health { status } ...F } { asset(id: \"x\") { ...F } }")
        #expect(throws: QueryLimitError(reason: "fragment_cycle", code: "GRAPHQL_VALIDATION_FAILED", message: "fragments spread each other in a cycle: F")) {
            try limits.check(cycle, operationName: nil, variables: [:])
        }
        let deep = try parse(source: "{ assets { edges { node { health { status } } } } }")
        #expect(throws: QueryLimitError(reason: "depth", code: "QUERY_TOO_DEEP", message: "query depth 5 exceeds the limit of 4")) {
            try limits.check(deep, operationName: nil, variables: [:])
        }
        // Introspection counts too, every field one, against its own depth limit (20 by default).
        let introspection = try parse(source: "{ __schema { types { fields { type { ofType { ofType { name } } } } } } }")
        #expect(try limits.check(introspection, operationName: nil, variables: [:]) == (7, 7))
        // The raw text is measured before parsing: tokens and bracket nesting.
        #expect(try limits.prescan("{ a: __typename, b: __typename } # comment") == (tokens: 8, nesting: 1))
        #expect(throws: QueryLimitError.self) { try limits.prescan("{" + String(repeating: "a {", count: 100) + String(repeating: "}", count: 101)) }
    }

    @Test func theOpenAPIDocumentDescribesTheRoutes() throws {
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/assets/pod%3Ashop%2Fweb") == ["DELETE", "GET", "PUT"])
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/assets/x/lineage") == ["GET"])
        #expect(OpenAPIDocument.allowedMethods(path: "/api/v1/nothing") == nil)
        let doc = try #require(OpenAPIDocument.document.objectValue)
        #expect(doc["openapi"] == "3.1.0")
        #expect(doc["paths"]?.objectValue?.count == 10)
    }
}
