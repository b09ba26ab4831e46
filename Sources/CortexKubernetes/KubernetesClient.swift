import CortexCore
import Foundation

/// A client of the Kubernetes REST API over libcurl: list with `limit` / `continue` pagination here; the
/// writes and watches spawn mode needs are in KubernetesClient+Write.swift.
public struct KubernetesClient: Sendable {
    public let access: KubeAccess
    public let pageSize: Int
    public let timeout: Duration

    public init(access: KubeAccess, pageSize: Int = 500, timeout: Duration = .seconds(30)) {
        self.access = access
        self.pageSize = pageSize
        self.timeout = timeout
    }

    /// A refused or failed list, with the resource it concerns.
    public struct APIError: Error, CustomStringConvertible, Equatable {
        public var path: String
        public var status: Int
        public var message: String
        /// The Status object's reason (AlreadyExists, Conflict, TooManyRequests, Expired...), when it gave one.
        public var reason: String?
        public var description: String { "\(path): \(status) \(message)" }
        public var forbidden: Bool { status == 403 }
        public init(path: String, status: Int, message: String, reason: String? = nil) {
            self.path = path; self.status = status; self.message = message; self.reason = reason
        }
    }

    /// Every item of a list, following `metadata.continue` until the last page.
    /// `metadataOnly` asks for PartialObjectMetadataList (used for secrets: their data is never fetched).
    public func list(_ path: String, labelSelector: String? = nil, metadataOnly: Bool = false) async throws -> [JSONValue] {
        var items: [JSONValue] = []
        var token: String?
        repeat {
            var query = ["limit=\(pageSize)"]
            if let token { query.append("continue=\(Self.encode(token))") }
            if let labelSelector { query.append("labelSelector=\(Self.encode(labelSelector))") }
            var headers = ["Accept": metadataOnly ? "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1" : "application/json"]
            if let bearer = access.bearerToken { headers["Authorization"] = "Bearer \(bearer)" }
            let response = try await HTTPClient.request(url: "\(access.server)\(path)?\(query.joined(separator: "&"))", headers: headers,
                                                        timeout: timeout, tls: access.tls)
            let json = try? JSONText.parse(response.body)
            guard response.status == 200, let json else {
                throw APIError(path: path, status: response.status, message: json?["message"]?.stringValue ?? String(response.text.prefix(200)))
            }
            items += json["items"]?.arrayValue ?? []
            token = json["metadata"]?["continue"]?.stringValue
            if token?.isEmpty == true { token = nil }
        } while token != nil
        return items
    }

    static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
