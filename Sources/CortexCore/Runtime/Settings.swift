import Foundation

/// One configuration setting: its environment variable, its flag, default and meaning.
///
/// The table in `Setting.all` is the only place settings are declared; `--help` and
/// docs/configuration.md are generated from it.
public struct Setting: Sendable, Hashable {
    public var env: String
    public var flag: String
    public var defaultValue: String
    public var help: String
    /// Which processes read it ("all", "coordinator", "masters", "worker", ...), for the docs.
    public var usedBy: String

    public static let redisURL = Setting(env: "CORTEX_REDIS_URL", flag: "redis", defaultValue: "redis://127.0.0.1:6379/0",
        help: "Redis to coordinate through: redis://[user:password@]host:port[/db].", usedBy: "all")
    public static let redisSentinels = Setting(env: "CORTEX_REDIS_SENTINELS", flag: "redis-sentinels", defaultValue: "(none)",
        help: "Comma-separated host:port of Redis Sentinels; when set, the primary is found (and followed through failovers) through them, and the URL supplies only credentials and db.", usedBy: "all")
    public static let redisMasterName = Setting(env: "CORTEX_REDIS_MASTER_NAME", flag: "redis-master-name", defaultValue: "cortex",
        help: "The primary's name in the sentinels' configuration.", usedBy: "all")
    public static let coordinationDir = Setting(env: "CORTEX_COORDINATION_DIR", flag: "coordination-dir", defaultValue: "./coordination",
        help: "Local directory for the journal of writes made while Redis was unreachable (replayed on reconnect) and the coordinator's run-state snapshots.", usedBy: "all")
    public static let httpHost = Setting(env: "CORTEX_HTTP_HOST", flag: "http-host", defaultValue: "0.0.0.0",
        help: "Address the ops endpoint (/healthz, /readyz, /metrics) listens on.", usedBy: "all")
    public static let httpPort = Setting(env: "CORTEX_HTTP_PORT", flag: "http-port", defaultValue: "(per process)",
        help: "Port of the ops endpoint; 0 picks a free one. Defaults: coordinator 9100, security 9101, development 9102, inventory 9103, cicd 9104, testing 9105, monitoring 9106, worker 9110.", usedBy: "all")
    public static let logLevel = Setting(env: "CORTEX_LOG_LEVEL", flag: "log-level", defaultValue: "info",
        help: "trace, debug, info, notice, warning, error or critical.", usedBy: "all")
    public static let maxMessageBytes = Setting(env: "CORTEX_MAX_MESSAGE_BYTES", flag: "max-message-bytes", defaultValue: "262144",
        help: "Channel messages larger than this are rejected (reason `oversized`).", usedBy: "all")
    public static let instanceID = Setting(env: "CORTEX_INSTANCE_ID", flag: "instance-id", defaultValue: "(hostname-pid)",
        help: "This process's identity in registries and consumer groups; in Kubernetes the pod name.", usedBy: "all")
    public static let nodeName = Setting(env: "NODE_NAME", flag: "node-name", defaultValue: "(hostname)",
        help: "The node this process runs on (the chart sets it from the downward API).", usedBy: "all")
    public static let heartbeatInterval = Setting(env: "CORTEX_HEARTBEAT_INTERVAL", flag: "heartbeat-interval", defaultValue: "5",
        help: "Seconds between heartbeats of masters and workers.", usedBy: "masters, worker")
    public static let heartbeatTimeout = Setting(env: "CORTEX_HEARTBEAT_TIMEOUT", flag: "heartbeat-timeout", defaultValue: "15",
        help: "Seconds after the last heartbeat at which a master or worker counts as gone (TTL of its liveness key).", usedBy: "all")
    public static let preflightTimeout = Setting(env: "CORTEX_PREFLIGHT_TIMEOUT", flag: "preflight-timeout", defaultValue: "30",
        help: "Seconds phase 0 waits for the six masters to register before failing the run, naming the missing ones.", usedBy: "coordinator")
    public static let activationTimeout = Setting(env: "CORTEX_ACTIVATION_TIMEOUT", flag: "activation-timeout", defaultValue: "30",
        help: "Seconds phase 1 waits for every master's MASTER_ACTIVATION_ACK.", usedBy: "coordinator")
    public static let runTimeout = Setting(env: "CORTEX_RUN_TIMEOUT", flag: "run-timeout", defaultValue: "3600",
        help: "Seconds phase 3 waits for master reports; after that the run ends with a partial report.", usedBy: "coordinator")
    public static let outputDir = Setting(env: "CORTEX_OUTPUT_DIR", flag: "output-dir", defaultValue: "./cortex-reports",
        help: "Where the coordinator writes run reports (one directory per run, Markdown and JSON).", usedBy: "coordinator")
    public static let planner = Setting(env: "CORTEX_PLANNER", flag: "planner", defaultValue: "auto",
        help: "How a run's goal becomes a plan: `rules` (the documented rule table), `model` (the configured LLM proposes the plan, validated; the rules when it is invalid or refused), or `auto` (model when a model is configured, else rules).", usedBy: "coordinator")
    public static let routingExploration = Setting(env: "CORTEX_ROUTING_EXPLORATION", flag: "routing-exploration", defaultValue: "0.1",
        help: "Share (0-1) of routing decisions that try the least-tried expert instead of the best-weighted one, so a strategy that was unlucky once is tried again. Decided by a hash of run and subtask, so a resumed run decides the same.", usedBy: "coordinator")
    public static let knowledgeDir = Setting(env: "CORTEX_KNOWLEDGE_DIR", flag: "knowledge-dir", defaultValue: "(none)",
        help: "Knowledge bases: Markdown files (runbooks, policies) under <dir>/<agent>/ (coordinator, security, development, inventory, cicd, testing, monitoring) and <dir>/common/; before each model call the caller retrieves the best sections (BM25) and cites them.", usedBy: "coordinator, masters, worker")
    public static let embeddingsURL = Setting(env: "CORTEX_EMBEDDINGS_URL", flag: "embeddings-url", defaultValue: "(none)",
        help: "An OpenAI-compatible embeddings server (POST <url>/v1/embeddings: OpenAI, Ollama, vLLM). With it, knowledge-base retrieval ranks by BM25 and cosine similarity together (vectors kept in Redis); without it, or when it fails (reported), by BM25 alone.", usedBy: "coordinator, masters, worker")
    public static let embeddingsModel = Setting(env: "CORTEX_EMBEDDINGS_MODEL", flag: "embeddings-model", defaultValue: "all-MiniLM-L6-v2",
        help: "The embedding model the server knows (e.g. nomic-embed-text for Ollama).", usedBy: "coordinator, masters, worker")
    public static let embeddingsAPIKey = Setting(env: "CORTEX_EMBEDDINGS_API_KEY", flag: "embeddings-api-key", defaultValue: "(none)",
        help: "A bearer token for the embeddings server, if it wants one. Never logged; prefer the file.", usedBy: "coordinator, masters, worker")
    public static let embeddingsAPIKeyFile = Setting(env: "CORTEX_EMBEDDINGS_API_KEY_FILE", flag: "embeddings-api-key-file", defaultValue: "(none)",
        help: "A file holding the embeddings server's token; wins over CORTEX_EMBEDDINGS_API_KEY.", usedBy: "coordinator, masters, worker")
    public static let fileCacheMaxMB = Setting(env: "CORTEX_FILE_CACHE_MAX_MB", flag: "file-cache-max-mb", defaultValue: "256",
        help: "Incremental runs: workers keep each file's results in Redis by the file's git blob id and the skill's version, and a later run reuses them for unchanged files. The cache's bound in MiB (least recently used targets are evicted first); 0 switches it off.", usedBy: "worker")
    public static let itemsPerTask = Setting(env: "CORTEX_ITEMS_PER_TASK", flag: "items-per-task", defaultValue: "4",
        help: "How many work items (shards of a target) a master splits each task into.", usedBy: "masters")
    public static let claimIdle = Setting(env: "CORTEX_CLAIM_IDLE", flag: "claim-idle", defaultValue: "30",
        help: "Visibility timeout: seconds a delivered but unacknowledged stream entry (a work item, a task, a run request) may sit idle before another consumer claims it (XAUTOCLAIM).", usedBy: "all")
    public static let maxDeliveries = Setting(env: "CORTEX_MAX_DELIVERIES", flag: "max-deliveries", defaultValue: "5",
        help: "A work item delivered this many times without completing (it keeps killing workers) moves to the dead-letter stream. From its third delivery on it runs alone on its worker, so the items read with it are not charged for it (docs/architecture.md).", usedBy: "worker")
    public static let workerConcurrency = Setting(env: "CORTEX_WORKER_CONCURRENCY", flag: "worker-concurrency", defaultValue: "16",
        help: "Work items one worker runs at once. The worker reads as many entries as it has room for in one XREADGROUP and commits every item finished meanwhile in one transaction; 1 runs one item at a time.", usedBy: "worker")
    public static let workerPoolConcurrency = Setting(env: "CORTEX_WORKER_POOL_CONCURRENCY", flag: "worker-pool-concurrency", defaultValue: "implementation=1,test=1",
        help: "At most this many items of a pool at once in one worker, below CORTEX_WORKER_CONCURRENCY: pool=n, comma-separated; \"none\" for no pool limit. Implementation items clone, build and call the model, test items run a whole test suite: one at a time by default.", usedBy: "worker")
    public static let itemEventThreshold = Setting(env: "CORTEX_ITEM_EVENT_THRESHOLD", flag: "item-event-threshold", defaultValue: "0.25",
        help: "Seconds a work item runs before its worker announces it (TASK_STARTED, then TASK_COMPLETE); items that finish sooner are reported together, one TASK_BATCH_COMPLETE per task and commit.", usedBy: "worker")
    public static let httpIdleTimeout = Setting(env: "CORTEX_HTTP_IDLE_TIMEOUT", flag: "http-idle-timeout", defaultValue: "30",
        help: "Seconds a connection to the ops endpoint (/healthz, /readyz, /metrics) may sit idle, or take to send its request head, before it is closed (slow-header clients cannot hold connections).", usedBy: "all")
    public static let idleMemoryTrim = Setting(env: "CORTEX_IDLE_MEMORY_TRIM", flag: "idle-memory-trim", defaultValue: "30",
        help: "Every this many whole seconds a daemon that was idle meanwhile (under 2 % of a core) after being busy gives back the pages it touched while busy: the code and read-only data of its executable and libraries that no other process maps and that the daemon's user owns (madvise MADV_PAGEOUT; they are read again when needed; the image installs the binaries owned by their user), and the heap's free memory. 0: never.", usedBy: "all")
    public static let retention = Setting(env: "CORTEX_RETENTION", flag: "retention", defaultValue: "604800",
        help: "Seconds Redis keeps what a run leaves behind: run state, task results, budget accounts, development attempts (each key expires after it), and unread work-stream entries older than this are trimmed. Phase 5 also archives a finished run's working keys into its report and deletes them. A master in spawn mode forgets its worker Jobs that ended longer ago than this. Default 7 days.", usedBy: "all")
    public static let masterDownTimeout = Setting(env: "CORTEX_MASTER_DOWN_TIMEOUT", flag: "master-down-timeout", defaultValue: "300",
        help: "Seconds a run waits for a master that went down to come back before it ends with a partial report.", usedBy: "coordinator")
    public static let budgetTotal = Setting(env: "CORTEX_BUDGET_TOTAL", flag: "budget-total", defaultValue: "295000",
        help: "A run's total token budget.", usedBy: "coordinator")
    public static let budgetReserve = Setting(env: "CORTEX_BUDGET_RESERVE", flag: "budget-reserve", defaultValue: "25000",
        help: "Tokens of the total held back by the coordinator as the emergency reserve.", usedBy: "coordinator")
    public static let budgets = Setting(env: "CORTEX_BUDGETS", flag: "budgets", defaultValue: "(the design's table)",
        help: "Per-agent budgets as agent=personal+workers, comma-separated, e.g. development=40000+20000. Defaults: coordinator 50000+30000, security 30000+15000, development 30000+20000, inventory 35000+15000, cicd 25000+20000, testing 25000+15000, monitoring 20000+10000. Agent budgets are caps within the run's cap (total less reserve), as in the design, where they add up to more than it.", usedBy: "coordinator")
    public static let workerPools = Setting(env: "CORTEX_WORKER_POOLS", flag: "pools", defaultValue: "(all pools)",
        help: "Comma-separated pools this worker serves: catalog, scan, implementation, documentation, analysis, test.", usedBy: "worker")

    public static let catalogURL = Setting(env: "CORTEX_CATALOG_URL", flag: "catalog-url", defaultValue: "(none)",
        help: "Base URL of catalog-api, e.g. http://catalog-api:8080. Workers register what they discover there; the coordinator reports catalog totals before and after a run; the model planner, the masters' assessments and the development agent retrieve what it holds about a target. Unset: no catalog.", usedBy: "all")
    public static let catalogToken = Setting(env: "CORTEX_CATALOG_TOKEN", flag: "catalog-token", defaultValue: "(none)",
        help: "Bearer token for catalog-api (write scope for workers). Never logged.", usedBy: "all")
    public static let catalogTokens = Setting(env: "CORTEX_CATALOG_TOKENS", flag: "tokens", defaultValue: "(none)",
        help: "Accepted bearer tokens as scope:token[:name], comma-separated; scope is read or write (write includes read); tokens have 16+ characters.", usedBy: "catalog-api")
    public static let catalogTokensFile = Setting(env: "CORTEX_CATALOG_TOKENS_FILE", flag: "tokens-file", defaultValue: "(none)",
        help: "A file with more scope:token[:name] entries, one per line (e.g. a mounted Secret).", usedBy: "catalog-api")
    public static let catalogAllowAnonymous = Setting(env: "CORTEX_CATALOG_ALLOW_ANONYMOUS", flag: "allow-anonymous", defaultValue: "false",
        help: "true: accept requests without a token, with write scope (local use; cortexctl up sets it). Without tokens and without this, catalog-api refuses to start.", usedBy: "catalog-api")
    public static let catalogMaxDepth = Setting(env: "CORTEX_CATALOG_MAX_DEPTH", flag: "max-depth", defaultValue: "12",
        help: "Deepest GraphQL selection accepted, fragments expanded (paths through __schema / __type may nest 20 deep, for tools' introspection queries).", usedBy: "catalog-api")
    public static let catalogMaxCost = Setting(env: "CORTEX_CATALOG_MAX_COST", flag: "max-cost", defaultValue: "50000",
        help: "Highest GraphQL query cost accepted: one per field (every alias, __typename and introspection field included), list fields multiplied by the items they may return.", usedBy: "catalog-api")
    public static let catalogMaxPage = Setting(env: "CORTEX_CATALOG_MAX_PAGE", flag: "max-page", defaultValue: "500",
        help: "Largest page (`first`, `limit`) a listing returns.", usedBy: "catalog-api")
    public static let catalogMaxBody = Setting(env: "CORTEX_CATALOG_MAX_BODY", flag: "max-body", defaultValue: "8388608",
        help: "Largest request body in bytes (batch upserts are the big ones); larger is refused with 413.", usedBy: "catalog-api")
    public static let catalogMaxTokens = Setting(env: "CORTEX_CATALOG_MAX_TOKENS", flag: "max-tokens", defaultValue: "10000",
        help: "Most lexical tokens a GraphQL document may have (counted before it is parsed; values belong in variables); more is refused with QUERY_TOO_LARGE.", usedBy: "catalog-api")
    public static let catalogRequestTimeout = Setting(env: "CORTEX_CATALOG_REQUEST_TIMEOUT", flag: "request-timeout", defaultValue: "15",
        help: "Seconds a GraphQL query or mutation may run; then the client gets a TIMEOUT error and the execution is cancelled.", usedBy: "catalog-api")
    public static let catalogMaxResultNodes = Setting(env: "CORTEX_CATALOG_MAX_RESULT_NODES", flag: "max-result-nodes", defaultValue: "200000",
        help: "Most values (objects, list items, leaves) a GraphQL result may hold; a larger one is answered with RESULT_TOO_LARGE.", usedBy: "catalog-api")
    public static let catalogMaxConcurrentPerClient = Setting(env: "CORTEX_CATALOG_MAX_CONCURRENT_PER_CLIENT", flag: "max-concurrent-per-client", defaultValue: "16",
        help: "GraphQL queries and mutations one token (all anonymous callers together) may have running at once; more are refused with 429 and Retry-After.", usedBy: "catalog-api")
    public static let catalogHeaderTimeout = Setting(env: "CORTEX_CATALOG_HEADER_TIMEOUT", flag: "header-timeout", defaultValue: "10",
        help: "Seconds a new connection has to deliver its first complete request head (slowloris); then it is closed.", usedBy: "catalog-api")
    public static let catalogIdleTimeout = Setting(env: "CORTEX_CATALOG_IDLE_TIMEOUT", flag: "idle-timeout", defaultValue: "60",
        help: "Seconds a connection may go without a complete request part (an idle keep-alive connection, or a later request head sent slowly) before it is closed; responses being written or streamed (SSE) do not count as idle.", usedBy: "catalog-api")
    public static let catalogFastPath = Setting(env: "CORTEX_CATALOG_FAST_PATH", flag: "fast-path", defaultValue: "true",
        help: "true: repeated GraphQL texts are parsed and validated once (a cache of 256), and queries of only asset, assets and lineage run on catalog-api's own executor, the same resolvers writing the same JSON as the GraphQL library (docs/catalog.md, Execution); false: every operation is parsed, validated and executed by the library, as before (to compare the two).", usedBy: "catalog-api")

    public static let llmProvider = Setting(env: "CORTEX_LLM_PROVIDER", flag: "llm-provider", defaultValue: "none",
        help: "none (LLM steps are skipped and reported so), anthropic (the Messages API) or openai (any OpenAI-compatible chat-completions server: OpenAI, Ollama, vLLM, llama.cpp).", usedBy: "coordinator, masters")
    public static let llmModel = Setting(env: "CORTEX_LLM_MODEL", flag: "llm-model", defaultValue: "(none; required with a provider)",
        help: "The model name the provider knows, e.g. claude-sonnet-4-5 or llama3.1:8b.", usedBy: "coordinator, masters")
    public static let llmBaseURL = Setting(env: "CORTEX_LLM_BASE_URL", flag: "llm-base-url", defaultValue: "(the provider's)",
        help: "The API's base URL: default https://api.anthropic.com or https://api.openai.com; e.g. http://ollama:11434 for Ollama.", usedBy: "coordinator, masters")
    public static let llmAPIKey = Setting(env: "CORTEX_LLM_API_KEY", flag: "llm-api-key", defaultValue: "(none)",
        help: "The API key (x-api-key for Anthropic, a bearer token for OpenAI-compatible servers). Never logged; prefer the file.", usedBy: "coordinator, masters")
    public static let llmAPIKeyFile = Setting(env: "CORTEX_LLM_API_KEY_FILE", flag: "llm-api-key-file", defaultValue: "(none)",
        help: "A file holding the API key (e.g. a mounted Secret); wins over CORTEX_LLM_API_KEY.", usedBy: "coordinator, masters")
    public static let llmTimeout = Setting(env: "CORTEX_LLM_TIMEOUT", flag: "llm-timeout", defaultValue: "60",
        help: "Seconds one LLM HTTP request may take.", usedBy: "coordinator, masters")
    public static let llmMaxRetries = Setting(env: "CORTEX_LLM_MAX_RETRIES", flag: "llm-max-retries", defaultValue: "3",
        help: "Retries after 429, 5xx or a connection failure, with exponential backoff honouring Retry-After (each wait at most 30 s).", usedBy: "coordinator, masters")
    public static let llmMaxTokens = Setting(env: "CORTEX_LLM_MAX_TOKENS", flag: "llm-max-tokens", defaultValue: "1024",
        help: "Output cap per LLM call (part of the estimate reserved on the ledger before the call).", usedBy: "coordinator, masters")
    public static let budgetRequestTimeout = Setting(env: "CORTEX_BUDGET_REQUEST_TIMEOUT", flag: "budget-request-timeout", defaultValue: "10",
        help: "Seconds an agent waits for the coordinator's BUDGET_DECISION before treating the request as denied.", usedBy: "coordinator, masters")

    public static let kubernetes = Setting(env: "CORTEX_KUBERNETES", flag: "kubernetes", defaultValue: "auto",
        help: "Discover the cluster in inventory runs: on, off, or auto (when in a pod with a service account, or when KUBECONFIG / ~/.kube/config gives a usable context). Discovery is read-only (list only); in spawn mode (CORTEX_WORKER_MODE) the masters also create, watch and delete worker Jobs in their namespace.", usedBy: "coordinator, masters, worker")

    public static let workerMode = Setting(env: "CORTEX_WORKER_MODE", flag: "worker-mode", defaultValue: "pool",
        help: "How workers come to be: `pool` (long-running replicas only, the everyday mode), `jobs` (the masters create a Kubernetes Job per worker when they queue items) or `both` (pools, plus Jobs when the backlog outgrows them). Spawn rule: a master creates ceil(backlog / per-worker) - live workers Jobs, where backlog is the pool stream's unacknowledged entries, per-worker = max(1, CORTEX_WORKER_JOB_TARGET / CORTEX_WORKER_ITEM_SECONDS) and live counts the pool's registered workers with a heartbeat plus its Jobs not yet running; capped by CORTEX_WORKER_JOBS_MAX and CORTEX_WORKER_JOBS_PER_RUN (docs/install.md).", usedBy: "masters")
    public static let workerJobTemplate = Setting(env: "CORTEX_WORKER_JOB_TEMPLATE", flag: "worker-job-template", defaultValue: "(none; required in spawn mode)",
        help: "A JSON file holding the worker Jobs' pod template (the worker image, command, environment, volumes, service account; the chart renders it from the worker Deployment's). The master adds `--pools`, labels, resources, node anti-affinity, restartPolicy Never and CORTEX_WORKER_IDLE_EXIT.", usedBy: "masters")
    public static let workerJobNamespace = Setting(env: "CORTEX_WORKER_JOB_NAMESPACE", flag: "worker-job-namespace", defaultValue: "(the pod's namespace, else default)",
        help: "The namespace worker Jobs are created in (the masters' Role allows only their release namespace).", usedBy: "masters")
    public static let workerJobsMax = Setting(env: "CORTEX_WORKER_JOBS_MAX", flag: "worker-jobs-max", defaultValue: "4",
        help: "Spawn mode: at most this many of a master's worker Jobs unfinished at once.", usedBy: "masters")
    public static let workerJobsPerRun = Setting(env: "CORTEX_WORKER_JOBS_PER_RUN", flag: "worker-jobs-per-run", defaultValue: "8",
        help: "Spawn mode: at most this many worker Jobs one master creates for one run (respawns included).", usedBy: "masters")
    public static let workerJobTarget = Setting(env: "CORTEX_WORKER_JOB_TARGET", flag: "worker-job-target", defaultValue: "120",
        help: "Spawn mode: seconds within which the live workers should drain a pool's backlog; more Jobs are created when they cannot.", usedBy: "masters")
    public static let workerItemSeconds = Setting(env: "CORTEX_WORKER_ITEM_SECONDS", flag: "worker-item-seconds", defaultValue: "30",
        help: "Spawn mode: the seconds one work item is expected to take, for the spawn rule.", usedBy: "masters")
    public static let workerJobDeadline = Setting(env: "CORTEX_WORKER_JOB_DEADLINE", flag: "worker-job-deadline", defaultValue: "3600",
        help: "A worker Job's activeDeadlineSeconds: Kubernetes stops it after this long whatever it is doing.", usedBy: "masters")
    public static let workerJobTTL = Setting(env: "CORTEX_WORKER_JOB_TTL", flag: "worker-job-ttl", defaultValue: "600",
        help: "A worker Job's ttlSecondsAfterFinished: Kubernetes deletes a finished Job (and its pod) after this long.", usedBy: "masters")
    public static let workerJobIdle = Setting(env: "CORTEX_WORKER_JOB_IDLE", flag: "worker-job-idle", defaultValue: "30",
        help: "Seconds a spawned worker waits on an empty pool stream before it exits (given to its Job as CORTEX_WORKER_IDLE_EXIT).", usedBy: "masters")
    public static let workerJobConcurrency = Setting(env: "CORTEX_WORKER_JOB_CONCURRENCY", flag: "worker-job-concurrency", defaultValue: "1",
        help: "Spawn mode: items one spawned worker runs at once (given to its Job as CORTEX_WORKER_CONCURRENCY). 1 by default: a Job's memory limit is its worker type's, sized for one item, and an OOMKill counts against every item the pod held.", usedBy: "masters")
    public static let workerJobOOMLimit = Setting(env: "CORTEX_WORKER_JOB_OOM_LIMIT", flag: "worker-job-oom-limit", defaultValue: "3",
        help: "A work item held by this many OOMKilled worker pods is dead-lettered with the reason, and an ESCALATION is published.", usedBy: "masters")
    public static let workerJobMemoryCap = Setting(env: "CORTEX_WORKER_JOB_MEMORY_CAP_MIB", flag: "worker-job-memory-cap-mib", defaultValue: "8192",
        help: "The highest memory limit (MiB) a respawn may ask for: an OOMKilled worker comes back with its limit × 1.5, at most this.", usedBy: "masters")
    public static let workerIdleExit = Setting(env: "CORTEX_WORKER_IDLE_EXIT", flag: "idle-exit", defaultValue: "0",
        help: "Seconds without a work item after which the worker exits 0 (spawned worker Jobs end this way); 0 never exits.", usedBy: "worker")

    public static let osvDatabase = Setting(env: "CORTEX_OSV_DB", flag: "osv-db", defaultValue: "(none)",
        help: "Vulnerability database in OSV format for the security master: a directory of OSV JSON records (searched recursively), an all.zip, or osv-scanner's offline layout (<dir>/<Ecosystem>/all.zip). Re-read when it changes.", usedBy: "security-master")
    public static let osvAPIURL = Setting(env: "CORTEX_OSV_API_URL", flag: "osv-api-url", defaultValue: "(none)",
        help: "The OSV query API to ask as well, e.g. https://api.osv.dev (POST /v1/querybatch, GET /v1/vulns/{id}); unset keeps the scan offline.", usedBy: "security-master")
    public static let securityFixBranches = Setting(env: "CORTEX_SECURITY_FIX_BRANCHES", flag: "security-fix-branches", defaultValue: "true",
        help: "Make a fix branch (cortex/security/<run id>) for fixable vulnerabilities: committed in a clone, fetched into a local target repository, pushed and proposed as a pull request when GitHub is configured. Never the default branch.", usedBy: "security-master")
    public static let githubToken = Setting(env: "GITHUB_TOKEN", flag: "github-token", defaultValue: "(none)",
        help: "A GitHub token (contents: write and pull-requests: write) to push fix branches and open pull requests. Never logged; prefer the file.", usedBy: "security-master")
    public static let githubTokenFile = Setting(env: "CORTEX_GITHUB_TOKEN_FILE", flag: "github-token-file", defaultValue: "(none)",
        help: "A file holding the GitHub token (e.g. a mounted Secret); wins over GITHUB_TOKEN.", usedBy: "security-master")
    public static let githubAPIURL = Setting(env: "CORTEX_GITHUB_API_URL", flag: "github-api-url", defaultValue: "https://api.github.com",
        help: "GitHub's REST API (GitHub Enterprise: https://HOST/api/v3).", usedBy: "security-master")
    public static let githubHost = Setting(env: "CORTEX_GITHUB_HOST", flag: "github-host", defaultValue: "github.com",
        help: "The host of remotes that are GitHub repositories (origin must be https://HOST/OWNER/REPO or git@HOST:OWNER/REPO).", usedBy: "security-master")

    public static let redisPasswordFile = Setting(env: "CORTEX_REDIS_PASSWORD_FILE", flag: "redis-password-file", defaultValue: "(none)",
        help: "A file holding the Redis password (e.g. a mounted Secret); replaces the URL's password, which then need not be in the environment.", usedBy: "all")
    public static let catalogTokenFile = Setting(env: "CORTEX_CATALOG_TOKEN_FILE", flag: "catalog-token-file", defaultValue: "(none)",
        help: "A file holding the token for CORTEX_CATALOG_URL (e.g. a mounted Secret); wins over CORTEX_CATALOG_TOKEN.", usedBy: "all")

    public static let grafanaURL = Setting(env: "GRAFANA_URL", flag: "grafana-url", defaultValue: "(none)",
        help: "Grafana to push the generated dashboards to (POST /api/dashboards/db); without it they are written to the report.", usedBy: "monitoring-master")
    public static let grafanaToken = Setting(env: "GRAFANA_TOKEN", flag: "grafana-token", defaultValue: "(none)",
        help: "A Grafana service-account token with dashboard write access. Never logged; prefer the file.", usedBy: "monitoring-master")
    public static let grafanaTokenFile = Setting(env: "CORTEX_GRAFANA_TOKEN_FILE", flag: "grafana-token-file", defaultValue: "(none)",
        help: "A file holding the Grafana token (e.g. a mounted Secret); wins over GRAFANA_TOKEN.", usedBy: "monitoring-master")
    public static let grafanaFolder = Setting(env: "CORTEX_GRAFANA_FOLDER_UID", flag: "grafana-folder-uid", defaultValue: "(General)",
        help: "The uid of the Grafana folder the dashboards go to.", usedBy: "monitoring-master")

    public static let testTimeout = Setting(env: "CORTEX_TEST_TIMEOUT", flag: "test-timeout", defaultValue: "900",
        help: "Seconds one test suite may run (testing workers, for targets whose run allows test execution); the process group is killed after it.", usedBy: "worker")

    public static let mcpTransport = Setting(env: "CORTEX_MCP_TRANSPORT", flag: "transport", defaultValue: "stdio",
        help: "cortex-mcp's transport: stdio (one client that starts it) or http (MCP streamable HTTP on --http-host/--http-port, path /mcp, catalog bearer tokens: read scope, write for start_run).", usedBy: "cortex-mcp")

    public static let otlpEndpoint = Setting(env: "OTEL_EXPORTER_OTLP_ENDPOINT", flag: "otlp-endpoint", defaultValue: "(none)",
        help: "OpenTelemetry collector (OTLP/HTTP), e.g. http://otel-collector:4318: one trace per run, a span per phase, task, work item and LLM call, sent as OTLP/HTTP JSON to <url>/v1/traces. Unset: no spans and no trace context in messages (docs/tracing.md).", usedBy: "all")
    public static let otlpTracesEndpoint = Setting(env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", flag: "otlp-traces-endpoint", defaultValue: "(none)",
        help: "The full traces URL (used as is, overrides OTEL_EXPORTER_OTLP_ENDPOINT), e.g. http://otel-collector:4318/v1/traces.", usedBy: "all")
    public static let otlpHeaders = Setting(env: "OTEL_EXPORTER_OTLP_HEADERS", flag: "otlp-headers", defaultValue: "(none)",
        help: "Extra headers for the collector, comma-separated key=value (e.g. authorization=Bearer%20t0k3n; values percent-decoded).", usedBy: "all")
    public static let otlpTimeout = Setting(env: "OTEL_EXPORTER_OTLP_TIMEOUT", flag: "otlp-timeout", defaultValue: "10000",
        help: "Milliseconds the collector may take to answer one batch of spans (the OpenTelemetry default, 10 s); a batch not answered in time is counted failed and dropped.", usedBy: "all")
    public static let otlpTracesTimeout = Setting(env: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", flag: "otlp-traces-timeout", defaultValue: "(OTEL_EXPORTER_OTLP_TIMEOUT)",
        help: "The same for traces only (overrides OTEL_EXPORTER_OTLP_TIMEOUT).", usedBy: "all")
    public static let otelServiceName = Setting(env: "OTEL_SERVICE_NAME", flag: "otel-service-name", defaultValue: "(the executable's name)",
        help: "service.name of this process's spans.", usedBy: "all")

    /// Every setting, in documentation order.
    public static let all: [Setting] = [
        redisURL, redisPasswordFile, redisSentinels, redisMasterName, coordinationDir, httpHost, httpPort, logLevel, maxMessageBytes, instanceID, nodeName, heartbeatInterval,
        heartbeatTimeout, preflightTimeout, activationTimeout, runTimeout, masterDownTimeout, outputDir, planner, routingExploration, knowledgeDir, embeddingsURL, embeddingsModel, embeddingsAPIKey, embeddingsAPIKeyFile, fileCacheMaxMB, itemsPerTask, claimIdle, maxDeliveries, workerConcurrency, workerPoolConcurrency, itemEventThreshold, retention, httpIdleTimeout, idleMemoryTrim, budgetTotal, budgetReserve, budgets, workerPools,
        catalogURL, catalogToken, catalogTokenFile, catalogTokens, catalogTokensFile, catalogAllowAnonymous, catalogMaxDepth, catalogMaxCost, catalogMaxPage, catalogMaxBody,
        catalogMaxTokens, catalogRequestTimeout, catalogMaxResultNodes, catalogMaxConcurrentPerClient, catalogHeaderTimeout, catalogIdleTimeout,
        catalogFastPath,
        llmProvider, llmModel, llmBaseURL, llmAPIKey, llmAPIKeyFile, llmTimeout, llmMaxRetries, llmMaxTokens, budgetRequestTimeout,
        workerMode, workerJobTemplate, workerJobNamespace, workerJobsMax, workerJobsPerRun, workerJobTarget, workerItemSeconds, workerJobDeadline, workerJobTTL,
        workerJobIdle, workerJobConcurrency, workerJobOOMLimit, workerJobMemoryCap, workerIdleExit,
        kubernetes, osvDatabase, osvAPIURL, securityFixBranches, githubToken, githubTokenFile, githubAPIURL, githubHost,
        grafanaURL, grafanaToken, grafanaTokenFile, grafanaFolder, testTimeout,
        mcpTransport, otlpEndpoint, otlpTracesEndpoint, otlpHeaders, otlpTimeout, otlpTracesTimeout, otelServiceName,
    ]
}

/// A bad flag or setting value, reported to the user as is.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Settings resolved from flags (which win) and environment variables.
public struct SettingValues: Sendable {
    private var values: [String: String]

    /// Parses `--flag value` / `--flag=value` pairs for the given settings; anything else is an error.
    public init(arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment, settings: [Setting]) throws {
        var values: [String: String] = [:]
        for s in settings { if let v = environment[s.env], !v.isEmpty { values[s.env] = v } }
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            guard arg.hasPrefix("--") else { throw ConfigurationError("unexpected argument '\(arg)'; see --help") }
            var name = String(arg.dropFirst(2))
            var value: String?
            if let eq = name.firstIndex(of: "=") {
                value = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            guard let setting = settings.first(where: { $0.flag == name }) else {
                throw ConfigurationError("unknown flag --\(name); see --help")
            }
            if value == nil {
                i += 1
                guard i < arguments.count else { throw ConfigurationError("--\(name) needs a value") }
                value = arguments[i]
            }
            values[setting.env] = value
            i += 1
        }
        self.values = values
    }

    /// The raw value, if set.
    public func raw(_ s: Setting) -> String? { values[s.env] }

    /// The value or the setting's default.
    public func string(_ s: Setting, default fallback: String? = nil) -> String { values[s.env] ?? fallback ?? s.defaultValue }

    /// An integer value; a malformed one is an error naming the setting.
    public func int(_ s: Setting, default fallback: Int? = nil, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let text = values[s.env] else {
            if let fallback { return fallback }
            guard let d = Int(s.defaultValue) else { throw ConfigurationError("\(s.env) has no default") }
            return d
        }
        guard let v = Int(text), range.contains(v) else {
            throw ConfigurationError("\(s.env) / --\(s.flag) must be a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return v
    }

    /// A secret given as a file (a mounted Secret, preferred: it stays out of the environment) or
    /// directly; the file wins. A configured file that cannot be read is an error naming it.
    public func secret(_ direct: Setting?, file: Setting) throws -> String? {
        if let path = values[file.env], !path.isEmpty {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("cannot read \(file.env) \(path)")
            }
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return direct.flatMap { values[$0.env] }
    }

    /// A boolean: true/false, 1/0, yes/no.
    public func bool(_ s: Setting) throws -> Bool {
        let text = (values[s.env] ?? s.defaultValue).lowercased()
        switch text {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw ConfigurationError("\(s.env) / --\(s.flag) must be true or false, got '\(text)'")
        }
    }

    /// A duration given in (possibly fractional) seconds.
    public func seconds(_ s: Setting) throws -> Duration {
        let text = values[s.env] ?? s.defaultValue
        // At most ten years: larger values are typos, and past ~9e15 s the conversion would trap.
        guard let v = Double(text), v > 0, v.isFinite, v <= 315_360_000 else {
            throw ConfigurationError("\(s.env) / --\(s.flag) must be a positive number of seconds (at most 315360000), got '\(text)'")
        }
        return .milliseconds(Int64(v * 1000))
    }

    /// Help text listing the settings, for `--help`.
    public static func help(process: String, settings: [Setting]) -> String {
        var out = "Usage: \(process) [--flag value]...\n\nEvery flag can also be set by its environment variable; flags win.\n\n"
        for s in settings {
            out += "  --\(s.flag) (\(s.env), default \(s.defaultValue))\n      \(s.help)\n"
        }
        return out
    }
}

/// Host name and pid based identities.
public enum ProcessIdentity {
    /// The machine's host name.
    public static var hostname: String { ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost" }
    /// `<prefix>-<hostname>-<pid>`: unique per process on a machine, stable for its lifetime.
    public static func instanceID(prefix: String) -> String {
        "\(prefix)-\(hostname)-\(ProcessInfo.processInfo.processIdentifier)"
    }
}
