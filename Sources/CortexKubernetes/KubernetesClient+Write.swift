import CortexCore
import Foundation

/// What spawn mode needs beyond listing: create, get, delete, list with the list's resourceVersion,
/// and watch streams. Same libcurl client and credentials as discovery.
///
/// Answers handled here: 429 (and 503 with Retry-After) are retried after `Retry-After` seconds (or a
/// short backoff), at most `maxRetries` times; 409 AlreadyExists on create returns the existing object
/// (a create retried after a lost response must not fail); 410 Gone on a watch ends it with `.gone`,
/// so the caller lists again.
extension KubernetesClient {
    /// How often a throttled request (429) is retried before its error is thrown.
    public static let maxRetries = 5

    /// A request with a JSON body (or none) and a JSON answer; throttling retried as documented above.
    public func send(_ method: String, _ path: String, query: [String] = [], body: JSONValue? = nil) async throws -> JSONValue {
        var attempt = 0
        while true {
            var headers = ["Accept": "application/json"]
            if body != nil { headers["Content-Type"] = "application/json" }
            if let bearer = access.bearerToken { headers["Authorization"] = "Bearer \(bearer)" }
            let url = "\(access.server)\(path)" + (query.isEmpty ? "" : "?\(query.joined(separator: "&"))")
            let response = try await HTTPClient.request(method, url: url, headers: headers, body: body.map { Array($0.description.utf8) },
                                                        timeout: timeout, tls: access.tls)
            let json = try? JSONText.parse(response.body)
            if (200..<300).contains(response.status), let json { return json }
            let error = APIError(path: path, status: response.status, message: json?["message"]?.stringValue ?? String(response.text.prefix(200)),
                                 reason: json?["reason"]?.stringValue)
            if (response.status == 429 || (response.status == 503 && response.headers["retry-after"] != nil)), attempt < Self.maxRetries {
                attempt += 1
                try await Task.sleep(for: Self.retryDelay(response.headers["retry-after"], attempt: attempt))
                continue
            }
            throw error
        }
    }

    /// `Retry-After` in seconds (capped at 30 s: a watch-driven master must not stall for minutes), else 0.5 s × attempt.
    static func retryDelay(_ header: String?, attempt: Int) -> Duration {
        if let header, let seconds = Double(header.trimmingCharacters(in: .whitespaces)), seconds >= 0 { return .milliseconds(Int(min(seconds, 30) * 1000)) }
        return .milliseconds(500 * attempt)
    }

    /// Creates an object; on 409 AlreadyExists returns the existing one (`created` false).
    public func create(_ collectionPath: String, _ object: JSONValue) async throws -> (object: JSONValue, created: Bool) {
        do {
            return (try await send("POST", collectionPath, body: object), true)
        } catch let e as APIError where e.status == 409 {
            guard let name = object["metadata"]?["name"]?.stringValue else { throw e }
            return (try await send("GET", "\(collectionPath)/\(name)"), false)
        }
    }

    /// Deletes an object and, in the background, what it owns (a Job's pods); a 404 is not an error.
    public func delete(_ objectPath: String) async throws {
        do {
            _ = try await send("DELETE", objectPath, query: ["propagationPolicy=Background"])
        } catch let e as APIError where e.status == 404 {}
    }

    /// One list request (all pages) with the list's resourceVersion, the point a watch starts from.
    public func listWithVersion(_ path: String, labelSelector: String?) async throws -> (items: [JSONValue], resourceVersion: String) {
        var items: [JSONValue] = []
        var token: String?
        var version = ""
        repeat {
            var query = ["limit=\(pageSize)"]
            if let token { query.append("continue=\(Self.encode(token))") }
            if let labelSelector { query.append("labelSelector=\(Self.encode(labelSelector))") }
            let page = try await send("GET", path, query: query)
            items += page["items"]?.arrayValue ?? []
            version = page["metadata"]?["resourceVersion"]?.stringValue ?? version
            token = page["metadata"]?["continue"]?.stringValue
            if token?.isEmpty == true { token = nil }
        } while token != nil
        return (items, version)
    }

    /// One event of a watch stream.
    public struct WatchEvent: Sendable {
        /// ADDED, MODIFIED, DELETED or BOOKMARK.
        public var type: String
        public var object: JSONValue
        public var resourceVersion: String? { object["metadata"]?["resourceVersion"]?.stringValue }
        public init(type: String, object: JSONValue) { self.type = type; self.object = object }
    }

    /// A watch from `resourceVersion` ended because that version is too old (410 Gone, as a status or as an
    /// ERROR event): list again and watch from the new list's version.
    public struct WatchGone: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "\(path): watch resourceVersion too old (410 Gone)" }
    }

    /// A single watch request (`?watch=1&allowWatchBookmarks=true`) from `resourceVersion`; the server ends
    /// it after `timeoutSeconds`. Throws `WatchGone` for 410, `APIError` for other refusals.
    public func watch(_ path: String, labelSelector: String?, resourceVersion: String, timeoutSeconds: Int = 60) -> AsyncThrowingStream<WatchEvent, Error> {
        var query = ["watch=1", "allowWatchBookmarks=true", "timeoutSeconds=\(timeoutSeconds)", "resourceVersion=\(Self.encode(resourceVersion))"]
        if let labelSelector { query.append("labelSelector=\(Self.encode(labelSelector))") }
        var headers = ["Accept": "application/json"]
        if let bearer = access.bearerToken { headers["Authorization"] = "Bearer \(bearer)" }
        let lines = HTTPClient.streamLines(url: "\(access.server)\(path)?\(query.joined(separator: "&"))", headers: headers,
                                           timeout: .seconds(timeoutSeconds + 15), tls: access.tls)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var status = 200
                    var errorBody = ""
                    for try await part in lines {
                        switch part {
                        case .head(let s, _): status = s
                        case .line(let line) where status != 200:
                            errorBody += line
                        case .line(let line):
                            guard let event = try? JSONText.parse(Array(line.utf8)), let type = event["type"]?.stringValue, let object = event["object"] else { continue }
                            if type == "ERROR" {
                                if object["code"]?.intValue == 410 { throw WatchGone(path: path) }
                                throw APIError(path: path, status: object["code"]?.intValue ?? 500, message: object["message"]?.stringValue ?? "watch error",
                                               reason: object["reason"]?.stringValue)
                            }
                            continuation.yield(WatchEvent(type: type, object: object))
                        }
                    }
                    if status == 410 { throw WatchGone(path: path) }
                    if status != 200 {
                        let json = try? JSONText.parse(Array(errorBody.utf8))
                        throw APIError(path: path, status: status, message: json?["message"]?.stringValue ?? String(errorBody.prefix(200)), reason: json?["reason"]?.stringValue)
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}

/// Keeps a local view of one kind under a label selector: lists, then watches from the list's
/// resourceVersion, following bookmarks; reconnects when a watch ends, and lists again after a 410.
/// Every object seen is handed to `onEvent` (the list's objects as ADDED).
public struct ResourceWatch: Sendable {
    public let client: KubernetesClient
    public let path: String
    public let labelSelector: String?
    /// Seconds each watch request lasts before the server ends it (and we reconnect).
    public let watchSeconds: Int

    public init(client: KubernetesClient, path: String, labelSelector: String?, watchSeconds: Int = 60) {
        self.client = client
        self.path = path
        self.labelSelector = labelSelector
        self.watchSeconds = watchSeconds
    }

    /// Runs until cancelled. `onProblem` hears every failed list or watch (then retried after a second).
    public func run(onEvent: @Sendable (KubernetesClient.WatchEvent) async -> Void, onProblem: @Sendable (String) async -> Void) async {
        var version: String?
        var relists = 0
        while !Task.isCancelled {
            do {
                if version == nil {
                    let (items, listed) = try await client.listWithVersion(path, labelSelector: labelSelector)
                    relists += 1
                    for item in items { await onEvent(.init(type: "ADDED", object: item)) }
                    version = listed
                }
                for try await event in client.watch(path, labelSelector: labelSelector, resourceVersion: version ?? "0", timeoutSeconds: watchSeconds) {
                    if let v = event.resourceVersion, !v.isEmpty { version = v }
                    if event.type != "BOOKMARK" { await onEvent(event) }
                }
            } catch is KubernetesClient.WatchGone {
                await onProblem("\(path): resourceVersion \(version ?? "?") expired (410 Gone); listing again")
                version = nil
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                await onProblem("\(path): \(error); retrying in 1 s")
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
