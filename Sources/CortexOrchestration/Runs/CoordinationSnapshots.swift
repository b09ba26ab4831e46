import CortexCore
import Foundation
import Logging

/// The coordinator's run state as files in the coordination directory (`current-execution.json`,
/// `master-activation.json`, `worker-distribution.json`), rewritten atomically at every phase, so an
/// operator can see where a run stood even while Redis is down.
struct CoordinationSnapshots: Sendable {
    let directory: URL
    let logger: Logger

    struct Execution: Encodable {
        var runID: String; var goal: String; var targets: [String]; var status: String; var phase: Int
        var phases: [Phase]; var updatedAt: Date
        struct Phase: Encodable { var phase: Int; var name: String; var startedAt: Date }
    }
    struct Activation: Encodable { var runID: String; var masters: [String: String]; var updatedAt: Date }
    struct Distribution: Encodable {
        var runID: String; var tasks: [TaskState]; var updatedAt: Date
        struct TaskState: Encodable { var taskID: String; var master: MasterRole; var target: String; var reported: Bool; var items: [MasterReport.ItemSummary] }
    }

    func write(runID: String, request: RunRequest, status: String, phase: Int, phases: [(phase: Int, name: String, startedAt: Date)],
               activation: [String: String], tasks: [TaskSpec], reports: [MasterReport]) {
        let now = Date()
        save("current-execution.json", Execution(runID: runID, goal: request.goal, targets: request.targets, status: status, phase: phase,
                                                 phases: phases.map { .init(phase: $0.phase, name: $0.name, startedAt: $0.startedAt) }, updatedAt: now))
        save("master-activation.json", Activation(runID: runID, masters: activation, updatedAt: now))
        save("worker-distribution.json", Distribution(runID: runID, tasks: tasks.map { task in
            let report = reports.first { $0.taskID == task.id }
            return .init(taskID: task.id, master: task.master, target: task.target, reported: report != nil, items: report?.items ?? [])
        }, updatedAt: now))
    }

    private func save<T: Encodable>(_ name: String, _ value: T) {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(WireJSON.encode(value).utf8).write(to: directory.appendingPathComponent(name), options: .atomic)
        } catch {
            logger.warning("cannot write \(name) in \(directory.path): \(error)")
        }
    }
}
