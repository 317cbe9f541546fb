import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRServer

/// `sandbox-vcr serve`: a SandboxFusion-compatible HTTP server answering from a cassette, an upstream or a fake.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the SandboxFusion HTTP API from a cassette, an upstream SandboxFusion, or fake rules.",
        discussion: """
            Point SANDBOX_URL (or the sandbox-fusion client's endpoint) at the printed URL. Once listening, prints \
            one line on standard output: "sandbox-vcr serve: listening on http://127.0.0.1:PORT". SIGINT or \
            SIGTERM stop it gracefully: in-flight requests are answered and recordings saved before it exits.

            Answer from: --cassette FILE (replay; with --upstream URL or --fake RULES.json, record the missing \
            answers from there), --upstream URL alone (a proxy) or --fake RULES.json alone. A request missing from \
            the cassette gets HTTP 200 with status "SandboxError" and the miss diagnostics as its message.
            """)

    @Option(help: "The cassette to replay from (and record into).")
    var cassette: String?

    @Option(
        help:
            "Record mode with --cassette: never, missing, all or live. Default: $SANDBOX_VCR_RECORD, else missing (never with $CI) with --upstream or --fake, never without."
    )
    var record: String?

    @Option(
        help:
            "An upstream SandboxFusion URL to forward to (repeat for several): records into --cassette, or a plain proxy without one."
    )
    var upstream: [String] = []

    @Option(help: "Answer from fake-executor rules in this JSON file (with --cassette: record what they answer).")
    var fake: String?

    @Flag(help: .hidden)
    var echo = false

    @Option(help: "The address to listen on (loopback unless --allow-remote).")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on; 0 picks a free port.")
    var port = 8080

    @Flag(help: "Allow listening on a non-loopback address (the server has no authentication).")
    var allowRemote = false

    @Option(help: "The most executor calls at once; more wait in arrival order.")
    var maxConcurrency = 64

    @Option(help: "The largest request body accepted, in bytes (larger ones get HTTP 413).")
    var maxBodyBytes = 64 * 1024 * 1024

    @Option(help: "Write the server URL to this file (atomically) once listening.")
    var readyFile: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
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
        return configuration
    }

    var executorOptions: ServeExecutorOptions {
        ServeExecutorOptions(
            cassette: cassette, record: record, upstreams: upstream, fake: fake, echo: echo,
            maxConcurrency: maxConcurrency)
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sandbox-vcr.serve")
        let configuration = serveConfiguration
        if !configuration.isLoopback {
            logger.warning(
                "listening on a non-loopback address: anyone who can reach it can use this server",
                metadata: ["host": "\(configuration.host)"])
        }
        let backend = try await makeServeBackend(
            options: executorOptions, environment: ProcessInfo.processInfo.environment, logger: logger)
        logger.info("answering from \(backend.summary)")
        let server = SandboxFusionServer(
            executor: backend.executor, configuration: configuration, logger: logger)
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
            onShutdown: backend.shutdown)
    }
}
