public import SandboxVCR

/// How one executed request was answered, for the request's log line and for `GET /stats`.
public struct ServeOutcome: Sendable, Hashable {
    /// Where the answer came from. An open set: compare with the static members.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Replayed from a cassette.
        public static let hit = Kind(rawValue: "hit")
        /// Not in the cassette, and not recorded (answered as a `SandboxError` with the diagnostics).
        public static let miss = Kind(rawValue: "miss")
        /// Forwarded upstream and written to the cassette.
        public static let recorded = Kind(rawValue: "recorded")
        /// Forwarded upstream (or run by a live backend) without recording.
        public static let live = Kind(rawValue: "live")
        /// Answered by the fake executor's rules.
        public static let fake = Kind(rawValue: "fake")
        /// The executor failed (transport, upstream HTTP error, ...).
        public static let error = Kind(rawValue: "error")
    }

    public var kind: Kind
    /// The first characters of the request's cassette key, when the reporter knows it.
    public var keyPrefix: String?
    /// How long the upstream call took, when there was one.
    public var upstreamLatency: Duration?

    public init(kind: Kind, keyPrefix: String? = nil, upstreamLatency: Duration? = nil) {
        self.kind = kind
        self.keyPrefix = keyPrefix
        self.upstreamLatency = upstreamLatency
    }
}

/// Describes how a request was answered, for logs and statistics: hit, miss, recorded, live.
///
/// The server calls it once per executed `/run_code` request, after the executor returned or threw. Give one to
/// ``SandboxFusionServer`` when the executor can tell (a recording executor knows whether it replayed or
/// recorded); without one, ``DefaultServeOutcomeReporter`` guesses from the result.
public protocol ServeOutcomeReporting: Sendable {
    /// - Parameters:
    ///   - request: the request that was run.
    ///   - result: what the executor returned or threw.
    ///   - elapsed: how long the executor call took (waiting for a concurrency slot excluded).
    func outcome(of request: ExecutionRequest, result: Result<ExecutionResult, any Error>, elapsed: Duration)
        -> ServeOutcome
}

/// The reporter used when none is given: a ``ReplayMissError`` or an unmatched fake rule is a miss, any other
/// error is an error, a fake result is `fake`, and anything else is `live` with the call's duration as latency.
public struct DefaultServeOutcomeReporter: ServeOutcomeReporting {
    public init() {}

    public func outcome(of request: ExecutionRequest, result: Result<ExecutionResult, any Error>, elapsed: Duration)
        -> ServeOutcome
    {
        switch result {
        case .success(let result):
            return result.backend == .fake
                ? ServeOutcome(kind: .fake) : ServeOutcome(kind: .live, upstreamLatency: elapsed)
        case .failure(let error):
            if replayMiss(in: error) != nil { return ServeOutcome(kind: .miss) }
            if let error = error as? ExecutionError, error.code == .unmatchedRequest {
                return ServeOutcome(kind: .miss)
            }
            return ServeOutcome(kind: .error, upstreamLatency: elapsed)
        }
    }
}
