import CortexCore
import Foundation

/// One readable line per message, for `cortexctl events` and the progress of `cortexctl up`.
public enum EventFormatter {
    public static func line(_ e: Envelope) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "HH:mm:ss.SSS"
        let fields = (e.data.objectValue ?? [:]).sorted { $0.key < $1.key }.map { key, value in
            "\(key)=\(value.stringValue ?? value.description)"
        }.joined(separator: " ")
        return "\(f.string(from: e.timestamp)) \(e.channel.shortName.padding(toLength: 12, withPad: " ", startingAt: 0)) \(e.type.rawValue.padding(toLength: 23, withPad: " ", startingAt: 0)) \(e.source.padding(toLength: 20, withPad: " ", startingAt: 0)) \(fields)"
    }

    /// A shorter progress line for `cortexctl up`/`run`; nil for messages too chatty to show.
    public static func progress(_ e: Envelope) -> String? {
        switch e.type {
        case .PHASE_0_START, .PHASE_1_START, .PHASE_2_START, .PHASE_3_START, .PHASE_4_START, .PHASE_5_START:
            return (try? e.payload(PhaseStart.self)).map { "phase \($0.phase): \($0.name)" }
        case .RUN_PLAN: return (try? e.payload(RunPlanPublished.self)).map { p in
            (["plan r\(p.revision) by the \(p.planner) (\(p.rule)): \(p.subtasks.count) subtasks"] + p.subtasks.map { "  \($0)" } + (p.notes ?? []).map { "  note: \($0)" })
                .joined(separator: "\n")
        }
        case .MASTER_ACTIVATION_ACK: return (try? e.payload(MasterActivationAck.self)).map { "  \($0.master)-master activated" }
        case .TASK_ASSIGNED: return (try? e.payload(TaskAssigned.self)).map { "  task \($0.taskID) -> \($0.master)-master" }
        case .WORKER_SPAWN: return (try? e.payload(WorkerSpawn.self)).map { "  \($0.master)-master: \($0.items) items -> pool \($0.pool)" }
        case .TASK_COMPLETE: return (try? e.payload(TaskComplete.self)).map { "    \($0.itemID) done by \($0.worker) on \($0.node) (\($0.durationMs) ms)" }
        case .TASK_BATCH_COMPLETE: return (try? e.payload(TaskBatchComplete.self)).map {
            "    \($0.itemIDs.count) item\($0.itemIDs.count == 1 ? "" : "s") of \($0.taskID) done by \($0.worker) on \($0.node) (each within \($0.durationMs) ms)"
        }
        case .TASK_FAILED: return (try? e.payload(TaskFailed.self)).map { "    \($0.itemID) \(($0.status ?? "failed").uppercased()) on \($0.worker): \($0.reason)" }
        case .MASTER_REPORT: return (try? e.payload(MasterReportPublished.self)).map { "  \($0.master)-master reported: \($0.summary)" }
        case .RUN_COMPLETE: return (try? e.payload(RunComplete.self)).map { "run \($0.status) in \($0.durationMs) ms" }
        case .RUN_FAILED: return (try? e.payload(RunFailed.self)).map { "run FAILED: \($0.reason)" }
        case .ESCALATION: return (try? e.payload(Escalation.self)).map { "ESCALATION (\($0.severity)): \($0.reason)" }
        default: return nil
        }
    }
}
