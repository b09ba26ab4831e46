import CortexSecurity
import Foundation

/// The implementation agent's branch: a clone of the target on branch `cortex/dev/<run>/<item>` where the
/// agent works, its change committed as Cortex development-master, and published like a fix branch
/// (fetched into a local target; pushed with a pull request when GitHub is configured).
struct AgentBranch: Sendable {
    /// The clone the agent works in.
    let work: URL
    /// The branch's name.
    let name: String

    /// Clones `source` into the worker's `dev/<item>` directory (replacing an earlier attempt's) and
    /// checks out the item's branch.
    static func clone(_ source: URL, for item: WorkItem, under coordinationDirectory: URL) async throws -> AgentBranch {
        let work = coordinationDirectory.appendingPathComponent("dev").appendingPathComponent(item.id.replacingOccurrences(of: "/", with: "_"))
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work.deletingLastPathComponent(), withIntermediateDirectories: true)
        _ = try await Git.runAsync(["clone", "--quiet", "--no-hardlinks", "--", source.path, work.path], in: work.deletingLastPathComponent())
        let name = "cortex/dev/\(item.runID)/\(item.id.split(separator: ".").last ?? "impl")"
        _ = try await Git.runAsync(["checkout", "--quiet", "-b", name], in: work)
        return AgentBranch(work: work, name: name)
    }

    /// What the agent changed (`git status --porcelain`; empty when nothing). Not knowing whether the agent
    /// changed anything is a failure of the item, not "no change": the copy is kept for a person to look at.
    func changes() async throws -> String {
        do {
            return try await Git.runAsync(["status", "--porcelain"], in: work)
        } catch {
            throw Git.Failure(description: "could not read the agent's changes in \(work.path) (kept for inspection): \(error)")
        }
    }

    /// Commits every change as Cortex development-master; returns the commit's id and its patch.
    func commit(message: String) async throws -> (commit: String, patch: String) {
        _ = try await Git.runAsync(["add", "-A"], in: work)
        let identity = ["GIT_AUTHOR_NAME": "Cortex development-master", "GIT_AUTHOR_EMAIL": "cortex-development@localhost",
                        "GIT_COMMITTER_NAME": "Cortex development-master", "GIT_COMMITTER_EMAIL": "cortex-development@localhost"]
        _ = try await Git.runAsync(["-c", "commit.gpgsign=false", "commit", "--quiet", "-m", message], in: work, environment: identity)
        let patch = try await Git.runAsync(["format-patch", "-1", "--stdout", "HEAD"], in: work, trim: false)
        return (try await Git.runAsync(["rev-parse", "HEAD"], in: work), patch)
    }

    /// Publishes the branch for `target` (see `BranchPublisher`).
    func publish(with publisher: BranchPublisher, target: String, title: String, body: String) async throws -> BranchPublisher.Published {
        try await publisher.publish(clone: work, target: target, branch: name, title: title, body: body)
    }

    /// Removes the clone: nothing changed, nothing to keep.
    func discard() {
        try? FileManager.default.removeItem(at: work)
    }
}
