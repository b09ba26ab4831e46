import ArgumentParser
import CortexCICD
import CortexControl
import CortexMonitoring
import CortexCore
import CortexOrchestration
import Foundation

/// Options shared by the subcommands that talk to an existing Redis.
struct RedisOptions: ParsableArguments {
    @Option(name: .long, help: "Redis URL (default: $CORTEX_REDIS_URL or redis://127.0.0.1:6379/0).")
    var redis: String?

    @Option(name: .long, help: "Redis Sentinels host:port,... (default: $CORTEX_REDIS_SENTINELS).")
    var redisSentinels: String?
    @Option(name: .long, help: "The primary's name in the sentinels (default: $CORTEX_REDIS_MASTER_NAME or cortex).")
    var redisMasterName: String?

    var url: String { redis ?? ProcessInfo.processInfo.environment["CORTEX_REDIS_URL"] ?? "redis://127.0.0.1:6379/0" }

    /// A bus for the CLI on the configured Redis (through the sentinels when given).
    func bus() throws -> MessageBus {
        let env = ProcessInfo.processInfo.environment
        return try ControlCommands.bus(redisURL: url, sentinels: redisSentinels ?? env["CORTEX_REDIS_SENTINELS"],
                                       masterName: redisMasterName ?? env["CORTEX_REDIS_MASTER_NAME"] ?? "cortex",
                                       passwordFile: env["CORTEX_REDIS_PASSWORD_FILE"])
    }
}

/// What a run asks for beyond its goal and targets: shared by `run` and `up`, so the local mode can do
/// everything a cluster install can.
struct RunOptions: ParsableArguments {
    @Flag(name: .long, help: "Let the testing master run the targets' test suites (their code runs on the workers, in a clean environment).")
    var allowTestExecution = false
    @Option(name: .long, help: "A change for the development master's implementation agent to make in each target (repeatable; needs a model).")
    var implement: [String] = []
}

/// The daemons' settings `up` can set for the suite it starts (each is also read from the environment,
/// as in a cluster: docs/configuration.md lists them all).
struct SuiteSettings: ParsableArguments {
    @Option(name: .long, help: "none, anthropic or openai (CORTEX_LLM_PROVIDER).") var llmProvider: String?
    @Option(name: .long, help: "The model name, e.g. claude-sonnet-4-5 or llama3.1:8b (CORTEX_LLM_MODEL).") var llmModel: String?
    @Option(name: .long, help: "The API's base URL, e.g. http://127.0.0.1:11434 for Ollama (CORTEX_LLM_BASE_URL).") var llmBaseUrl: String?
    @Option(name: .long, help: "A file holding the API key (CORTEX_LLM_API_KEY_FILE; or set CORTEX_LLM_API_KEY, never a flag: flags show in ps).") var llmApiKeyFile: String?
    @Option(name: .long, help: "rules, model or auto (CORTEX_PLANNER).") var planner: String?
    @Option(name: .long, help: "An OSV database: a directory of records, an all.zip, or osv-scanner's offline layout (CORTEX_OSV_DB).") var osvDb: String?
    @Option(name: .long, help: "The OSV query API to ask as well, e.g. https://api.osv.dev (CORTEX_OSV_API_URL).") var osvApiUrl: String?
    @Option(name: .long, help: "An OpenAI-compatible embeddings server for retrieval (CORTEX_EMBEDDINGS_URL).") var embeddingsUrl: String?

    /// The settings as the daemons' environment; paths made absolute (the daemons do not share our directory).
    func environment() throws -> [String: String] {
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path }
        if let p = llmProvider, !["none", "anthropic", "openai"].contains(p) { throw ValidationError("--llm-provider must be none, anthropic or openai, not '\(p)'") }
        if let p = planner, !["rules", "model", "auto"].contains(p) { throw ValidationError("--planner must be rules, model or auto, not '\(p)'") }
        for (flag, path) in [("--llm-api-key-file", llmApiKeyFile), ("--osv-db", osvDb)] {
            if let path, !FileManager.default.fileExists(atPath: absolute(path)) { throw ValidationError("\(flag): \(absolute(path)) does not exist") }
        }
        var env: [String: String] = [:]
        env["CORTEX_LLM_PROVIDER"] = llmProvider
        env["CORTEX_LLM_MODEL"] = llmModel
        env["CORTEX_LLM_BASE_URL"] = llmBaseUrl
        env["CORTEX_LLM_API_KEY_FILE"] = llmApiKeyFile.map(absolute)
        env["CORTEX_PLANNER"] = planner
        env["CORTEX_OSV_DB"] = osvDb.map(absolute)
        env["CORTEX_OSV_API_URL"] = osvApiUrl
        env["CORTEX_EMBEDDINGS_URL"] = embeddingsUrl
        return env
    }
}

@main
struct Cortexctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cortexctl",
        abstract: "Operate Cortex: run the suite locally, submit and watch runs, inspect and debug the Redis bus.",
        subcommands: [Up.self, Run.self, Watch.self, Status.self, Events.self, Publish.self, Budget.self, Routing.self, Memory.self, AuditCI.self, Docs.self]
    )
}

/// Turns library errors into a clean one-line message and exit status 2.
func fail(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("cortexctl: \(error)\n".utf8))
    return ExitCode(ControlCommands.ExitStatus.error.rawValue)
}

/// Ends `run` / `up` with the run's exit status (0 succeeded, 3 partial, 1 failed); a run that did not
/// succeed gets a last line `partial: <reason>` on stdout, so the verdict is the last thing a person reads.
func finishRun(_ state: RunState) throws {
    if let verdict = ControlCommands.verdict(state) { print(verdict) }
    let status = ControlCommands.ExitStatus(state)
    if status != .succeeded { throw ExitCode(status.rawValue) }
}

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a private redis-server and the whole suite locally, run one orchestration, print the summary, stop everything.",
        discussion: """
            Examples:
              cortexctl up --target ~/src/shop
              cortexctl up --target ~/src/shop --allow-test-execution --osv-db ~/osv/all.zip
              CORTEX_LLM_API_KEY=… cortexctl up --goal development --llm-provider anthropic --llm-model claude-sonnet-4-5 --implement "Fix the off-by-one in pagination"
            Every daemon setting in docs/configuration.md is also read from the environment.
            """)

    @Option(name: .long, help: "A repository to work on (repeatable; default: the current directory).")
    var target: [String] = []
    @Option(name: .long, help: "How many workers to start.")
    var workers: Int = 4
    @Option(name: .long, help: "The run's goal; naming masters (e.g. 'security testing') limits the run to them.")
    var goal: String = "full-orchestration"
    @Option(name: .long, help: "Where reports go.")
    var outputDir: String = "./cortex-reports"
    @Option(name: .long, help: "Seconds to wait for the run before giving up.")
    var timeout: Int = 600
    @Flag(name: .long, help: "Show every message instead of progress lines.")
    var verbose = false
    @Flag(name: .long, help: "Follow the run in the full-screen view of `cortexctl watch` (plain lines when stdout is not a terminal).")
    var watch = false
    @Option(name: .long, help: "Where the local suite keeps its Redis data, learnings and logs between invocations (default: $XDG_STATE_HOME/cortex/up, else ~/.local/state/cortex/up).")
    var stateDir: String?
    @Flag(name: .long, help: "Start from nothing: remove the state directory first (what earlier runs taught is forgotten).")
    var fresh = false
    @OptionGroup var options: RunOptions
    @OptionGroup var settings: SuiteSettings

    func run() async throws {
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        let settingsEnvironment = try settings.environment()
        let targets: [String]
        do { targets = try ControlCommands.resolveTargets(target) } catch { throw fail(error) }
        // The suite remembers between invocations (routing weights, learnings, run history): its Redis keeps its
        // data (append-only file) and the coordination directory its files, under one state directory.
        let work = LocalState.directory(stateDir)
        let lock: LocalState.Lock
        do {
            if fresh { try LocalState.remove(work) }
            lock = try LocalState.Lock(work)
        } catch { throw fail(error) }
        defer { lock.release() }
        let output = URL(fileURLWithPath: outputDir, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL
        let started = ContinuousClock.now
        let suite: LocalSuite
        do {
            suite = try await LocalSuite(workDirectory: work, outputDirectory: output,
                                         environment: ["CORTEX_PREFLIGHT_TIMEOUT": "20", "CORTEX_ACTIVATION_TIMEOUT": "20"].merging(settingsEnvironment) { $1 },
                                         redisArguments: LocalState.redisArguments)
        } catch { throw fail(error) }
        // Ctrl-C or SIGTERM: stop every child we started before leaving.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)  // a closed stdout (`| head`) must not skip the clean-up
        var handlers: [DispatchSourceSignal] = []
        for sig: Int32 in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                FileHandle.standardError.write(Data("\ncortexctl: interrupted; stopping the suite\n".utf8))
                let done = DispatchSemaphore(value: 0)
                Task { await suite.stop(grace: .seconds(5)); done.signal() }
                _ = done.wait(timeout: .now() + 8)
                suite.supervisor.killAll()
                Foundation.exit(130)
            }
            source.resume()
            handlers.append(source)
        }
        defer { handlers.forEach { $0.cancel() } }
        print("redis-server on 127.0.0.1:\(suite.redis.port); state in \(work.path)\(fresh ? " (fresh)" : ""); logs in \(suite.supervisor.logDirectory.path)")
        var state: RunState?
        var failure: Error?
        // A daemon that dies (a bad setting, a crash) must end the command with its reason, not leave it waiting.
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(200))
                if let dead = suite.supervisor.all.first(where: { !$0.name.hasPrefix("redis") && !$0.isRunning && ($0.exitStatus ?? 0) != 0 }) {
                    let last = dead.output().split(separator: "\n").last.map(String.init) ?? ""
                    FileHandle.standardError.write(Data("cortexctl: \(dead.name) exited with status \(dead.exitStatus ?? -1): \(last)\n".utf8))
                    await suite.stop(grace: .seconds(5))
                    Foundation.exit(ControlCommands.ExitStatus.error.rawValue)
                }
            }
        }
        defer { watchdog.cancel() }
        do {
            let catalog = try await suite.startCatalog()
            print("catalog-api on http://127.0.0.1:\(catalog.port) (token-less, local use)")
            try suite.startAll(workers: workers)
            print("started coordinator, 6 masters, \(workers) workers")
            let bus = try ControlCommands.bus(redisURL: suite.redis.url)
            state = try await ControlCommands.runAndFollow(bus: bus, goal: goal, targets: targets, timeout: .seconds(timeout), verbose: verbose,
                                                           allowTestExecution: options.allowTestExecution, implement: options.implement, watch: watch)
        } catch {
            failure = error
        }
        await suite.stop()
        let elapsed = ContinuousClock.now - started
        print("suite stopped; \(String(format: "%.1f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)) s wall")
        if let failure { throw fail(failure) }
        guard let state else { throw ExitCode(ControlCommands.ExitStatus.error.rawValue) }
        try finishRun(state)
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a run to a running suite and follow it to the end.",
        discussion: """
            Examples:
              cortexctl run --target /srv/repos/shop
              cortexctl run --goal "fix CVE-2021-44228" --target /srv/repos/shop --allow-test-execution
            Exit status: 0 succeeded, 3 partial, 1 failed, 2 error.
            """)
    @OptionGroup var redis: RedisOptions
    @Option(name: .long, help: "A repository path as the workers see it (repeatable; default: the current directory).")
    var target: [String] = []
    @Option(name: .long, help: "The run's goal.")
    var goal: String = "full-orchestration"
    @Option(name: .long, help: "Seconds to wait.")
    var timeout: Int = 3600
    @Flag(name: .long, help: "Show every message.")
    var verbose = false
    @OptionGroup var options: RunOptions

    func run() async throws {
        do {
            let bus = try redis.bus()
            let state = try await ControlCommands.runAndFollow(bus: bus, goal: goal, targets: try ControlCommands.resolveTargets(target), timeout: .seconds(timeout),
                                                               verbose: verbose, allowTestExecution: options.allowTestExecution, implement: options.implement)
            try finishRun(state)
        } catch let e as ExitCode { throw e } catch { throw fail(error) }
    }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a run live, full screen: phases, masters, workers by node, items, token budgets, findings, the last events.",
        discussion: """
            Examples:
              cortexctl watch                      # the latest run
              cortexctl watch run-20261202-114437-d026 --redis redis://127.0.0.1:6379/0
            Redrawn from the orchestration channels (and a once-a-second read of the worker registry and the
            token ledger); fits 80x24; plain progress lines when stdout is not a terminal. Ctrl-C leaves the
            run running. Exit status: the run's (0 succeeded, 3 partial, 1 failed), 2 on an error.
            """)
    @OptionGroup var redis: RedisOptions
    @Argument(help: "A run id (default: the latest run).") var runID: String?
    @Option(name: .long, help: "Seconds to wait for the run to end.") var timeout: Int = 3600

    func run() async throws {
        let state: RunState
        do {
            state = try await ControlCommands.watch(bus: try redis.bus(), runID: runID, timeout: .seconds(timeout))
        } catch { throw fail(error) }
        try finishRun(state)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show masters, workers and recent runs, or one run.",
                                                    discussion: "Examples:\n  cortexctl status\n  cortexctl status run-20261202-114437-d026 --redis redis://cortex-redis:6379/0")
    @OptionGroup var redis: RedisOptions
    @Argument(help: "A run id.") var runID: String?

    func run() async throws {
        do {
            let bus = try redis.bus()
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            print(try await ControlCommands.status(bus: bus, runID: runID), terminator: "")
        } catch { throw fail(error) }
    }
}

struct Budget: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a run's token ledger (the latest run by default); --watch refreshes it until the run ends.",
                                                    discussion: "Examples:\n  cortexctl budget\n  cortexctl budget --watch")
    @OptionGroup var redis: RedisOptions
    @Argument(help: "A run id.") var runID: String?
    @Flag(name: .long, help: "Refresh every second until the run ends.") var watch = false

    func run() async throws {
        do {
            let bus = try redis.bus()
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            while true {
                let table = try await ControlCommands.budget(bus: bus, runID: runID)
                if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
                print(table, terminator: "")
                fflush(nil)
                guard watch, !table.contains("(succeeded)"), !table.contains("(partial)"), !table.contains("(failed)") else { break }
                try await Task.sleep(for: .seconds(1))
            }
        } catch { throw fail(error) }
    }
}

struct Memory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or forget what the masters learned between runs (e.g. fixes that need a person).",
        discussion: "Examples:\n  cortexctl memory show\n  cortexctl memory show --master security --target shop\n  cortexctl memory forget --master security --target shop   # the next run tries those fixes again")
    @OptionGroup var redis: RedisOptions
    @Argument(help: "show or forget.") var action: String
    @Option(name: .long, help: "Only this master's learnings.") var master: String?
    @Option(name: .long, help: "Only learnings on this target (a repository name or path).") var target: String?

    func run() async throws {
        do {
            guard ["show", "forget"].contains(action) else { throw CortexError(.invalidInput, "unknown action '\(action)': use show or forget") }
            let bus = try redis.bus()
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            let text = action == "show" ? try await ControlCommands.memoryShow(bus: bus, master: master, target: target)
                : try await ControlCommands.memoryForget(bus: bus, master: master, target: target)
            print(text, terminator: "")
        } catch { throw fail(error) }
    }
}

struct Routing: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what the router learned: per subtask kind, target feature and expert, the trials, successes and weight it routes by.",
                                                    discussion: "Example:\n  cortexctl routing --redis redis://127.0.0.1:6379/0")
    @OptionGroup var redis: RedisOptions

    func run() async throws {
        do {
            let bus = try redis.bus()
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            print(try await ControlCommands.routing(bus: bus), terminator: "")
        } catch { throw fail(error) }
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Tail channel messages, one readable line each (rejected messages are shown too).",
                                                    discussion: "Examples:\n  cortexctl events\n  cortexctl events --channel workers")
    @OptionGroup var redis: RedisOptions
    @Option(name: .long, help: "coordination, workers, system or all.")
    var channel: String = "all"
    @Option(name: .long, help: "Only messages of this run.")
    var run: String?
    @Option(name: .long, help: "Stop after this many messages.")
    var count: Int?
    @Flag(name: .long, help: "Print the raw JSON instead.")
    var json = false

    func run() async throws {
        do {
            let bus = try redis.bus()
            let channels: [CortexNames.Channel]
            if channel == "all" { channels = CortexNames.Channel.allCases } else {
                guard let c = CortexNames.Channel(name: channel) else { throw CortexError(.invalidInput, "unknown channel '\(channel)': use coordination, workers, system, catalog or all") }
                channels = [c]
            }
            guard await bus.redis.ping() else { throw CortexError(.unreachable, "cannot reach Redis at \(bus.redis.endpoint)") }
            // A tail that silently stops (Redis gone) or silently skips (too slow a terminal) would lie.
            let subscriber = RedisSubscriber(endpoint: bus.redis.endpoint, channels: channels.map(\.rawValue), configuration: bus.redis.configuration,
                                             onConnectionChange: { up in
                FileHandle.standardError.write(Data((up ? "cortexctl: subscribed\n" : "cortexctl: connection to Redis lost; reconnecting (messages published meanwhile are missed)\n").utf8))
            })
            defer { subscriber.stop() }
            var seen = 0
            var droppedReported = 0
            for await message in subscriber.messages {
                if subscriber.droppedMessages > droppedReported {
                    print("(\(subscriber.droppedMessages - droppedReported) messages dropped: this terminal could not keep up)")
                    droppedReported = subscriber.droppedMessages
                }
                switch bus.decoder.decode(message.payload, channel: CortexNames.Channel(rawValue: message.channel)) {
                case .success(let e):
                    if let run, e.runID != run { continue }
                    print(json ? e.encodedString : EventFormatter.line(e))
                case .failure(let r):
                    if run != nil { continue }
                    print("REJECTED on \(message.channel): \(r)")
                }
                fflush(nil)
                seen += 1
                if let count, seen >= count { break }
            }
        } catch { throw fail(error) }
    }
}

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate and publish one message.",
                                                    discussion: "Example:\n  cortexctl publish system PHASE_0_START --data '{\"phase\":0,\"name\":\"pre-flight\"}'")
    @OptionGroup var redis: RedisOptions
    @Argument(help: "Channel: full name or coordination / workers / system / catalog.") var channel: String
    @Argument(help: "Message type, e.g. ESCALATION.") var type: String
    @Option(name: .long, help: "The data object as JSON.") var data: String = "{}"
    @Option(name: .long, help: "The run id to stamp on the envelope.") var runID: String?

    func run() async throws {
        do {
            let bus = try redis.bus()
            let e = try await ControlCommands.publish(bus: bus, channel: channel, type: type, data: data, runID: runID)
            print("published \(e.type.rawValue) on \(e.channel.rawValue): \(e.encodedString)")
        } catch { throw fail(error) }
    }
}

struct AuditCI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit-ci",
        abstract: "Audit CI pipeline files (GitHub Actions workflows, .gitlab-ci.yml) as the cicd master does, without Redis.",
        discussion: """
            Example: cortexctl audit-ci .github/workflows/*.yml --persona pedantic
            Exit status: 0 no finding shown, 1 findings shown, 2 a file could not be read or parsed (the others are still audited).
            """)
    @Argument(help: "Pipeline files; any file not named .gitlab-ci.yml is read as a GitHub Actions workflow.") var files: [String]
    @Option(help: "regular (what to act on), pedantic (plus hygiene) or auditor (every lead), as zizmor's personas.") var persona = "regular"
    @Option(help: "text or json") var format = "text"
    @Flag(help: "Also show findings the workflow acknowledges with `# zizmor: ignore[…]` comments.") var noIgnores = false

    func run() throws {
        let levels = ["regular": 0, "pedantic": 1, "auditor": 2]
        guard let level = levels[persona] else { throw ValidationError("--persona must be regular, pedantic or auditor, not '\(persona)'") }
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json, not '\(format)'") }
        var shown: [PipelineFinding] = []
        var failed = false
        for path in files {
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                let findings = try PipelineAnalyzer.analyze(file: path, text: text, asWorkflow: true) ?? []
                shown += findings.filter { (levels[$0.persona ?? "regular"] ?? 0) <= level && (noIgnores || $0.ignoredBy == nil) }
            } catch {
                FileHandle.standardError.write(Data("cortexctl: \(path): \(error)\n".utf8))
                failed = true
            }
        }
        if format == "json" {
            print(JSONText.pretty(JSONValue.of(shown)))
        } else {
            for f in shown {
                print("\(f.file):\(f.line.map(String.init) ?? "-"): \(f.severity)\(f.confidence.map { "/\($0)" } ?? "") \(f.rule)"
                      + ([f.job, f.stepIndex.map { "step \($0 + 1)" }].compactMap { $0 }.isEmpty ? "" : " [\([f.job, f.stepIndex.map { "step \($0 + 1)" }].compactMap { $0 }.joined(separator: ", "))]")
                      + ": \(f.message)")
            }
            print("\(shown.count) finding\(shown.count == 1 ? "" : "s") (\(persona))")
        }
        if failed { throw ExitCode(2) }
        if !shown.isEmpty { throw ExitCode(1) }
    }
}

struct Docs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print generated documentation (protocol, configuration, acl), Cortex's alert rules (alerts), the chart's Redis ACL template (acl-file), or write its Grafana dashboards (dashboards DIR).",
        discussion: "Examples:\n  cortexctl docs protocol > docs/protocol.md\n  cortexctl docs dashboards charts/cortex/files/dashboards")
    @Argument(help: "protocol, configuration, acl, acl-file, alerts or dashboards") var which: String
    @Argument(help: "for dashboards: the directory to write them to") var directory: String?

    func run() throws {
        switch which {
        case "protocol": print(GeneratedDocs.protocolMarkdown(), terminator: "")
        case "configuration": print(GeneratedDocs.configurationMarkdown(), terminator: "")
        case "alerts": print(CortexAlerts.ruleFile, terminator: "")
        case "acl": print(RedisACL.markdown(), terminator: "")
        case "acl-file": print(RedisACL.chartTemplate, terminator: "")
        case "dashboards":
            guard let directory else { throw ValidationError("dashboards needs a directory, e.g. charts/cortex/files/dashboards") }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (name, json) in CortexDashboards.all {
                try Data(JSONText.pretty(json).utf8).write(to: URL(fileURLWithPath: directory).appendingPathComponent("\(name).json"))
                print("\(directory)/\(name).json")
            }
        default: throw ValidationError("unknown document '\(which)': use protocol, configuration, acl, acl-file, alerts or dashboards")
        }
    }
}
