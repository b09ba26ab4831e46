import Foundation

/// Where and how to reach a Redis server: parsed from `redis://[user:password@]host:port[/db]`.
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// Sentinels to ask for the current primary; when set, `host`/`port` are only a fallback label.
    public var sentinels: [SentinelAddress] = []
    /// The primary's name as the sentinels know it (`sentinel monitor <name> ...`).
    public var masterName: String = "cortex"

    /// One sentinel's address.
    public struct SentinelAddress: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// Parses a `redis://` URL. A password alone (`redis://:secret@host`) authenticates the default user.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis" else {
            throw RedisError.invalidURL("\(url) (expected redis://[user:password@]host:port[/db])")
        }
        guard let host = components.host, !host.isEmpty else {
            throw RedisError.invalidURL("\(url) has no host")
        }
        self.host = host
        self.port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw RedisError.invalidURL("\(url) has port \(port) out of range") }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding }
        self.username = (user?.isEmpty ?? true) ? nil : user
        self.password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            self.database = 0
        } else if let db = Int(path), db >= 0 {
            self.database = db
        } else {
            throw RedisError.invalidURL("\(url) has database '\(path)', expected a number")
        }
    }

    /// Adds sentinels from `host:port,host:port` (the CORTEX_REDIS_SENTINELS form).
    public mutating func useSentinels(_ list: String, masterName: String) throws {
        sentinels = try list.split(separator: ",").map { item in
            let parts = item.trimmingCharacters(in: .whitespaces).split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port), !parts[0].isEmpty else {
                throw RedisError.invalidURL("sentinel address '\(item)' is not host:port")
            }
            return SentinelAddress(host: String(parts[0]), port: port)
        }
        guard !masterName.isEmpty else { throw RedisError.invalidURL("a sentinel master name is required") }
        self.masterName = masterName
    }

    /// The URL form, with the password masked so it can be logged.
    public var description: String {
        if !sentinels.isEmpty {
            return "sentinel://\(sentinels.map { "\($0.host):\($0.port)" }.joined(separator: ","))/\(masterName)/\(database)"
        }
        var auth = ""
        if username != nil || password != nil {
            auth = "\(username ?? "")\(password != nil ? ":***" : "")@"
        }
        return "redis://\(auth)\(host):\(port)/\(database)"
    }

    /// The URL form with the real password, for handing to a child process.
    public var url: String {
        var auth = ""
        if username != nil || password != nil {
            let enc: (String) -> String = { $0.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? $0 }
            auth = "\(username.map(enc) ?? "")\(password.map { ":" + enc($0) } ?? "")@"
        }
        return "redis://\(auth)\(host):\(port)/\(database)"
    }
}
