/// An executor error meaning "there is no recorded answer for this request": a cassette replay miss.
///
/// `sandbox-vcr serve` answers such an error the way a SandboxFusion client already handles (HTTP 200,
/// `status: "SandboxError"`, `message` = ``diagnostics``) and counts it as a miss. A cassette's miss error
/// conforms to this protocol so the server can tell a miss from a transport failure.
public protocol ReplayMissError: Error {
    /// What was asked, what the cassette holds nearest to it, and how to record the missing answer.
    var diagnostics: String { get }
    /// Whether this value is a miss. A type whose values are only sometimes misses (``CassetteError``, by
    /// code) answers `false` for the others; the default is `true`.
    var isReplayMiss: Bool { get }
}

extension ReplayMissError {
    public var isReplayMiss: Bool { true }
}

/// The error as a replay miss, when it is one (conforms to ``ReplayMissError`` and ``ReplayMissError/isReplayMiss``).
public func replayMiss(in error: any Error) -> (any ReplayMissError)? {
    guard let miss = error as? any ReplayMissError, miss.isReplayMiss else { return nil }
    return miss
}
