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
            return "phase \(e.int("phase") ?? 0): \(e.string("name") ?? "")"
        case .MASTER_ACTIVATION_ACK: return "  \(e.string("master") ?? "?")-master activated"
        case .TASK_ASSIGNED: return "  task \(e.string("task_id") ?? "") -> \(e.string("master") ?? "")-master"
        case .WORKER_SPAWN: return "  \(e.string("master") ?? "")-master: \(e.int("items") ?? 0) items -> pool \(e.string("pool") ?? "")"
        case .TASK_COMPLETE: return "    \(e.string("item_id") ?? "") done by \(e.string("worker") ?? "") on \(e.string("node") ?? "") (\(e.int("duration_ms") ?? 0) ms)"
        case .TASK_FAILED: return "    \(e.string("item_id") ?? "") \((e.string("status") ?? "failed").uppercased()) on \(e.string("worker") ?? ""): \(e.string("reason") ?? "")"
        case .MASTER_REPORT: return "  \(e.string("master") ?? "")-master reported: \(e.string("summary") ?? "")"
        case .RUN_COMPLETE: return "run \(e.string("status") ?? "") in \(e.int("duration_ms") ?? 0) ms"
        case .RUN_FAILED: return "run FAILED: \(e.string("reason") ?? "")"
        case .ESCALATION: return "ESCALATION (\(e.string("severity") ?? "")): \(e.string("reason") ?? "")"
        default: return nil
        }
    }
}
