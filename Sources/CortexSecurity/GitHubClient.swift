import CortexCore
import Foundation

/// The few GitHub REST API calls a fix needs: the repository's default branch and opening a pull
/// request (https://docs.github.com/en/rest/pulls/pulls#create-a-pull-request). Over libcurl.
public struct GitHubClient: Sendable {
    public var apiURL: String
    var token: String
    public var timeout: Duration

    public init(apiURL: String, token: String, timeout: Duration = .seconds(30)) {
        self.apiURL = apiURL.hasSuffix("/") ? String(apiURL.dropLast()) : apiURL
        self.token = token
        self.timeout = timeout
    }

    public struct APIError: Error, CustomStringConvertible {
        public var status: Int
        public var description: String
    }

    /// `owner/repo` of a remote URL on `host` (https://host/owner/repo(.git), git@host:owner/repo(.git),
    /// ssh://git@host/owner/repo), or nil when the remote is not on that host.
    public static func repository(fromRemote url: String, host: String = "github.com") -> (owner: String, repo: String)? {
        var rest: Substring
        if let r = url.range(of: "://") {
            rest = url[r.upperBound...]
            if let at = rest.firstIndex(of: "@"), at < (rest.firstIndex(of: "/") ?? rest.endIndex) { rest = rest[rest.index(after: at)...] }
            guard rest.hasPrefix(host + "/") else { return nil }
            rest = rest.dropFirst(host.count + 1)
        } else if url.hasPrefix("git@\(host):") {
            rest = url.dropFirst("git@\(host):".count)
        } else {
            return nil
        }
        let parts = rest.split(separator: "/").map(String.init)
        guard parts.count == 2 else { return nil }
        let repo = parts[1].hasSuffix(".git") ? String(parts[1].dropLast(4)) : parts[1]
        return repo.isEmpty ? nil : (parts[0], repo)
    }

    var headers: [String: String] {
        ["Authorization": "Bearer \(token)", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
         "User-Agent": "cortex-security-master", "Content-Type": "application/json"]
    }

    func call(_ method: String, _ path: String, _ body: JSONValue? = nil) async throws -> (Int, JSONValue) {
        let response: HTTPResponse
        do {
            response = try await HTTPClient.request(method, url: apiURL + path, headers: headers, body: body.map { Array($0.description.utf8) }, timeout: timeout,
                                                redactAll: true)
        } catch {
            throw APIError(status: 0, description: "GitHub API \(apiURL) unreachable: \(error)")
        }
        let json = (try? JSONText.parse(response.text)) ?? .null
        return (response.status, json)
    }

    /// The repository's default branch.
    public func defaultBranch(owner: String, repo: String) async throws -> String {
        let (status, json) = try await call("GET", "/repos/\(owner)/\(repo)")
        guard status == 200, let branch = json["default_branch"]?.stringValue else {
            throw APIError(status: status, description: "GitHub GET /repos/\(owner)/\(repo): HTTP \(status) \(json["message"]?.stringValue ?? "")")
        }
        return branch
    }

    /// Opens a pull request from `head` into `base`; when one is already open for the branch, returns it.
    public func openPullRequest(owner: String, repo: String, head: String, base: String, title: String, body: String) async throws -> (number: Int, url: String, existed: Bool) {
        let (status, json) = try await call("POST", "/repos/\(owner)/\(repo)/pulls", ["title": .string(title), "head": .string(head), "base": .string(base), "body": .string(body)])
        if status == 201, let number = json["number"]?.intValue, let url = json["html_url"]?.stringValue { return (number, url, false) }
        if status == 422 {
            // "A pull request already exists for owner:branch": find it.
            let query = "/repos/\(owner)/\(repo)/pulls?state=open&head=\(owner):\(head.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? head)"
            let (s, list) = try await call("GET", query)
            if s == 200, let first = list.arrayValue?.first, let number = first["number"]?.intValue, let url = first["html_url"]?.stringValue {
                return (number, url, true)
            }
        }
        let detail = (json["errors"]?.arrayValue ?? []).compactMap { $0["message"]?.stringValue }.joined(separator: "; ")
        throw APIError(status: status, description: "GitHub POST /repos/\(owner)/\(repo)/pulls: HTTP \(status) \(json["message"]?.stringValue ?? "")\(detail.isEmpty ? "" : ": \(detail)")")
    }
}
