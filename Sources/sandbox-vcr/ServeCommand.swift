import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRModalServer
import SandboxVCRServer
import SandboxVCRWebUI

/// `sandbox-vcr serve`: a SandboxFusion-compatible HTTP server answering from a cassette, an upstream or a fake.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract:
            "Serve the SandboxFusion HTTP API from a cassette, a live backend (SandboxFusion, Modal, fake), or both.",
        discussion: """
            Point SANDBOX_URL (or the sandbox-fusion client's endpoint) at the printed URL. Once listening, prints \
            one line on standard output: "sandbox-vcr serve: listening on http://127.0.0.1:PORT". SIGINT or \
            SIGTERM stop it gracefully: in-flight requests are answered and recordings saved before it exits.

            Answer from: --cassette FILE (replay; with a live backend, --url URL, --rules RULES.json or \
            --backend modal, record the missing answers from there), or a live backend alone (a proxy). The live \
            backend is named by the options only, never by $SANDBOX_BACKEND ($SANDBOX_URL may point at this \
            server). A request missing from the cassette gets HTTP 200 with status "SandboxError" and the miss \
            diagnostics as its message.

            With --control, the cassette is chosen per test through the control API under /sandbox-vcr/ \
            (POST /sandbox-vcr/cassette {"path": ABSOLUTE.sqlite, "mode": MODE, "test": NAME}; GET and DELETE \
            /sandbox-vcr/cassette; GET /sandbox-vcr/unused): one server for a whole test session, as the pytest \
            plugin (Tools/pytest-sandbox-vcr) uses it. Until a cassette is set, every request is a miss. With \
            --modal-port too, the Modal port follows the same cassette: a sandbox binds to the cassette current at \
            its first exec, and records only with --modal-upstream.
            """)

    @OptionGroup var executorOptions: ExecutorOptions

    /// `--upstream URL`: the old spelling of `--url URL`.
    @Option(name: .customLong("upstream"), help: .hidden)
    var upstreamAlias: [String] = []

    /// `--fake RULES`: the old spelling of `--backend fake --rules RULES`.
    @Option(name: .customLong("fake"), help: .hidden)
    var fakeAlias: String?

    @Flag(
        help:
            "Choose the cassette per test through the control API (/sandbox-vcr/cassette) instead of --cassette; the live backend options give what records."
    )
    var control = false

    @Option(help: "The address to listen on (loopback unless --allow-remote).")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free port.")
    var port = 8080

    @Flag(help: "Allow listening on a non-loopback address (the server has no authentication).")
    var allowRemote = false

    @Option(
        help:
            "The most executor calls at once; more wait in arrival order. Also the SandboxFusion client's limit, unless $SANDBOX_MAX_CONCURRENCY is set."
    )
    var maxConcurrency = 64

    @Option(help: "The largest request body accepted, in bytes (larger ones get HTTP 413).")
    var maxBodyBytes = 64 * 1024 * 1024

    @Option(
        help: """
            Seconds a shutdown (SIGTERM, SIGINT) waits for in-flight requests before cancelling them; a second \
            signal cancels them at once. Recordings are committed either way.
            """)
    var shutdownGrace: Double = 10

    @Option(
        help: """
            Seconds a connection may stay open with no request in progress before it is closed (0: never).
            """)
    var idleTimeout: Double = 60

    @Option(
        help: """
            Seconds a request head may take to arrive, from its first byte; a slower one (a slowloris) is \
            answered 408 and its connection closed (0: no limit).
            """)
    var requestHeadTimeout: Double = 10

    @Option(
        help: """
            Seconds a request body may take to arrive, from the end of its head; a slower one is answered 408 \
            and its connection closed (0: no limit). Answering is never timed: a slow upstream is waited for.
            """)
    var requestBodyTimeout: Double = 60

    @Option(
        help: """
            Write the server URL to this file (atomically) once listening; with --modal-port a second line \
            `modal: URL`.
            """)
    var readyFile: String?

    @Option(
        help: """
            Also serve Modal's gRPC API on this port (0 picks a free one): Modal clients (the Python SDK with \
            MODAL_SERVER_URL, ModalSandboxPool) replay sandboxes from --cassette, and record them in modes \
            missing and all.
            """)
    var modalPort: Int?

    @Option(
        help: """
            The Modal API that --modal-port records through (default: MODAL_SERVER_URL, the profile's \
            server_url, else https://api.modal.com).
            """)
    var modalUpstream: String?

    @Option(
        name: .customLong("normalize"),
        help: """
            REGEX=REPLACEMENT applied to each Modal exec's argv, workdir and stdin before matching (repeatable), \
            for values that change between runs and are not bound automatically.
            """)
    var normalizers: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(
        help: """
            How many requests the dashboard (GET / on the server's address) lists; the requests and answers of the \
            newest 10,000 are kept (within 32 MiB) for their detail.
            """)
    var dashboardHistory = 100_000

    @Flag(help: "Serve no dashboard at GET / (and keep no history of requests).")
    var noDashboard = false

    func validate() throws {
        if !upstreamAlias.isEmpty, fakeAlias != nil {
            throw ValidationError("--upstream and --fake both give the live answers; use one")
        }
        if fakeAlias != nil, executorOptions.rules != nil {
            throw ValidationError("--fake RULES is --backend fake --rules RULES; give the rules once")
        }
        if !(1...10_000_000).contains(dashboardHistory) {
            throw ValidationError("--dashboard-history must be between 1 and 10000000 (or use --no-dashboard)")
        }
        if let modalPort, !(0...65_535).contains(modalPort) {
            throw ValidationError("--modal-port \(modalPort) is not a port (0 picks a free one)")
        }
        if modalPort == nil, modalUpstream != nil || !normalizers.isEmpty {
            throw ValidationError("--modal-upstream and --normalize need --modal-port")
        }
        if control, executorOptions.cassette != nil || executorOptions.record != nil {
            throw ValidationError(
                "--control chooses the cassette and its record mode per request (POST /sandbox-vcr/cassette); "
                    + "drop --cassette and --record")
        }
        try executorConfiguration.validate()
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError(
                "unknown --log-level \(logLevel); use trace, debug, info, notice, warning, error or critical")
        }
        do {
            try serveConfiguration.validate()
        } catch {
            throw ValidationError(error.message)
        }
    }

    var serveConfiguration: ServeConfiguration {
        var configuration = ServeConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.allowsRemoteBind = allowRemote
        configuration.maxConcurrency = maxConcurrency
        configuration.maxBodyBytes = maxBodyBytes
        configuration.shutdownGrace = (0...86_400).contains(shutdownGrace) ? .seconds(shutdownGrace) : .seconds(-1)
        configuration.idleTimeout = Self.timeout(seconds: idleTimeout)
        configuration.requestHeadTimeout = Self.timeout(seconds: requestHeadTimeout)
        configuration.requestBodyTimeout = Self.timeout(seconds: requestBodyTimeout)
        return configuration
    }

    /// 0 is no limit; a value out of range becomes one `ServeConfiguration.validate()` refuses.
    private static func timeout(seconds: Double) -> Duration? {
        if seconds == 0 { return nil }
        return (0...86_400).contains(seconds) ? .seconds(seconds) : .seconds(-1)
    }

    /// The options with the hidden aliases folded in; the upstream client may carry `--max-concurrency` calls.
    var executorConfiguration: ExecutorConfiguration {
        var configuration = executorOptions.configuration(unnamedBackend: .none)
        configuration.urls += upstreamAlias
        configuration.rules = configuration.rules ?? fakeAlias
        configuration.clientConcurrency = maxConcurrency
        configuration.recordsModalOnly = modalPort != nil
        return configuration
    }

    func run() async throws {
        let logger = makeCommandLogger(label: "sandbox-vcr.serve", level: Logger.Level(rawValue: logLevel) ?? .info)
        let configuration = serveConfiguration
        if !configuration.isLoopback {
            logger.warning(
                "listening on a non-loopback address: anyone who can reach it can use this server",
                metadata: ["host": "\(configuration.host)"])
        }
        let environment = ProcessInfo.processInfo.environment
        let journal = noDashboard ? nil : RequestJournal(capacity: dashboardHistory)
        let server: SandboxFusionServer
        let finish: @Sendable () async throws -> Void
        let modalServer: ModalServer?
        if control {
            // The live backend only (no cassette): each activation puts a cassette in front of it.
            let live =
                try executorConfiguration.namedBackend(environment: environment) == nil
                ? nil : try await ExecutorStack.make(executorConfiguration, environment: environment, logger: logger)
            logger.info("answering from the cassette of each test (--control), live: \(live?.summary ?? "none")")
            let modal: ModalServer? =
                if let modalPort {
                    try await makeModalServer(
                        port: modalPort, mode: nil, cassette: nil, environment: environment, logger: logger,
                        dashboard: journal)
                } else {
                    nil
                }
            let cassetteControl = CassetteControl(
                live: live?.executor, backendVersion: "sandbox-vcr \(SandboxVCRVersion.current)",
                companion: modal.map(Self.companion), logger: logger)
            server = SandboxFusionServer(
                control: cassetteControl, configuration: configuration, logger: logger, dashboard: journal)
            if let modal { server.statistics.reportModal { modal.statistics.snapshot } }
            let pool = live?.modalPool
            finish = {
                await modal?.finish()
                await Self.terminateSandboxes(of: pool, logger: logger)
                await cassetteControl.shutdown()
            }
            modalServer = modal
        } else {
            let stack = try await ExecutorStack.make(executorConfiguration, environment: environment, logger: logger)
            logger.info("answering from \(stack.summary)")
            server = SandboxFusionServer(
                executor: stack.executor, configuration: configuration, logger: logger, dashboard: journal)
            let pool = stack.modalPool
            if let modalPort {
                let modal = try await makeModalServer(
                    port: modalPort, mode: stack.mode ?? .live, cassette: stack.cassette, environment: environment,
                    logger: logger, dashboard: journal)
                modalServer = modal
                server.statistics.reportModal { modal.statistics.snapshot }
                finish = {
                    await modal.finish()
                    await Self.terminateSandboxes(of: pool, logger: logger)
                    try await stack.finish()
                }
            } else {
                finish = {
                    await Self.terminateSandboxes(of: pool, logger: logger)
                    try await stack.finish()
                }
                modalServer = nil
            }
        }
        let readyFile = readyFile
        let companions = modalServer.map { modal in
            [ServeCompanion(run: { try await modal.run() }, beginShutdown: { modal.beginShutdown() })]
        }
        try await server.run(
            handlesSignals: true,
            companions: companions ?? [],
            onReady: { address in
                var line = address.readinessLine
                var extraLines: [String] = []
                if let modalServer {
                    do {
                        let url = try await modalServer.listeningURL()
                        line += ", modal: \(url)"
                        extraLines.append("modal: \(url)")
                    } catch {
                        logger.error("the Modal port is not listening", metadata: ["error": "\(error)"])
                    }
                }
                // The ready file first, so that a script which saw the line also finds the file.
                if let readyFile {
                    do {
                        try address.writeReadyFile(to: readyFile, extraLines: extraLines)
                    } catch {
                        logger.error("could not write the ready file", metadata: ["error": "\(error)"])
                    }
                }
                // Unbuffered, so a script reading a pipe sees the line at once.
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
                if journal != nil { logger.notice("dashboard: \(address.url)/") }
            },
            onShutdown: finish)
    }

    /// The Modal port's server: the cassette and record mode of the SandboxFusion port (`nil` with --control: each
    /// test's), the upstream from --modal-upstream or the Modal configuration (with --control, --modal-upstream only,
    /// so that replaying tests never reach Modal).
    private func makeModalServer(
        port: Int, mode: RecordMode?, cassette: Cassette?, environment: [String: String], logger: Logger,
        dashboard: RequestJournal?
    ) async throws -> ModalServer {
        var modal = ModalServeConfiguration()
        modal.host = host
        modal.port = port
        modal.mode = mode ?? .never
        modal.followsControl = mode == nil
        modal.dashboard = dashboard
        modal.normalizers = normalizers
        modal.shutdownGrace = .seconds(shutdownGrace)
        let credentials = try? ModalConfiguration.fromEnvironment(environment)
        modal.upstreamURL =
            modal.followsControl ? modalUpstream : modalUpstream ?? credentials?.serverURL ?? "https://api.modal.com"
        modal.fallbackTokenID = credentials?.tokenID
        modal.fallbackTokenSecret = credentials?.tokenSecret
        do {
            let server = try await ModalServer(configuration: modal, cassette: cassette, logger: logger)
            let upstream = modal.forwards ? ", upstream \(modal.upstreamURL ?? "-")" : ", no upstream"
            let answers = modal.followsControl ? "each test's cassette" : "record mode \(modal.mode)"
            logger.info("Modal port: \(answers)\(upstream)")
            return server
        } catch let error as ModalServeError {
            throw ValidationError(error.message)
        }
    }

    /// The Modal port as the control API's companion: it follows each test's cassette and reports under `modal`.
    private static func companion(_ modal: ModalServer) -> CassetteControl.Companion {
        @Sendable func report(_ report: ModalActivationReport?) -> CassetteControl.CompanionReport? {
            report.map {
                CassetteControl.CompanionReport(
                    name: "modal",
                    counts: [
                        "sandboxes": $0.sandboxes, "replayed": $0.replayed, "recorded": $0.recorded,
                        "forwarded": $0.forwarded, "misses": $0.misses, "errors": $0.errors,
                    ], missDiagnostics: $0.missDiagnostics, errorMessages: $0.errorMessages)
            }
        }
        return CassetteControl.Companion(
            records: modal.configuration.forwards,
            activate: { activation, open in
                try await modal.activate(
                    ModalActivation(path: activation.path, mode: activation.mode, test: activation.test, cassette: open)
                )
            },
            deactivate: { report(await modal.deactivate()) },
            currentReport: { report(modal.activeReport) })
    }

    /// At shutdown, once the calls in flight were answered: terminates the Modal sandboxes left (warm ones, or those
    /// of calls cancelled at the end of the grace period) and says how many.
    private static func terminateSandboxes(of pool: ModalSandboxPool?, logger: Logger) async {
        guard let pool else { return }
        let termination = await pool.terminateNow(grace: SandboxInterruption.grace)
        var message = "terminated \(termination.terminated) Modal sandbox\(termination.terminated == 1 ? "" : "es")"
        if termination.unconfirmed > 0 {
            message += "; \(termination.unconfirmed) not confirmed (they end at their own timeout)"
        }
        logger.notice("\(message)")
    }
}
