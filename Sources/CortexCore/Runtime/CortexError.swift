/// A failure that is not a configuration error (those are `ConfigurationError`, exit status 2 of a
/// daemon), with a code a caller can branch on and a message a person can act on.
public struct CortexError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Code: String, Sendable {
        /// A server (Redis, catalog-api, a process Cortex started) did not answer.
        case unreachable
        /// Something did not finish within its time.
        case timeout
        /// What was asked for does not exist (a run, a report, an account).
        case notFound
        /// Input that cannot be used (a bad argument, a target that is not a directory).
        case invalidInput
        /// Refused by the receiver (a message the protocol rejects, a request that cannot run).
        case refused
        /// An operation failed for another reason (a process that did not start, a system call).
        case failed
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}
