/// What one call of an executor did: where its answer came from, and the answer.
///
/// ``SandboxExecutor/outcome(of:)`` returns it. A ``RecordingExecutor`` knows whether it replayed, recorded,
/// passed a call through or missed; any other executor reports `live` (or `fake` for a fake executor's answer), a
/// fake executor's unmatched request as a `miss`, and other failures as `error`. `sandbox-vcr serve` reads it for its
/// log line and `/stats`.
///
/// ```swift
/// let outcome = await executor.outcome(of: request)
/// if outcome.source == .miss { print(outcome.missDiagnostics ?? "") }
/// let result = try outcome.result.get()
/// ```
public struct ExecutionOutcome: Sendable {
    /// Where an answer came from.
    public enum Source: String, Sendable, CaseIterable, CustomStringConvertible {
        /// Replayed from a cassette.
        case hit
        /// Run by the live executor and written to the cassette (also a recorded failure).
        case recorded
        /// Run by a live executor, nothing recorded.
        case live
        /// Answered by a fake executor's rules.
        case fake
        /// No recording and nothing recorded (a cassette miss, or no fake rule matched): ``ExecutionOutcome/result``
        /// holds the error whose message is the diagnostics.
        case miss
        /// No answer: the call failed (transport, HTTP status, cassette error, ...).
        case error

        public var description: String { rawValue }
    }

    public var source: Source
    /// The answer, or the error the call threw.
    public var result: Result<ExecutionResult, any Error>
    /// The request's cassette key, when a cassette was consulted.
    public var key: ContentHash?
    /// How long the live executor took, when one was called.
    public var liveDuration: Duration?

    public init(
        source: Source, result: Result<ExecutionResult, any Error>, key: ContentHash? = nil,
        liveDuration: Duration? = nil
    ) {
        self.source = source
        self.result = result
        self.key = key
        self.liveDuration = liveDuration
    }

    /// The first 12 hex digits of ``key``, for log lines.
    public var keyPrefix: String? { key.map { String($0.hex.prefix(12)) } }

    /// For a miss: what was asked, the nearest recordings and how to record the missing answer.
    public var missDiagnostics: String? {
        guard source == .miss, case .failure(let error) = result else { return nil }
        switch error {
        case let error as CassetteError: return error.message
        case let error as ExecutionError: return error.message
        default: return "\(error)"
        }
    }
}
