@testable import CortexCICD
import Foundation
import Testing

/// Speed advice that never harms: each case is a workflow shape real projects use, where a naive
/// speed rule would suggest something that makes the workflow worse (cache poisoning, a cancelled
/// release, a broken order), and the analyzer must not.
@Suite struct HarmlessAdviceTests {
    static let lockfiles: Set<String> = ["package-lock.json", "requirements.txt", "poetry.lock", "go.sum", "Cargo.lock"]

    static func speed(_ text: String, lockfiles: Set<String>? = lockfiles) throws -> [PipelineFinding] {
        try GitHubActionsAnalyzer.analyze(file: ".github/workflows/w.yml", text: text, lockfiles: lockfiles).filter { $0.category == "speed" }
    }

    // MARK: caches

    /// An npm package released on a tag: the job installs and publishes. A cache here is what an
    /// attacker poisons from any other run to get into the release.
    @Test func noCacheForATagReleaseJob() throws {
        let f = try Self.speed("""
            name: Release
            on:
              push:
                tags: ["v*"]
            permissions:
              contents: read
            jobs:
              publish:
                runs-on: ubuntu-latest
                timeout-minutes: 15
                permissions:
                  contents: read
                  id-token: write
                steps:
                  - uses: actions/checkout@v4
                  - uses: actions/setup-node@v4
                    with:
                      node-version: 20
                      registry-url: https://registry.npmjs.org
                  - run: npm ci
                  - run: npm test
                  - run: npm publish --provenance
            """)
        #expect(!f.contains { $0.rule == "gha-no-dependency-cache" }, "\(f.map(\.rule))")
    }

    /// A Python package built on pushes to main and uploaded with pypa's action in the same job.
    @Test func noCacheForAJobThatPublishesWithAnAction() throws {
        let f = try Self.speed("""
            name: Build and publish
            on:
              push:
                branches: [main]
            jobs:
              build:
                runs-on: ubuntu-latest
                timeout-minutes: 20
                steps:
                  - uses: actions/checkout@v4
                  - uses: actions/setup-python@v5
                    with:
                      python-version: "3.12"
                  - run: pip install build
                  - run: python -m build
                  - uses: pypa/gh-action-pypi-publish@release/v1
            """)
        #expect(!f.contains { $0.rule == "gha-no-dependency-cache" }, "\(f.map(\.rule))")
    }

    /// An install with nothing to key a cache on: a cache keyed on no lockfile restores stale packages.
    @Test func noCacheWithoutALockfileToKeyIt() throws {
        let workflow = """
            name: CI
            on: pull_request
            jobs:
              test:
                runs-on: ubuntu-latest
                timeout-minutes: 10
                steps:
                  - uses: actions/checkout@v4
                  - run: npm install
                  - run: npm test
            """
        #expect(try Self.speed(workflow, lockfiles: ["go.sum"]).allSatisfy { $0.rule != "gha-no-dependency-cache" })
        #expect(try Self.speed(workflow, lockfiles: nil).allSatisfy { $0.rule != "gha-no-dependency-cache" })
        // With a lockfile, the suggestion comes, keyed on it, with its saving and risk.
        let suggested = try #require(try Self.speed(workflow, lockfiles: ["web/package-lock.json"]).first { $0.rule == "gha-no-dependency-cache" })
        #expect(suggested.saving != nil && suggested.risk?.contains("web/package-lock.json") == true, "\(suggested)")
    }

    // MARK: cancel-in-progress

    /// A pull-request workflow whose second job deploys a preview environment: cancelling it half-way
    /// leaves a half-deployed environment.
    @Test func noCancelInProgressForAWorkflowThatDeploys() throws {
        let f = try Self.speed("""
            name: Preview
            on: pull_request
            jobs:
              build:
                runs-on: ubuntu-latest
                timeout-minutes: 10
                steps:
                  - uses: actions/checkout@v4
                  - run: make build
              deploy:
                needs: build
                runs-on: ubuntu-latest
                timeout-minutes: 10
                environment: preview
                steps:
                  - run: ./deploy.sh preview
            """)
        #expect(!f.contains { $0.rule == "gha-no-concurrency" }, "\(f.map(\.rule))")
    }

    /// Runs when a pull request is merged (closed): a cancelled run is a merge that never finished its work.
    @Test func noCancelInProgressForClosedOrMergedEvents() throws {
        let f = try Self.speed("""
            name: After merge
            on:
              pull_request:
                types: [closed]
            jobs:
              cleanup:
                if: github.event.pull_request.merged == true
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: echo "merged"
            """)
        #expect(!f.contains { $0.rule == "gha-no-concurrency" }, "\(f.map(\.rule))")
    }

    /// A pull-request workflow that also publishes a package (a canary) from a step's command.
    @Test func noCancelInProgressForAWorkflowThatPublishes() throws {
        let f = try Self.speed("""
            name: Canary
            on: pull_request
            jobs:
              canary:
                runs-on: ubuntu-latest
                timeout-minutes: 10
                steps:
                  - uses: actions/checkout@v4
                  - run: npm ci
                  - run: npm publish --tag canary
            """)
        #expect(!f.contains { $0.rule == "gha-no-concurrency" }, "\(f.map(\.rule))")
        // A plain pull-request workflow does get it, with its saving and risk.
        let plain = try #require(try Self.speed("name: CI\non: pull_request\njobs:\n  t:\n    runs-on: ubuntu-latest\n    timeout-minutes: 5\n    steps:\n      - run: make test\n").first { $0.rule == "gha-no-concurrency" })
        #expect(plain.saving != nil && plain.risk != nil)
    }

    // MARK: needs

    /// Each dependency the order carries: artifacts, outputs, a cache, an environment, a release order.
    @Test func needsThatCarrySomethingAreKept() throws {
        let f = try Self.speed("""
            name: Pipeline
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                timeout-minutes: 10
                steps:
                  - run: make dist
                  - uses: actions/upload-artifact@v4
                    with:
                      name: dist
                      path: dist/
              version:
                runs-on: ubuntu-latest
                timeout-minutes: 5
                outputs:
                  tag: ${{ steps.v.outputs.tag }}
                steps:
                  - id: v
                    run: echo "tag=v1" >> "$GITHUB_OUTPUT"
              warm:
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - uses: actions/cache@v4
                    with:
                      path: ~/.cache/tool
                      key: tool-${{ hashFiles('tool.lock') }}
                  - run: ./fetch-tool.sh
              tag:
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: git tag v1 && git push origin v1
              uses-artifact:
                needs: build
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - uses: actions/download-artifact@v4
                    with:
                      name: dist
              uses-output:
                needs: version
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: echo "${{ needs.version.outputs.tag }}"
              uses-cache:
                needs: warm
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: ./run-tool.sh
              after-tag:
                needs: tag
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: ./announce.sh
              production:
                needs: build
                runs-on: ubuntu-latest
                timeout-minutes: 5
                environment: production
                steps:
                  - run: ./deploy.sh
              on-failure:
                needs: build
                if: needs.build.result == 'failure'
                runs-on: ubuntu-latest
                timeout-minutes: 5
                steps:
                  - run: ./notify.sh
            """)
        #expect(!f.contains { $0.rule == "gha-needless-needs" }, "\(f.filter { $0.rule == "gha-needless-needs" }.map(\.message))")
    }

    /// A `needs:` that carries nothing is still reported, with what removing it risks.
    @Test func aNeedlessNeedsSaysItsRisk() throws {
        let f = try Self.speed("name: CI\non: push\njobs:\n  lint:\n    runs-on: ubuntu-latest\n    timeout-minutes: 5\n    steps:\n      - run: make lint\n  test:\n    needs: lint\n    runs-on: ubuntu-latest\n    timeout-minutes: 5\n    steps:\n      - run: make test\n")
        let needs = try #require(f.first { $0.rule == "gha-needless-needs" })
        #expect(needs.risk?.contains("also runs when lint fails") == true && needs.saving != nil)
    }

    // MARK: permissions

    /// A release job granted exactly the write scope it needs at the job level: not a finding, let alone a high one.
    @Test func minimalJobWritePermissionsAreNotHigh() throws {
        let f = try GitHubActionsAnalyzer.analyze(file: ".github/workflows/w.yml", text: """
            name: Release notes
            on:
              push:
                tags: ["v*"]
            permissions: {}
            jobs:
              notes:
                name: Release notes
                runs-on: ubuntu-latest
                timeout-minutes: 5
                permissions:
                  contents: write # gh release create
                steps:
                  - run: gh release create "$GITHUB_REF_NAME" --generate-notes
                    env:
                      GH_TOKEN: ${{ github.token }}
            """)
        #expect(!f.contains { $0.rule == "excessive-permissions" }, "\(f.map { "\($0.rule) \($0.severity)" })")
        #expect(!f.contains { $0.rule == "undocumented-permissions" })
    }
}
