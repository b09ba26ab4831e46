@testable import CortexCICD
import CortexOrchestration
import Foundation
import Testing

/// The cicd master's review on workflows written the way large projects write them, with the mistakes
/// they are known for; every patch must apply with `git apply` and remove its finding.
@Suite struct PipelineAnalysisTests {
    static let ci = """
        name: CI
        on:
          push:
            branches: [main]
          pull_request:

        jobs:
          lint:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: actions/setup-node@v4
                with:
                  node-version: 20
              - run: npm ci
              - run: npm run lint
          test:
            needs: lint
            runs-on: ubuntu-latest
            timeout-minutes: 20
            strategy:
              matrix:
                node: [18, 20, 20, 22]
            steps:
              - uses: actions/checkout@v4
                with:
                  fetch-depth: 0
              - uses: actions/setup-node@v4
                with:
                  node-version: ${{ matrix.node }}
                  cache: npm
              - run: npm ci
              - run: npm test
          python:
            runs-on: ubuntu-latest
            timeout-minutes: 15
            steps:
              - uses: actions/checkout@v4
                with:
                  persist-credentials: false
              - uses: actions/setup-python@v5
                with:
                  python-version: "3.12"
              - run: pip install -r requirements.txt
              - run: pytest
              - uses: codecov/codecov-action@v4

        """

    static let greet = """
        name: Greet contributors
        on:
          pull_request_target:
            types: [opened]
          issues:
            types: [opened]
        permissions: write-all
        jobs:
          greet:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
                with:
                  ref: ${{ github.event.pull_request.head.sha }}
              - name: Say hello
                run: |
                  echo "Thanks for ${{ github.event.pull_request.title }}"
                  ./scripts/greet.sh "${{ github.event.issue.title }}"

        """

    static let gitlab = """
        image: node:latest
        stages: [build, test]
        workflow:
          rules:
            - if: $CI_PIPELINE_SOURCE == "merge_request_event"
        build:
          stage: build
          script:
            - npm ci
            - npm run build
        test:
          stage: test
          image: python:3.12
          cache:
            paths: [.cache/pip]
          script:
            - pip install -r requirements.txt
            - eval "echo $CI_COMMIT_MESSAGE"
          timeout: 20m

        """

    static func rules(_ f: [PipelineFinding]) -> [String] { f.map { "\($0.rule)@\($0.line ?? 0)\($0.job.map { ":" + $0 } ?? "")" }.sorted() }

    @Test func aTypicalCIWorkflow() throws {
        let f = try GitHubActionsAnalyzer.analyze(file: ".github/workflows/ci.yml", text: Self.ci, lockfiles: ["package-lock.json", "requirements.txt"])
        #expect(Self.rules(f) == [
            "anonymous-definition@17:test", "anonymous-definition@34:python", "anonymous-definition@8:lint", "artipacked@11:lint", "artipacked@25:test",
            "concurrency-limits@2", "excessive-permissions@1", "excessive-permissions@17:test", "excessive-permissions@34:python", "excessive-permissions@8:lint",
            "gha-needless-needs@18:test", "gha-no-concurrency@7", "gha-no-dependency-cache@34:python", "gha-no-dependency-cache@8:lint", "gha-no-timeout@8:lint",
            "gha-redundant-matrix@23:test",
            "unpinned-uses@11:lint", "unpinned-uses@12:lint", "unpinned-uses@25:test", "unpinned-uses@28:test", "unpinned-uses@38:python", "unpinned-uses@41:python",
            "unpinned-uses@46:python",
        ], "\(Self.rules(f))")
        // zizmor's levels: the workflow-level default-permissions finding is regular (three jobs, none with its own permissions).
        let permissions = try #require(f.first { $0.rule == "excessive-permissions" && $0.job == nil })
        #expect(permissions.severity == "medium" && permissions.confidence == "medium" && permissions.persona == nil && permissions.patch != nil)
        #expect(f.filter { $0.rule == "anonymous-definition" }.allSatisfy { $0.persona == "pedantic" })
        // Every speed suggestion states its saving and its risk.
        #expect(f.filter { $0.category == "speed" }.allSatisfy { $0.saving != nil && $0.risk != nil })
        let matrix = try #require(f.first { $0.rule == "gha-redundant-matrix" })
        #expect(matrix.saving == "1 of 4 matrix jobs run an identical configuration: 1 job run(s) per trigger (computed from the matrix)")
        let needs = try #require(f.first { $0.rule == "gha-needless-needs" })
        #expect(needs.saving?.contains("lint's run time (no timeout-minutes to bound it)") == true)
        #expect(f.first { $0.rule == "gha-no-timeout" }?.saving == "a hung run stops after 30 instead of 360 minutes: up to 330 runner-minutes per hung job")
        #expect(f.first { $0.rule == "unpinned-uses" && $0.line == 46 }?.suggestion?.contains("git ls-remote https://github.com/codecov/codecov-action v4") == true)
        // Without knowing the repository's lockfiles, no cache is suggested (nothing to key it on).
        #expect(try GitHubActionsAnalyzer.analyze(file: ".github/workflows/ci.yml", text: Self.ci).filter { $0.rule == "gha-no-dependency-cache" }.isEmpty)
    }

    @Test func pullRequestTargetWithUntrustedCheckoutAndInjection() throws {
        let f = try GitHubActionsAnalyzer.analyze(file: ".github/workflows/greet.yml", text: Self.greet)
        #expect(Self.rules(f) == ["anonymous-definition@9:greet", "artipacked@12:greet", "concurrency-limits@2", "dangerous-triggers@3", "excessive-permissions@7",
                                  "gha-no-timeout@9:greet", "gha-untrusted-checkout@14:greet", "template-injection@16:greet", "template-injection@16:greet",
                                  "unpinned-uses@12:greet"], "\(Self.rules(f))")
        #expect(f.first { $0.rule == "gha-untrusted-checkout" }?.severity == "critical")
        let injections = f.filter { $0.rule == "template-injection" }
        #expect(injections.allSatisfy { $0.severity == "high" && $0.confidence == "high" && $0.stepIndex == 1 })
        let injection = try #require(injections.first { $0.patch != nil })
        #expect(injection.patch?.contains("+          PULL_REQUEST_TITLE: ${{ github.event.pull_request.title }}") == true, "\(injection.patch ?? "")")
        #expect(injection.patch?.contains("$ISSUE_TITLE") == true)
    }

    @Test func gitlabPipeline() throws {
        let f = try GitLabCIAnalyzer.analyze(file: ".gitlab-ci.yml", text: Self.gitlab)
        #expect(Self.rules(f) == ["gitlab-mutable-image@1", "gitlab-no-dependency-cache@6:build", "gitlab-no-timeout@6:build",
                                  "gitlab-not-interruptible@11:test", "gitlab-not-interruptible@6:build", "gitlab-script-injection@18:test"], "\(Self.rules(f))")
    }

    @Test func malformedYAMLNamesTheFileAndLine() {
        let broken = "name: x\non: push\njobs:\n  build:\n    steps:\n      - run: echo \"unterminated\n    runs-on: [ubuntu\n"
        #expect(throws: PipelineParseError.self) { try GitHubActionsAnalyzer.analyze(file: ".github/workflows/broken.yml", text: broken) }
        do { _ = try GitHubActionsAnalyzer.analyze(file: ".github/workflows/broken.yml", text: broken) } catch let e as PipelineParseError {
            #expect(e.file == ".github/workflows/broken.yml" && e.line != nil && e.description.hasPrefix(".github/workflows/broken.yml:"), "\(e)")
        } catch { Issue.record("\(error)") }
    }

    /// Every patch applies to the file with `git apply`, and applying it removes the finding it fixes.
    @Test func everyPatchAppliesAndFixesItsFinding() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pipelines-\(UUID().uuidString.prefix(6))")
        let files = [".github/workflows/ci.yml": Self.ci, ".github/workflows/greet.yml": Self.greet, ".gitlab-ci.yml": Self.gitlab]
        var patched = 0
        for (path, text) in files {
            let findings = try #require(try PipelineAnalyzer.analyze(file: path, text: text, lockfiles: ["package-lock.json", "requirements.txt"]))
            for finding in findings {
                guard let patch = finding.patch else { continue }
                let dir = root.appendingPathComponent("\(patched)")
                try FileManager.default.createDirectory(at: dir.appendingPathComponent(".github/workflows"), withIntermediateDirectories: true)
                try Data(text.utf8).write(to: dir.appendingPathComponent(path))
                try Data(patch.utf8).write(to: dir.appendingPathComponent("fix.patch"))
                let git = Process()
                git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                git.arguments = ["git", "apply", "fix.patch"]
                git.currentDirectoryURL = dir
                let err = Pipe()
                git.standardError = err
                try git.run()
                git.waitUntilExit()
                #expect(git.terminationStatus == 0, "\(finding.rule) at \(path): \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))\n\(patch)")
                let fixed = try String(contentsOf: dir.appendingPathComponent(path), encoding: .utf8)
                let after = try #require(try PipelineAnalyzer.analyze(file: path, text: fixed, lockfiles: ["package-lock.json", "requirements.txt"]))
                #expect(!after.contains { $0.rule == finding.rule && $0.job == finding.job && $0.step == finding.step && $0.line == finding.line },
                        "\(finding.rule) still reported after its patch:\n\(fixed)")
                patched += 1
            }
        }
        #expect(patched >= 12, "\(patched) patches")
    }

    @Test func theSkillReportsFindingsAndKeepsGoingPastABrokenFile() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cicd-\(UUID().uuidString.prefix(6))")
        let files = [".github/workflows/ci.yml": Self.ci, ".github/workflows/greet.yml": Self.greet, ".gitlab-ci.yml": Self.gitlab,
                     ".github/workflows/broken.yml": "jobs:\n  a: [\n"]
        for (path, text) in files {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        let skill = WorkflowFinder()
        let summary = skill.summarize(try skill.examine(root: root, files: files.keys.sorted()) { _ in })
        #expect(summary.headline.contains("4 pipeline files") && summary.headline.contains("1 unreadable"), "\(summary.headline)")
        #expect(summary.markdown.contains("### Pipeline security") && summary.markdown.contains("### Pipeline speed"))
        #expect(summary.markdown.contains("| critical | .github/workflows/greet.yml:14 | greet / actions/checkout@v4 | gha-untrusted-checkout |"), "\(summary.markdown)")
        #expect(summary.markdown.contains("- .github/workflows/broken.yml:"))
        #expect(summary.markdown.contains("```diff\n--- a/.github/workflows/ci.yml"))
    }
}
