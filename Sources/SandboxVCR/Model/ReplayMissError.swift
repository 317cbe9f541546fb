/// An executor error meaning "there is no recorded answer for this request": a cassette replay miss.
///
/// `sandbox-vcr serve` answers such an error the way a SandboxFusion client already handles (HTTP 200,
/// `status: "SandboxError"`, `message` = ``diagnostics``) and counts it as a miss. A cassette's miss error
/// conforms to this protocol so the server can tell a miss from a transport failure.
public protocol ReplayMissError: Error {
    /// What was asked, what the cassette holds nearest to it, and how to record the missing answer.
    var diagnostics: String { get }
}
