import Logging

/// The names of log metadata, defined once. A line about a run carries `runID` (JSONLogHandler writes it
/// as the top-level `run_id` field that `kubectl logs … | jq 'select(.run_id == "…")'` selects on); the
/// others follow the `cortex.<thing>.<attribute>` pattern.
public enum LogKey {
    public static let runID = "cortex.run.id"
    /// The W3C trace and span ids of the span a line belongs to (tracing on): set from the active span, or
    /// carried on a logger for a line written outside it (a worker's batch committer).
    public static let traceID = "trace_id"
    public static let spanID = "span_id"
    public static let runGoal = "cortex.run.goal"
    public static let runTargets = "cortex.run.targets"
    public static let taskID = "cortex.task.id"
    public static let taskAttempt = "cortex.task.attempt"
    public static let taskStatus = "cortex.task.status"
    public static let taskItemsDone = "cortex.task.items_done"
    public static let tasksHandedBack = "cortex.tasks.handed_back"
    public static let itemID = "cortex.item.id"
    public static let itemFiles = "cortex.item.files"
    public static let itemMilliseconds = "cortex.item.ms"
    public static let instance = "cortex.instance"
    public static let node = "cortex.node"
    public static let redis = "cortex.redis"
    public static let httpPort = "cortex.http.port"
    public static let workerPools = "cortex.worker.pools"
    public static let channel = "cortex.channel"
    public static let stream = "cortex.stream"
    public static let entry = "cortex.entry"
    public static let entryBytes = "cortex.entry.bytes"
    public static let messageID = "cortex.message.id"
    public static let messageBytes = "cortex.message.bytes"
    public static let rejectReason = "cortex.reject.reason"
    public static let rejectDetail = "cortex.reject.detail"
    public static let severity = "cortex.severity"
    public static let reason = "cortex.reason"
    public static let query = "cortex.query"
    public static let client = "cortex.client"
    public static let bufferMessages = "cortex.buffer.messages"
    public static let bufferBytes = "cortex.buffer.bytes"
    public static let journalLine = "cortex.journal.line"
    public static let journalApplied = "cortex.journal.applied"
    public static let journalDuplicates = "cortex.journal.duplicates"
    public static let journalSkipped = "cortex.journal.skipped"
    public static let journalLeft = "cortex.journal.left"
    public static let catalogCreated = "cortex.catalog.created"
    public static let catalogUpdated = "cortex.catalog.updated"
    public static let budgetAgent = "cortex.budget.agent"
    public static let budgetAccount = "cortex.budget.account"
    public static let budgetAmount = "cortex.budget.amount"
    public static let budgetPriority = "cortex.budget.priority"
    public static let budgetReason = "cortex.budget.reason"
}

extension Logger {
    /// This logger with the run's id on every line (written as `run_id`).
    public func forRun(_ runID: String) -> Logger {
        var copy = self
        copy[metadataKey: LogKey.runID] = "\(runID)"
        return copy
    }
}
