/// Anything that runs an ``ExecutionRequest``: a live backend, a cassette replay, or a fake.
///
/// Graders depend on this protocol only, so one grader runs on SandboxFusion, on Modal, from a cassette or
/// against a `FakeExecutor` (from `SandboxVCRTesting`) without a code change. Implementations are safe to call from many tasks at once.
public protocol SandboxExecutor: Sendable {
    /// Runs one request.
    ///
    /// - Returns: the result, whatever the program did (a failing program is a result, not an error).
    /// - Throws: ``ExecutionError`` when no result could be had (transport, HTTP, decoding, cancellation),
    ///   or a cassette error from a replaying executor.
    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult

    /// Releases what the executor holds outside this process (remote sandboxes, for example) once its user is
    /// done with it. Call it once, after the last ``execute(_:)`` has returned.
    ///
    /// An executor that wraps another forwards the call (``RecordingExecutor`` shuts down its live executor), so
    /// the owner of a stack of executors calls it on the outermost one only.
    func shutdown() async
}

extension SandboxExecutor {
    /// Does nothing: most executors hold nothing that outlives the process (an HTTP client, rules in memory).
    public func shutdown() async {}
}
