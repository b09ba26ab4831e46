import Foundation

/// How a piece of work ended — a work item, a master's report on a task, a run — and how parts roll up
/// into the whole (`rollUp`). Only `succeeded` is a clean result: parts that ended differently make the
/// whole `partial`, or their common outcome when they all ended the same way, with the reason.
public enum Outcome: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Done, and everything it was asked to check was checked.
    case succeeded
    /// Some of it was done: parts were skipped, denied, failed or not checked (the reason says which).
    case partial
    /// Not attempted, for a reason the operator can change (e.g. no model configured).
    case skipped
    /// Stopped because its token budget was refused.
    case denied
    /// Attempted and not done.
    case failed

    public var description: String { rawValue }

    /// The outcome of a whole made of `parts`: succeeded when every part succeeded (or there are none),
    /// the parts' common outcome when they all ended the same way, otherwise partial.
    public static func rollUp(_ parts: [Outcome]) -> Outcome {
        guard let first = parts.first else { return .succeeded }
        return parts.allSatisfy { $0 == first } ? first : .partial
    }
}

/// How urgent a task is. It travels from the task to its work items and into every model call they make:
/// only `high` and `critical` work may draw on the emergency reserve (`BudgetBroker`).
public enum TaskPriority: String, Codable, Sendable, CaseIterable, Comparable {
    case low, normal, high, critical

    public static func < (a: TaskPriority, b: TaskPriority) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Also reads the numbers tasks carried before priorities were named (1 = high, 2 = normal), so a task
    /// queued by an older coordinator is still read.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            self = number <= 0 ? .critical : number == 1 ? .high : number == 2 ? .normal : .low
            return
        }
        let text = try container.decode(String.self)
        guard let value = TaskPriority(rawValue: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "unknown priority '\(text.prefix(40))' (low, normal, high or critical)")
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
