internal import Hummingbird
public import Logging
internal import NIOCore
public import SandboxVCR
public import SandboxVCRWebUI
internal import ServiceLifecycle
internal import Synchronization
internal import UnixSignals

/// A SandboxFusion-compatible HTTP server that answers from any ``SandboxExecutor``: a cassette replay, an
/// upstream SandboxFusion (recording or not), or a fake.
///
/// Endpoints: `POST /run_code`, `POST /run_jupyter`, `GET /v1/ping` (`"pong"`), `GET /stats` (counts), and with a
/// ``CassetteControl`` the control API under `/sandbox-vcr/` (see ``init(control:configuration:logger:)``). Requests
/// are validated exactly as the real server (FastAPI + pydantic 2.6) does, with the same 422 `detail` answers,
/// 404 `{"detail":"Not Found"}` and 405 `{"detail":"Method Not Allowed"}` (with `Allow`).
///
/// How executor errors are answered (a real SandboxFusion answers HTTP 200 for everything that reached the
/// sandbox, so "no result from the sandbox" keeps that shape, and "no answer from the upstream" does not):
///
/// | error | answer |
/// |---|---|
/// | a miss (``ExecutionOutcome/Source/miss``: a cassette miss, or no fake rule matched) | 200, `status: "SandboxError"`, `message` = the diagnostics; counted as a miss, logged as a warning |
/// | ``ExecutionError/Code/sandboxError``, `sandboxTerminated`, `unsupportedRequest` | 200, `status: "SandboxError"`, `message` = the error |
/// | ``ExecutionError/Code/httpStatus`` 422 from the upstream | 422 with the upstream's `detail` items |
/// | other upstream HTTP status, `connectionRefused`, `connectionReset`, `transport`, `undecodableResponse` | 502 `{"detail": "..."}` naming the upstream failure |
/// | `timedOut` | 504 `{"detail": "..."}` |
/// | `cancelled` (shutting down) | 503 `{"detail": "..."}` |
/// | anything else | 500 `{"detail": "..."}` |
///
/// `POST /run_jupyter` cannot be expressed as an ``ExecutionRequest``: it is validated like the real server,
/// then answered by the optional ``JupyterHandler`` or, without one, 200 with `status: "SandboxError"` and a
/// message saying replay does not support it.
public final class SandboxFusionServer: Sendable {
    /// Answers a validated `/run_jupyter` body (the JSON object as sent) with the whole JSON answer.
    public typealias JupyterHandler = @Sendable (_ body: JSONValue) async throws -> JSONValue

    public let configuration: ServeConfiguration
    /// Counts since the server was made.
    public let statistics = ServeStatistics()
    /// The history the dashboard (`GET /`) shows; without one, there is no dashboard.
    let journal: RequestJournal?

    let executor: any SandboxExecutor
    /// The cassette switch behind the control API (`/sandbox-vcr/...`), when there is one.
    let cassetteControl: CassetteControl?
    let jupyterHandler: JupyterHandler?
    let logger: Logger
    let limiter: ConcurrencyLimiter
    /// The running service group (set by `run`), and whether a shutdown was asked before it existed.
    /// Passes when a shutdown's grace period is over (or at a second signal): calls still in flight are cancelled.
    let shutdownDeadline = ShutdownDeadline()
    private let lifecycle = Mutex<(group: ServiceGroup?, isShutdownRequested: Bool)>((nil, false))
    /// Set when shutdown starts: the dashboard's event streams end.
    private let dashboardClosing = Atomic<Bool>(false)
    var isClosingDashboard: Bool { dashboardClosing.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - executor: answers every `/run_code` request; its ``SandboxExecutor/outcome(of:)`` says for the log and
    ///     `/stats` whether it replayed, recorded, passed through or missed.
    ///   - configuration: where to listen and the limits.
    ///   - jupyterHandler: answers `/run_jupyter`; without one it answers a `SandboxError`.
    ///   - logger: one line per request at `info`, misses at `warning`.
    ///   - dashboard: serves the live dashboard at `GET /` with this history of the requests (see
    ///     ``RequestJournal``); `nil`: no dashboard.
    public init(
        executor: any SandboxExecutor,
        configuration: ServeConfiguration = ServeConfiguration(),
        jupyterHandler: JupyterHandler? = nil,
        logger: Logger = Logger(label: "sandbox-vcr.serve", factory: { _ in SwiftLogNoOpLogHandler() }),
        dashboard: RequestJournal? = nil
    ) {
        self.journal = dashboard
        self.executor = executor
        self.cassetteControl = nil
        self.configuration = configuration
        self.jupyterHandler = jupyterHandler
        self.logger = logger
        self.limiter = ConcurrencyLimiter(limit: max(1, configuration.maxConcurrency))
    }

    /// A server whose cassette is chosen per test through the control API (`serve --control`): `/run_code` goes to
    /// `control`'s current cassette, and `POST`, `GET`, `DELETE /sandbox-vcr/cassette` and `GET /sandbox-vcr/unused`
    /// switch and report (see the "Choosing the cassette per test" section of the module's article).
    ///
    /// - Parameters:
    ///   - control: the cassette switch, which answers every `/run_code` request.
    ///   - configuration: where to listen and the limits.
    ///   - logger: one line per request at `info`, misses at `warning`.
    ///   - dashboard: serves the live dashboard at `GET /` with this history; `nil`: no dashboard.
    public init(
        control: CassetteControl, configuration: ServeConfiguration = ServeConfiguration(),
        logger: Logger = Logger(label: "sandbox-vcr.serve", factory: { _ in SwiftLogNoOpLogHandler() }),
        dashboard: RequestJournal? = nil
    ) {
        self.journal = dashboard
        self.executor = control
        self.cassetteControl = control
        self.configuration = configuration
        self.jupyterHandler = nil
        self.logger = logger
        self.limiter = ConcurrencyLimiter(limit: max(1, configuration.maxConcurrency))
    }

    /// Runs the server (once per instance) until a graceful shutdown: ``triggerGracefulShutdown()``, or SIGINT / SIGTERM when
    /// `handlesSignals`. Shutdown stops accepting connections and lets the requests in flight finish for up to
    /// ``ServeConfiguration/shutdownGrace``; then (or at a second signal) the calls still waiting are cancelled and
    /// answered with HTTP 503. Then it calls `onShutdown` (flush a cassette there) and returns.
    ///
    /// - Parameters:
    ///   - handlesSignals: whether SIGINT and SIGTERM start a graceful shutdown (the CLI: yes; tests: no).
    ///   - onReady: called once, when the server listens, with the bound address (the real port for port 0).
    ///   - onShutdown: called after the last request was answered.
    /// - Throws: ``ServeError`` for a bad configuration, a bind failure, or what `onShutdown` throws.
    public func run(
        handlesSignals: Bool = false,
        companions: [ServeCompanion] = [],
        onReady: @escaping @Sendable (ServeAddress) async -> Void = { _ in },
        onShutdown: @escaping @Sendable () async throws -> Void = {}
    ) async throws {
        try configuration.validate()
        let host = configuration.host
        var applicationConfiguration = ApplicationConfiguration(
            address: .hostname(host, port: configuration.port), serverName: nil)
        applicationConfiguration.reuseAddress = true
        let logger = self.logger
        let application = Application(
            responder: SandboxFusionResponder(server: self),
            // Slow clients are timed out (idle, head and body deadlines), and the listening socket backs off when
            // accept runs out of descriptors.
            server: DeadlineHTTP1Channel.builder(limits: ConnectionDeadlineState.Limits(configuration)),
            configuration: applicationConfiguration,
            onServerRunning: { channel in
                try? await channel.eventLoop.submit {
                    try channel.pipeline.syncOperations.addHandler(
                        AcceptPauseHandler(logger: logger), position: .first)
                }.get()
                let port = channel.localAddress?.port ?? 0
                await onReady(ServeAddress(host: host, port: port))
            },
            logger: logger)
        // The first signal starts a graceful shutdown; the grace period running out, or a second signal, cancels
        // what is still in flight.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [application] + companions.map { CompanionService(companion: $0) as any Service },
            gracefulShutdownSignals: handlesSignals ? [.sigterm, .sigint] : [],
            logger: logger)
        // A backstop: in-flight calls are answered when the grace period ends (``shutdownDeadline``); whatever still
        // holds the server a few seconds later is cancelled.
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGrace + .seconds(5)
        let group = ServiceGroup(configuration: groupConfiguration)
        let isAlreadyShuttingDown = lifecycle.withLock { lifecycle in
            lifecycle.group = group
            return lifecycle.isShutdownRequested
        }
        if isAlreadyShuttingDown { await group.triggerGracefulShutdown() }
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                if handlesSignals {
                    tasks.addTask {
                        // ServiceLifecycle starts the graceful shutdown at the first signal; this starts its grace
                        // period then, and ends it at a second signal.
                        var count = 0
                        for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                            count += 1
                            if count == 1 {
                                let text =
                                    "shutting down; calls in flight have \(self.configuration.shutdownGrace) to "
                                    + "finish (--shutdown-grace), a second signal ends them now"
                                self.logger.notice("\(text)")
                                self.startGracePeriod()
                            } else {
                                self.logger.notice("second signal: answering the calls in flight with an error now")
                                self.shutdownDeadline.pass()
                            }
                        }
                    }
                }
                try await tasks.next()
                tasks.cancelAll()
            }
        } catch {
            // Cancelled after the grace period: what was recorded is still committed before the error goes up.
            try? await onShutdown()
            throw error
        }
        logger.info("server stopped")
        try await onShutdown()
    }

    /// Starts a graceful shutdown of ``run(handlesSignals:onReady:onShutdown:)``: in-flight requests finish.
    /// Passes ``shutdownDeadline`` once the configured grace period is over.
    private func startGracePeriod() {
        dashboardClosing.store(true, ordering: .relaxed)
        let grace = configuration.shutdownGrace
        let deadline = shutdownDeadline
        Task {
            try? await Task.sleep(for: grace)
            deadline.pass()
        }
    }

    public func triggerGracefulShutdown() async {
        let group = lifecycle.withLock { lifecycle in
            lifecycle.isShutdownRequested = true
            return lifecycle.group
        }
        startGracePeriod()
        await group?.triggerGracefulShutdown()
    }
}

/// Another server that runs beside the HTTP one (`serve --modal-port`'s gRPC server): started with it, told to
/// stop at the same graceful shutdown.
public struct ServeCompanion: Sendable {
    /// Serves until `beginShutdown` is called, then returns once the calls in flight are answered.
    public var run: @Sendable () async throws -> Void
    /// Starts the graceful shutdown.
    public var beginShutdown: @Sendable () -> Void

    public init(run: @escaping @Sendable () async throws -> Void, beginShutdown: @escaping @Sendable () -> Void) {
        self.run = run
        self.beginShutdown = beginShutdown
    }
}

/// A companion as a service of the server's ``ServiceGroup``.
private struct CompanionService: Service {
    let companion: ServeCompanion

    func run() async throws {
        let companion = self.companion
        try await withGracefulShutdownHandler {
            try await companion.run()
        } onGracefulShutdown: {
            companion.beginShutdown()
        }
    }
}
