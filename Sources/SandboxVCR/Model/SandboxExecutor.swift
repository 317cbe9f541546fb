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

    /// Runs one request and says where the answer came from (see ``ExecutionOutcome``). Never throws: a failure is
    /// the outcome's result.
    func outcome(of request: ExecutionRequest) async -> ExecutionOutcome

    /// Releases what the executor holds outside this process (remote sandboxes, for example) once its user is
    /// done with it. Call it once, after the last ``execute(_:)`` has returned.
    ///
    /// An executor that wraps another forwards the call (``RecordingExecutor`` shuts down its live executor), so
    /// the owner of a stack of executors calls it on the outermost one only.
    func shutdown() async
}

extension SandboxExecutor {
    /// Calls ``execute(_:)``: a result is `live` (`fake` when a fake executor made it), an unmatched fake request or a
    /// cassette's `miss` / `exhausted` error a `miss`, any other failure an `error`.
    public func outcome(of request: ExecutionRequest) async -> ExecutionOutcome {
        let clock = ContinuousClock()
        let start = clock.now
        do {
            let result = try await execute(request)
            return ExecutionOutcome(
                source: result.backend == .fake ? .fake : .live, result: .success(result),
                liveDuration: clock.now - start)
        } catch let error as ExecutionError where error.code == .unmatchedRequest {
            return ExecutionOutcome(source: .miss, result: .failure(error))
        } catch let error as CassetteError where error.code == .miss || error.code == .exhausted {
            return ExecutionOutcome(source: .miss, result: .failure(error))
        } catch {
            return ExecutionOutcome(source: .error, result: .failure(error), liveDuration: clock.now - start)
        }
    }

    /// Does nothing: most executors hold nothing that outlives the process (an HTTP client, rules in memory).
    public func shutdown() async {}
}
