import Foundation
import Logging
public import SandboxVCR
import Synchronization

/// One test's cassette for the Modal port of `serve --control --modal-port`, as the control API makes it current
/// (`POST /sandbox-vcr/cassette`).
public struct ModalActivation: Sendable {
    /// The absolute path of the `.sqlite` file.
    public var path: String
    public var mode: RecordMode
    /// The test's name, for logs.
    public var test: String?
    /// The cassette: `create` false opens an existing one only (`nil` when there is none), true also creates it (for
    /// a recording). The control API shares the one it opened for SandboxFusion requests.
    public var cassette: @Sendable (_ create: Bool) async throws -> Cassette?

    public init(
        path: String, mode: RecordMode, test: String? = nil,
        cassette: @escaping @Sendable (_ create: Bool) async throws -> Cassette?
    ) {
        self.path = path
        self.mode = mode
        self.test = test
        self.cassette = cassette
    }
}

/// What the Modal calls of one activation did.
public struct ModalActivationReport: Sendable, Hashable {
    /// Sandboxes whose first exec bound them to this cassette.
    public var sandboxes = 0
    public var replayed = 0
    public var recorded = 0
    public var forwarded = 0
    public var misses = 0
    /// The messages of the first misses (at most ``keptMessages``).
    public var missDiagnostics: [String] = []
    /// Recordings that could not be written.
    public var errors = 0
    public var errorMessages: [String] = []

    /// How many messages a report keeps.
    public static let keptMessages = 10

    public init() {}
}

/// The cassette a sandbox replays from or records into, with its record mode: the run's (`--cassette`) for the
/// whole life of the server, or one test's (`--control`) until the next test's is made current.
///
/// Sandboxes bind to a term at their first exec and keep it; a sandbox whose term ended binds again at its next
/// exec, to the term current then, as a new session.
final class CassetteTerm: Sendable {
    private struct State {
        var report = ModalActivationReport()
        var isClosed = false
        var cassette: Cassette?
    }

    let path: String
    let mode: RecordMode
    let test: String?
    /// The recorded sandboxes this term replays (modes `never` and `missing`, when the cassette exists).
    let library: ReplayLibrary?
    private let open: @Sendable (_ create: Bool) async throws -> Cassette?
    private let state = Mutex(State())

    init(
        path: String, mode: RecordMode, test: String?, library: ReplayLibrary?,
        open: @escaping @Sendable (_ create: Bool) async throws -> Cassette?
    ) {
        self.path = path
        self.mode = mode
        self.test = test
        self.library = library
        self.open = open
    }

    /// The run's cassette (`--cassette`), for the server's whole life.
    convenience init(run cassette: Cassette?, mode: RecordMode, library: ReplayLibrary?) {
        self.init(path: cassette?.url.path ?? "-", mode: mode, test: nil, library: library) { _ in cassette }
    }

    /// A test's cassette: its recorded sandboxes read now (when the mode replays and the file exists).
    static func activate(
        _ activation: ModalActivation, normalizers: [ExecNormalizer], logger: Logger
    ) async throws -> CassetteTerm {
        var library: ReplayLibrary?
        if activation.mode == .never || activation.mode == .missing, let cassette = try await activation.cassette(false)
        {
            library = try await ReplayLibrary.load(from: cassette, normalizers: normalizers, logger: logger)
        }
        return CassetteTerm(
            path: activation.path, mode: activation.mode, test: activation.test, library: library,
            open: activation.cassette)
    }

    /// The cassette recordings go into, created if needed.
    func cassetteForWriting() async throws -> Cassette {
        if let cassette = state.withLock({ $0.cassette }) { return cassette }
        guard let cassette = try await open(true) else {
            throw CassetteError(
                code: .io, message: "the cassette \(path) cannot be created for a Modal recording", path: path)
        }
        state.withLock { $0.cassette = cassette }
        return cassette
    }

    /// Whether a later test's cassette replaced this one.
    var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Ends the term; returns what its calls did.
    func close() -> ModalActivationReport {
        state.withLock { state in
            state.isClosed = true
            return state.report
        }
    }

    var report: ModalActivationReport { state.withLock { $0.report } }

    func count(_ update: (inout ModalActivationReport) -> Void) {
        state.withLock { update(&$0.report) }
    }

    func countMiss(_ message: String) {
        count { report in
            report.misses += 1
            if report.missDiagnostics.count < ModalActivationReport.keptMessages {
                report.missDiagnostics.append(message)
            }
        }
    }

    func countError(_ message: String) {
        count { report in
            report.errors += 1
            if report.errorMessages.count < ModalActivationReport.keptMessages { report.errorMessages.append(message) }
        }
    }
}

extension ReplayLibrary {
    /// The recorded Modal sandboxes of a cassette.
    static func load(from cassette: Cassette, normalizers: [ExecNormalizer], logger: Logger) async throws
        -> ReplayLibrary
    {
        let interactions = try await cassette.interactions(inSessionsPrefixed: ModalSessionCoding.sessionPrefix)
        let (sandboxes, skipped) = ModalSessionCoding.sandboxes(from: interactions)
        if skipped > 0 {
            logger.warning(
                "skipped Modal sessions without a readable sandbox step",
                metadata: ["count": "\(skipped)", "cassette": "\(cassette.url.path)"])
        }
        return ReplayLibrary(sandboxes: sandboxes, normalizers: normalizers)
    }
}
