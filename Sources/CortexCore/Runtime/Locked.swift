import Synchronization

/// A value behind a lock that can be shared by reference (Mutex itself cannot be copied into structs).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    /// Reads or changes the value under the lock.
    public func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&$0) }
    }
    /// The current value.
    public var value: Value { mutex.withLock { $0 } }
}
