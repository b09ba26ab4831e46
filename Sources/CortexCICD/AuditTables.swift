import Foundation

/// What the workflow audits know about actions and contexts: which inputs are evaluated as code,
/// which actions cache and how caching is switched on, which publish, which duplicate what the runner
/// already has. Written from each action's documented inputs (and zizmor 1.32's audit docs, which
/// these tables must agree with for the differential test).
enum AuditTables {
    /// Actions whose inputs run as code: `${{ }}` expanded into them is template injection.
    static let codeInputs: [String: Set<String>] = [
        "actions/github-script": ["script"],
        "8398a7/action-slack": ["custom_payload"],
        "appleboy/ssh-action": ["script"],
        "azure/cli": ["inlineScript"],
        "azure/powershell": ["inlineScript"],
        "devorbitus/yq-action-output": ["cmd"],
        "gautamkrishnar/blog-post-workflow": ["item_exec"],
        "imjohnbo/issue-bot": ["body", "linked-comments-previous-issue-text", "linked-comments-new-issue-text"],
        "lucasbento/auto-close-issues": ["issue-close-message"],
        "mikefarah/yq": ["cmd"],
        "roots/issue-closer-action": ["issue-close-message", "pr-close-message"],
        "sergeysova/jq-action": ["cmd"],
        "skitionek/notify-microsoft-teams": ["overwrite"],
        "tibdex/backport": ["body_template", "head_template", "labels_template", "title_template"],
        "amadevus/pwsh-script": ["script"],
        "jannekem/run-python-script-action": ["script"],
        "cardinalby/js-eval-action": ["expression"],
        "addnab/docker-run-action": ["options", "run"],
    ]

    /// `github.*` contexts whose value GitHub sets and nobody outside can choose.
    static let fixedGitHubContexts: Set<String> = [
        "github.action_path", "github.job", "github.repository", "github.repository_id", "github.repository_owner", "github.repository_owner_id",
        "github.repositoryurl", "github.run_attempt", "github.run_id", "github.run_number", "github.server_url", "github.sha", "github.token",
        "github.triggering_actor", "github.workspace", "github.event_name",
        "github.event.after", "github.event.before", "github.event.forced", "github.event.created", "github.event.deleted", "github.event.number",
        "github.event.repository.fork", "github.event.repository.private",
    ]

    /// Leaves of `github.event.*` that are numbers, ids, hashes, booleans or timestamps.
    static let fixedEventLeaves: Set<String> = [
        "id", "node_id", "number", "sha", "draft", "merged", "locked", "fork", "private", "size", "comments", "additions", "deletions",
        "changed_files", "created_at", "updated_at", "closed_at", "merged_at", "pushed_at", "submitted_at", "run_number", "run_attempt",
        "check_suite_id", "workflow_id", "head_sha", "before", "after", "forced", "created", "deleted", "distinct", "timestamp", "state",
        "conclusion", "status", "action", "event", "author_association", "type", "site_admin", "maintainer_can_modify", "rebaseable",
        "mergeable", "stargazers_count", "watchers_count", "forks_count", "open_issues_count", "default_branch_protected", "is_template",
        "archived", "disabled", "visibility", "has_issues", "has_wiki", "has_pages", "has_projects", "has_downloads", "prerelease",
        "comments_url", "run_id", "repository_id", "installation_id", "user_id", "commit_id", "review_id", "pull_request_review_id",
        "in_reply_to_id", "position", "original_position", "line", "original_line", "start_line", "original_start_line", "side",
        "start_side", "tag_name_is_valid",
    ]

    /// `runner.*` contexts that are fixed.
    static let fixedRunnerContexts: Set<String> = ["runner.arch", "runner.debug", "runner.os", "runner.temp", "runner.tool_cache", "runner.environment"]

    /// Environment variables every runner sets (GITHUB_*, RUNNER_*) except CI: `env.X` of these is not attacker-controlled.
    static let defaultEnvironment: Set<String> = Set([
        "ACTION", "ACTION_PATH", "ACTION_REPOSITORY", "ACTIONS", "ACTOR", "ACTOR_ID", "API_URL", "BASE_REF", "ENV", "EVENT_NAME", "EVENT_PATH",
        "GRAPHQL_URL", "HEAD_REF", "JOB", "OUTPUT", "PATH", "REF", "REF_NAME", "REF_PROTECTED", "REF_TYPE", "REPOSITORY", "REPOSITORY_ID",
        "REPOSITORY_OWNER", "REPOSITORY_OWNER_ID", "RUN_ATTEMPT", "RUN_ID", "RUN_NUMBER", "SERVER_URL", "SHA", "TRIGGERING_ACTOR", "WORKFLOW",
        "WORKFLOW_REF", "WORKFLOW_SHA", "WORKSPACE", "STEP_SUMMARY",
    ].map { "GITHUB_" + $0 } + ["ARCH", "DEBUG", "ENVIRONMENT", "NAME", "OS", "TEMP", "TOOL_CACHE"].map { "RUNNER_" + $0 })

    /// How an action's caching is switched on.
    enum CacheControl {
        /// On unless this input is true (e.g. `lookup-only`).
        case onUnlessTrue(String)
        /// On when this input is non-empty (e.g. `cache: npm`); off by default.
        case onWhenSet(String)
        /// A boolean input and its default.
        case boolean(String, default: Bool)
        /// Always caches.
        case always
    }

    /// Actions that restore caches, and the input that switches it (what cache-poisoning looks for).
    static let cacheActions: [String: [CacheControl]] = [
        "actions/cache": [.onUnlessTrue("lookup-only")],
        "swatinem/rust-cache": [.onUnlessTrue("lookup-only")],
        "actions/setup-java": [.onWhenSet("cache")],
        "actions/setup-python": [.onWhenSet("cache")],
        "graalvm/setup-graalvm": [.onWhenSet("cache")],
        "actions/setup-go": [.boolean("cache", default: true)],
        "actions-rust-lang/setup-rust-toolchain": [.boolean("cache", default: true)],
        "jdx/mise-action": [.boolean("cache", default: true)],
        "actions/setup-node": [.onWhenSet("cache"), .boolean("package-manager-cache", default: true)],
        "actions/setup-dotnet": [.boolean("cache", default: false)],
        "pnpm/setup": [.boolean("cache", default: false)],
        "ruby/setup-ruby": [.boolean("bundler-cache", default: false)],
        "pyo3/maturin-action": [.boolean("sccache", default: false)],
        "mlugg/setup-zig": [.boolean("use-cache", default: true)],
        "oven-sh/setup-bun": [.onUnlessTrue("no-cache")],
        "determinatesystems/magic-nix-cache-action": [.boolean("use-gha-cache", default: true)],
        "gradle/actions/setup-gradle": [.onUnlessTrue("cache-disabled")],
        "mozilla-actions/sccache-action": [.always],
        "nix-community/cache-nix-action": [.always],
        "awalsh128/cache-apt-pkgs-action": [.always],
    ]

    /// Actions that publish or deploy what the job built.
    static let publishers: Set<String> = [
        "pypa/gh-action-pypi-publish", "rubygems/release-gem", "jreleaser/release-action", "goreleaser/goreleaser-action", "softprops/action-gh-release",
        "release-drafter/release-drafter", "googleapis/release-please-action", "docker/build-push-action", "redhat-actions/push-to-registry",
        "aws-actions/amazon-ecs-deploy-task-definition", "aws-actions/aws-cloudformation-github-deploy", "azure/aci-deploy",
        "azure/container-apps-deploy-action", "azure/functions-action", "azure/sql-action", "cloudflare/wrangler-action",
        "google-github-actions/deploy-appengine", "google-github-actions/deploy-cloudrun", "google-github-actions/deploy-cloud-functions",
    ]

    /// Actions whose job the runner's own tools (gh, git, jq, docker, rustup) already do: (confidence, persona, what to use instead).
    static let superfluous: [String: (confidence: String, persona: String?, instead: String)] = [
        "ncipollo/release-action": ("high", nil, "`gh release create`"),
        "softprops/action-gh-release": ("high", nil, "`gh release create`"),
        "elgohr/github-release-action": ("high", nil, "`gh release create`"),
        "dacbd/create-issue-action": ("high", nil, "`gh issue create`"),
        "actions-ecosystem/action-add-labels": ("high", nil, "`gh issue edit --add-label` / `gh pr edit --add-label`"),
        "actions-ecosystem/action-remove-labels": ("high", nil, "`gh issue edit --remove-label` / `gh pr edit --remove-label`"),
        "svenstaro/upload-release-action": ("high", nil, "`gh release upload`"),
        "addnab/docker-run-action": ("high", nil, "`docker run`"),
        "sergeysova/jq-action": ("high", nil, "`jq` (installed on GitHub's runners)"),
        "dtolnay/rust-toolchain": ("medium", "pedantic", "`rustup` (installed on GitHub's runners)"),
        "peter-evans/create-pull-request": ("low", "pedantic", "`git` and `gh pr create`"),
        "peter-evans/create-or-update-comment": ("low", "pedantic", "`gh issue comment` / `gh pr comment`"),
        "stefanzweifel/git-auto-commit-action": ("low", "pedantic", "`git commit` and `git push`"),
        "endbug/add-and-commit": ("low", "pedantic", "`git commit` and `git push`"),
    ]

    /// Actions that install a tool, the input naming its version, and the value meaning "latest".
    static let toolInstallers: [String: (input: String, unpinned: String)] = [
        "aquasecurity/setup-trivy": ("version", "latest"),
        "1password/load-secrets-action": ("version", "latest"),
        "extractions/setup-just": ("just-version", "*"),
        "extractions/setup-crate": ("version", "*"),
    ]

    /// Repositories of actions that are archived (no fixes will come): the best known ones.
    static let archived: Set<String> = [
        "actions-rs/cargo", "actions-rs/toolchain", "actions-rs/clippy-check", "actions-rs/audit-check", "actions-rs/tarpaulin", "actions-rs/install",
        "actions-rs/grcov", "actions/create-release", "actions/upload-release-asset", "actions/setup-ruby", "actions/setup-elixir",
        "actions/setup-haskell", "actions/labeler-v2", "github/super-linter-v3", "juliangruber/read-file-action", "andymckay/cancel-action",
        "styfle/cancel-workflow-action", "technote-space/get-diff-action", "mikepenz/release-changelog-builder-action-v1",
        "ilammy/setup-nasm-deprecated", "shogo82148/actions-setup-perl-deprecated", "actions/setup-dotnet-v1",
    ]

    /// Popular actions: a repository one edit away from one of these, under another owner, looks like a typosquat.
    static let popular: [String] = [
        "actions/checkout", "actions/setup-node", "actions/setup-python", "actions/setup-go", "actions/setup-java", "actions/setup-dotnet",
        "actions/cache", "actions/upload-artifact", "actions/download-artifact", "actions/github-script", "actions/labeler", "actions/stale",
        "actions/create-github-app-token", "actions/attest-build-provenance", "actions/configure-pages", "actions/deploy-pages",
        "actions/upload-pages-artifact", "actions/dependency-review-action", "github/codeql-action", "docker/build-push-action",
        "docker/login-action", "docker/setup-buildx-action", "docker/setup-qemu-action", "docker/metadata-action", "pypa/gh-action-pypi-publish",
        "codecov/codecov-action", "softprops/action-gh-release", "peter-evans/create-pull-request", "aws-actions/configure-aws-credentials",
        "azure/login", "google-github-actions/auth", "hashicorp/setup-terraform", "golangci/golangci-lint-action", "dtolnay/rust-toolchain",
        "swatinem/rust-cache", "ruby/setup-ruby", "pnpm/action-setup", "astral-sh/setup-uv", "gradle/actions", "slackapi/slack-github-action",
        "release-drafter/release-drafter", "goreleaser/goreleaser-action", "cachix/install-nix-action", "actions-rust-lang/setup-rust-toolchain",
        "taiki-e/install-action", "shivammathur/setup-php", "subosito/flutter-action", "JamesIves/github-pages-deploy-action",
        "stefanzweifel/git-auto-commit-action", "tj-actions/changed-files", "dorny/paths-filter", "mikefarah/yq", "sigstore/cosign-installer",
    ].map { $0.lowercased() }

    /// Permissions GitHub Apps only have on organisations: an app token limited to these cannot touch repositories.
    static func isOrganizationOnlyPermission(_ key: String) -> Bool {
        key == "permission-members" || key.hasPrefix("permission-organization-") || key.hasSuffix("custom-properties-for-organizations")
    }

    /// How bad a `write` grant is at the workflow level, by scope.
    static func writeSeverity(_ scope: String) -> String {
        switch scope {
        case "actions", "attestations", "contents", "deployments", "id-token", "issues", "packages", "pages", "pull-requests": return "high"
        case "models", "statuses": return "low"
        default: return "medium"
        }
    }
}
