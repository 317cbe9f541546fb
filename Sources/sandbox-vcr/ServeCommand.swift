import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRServer

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
            plugin (Tools/pytest-sandbox-vcr) uses it. Until a cassette is set, every request is a miss.
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

    @Option(help: "Write the server URL to this file (atomically) once listening.")
    var readyFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        if !upstreamAlias.isEmpty, fakeAlias != nil {
            throw ValidationError("--upstream and --fake both give the live answers; use one")
        }
        if fakeAlias != nil, executorOptions.rules != nil {
            throw ValidationError("--fake RULES is --backend fake --rules RULES; give the rules once")
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
        return configuration
    }

    /// The options with the hidden aliases folded in; the upstream client may carry `--max-concurrency` calls.
    var executorConfiguration: ExecutorConfiguration {
        var configuration = executorOptions.configuration(unnamedBackend: .none)
        configuration.urls += upstreamAlias
        configuration.rules = configuration.rules ?? fakeAlias
        configuration.clientConcurrency = maxConcurrency
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
        let server: SandboxFusionServer
        let finish: @Sendable () async throws -> Void
        if control {
            // The live backend only (no cassette): each activation puts a cassette in front of it.
            let live =
                try executorConfiguration.namedBackend(environment: environment) == nil
                ? nil : try await ExecutorStack.make(executorConfiguration, environment: environment, logger: logger)
            logger.info("answering from the cassette of each test (--control), live: \(live?.summary ?? "none")")
            let cassetteControl = CassetteControl(
                live: live?.executor, backendVersion: "sandbox-vcr \(SandboxVCRVersion.current)", logger: logger)
            server = SandboxFusionServer(control: cassetteControl, configuration: configuration, logger: logger)
            let pool = live?.modalPool
            finish = {
                await Self.terminateSandboxes(of: pool, logger: logger)
                await cassetteControl.shutdown()
            }
        } else {
            let stack = try await ExecutorStack.make(executorConfiguration, environment: environment, logger: logger)
            logger.info("answering from \(stack.summary)")
            server = SandboxFusionServer(executor: stack.executor, configuration: configuration, logger: logger)
            let pool = stack.modalPool
            finish = {
                await Self.terminateSandboxes(of: pool, logger: logger)
                try await stack.finish()
            }
        }
        let readyFile = readyFile
        try await server.run(
            handlesSignals: true,
            onReady: { address in
                // The ready file first, so that a script which saw the line also finds the file.
                if let readyFile {
                    do {
                        try address.writeReadyFile(to: readyFile)
                    } catch {
                        logger.error("could not write the ready file", metadata: ["error": "\(error)"])
                    }
                }
                // Unbuffered, so a script reading a pipe sees the line at once.
                FileHandle.standardOutput.write(Data((address.readinessLine + "\n").utf8))
            },
            onShutdown: finish)
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
