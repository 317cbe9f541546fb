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
}
