import CortexCore

/// The stored JSON of work items and results, written and read without Foundation's coders: every item
/// passes through here twice (the item read, the result written), and JSONEncoder / JSONDecoder cost more
/// than the rest of a short item's Redis work. The text is what `WireJSON` makes of the same values
/// (property names as keys, sorted; absent optionals left out), so either side may use either coder
/// (`WorkWireTests` holds them to that).
extension WorkItem {
    /// Reads an item from its stored JSON (as `WireJSON.decode(WorkItem.self, from:)` does).
    public init(wireJSON text: String) throws {
        let o = try WireFields(text, type: "WorkItem")
        self.init(id: try o.string("id"), taskID: try o.string("taskID"), runID: try o.string("runID"),
                  master: try o.value("master", MasterRole.init(rawValue:)), pool: try o.value("pool", WorkerPool.init(rawValue:)),
                  skill: try o.value("skill", SkillName.init(rawValue:)), target: try o.string("target"),
                  shard: try o.int("shard"), shards: try o.int("shards"),
                  instruction: try o.optionalString("instruction"), priority: try o.optionalValue("priority", TaskPriority.init(rawValue:)),
                  branch: try o.optionalString("branch"), allowTestExecution: try o.optionalBool("allowTestExecution"),
                  pinned: try o.optionalIntMap("pinned"))
    }

    /// The item's stored JSON.
    public var wireJSON: String {
        var o: [String: JSONValue] = [
            "id": .string(id), "taskID": .string(taskID), "runID": .string(runID), "master": .string(master.rawValue),
            "pool": .string(pool.rawValue), "skill": .string(skill.rawValue), "target": .string(target),
            "shard": .number(Double(shard)), "shards": .number(Double(shards)),
        ]
        if let instruction { o["instruction"] = .string(instruction) }
        if let priority { o["priority"] = .string(priority.rawValue) }
        if let branch { o["branch"] = .string(branch) }
        if let allowTestExecution { o["allowTestExecution"] = .bool(allowTestExecution) }
        if let pinned { o["pinned"] = .object(pinned.mapValues { .number(Double($0)) }) }
        return JSONText.serialize(.object(o))
    }
}

extension WorkResult {
    /// The result's stored JSON (what the master reads back with `WireJSON.decode`).
    public var wireJSON: String { JSONText.serialize(wireValue) }

    var wireValue: JSONValue {
        var o: [String: JSONValue] = [
            "itemID": .string(itemID), "taskID": .string(taskID), "worker": .string(worker), "node": .string(node),
            "status": .string(status.rawValue), "durationMs": .number(Double(durationMs)), "filesExamined": .number(Double(filesExamined)),
            "output": output,
        ]
        if let error { o["error"] = .string(error) }
        if let finishedAtMs { o["finishedAtMs"] = .number(Double(finishedAtMs)) }
        if let resumedFrom { o["resumedFrom"] = .number(Double(resumedFrom)) }
        if let catalog {
            var c: [String: JSONValue] = ["assets": .number(Double(catalog.assets)), "registered": .number(Double(catalog.registered))]
            if let e = catalog.error { c["error"] = .string(e) }
            o["catalog"] = .object(c)
        }
        if let fileCache {
            var c: [String: JSONValue] = ["files": .number(Double(fileCache.files)), "reused": .number(Double(fileCache.reused)),
                                          "unreadable": .number(Double(fileCache.unreadable))]
            if let e = fileCache.error { c["error"] = .string(e) }
            o["fileCache"] = .object(c)
        }
        if let costs {
            o["costs"] = .object([
                "heavy": .array(costs.heavy.map { .object(["path": .string($0.path), "ms": .number($0.ms)]) }),
                "directories": .array(costs.directories.map { .object(["directory": .string($0.directory), "files": .number(Double($0.files)), "ms": .number($0.ms)]) }),
                "files": .number(Double(costs.files)), "ms": .number(costs.ms),
            ])
        }
        return .object(o)
    }
}

/// A stored object's fields, read with the checks `JSONDecoder` makes (required fields present, of the
/// right kind; a null optional is absent).
struct WireFields {
    let fields: [String: JSONValue]
    let type: String

    init(_ text: String, type: String) throws {
        guard case .object(let o) = try JSONText.parse(text) else { throw CortexError(.invalidInput, "\(type): not a JSON object") }
        fields = o
        self.type = type
    }

    private func missing(_ key: String, _ kind: String) -> CortexError { CortexError(.invalidInput, "\(type).\(key): expected \(kind)") }

    func string(_ key: String) throws -> String {
        guard let s = fields[key]?.stringValue else { throw missing(key, "a string") }
        return s
    }

    func int(_ key: String) throws -> Int {
        guard let n = fields[key]?.intValue else { throw missing(key, "an integer") }
        return n
    }

    func value<T>(_ key: String, _ make: (String) -> T?) throws -> T {
        guard let v = make(try string(key)) else { throw missing(key, "one of the known values") }
        return v
    }

    private func present(_ key: String) -> JSONValue? {
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    func optionalString(_ key: String) throws -> String? {
        guard let v = present(key) else { return nil }
        guard let s = v.stringValue else { throw missing(key, "a string") }
        return s
    }

    func optionalBool(_ key: String) throws -> Bool? {
        guard let v = present(key) else { return nil }
        guard let b = v.boolValue else { throw missing(key, "a boolean") }
        return b
    }

    func optionalValue<T>(_ key: String, _ make: (String) -> T?) throws -> T? {
        guard let s = try optionalString(key) else { return nil }
        guard let v = make(s) else { throw missing(key, "one of the known values") }
        return v
    }

    func optionalIntMap(_ key: String) throws -> [String: Int]? {
        guard let v = present(key) else { return nil }
        guard let o = v.objectValue else { throw missing(key, "an object") }
        var out: [String: Int] = [:]
        for (k, n) in o {
            guard let i = n.intValue else { throw missing("\(key).\(k)", "an integer") }
            out[k] = i
        }
        return out
    }
}
