/// A cassette error with code ``CassetteError/Code/miss`` or ``CassetteError/Code/exhausted`` is a replay miss
/// (`sandbox-vcr serve` answers it as a `SandboxError` with the diagnostics); other codes are not.
extension CassetteError: ReplayMissError {
    /// The message: what was asked, the nearest recordings, and how to record the missing answer.
    public var diagnostics: String { message }

    /// `true` for codes `miss` and `exhausted`.
    public var isReplayMiss: Bool { code == .miss || code == .exhausted }
}
