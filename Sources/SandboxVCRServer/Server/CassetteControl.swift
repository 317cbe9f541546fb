internal import Foundation
public import Logging
public import SandboxVCR
internal import Synchronization

/// The executor of `serve --control`: one cassette at a time, chosen per test through the control API
/// (`/sandbox-vcr/...`), so one server process serves a whole test session.
///
/// ``activate(_:)`` closes the current cassette (its recordings committed, the file complete on disk) and makes
/// another current; ``deactivate()`` closes it and returns what the test did. Between them every `/run_code` request
/// goes to that cassette's ``RecordingExecutor`` in the test's record mode. With no cassette active, a request is a
/// miss whose message says so.
///
/// Replays never write: replay stamps are off, and a cassette opened to replay closes without leaving a `-wal` or
/// `-shm` file, so a committed cassette stays byte for byte the same. A cassette that does not exist is created only
/// when a recording is written into it (mode `missing` or `all` with a live backend), never by a replay or a miss.
/// Requests still in flight when the cassette is switched may fail.
///
/// A ``Companion`` (serve's Modal port) follows the switches: it gets each activation with access to the same
/// cassette, and its counts join the reports.
public final class CassetteControl: SandboxExecutor {
    /// Which cassette a test uses, and how.
    public struct Activation: Sendable, Hashable {
        /// The absolute path of the `.sqlite` file.
        public var path: String
        public var mode: RecordMode
        /// The test's name, echoed in reports (e.g. a pytest node id).
        public var test: String?

        public init(path: String, mode: RecordMode, test: String? = nil) {
            self.path = path
            self.mode = mode
            self.test = test
        }
    }

    /// What the requests of one activation did.
    public struct Report: Sendable, Hashable {
        public var activation: Activation
        /// Whether the cassette file exists (now, or when it was closed).
        public var cassetteExists: Bool
        public var hits = 0
        public var misses = 0
        public var recorded = 0
        public var live = 0
        public var errors = 0
        /// The diagnostics of the first misses (at most ``CassetteControl/keptMessages``).
        public var missDiagnostics: [String] = []
        /// The messages of the first errors other than misses (at most ``CassetteControl/keptMessages``).
        public var errorMessages: [String] = []
        /// The ids of the recordings replayed or recorded; filled when the cassette is closed.
        public var usedRecordings: [Int64] = []
        /// What the companion's calls did (serve's Modal port), when there is one.
        public var companion: CompanionReport?

        public var requests: Int { hits + misses + recorded + live + errors }
    }

    /// One cassette's recordings that no activation used since the server started.
    public struct UnusedRecordings: Sendable, Hashable {
        /// A recording: its id in the cassette and its request's one-line summary.
        public struct Recording: Sendable, Hashable {
            public var id: Int64
            public var summary: String
        }

        public var path: String
        /// Every recording the cassette held when it was last closed.
        public var recordingCount: Int
        /// By id.
        public var unused: [Recording]
    }

    /// What a ``Companion``'s calls did during one activation.
    public struct CompanionReport: Sendable, Hashable {
        /// The report's member that holds it, e.g. `modal`.
        public var name: String
        /// Counts by name (e.g. `replayed`, `recorded`, `misses`), reported as they are.
        public var counts: [String: Int]
        public var missDiagnostics: [String]
        public var errorMessages: [String]

        public init(name: String, counts: [String: Int], missDiagnostics: [String], errorMessages: [String]) {
            self.name = name
            self.counts = counts
            self.missDiagnostics = missDiagnostics
            self.errorMessages = errorMessages
        }

        public var misses: Int { counts["misses"] ?? 0 }
    }

    /// Opens the current activation's cassette for a companion: `true` creates it (for a recording); `nil` when
    /// there is none.
    public typealias CassetteOpener = @Sendable (_ create: Bool) async throws -> Cassette?

    /// Another server that answers from the current cassette too (serve's Modal port).
    public struct Companion: Sendable {
        /// Whether it records from a live backend of its own (so modes `all` and `live` work without ``live``).
        public var records: Bool
        /// Called once the activation's cassette is current.
        public var activate: @Sendable (Activation, @escaping CassetteOpener) async throws -> Void
        /// Called before the cassette closes: the companion writes its recordings and says what it did.
        public var deactivate: @Sendable () async -> CompanionReport?
        /// What it did so far in the current activation.
        public var currentReport: @Sendable () -> CompanionReport?

        public init(
            records: Bool, activate: @escaping @Sendable (Activation, @escaping CassetteOpener) async throws -> Void,
            deactivate: @escaping @Sendable () async -> CompanionReport?,
            currentReport: @escaping @Sendable () -> CompanionReport?
        ) {
            self.records = records
            self.activate = activate
            self.deactivate = deactivate
            self.currentReport = currentReport
        }
    }

    /// How many miss diagnostics and error messages a ``Report`` keeps.
    public static let keptMessages = 10

    /// The live backend recordings come from; `nil`: replay only.
    public let live: (any SandboxExecutor)?
    private let companion: Companion?
    private let configuration: RecordingExecutor.Configuration
    private let logger: Logger
    private let current = Mutex<Slot?>(nil)
    /// The next test's cassette, opened ahead by ``prepare(_:)``, with the file's identity then.
    private let prepared = Mutex<(slot: Slot, file: FileIdentity?)?>(nil)
    /// Serializes activations and keeps the session's usage of each cassette.
    private let switchboard = Switchboard()

    /// - Parameters:
    ///   - live: the backend that mode `missing` records from and modes `all` and `live` call; `nil`: none.
    ///   - backendVersion: stored with each recording.
    ///   - companion: another server that follows the switches (serve's Modal port).
    ///   - logger: logs each switch at `debug`.
    public init(
        live: (any SandboxExecutor)?, backendVersion: String? = nil, companion: Companion? = nil,
        logger: Logger = Logger(label: "sandbox-vcr.serve", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.live = live
        self.companion = companion
        self.configuration = RecordingExecutor.Configuration(backendVersion: backendVersion, stampsReplays: false)
        self.logger = logger
    }

    // MARK: Switching

    /// Closes the current cassette (see ``deactivate()``) and makes `activation`'s current.
    ///
    /// An existing file is opened now (read-only in mode `never`); a missing one is created by the first recording
    /// (and never in mode `never`, where every request then misses, saying the cassette does not exist).
    ///
    /// - Returns: the report of the cassette that was closed, if one was active.
    /// - Throws: ``CassetteControlError`` `noLiveBackend` (mode `all` or `live` without one) or `cassette` (the file
    ///   cannot be opened: not a cassette, unreadable, newer schema); the previous cassette is closed either way.
    public func activate(_ activation: Activation) async throws(CassetteControlError) -> Report? {
        if live == nil, companion?.records != true, activation.mode == .all || activation.mode == .live {
            throw CassetteControlError(
                code: .noLiveBackend,
                message: "record mode `\(activation.mode)` calls the live backend for every request, and this "
                    + "server has none; start serve with --url URL (or --rules FILE, --backend modal), or use mode "
                    + "`never` or `missing`")
        }
        return try await switchboard.serialized { () async throws(CassetteControlError) -> Report? in
            let closed = await closeCurrent()
            let slot: Slot
            if let ready = takePrepared(activation) {
                slot = ready
            } else {
                await discardPrepared()
                slot = try await makeSlot(activation)
            }
            current.withLock { $0 = slot }
            if let companion {
                do {
                    try await companion.activate(activation) { create in try await slot.cassette(create: create) }
                } catch {
                    _ = await closeCurrent()
                    throw CassetteControlError(
                        code: .cassette, message: "cannot open the cassette \(activation.path) for Modal: \(error)")
                }
            }
            logger.debug(
                "cassette activated",
                metadata: [
                    "path": "\(activation.path)", "mode": "\(activation.mode)", "test": "\(activation.test ?? "")",
                ])
            return closed
        }
    }

    /// Opens the next test's cassette ahead, while the caller goes on (the pytest plugin sends it after a test's
    /// `DELETE`, for the test that comes next): the ``activate(_:)`` that names the same activation then only makes
    /// it current. It is not current before that, so requests meanwhile miss as they would without it; an
    /// activation of another cassette, or a change to the file in between, closes it unused, and it counts in no
    /// report.
    ///
    /// - Throws: ``CassetteControlError`` as ``activate(_:)`` would (the activation reports it again).
    public func prepare(_ activation: Activation) async throws(CassetteControlError) {
        try await switchboard.serialized { () async throws(CassetteControlError) -> Void in
            await discardPrepared()
            let file = FileIdentity(path: activation.path)
            let slot = try await makeSlot(activation)
            prepared.withLock { $0 = (slot, file) }
        }
    }

    /// The prepared slot if it is `activation`'s and its file is as it was then.
    private func takePrepared(_ activation: Activation) -> Slot? {
        let file = FileIdentity(path: activation.path)
        return prepared.withLock { prepared -> Slot? in
            guard let ready = prepared, ready.slot.activation == activation, ready.file == file else { return nil }
            prepared = nil
            return ready.slot
        }
    }

    /// Closes the prepared slot, if any, without noting its usage.
    private func discardPrepared() async {
        let slot = prepared.withLock { prepared -> Slot? in
            defer { prepared = nil }
            return prepared?.slot
        }
        await slot?.discard()
    }

    /// Closes the current cassette: commits its recordings, closes the file, and notes which recordings were used.
    ///
    /// - Returns: what its requests did, or `nil` when none was active.
    public func deactivate() async -> Report? {
        try? await switchboard.serialized { () async throws(CassetteControlError) -> Report? in
            await closeCurrent()
        }
    }

    /// What the current cassette's requests did so far, or `nil` when none is active.
    public var currentReport: Report? {
        guard var report = current.withLock({ $0 })?.report else { return nil }
        report.companion = companion?.currentReport()
        return report
    }

    /// For each cassette closed so far, the recordings no activation replayed or recorded.
    public func unusedRecordings() async -> [UnusedRecordings] {
        await switchboard.unusedRecordings()
    }

    /// Closes the current cassette (and a prepared one), then shuts the live backend down.
    public func shutdown() async {
        _ = await deactivate()
        try? await switchboard.serialized { () async throws(CassetteControlError) -> Void in await discardPrepared() }
        await live?.shutdown()
    }

    private func closeCurrent() async -> Report? {
        let taken = current.withLock { slot -> Slot? in
            let taken = slot
            slot = nil
            return taken
        }
        guard let slot = taken else { return nil }
        let companionReport = await companion?.deactivate()
        var report = await slot.close()
        report.report.companion = companionReport
        await switchboard.note(report: report.report, usage: report.usage)
        logger.debug("cassette closed", metadata: ["path": "\(slot.activation.path)"])
        return report.report
    }

    private func makeSlot(_ activation: Activation) async throws(CassetteControlError) -> Slot {
        let url = URL(fileURLWithPath: activation.path)
        let exists = FileManager.default.fileExists(atPath: activation.path)
        if activation.mode == .live { return Slot(activation, source: .live(live), exists: exists) }
        guard exists else {
            if activation.mode == .never || (live == nil && companion?.records != true) {
                return Slot(activation, source: .absent, exists: false)
            }
            return Slot(activation, source: .unopened(makeExecutor(url: url, mode: activation.mode)), exists: false)
        }
        do {
            let cassette = try await Cassette.open(at: url, readOnly: activation.mode == .never, create: false)
            return Slot(activation, source: .open(executor(cassette, mode: activation.mode)), exists: true)
        } catch {
            throw CassetteControlError(
                code: .cassette, message: "cannot open the cassette \(activation.path): \(error)")
        }
    }

    private func executor(_ cassette: Cassette, mode: RecordMode) -> RecordingExecutor {
        RecordingExecutor(cassette: cassette, mode: mode, live: live, configuration: configuration)
    }

    /// Opens (creating it) the cassette at `url` and makes its executor: run by the first request that needs it.
    private func makeExecutor(url: URL, mode: RecordMode) -> @Sendable () async throws -> RecordingExecutor {
        { [self] in executor(try await Cassette.open(at: url, readOnly: false, create: true), mode: mode) }
    }

    // MARK: Executing

    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        try await outcome(of: request).result.get()
    }

    public func outcome(of request: ExecutionRequest) async -> ExecutionOutcome {
        guard let slot = current.withLock({ $0 }) else {
            let error = CassetteError(
                code: .miss,
                message: "no cassette is active on this sandbox-vcr serve --control, so nothing replays "
                    + "\(request.summary); make one current with POST /sandbox-vcr/cassette (the pytest plugin "
                    + "does it for each test marked @pytest.mark.sandbox_vcr: was this request made outside one?)",
                path: "")
            return ExecutionOutcome(source: .miss, result: .failure(error))
        }
        let outcome = await slot.outcome(of: request)
        slot.count(outcome)
        return outcome
    }
}

extension CassetteControl {
    /// What answers one activation's requests.
    fileprivate enum Source: Sendable {
        /// An opened cassette.
        case open(RecordingExecutor)
        /// A cassette to create with the first request (record modes, missing file).
        case unopened(@Sendable () async throws -> RecordingExecutor)
        /// Being opened by a request; the others wait for it.
        case opening(Task<RecordingExecutor, any Error>)
        /// No file, and nothing will record one: every request misses.
        case absent
        /// Mode `live`: the live backend, no cassette.
        case live((any SandboxExecutor)?)
    }

    /// One activation: its executor and its counts.
    fileprivate final class Slot: Sendable {
        let activation: Activation
        private let source: Mutex<Source>
        private let counts: Mutex<Report>

        init(_ activation: Activation, source: Source, exists: Bool) {
            self.activation = activation
            self.source = Mutex(source)
            self.counts = Mutex(Report(activation: activation, cassetteExists: exists))
        }

        var report: Report { counts.withLock { $0 } }

        func outcome(of request: ExecutionRequest) async -> ExecutionOutcome {
            if case .live(let live?) = source.withLock({ $0 }) { return await live.outcome(of: request) }
            let opened: RecordingExecutor?
            do {
                opened = try await recordingExecutor(create: true)
            } catch {
                return ExecutionOutcome(source: .error, result: .failure(error))
            }
            guard let executor = opened else {
                let path = activation.path
                let error = CassetteError(
                    code: .miss,
                    message: "no cassette at \(path) (record mode `\(activation.mode)`), so nothing replays "
                        + "\(request.summary); record it with record mode `missing` and a live backend (the pytest "
                        + "plugin: --sandbox-record-mode=missing --sandbox-upstream URL)",
                    path: path)
                return ExecutionOutcome(source: .miss, result: .failure(error))
            }
            return await executor.outcome(of: request)
        }

        /// The cassette of this activation: the one open, else (with `create`, when the mode may record) a new one.
        func cassette(create: Bool) async throws -> Cassette? {
            try await recordingExecutor(create: create)?.cassette
        }

        /// The activation's executor: the open one, else (with `create`) the one of a cassette created now; `nil`
        /// when there is no cassette (mode `live`, or nothing records one). Requests that come while it is being
        /// created wait for it.
        private func recordingExecutor(create: Bool) async throws -> RecordingExecutor? {
            enum Next {
                case ready(RecordingExecutor?)
                case wait(Task<RecordingExecutor, any Error>)
            }
            let next: Next = source.withLock { source in
                switch source {
                case .open(let executor): return .ready(executor)
                case .opening(let task): return .wait(task)
                case .unopened(let open):
                    guard create else { return .ready(nil) }
                    let task = Task { try await open() }
                    source = .opening(task)
                    return .wait(task)
                case .absent, .live: return .ready(nil)
                }
            }
            switch next {
            case .ready(let executor): return executor
            case .wait(let task):
                let executor = try await task.value
                source.withLock { source in
                    if case .opening = source { source = .open(executor) }
                }
                counts.withLock { $0.cassetteExists = true }
                return executor
            }
        }

        func count(_ outcome: ExecutionOutcome) {
            counts.withLock { report in
                switch outcome.source {
                case .hit: report.hits += 1
                case .recorded: report.recorded += 1
                case .live, .fake: report.live += 1
                case .miss:
                    report.misses += 1
                    if report.missDiagnostics.count < CassetteControl.keptMessages {
                        report.missDiagnostics.append(outcome.missDiagnostics ?? "a miss")
                    }
                case .error:
                    report.errors += 1
                    if report.errorMessages.count < CassetteControl.keptMessages,
                        case .failure(let error) = outcome.result
                    {
                        report.errorMessages.append("\(error)")
                    }
                }
            }
        }

        /// Closes the cassette of an activation that never became current (nothing to commit or report).
        func discard() async {
            switch source.withLock({ $0 }) {
            case .open(let executor): await executor.cassette.close()
            case .opening(let task): await (try? await task.value)?.cassette.close()
            case .unopened, .absent, .live: break
            }
        }

        /// Commits and closes the cassette, if one was opened.
        ///
        /// - Returns: the final report, and the cassette's usage (`nil` when no cassette was opened).
        func close() async -> (report: Report, usage: Usage?) {
            let opened: RecordingExecutor?
            switch source.withLock({ $0 }) {
            case .open(let executor): opened = executor
            case .opening(let task): opened = try? await task.value
            case .unopened, .absent, .live: opened = nil
            }
            guard let executor = opened else { return (report, nil) }
            var usage = Usage(used: [], unused: [])
            var closeError: (any Error)?
            do {
                let ids = try await executor.recordingUsage(excludingSessions: true)
                usage.used = ids.used
                // Summaries only when something was unused (most tests use their whole cassette).
                if !ids.unused.isEmpty {
                    usage.unused = try await executor.unusedRecordings().map {
                        .init(id: $0.id, summary: $0.request.summary)
                    }
                }
            } catch {
                closeError = error
            }
            do {
                try await executor.cassette.flush()
            } catch {
                closeError = closeError ?? error
            }
            await executor.cassette.close()
            let used = usage.used
            let final = counts.withLock { report in
                report.usedRecordings = used.sorted()
                report.cassetteExists = FileManager.default.fileExists(atPath: activation.path)
                if let closeError, report.errorMessages.count < CassetteControl.keptMessages {
                    report.errors += 1
                    report.errorMessages.append("closing the cassette failed: \(closeError)")
                }
                return report
            }
            return (final, usage)
        }
    }

    /// What identifies a file's content without reading it: a prepared cassette is used only if its file is
    /// unchanged (`nil`: no file).
    fileprivate struct FileIdentity: Hashable, Sendable {
        var device: Int
        var inode: Int
        var size: Int
        var modified: Date

        init?(path: String) {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
            device = (attributes[.systemNumber] as? NSNumber)?.intValue ?? 0
            inode = (attributes[.systemFileNumber] as? NSNumber)?.intValue ?? 0
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            modified = attributes[.modificationDate] as? Date ?? .distantPast
        }
    }

    /// Which recordings of a cassette one activation used, and which it did not.
    fileprivate struct Usage: Sendable {
        var used: [Int64]
        var unused: [UnusedRecordings.Recording]
    }

    /// Runs activations one at a time and remembers each cassette's usage over the session.
    fileprivate actor Switchboard {
        private struct CassetteUsage {
            var used: Set<Int64> = []
            var unused: [Int64: String] = [:]
            var recordingCount = 0
        }

        private var isBusy = false
        private var waiters: [CheckedContinuation<Void, Never>] = []
        /// By path, in the order the cassettes were first closed.
        private var usage: [String: CassetteUsage] = [:]
        private var order: [String] = []

        func serialized<T: Sendable>(
            _ body: @Sendable () async throws(CassetteControlError) -> T
        ) async throws(CassetteControlError) -> T {
            if isBusy {
                await withCheckedContinuation { waiters.append($0) }
            } else {
                isBusy = true
            }
            defer {
                if waiters.isEmpty { isBusy = false } else { waiters.removeFirst().resume() }
            }
            return try await body()
        }

        func note(report: Report, usage new: Usage?) {
            guard let new else { return }
            let path = report.activation.path
            if usage[path] == nil { order.append(path) }
            var entry = usage[path, default: CassetteUsage()]
            entry.used.formUnion(new.used)
            for recording in new.unused { entry.unused[recording.id] = recording.summary }
            entry.recordingCount = new.used.count + new.unused.count
            usage[path] = entry
        }

        func unusedRecordings() -> [UnusedRecordings] {
            order.compactMap { path in
                guard let entry = usage[path] else { return nil }
                let unused = entry.unused.filter { !entry.used.contains($0.key) }.sorted { $0.key < $1.key }
                return UnusedRecordings(
                    path: path, recordingCount: entry.recordingCount,
                    unused: unused.map { .init(id: $0.key, summary: $0.value) })
            }
        }
    }
}

/// Why the control API refused a request.
public struct CassetteControlError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of refusal. An open set: compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The body is not a JSON object, or a field is missing, unknown or of the wrong type.
        public static let invalidRequest = Code(rawValue: "invalidRequest")
        /// The cassette path is not an absolute, normalized path to a `.sqlite` file.
        public static let invalidPath = Code(rawValue: "invalidPath")
        /// The record mode is not `never`, `missing`, `all` or `live`.
        public static let invalidMode = Code(rawValue: "invalidMode")
        /// Mode `all` or `live` on a server without a live backend.
        public static let noLiveBackend = Code(rawValue: "noLiveBackend")
        /// The cassette file cannot be opened.
        public static let cassette = Code(rawValue: "cassette")
        /// A `POST` without `Content-Type: application/json`.
        public static let unsupportedMediaType = Code(rawValue: "unsupportedMediaType")
        /// The body is larger than the control API accepts.
        public static let bodyTooLarge = Code(rawValue: "bodyTooLarge")
        /// No control endpoint at this path, or not with this method.
        public static let notFound = Code(rawValue: "notFound")
        public static let methodNotAllowed = Code(rawValue: "methodNotAllowed")
    }

    public var code: Code
    /// What was wrong and what to send instead.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
