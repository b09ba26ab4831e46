import CortexCore
import Foundation

/// Where a branch made in a clone ends up: fetched into a local target repository (the operator's
/// checkout is not touched), and — with a GitHub token and an `origin` on GitHub — pushed and proposed
/// as one pull request into the default branch. Shared by the security master's fix branches and the
/// development master's changes. It never pushes the default branch.
public struct BranchPublisher: Sendable {
    public var github: GitHubClient?
    public var githubHost: String
    var token: String?

    public init(githubAPIURL: String?, githubToken: String?, githubHost: String = "github.com") {
        self.token = githubToken
        self.githubHost = githubHost
        self.github = (githubToken?.isEmpty == false && githubAPIURL != nil) ? GitHubClient(apiURL: githubAPIURL!, token: githubToken!) : nil
    }

    public struct Published: Sendable {
        public var location: String
        public var pullRequest: String?
        public var notes: [String] = []
    }

    /// Publishes `branch` from `clone`; a local target's clone is removed once the branch is in the target.
    public func publish(clone: URL, target: String, branch: String, title: String, body: String) async throws -> Published {
        let isRemote = ["https://", "http://", "ssh://", "git://", "file://", "git@"].contains { target.hasPrefix($0) }
        var out = Published(location: clone.path)
        if !isRemote {
            _ = try await Git.runAsync(["fetch", "--quiet", clone.path, "\(branch):\(branch)"], in: URL(fileURLWithPath: target))
            out.location = target
        }
        defer { if !isRemote { try? FileManager.default.removeItem(at: clone) } }
        // The configured URL as written (`remote get-url` would apply url.insteadOf rewrites).
        let remote = isRemote ? target : (try? await Git.runAsync(["config", "--get", "remote.origin.url"], in: URL(fileURLWithPath: target)))
        if let github, let remote, let repo = GitHubClient.repository(fromRemote: remote, host: githubHost) {
            let defaultBranch = try await github.defaultBranch(owner: repo.owner, repo: repo.repo)
            guard defaultBranch != branch else { throw Git.Failure(description: "\(branch) is the default branch of \(repo.owner)/\(repo.repo): not pushing") }
            _ = try await Git.runAsync(["push", "--quiet", remote, "\(branch):refs/heads/\(branch)"], in: clone, environment: authEnvironment())
            out.pullRequest = try await github.openPullRequest(owner: repo.owner, repo: repo.repo, head: branch, base: defaultBranch, title: title, body: body).url
        } else if github == nil, let remote, GitHubClient.repository(fromRemote: remote, host: githubHost) != nil {
            out.notes.append("no GitHub token (GITHUB_TOKEN): branch left in \(out.location), not pushed")
        } else if github != nil {
            let shown = (remote ?? "none").replacingOccurrences(of: #"//[^/@]+@"#, with: "//", options: .regularExpression)  // no credentials in reports
            out.notes.append("origin (\(shown)) is not a repository on \(githubHost): branch left in \(out.location), no pull request")
        }
        return out
    }

    /// HTTPS auth for the push without the token on a command line (other users can read those):
    /// git's own configuration through the environment, scoped to the GitHub host.
    func authEnvironment() -> [String: String] {
        guard let token else { return [:] }
        let basic = Data("x-access-token:\(token)".utf8).base64EncodedString()
        return ["GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.https://\(githubHost)/.extraheader", "GIT_CONFIG_VALUE_0": "AUTHORIZATION: basic \(basic)"]
    }
}
