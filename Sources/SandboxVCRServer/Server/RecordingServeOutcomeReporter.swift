public import SandboxVCR

/// Reports what a ``RecordingExecutor`` did for each request (hit, miss, recorded, live, with the key prefix),
/// from the ``RecordingOutcome/Sink`` the server binds around every executor call.
///
/// When the executor reported nothing (it failed before deciding, e.g. a cassette read error) it falls back to
/// ``DefaultServeOutcomeReporter``.
public struct RecordingServeOutcomeReporter: ServeOutcomeReporting {
    public init() {}

    public func outcome(of request: ExecutionRequest, result: Result<ExecutionResult, any Error>, elapsed: Duration)
        -> ServeOutcome
    {
        let recording = RecordingOutcome.Sink.current?.outcome ?? RecordingOutcome()
        let prefix = recording.keyPrefix
        switch recording.kind {
        case .hit?:
            return ServeOutcome(kind: .hit, keyPrefix: prefix)
        case .miss?:
            return ServeOutcome(kind: .miss, keyPrefix: prefix)
        case .recorded?:
            return ServeOutcome(kind: .recorded, keyPrefix: prefix, upstreamLatency: recording.liveDuration ?? elapsed)
        case .live?:
            if case .failure = result { return ServeOutcome(kind: .error, upstreamLatency: elapsed) }
            return ServeOutcome(kind: .live, upstreamLatency: elapsed)
        default:
            var outcome = DefaultServeOutcomeReporter().outcome(of: request, result: result, elapsed: elapsed)
            outcome.keyPrefix = prefix
            return outcome
        }
    }
}
