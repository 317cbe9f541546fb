import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Logging
import ModalProto
public import SandboxVCR

/// Modal's own gRPC API (`modal.client.ModalClient` and `modal.task_command_router.TaskCommandRouter`) in cleartext
/// HTTP/2: sandboxes replayed from a cassette, or forwarded to a real Modal and recorded, so that any Modal client
/// (the Python SDK, `ModalSandboxPool`) runs in CI with no credentials.
///
/// ```swift
/// let server = try await ModalServer(configuration: configuration, cassette: cassette, logger: logger)
/// async let serving: Void = server.run()
/// print(try await server.listeningURL())   // http://127.0.0.1:PORT: the client's MODAL_SERVER_URL
/// ```
///
/// The command-router URLs it hands out point back at itself. See the ModalServer article for the RPCs it
/// answers, how sandboxes bind to recordings, and how a cassette keeps them.
public final class ModalServer: Sendable {
    public let configuration: ModalServeConfiguration
    public let statistics = ModalServeStatistics()
    let hub: ModalSandboxHub
    private let server: GRPCServer<QuiescingTransport<HTTP2ServerTransport.Posix>>
    private let transport: QuiescingTransport<HTTP2ServerTransport.Posix>
    private let connections = OpenConnections()
    private let logger: Logger

    /// Loads the cassette's recorded sandboxes (when the mode may replay) and prepares the server.
    ///
    /// - Parameters:
    ///   - configuration: where to listen, the record mode, the upstream, normalizers.
    ///   - cassette: where sandboxes are replayed from and recorded into (`nil`: mode `live` only).
    ///   - logger: calls at `debug`, sandboxes and misses at `info`/`warning`; never credentials.
    /// - Throws: ``ModalServeError`` for a configuration that cannot work; ``CassetteError`` when the cassette
    ///   cannot be read.
    public init(configuration: ModalServeConfiguration, cassette: Cassette?, logger: Logger) async throws {
        if configuration.forwards, configuration.upstreamURL == nil {
            throw ModalServeError(
                code: .configuration,
                message: "record mode `\(configuration.mode)` needs a Modal upstream: --modal-upstream URL, "
                    + "MODAL_SERVER_URL, or a profile's server_url")
        }
        if configuration.mode != .live, cassette == nil, !configuration.followsControl {
            throw ModalServeError(
                code: .configuration,
                message: "--modal-port with record mode `\(configuration.mode)` needs --cassette FILE")
        }
        var normalizers: [ExecNormalizer] = []
        for text in configuration.normalizers { normalizers.append(try ExecNormalizer(text)) }
        var term: CassetteTerm?
        if !configuration.followsControl {
            var library: ReplayLibrary?
            if let cassette, configuration.mode == .never || configuration.mode == .missing {
                library = try await ReplayLibrary.load(from: cassette, normalizers: normalizers, logger: logger)
                let counts = "\(library?.sandboxes.count ?? 0) recorded sandboxes (\(library?.execCount ?? 0) execs)"
                logger.info("Modal port replays \(counts)")
            }
            term = CassetteTerm(run: cassette, mode: configuration.mode, library: library)
        }
        self.configuration = configuration
        self.logger = logger
        let upstream =
            configuration.forwards ? configuration.upstreamURL.map { UpstreamModal(url: $0, logger: logger) } : nil
        let hub = ModalSandboxHub(
            configuration: configuration, term: term, normalizers: normalizers, upstream: upstream,
            statistics: statistics, logger: logger)
        self.hub = hub
        var transportConfiguration = HTTP2ServerTransport.Posix.Config.defaults
        transportConfiguration.rpc.maxRequestPayloadSize = 64 * 1024 * 1024
        // libcurl 7.88's resets of finished streams would end each connection after 200 (RedundantResetFilter).
        let statistics = statistics
        let connections = connections
        transportConfiguration.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
            statistics.countConnection()
            connections.add(channel)
            return RedundantResetFilter.install(on: channel, statistics: statistics)
        }
        transport = QuiescingTransport(
            HTTP2ServerTransport.Posix(
                address: .ipv4(host: configuration.host, port: configuration.port), transportSecurity: .plaintext,
                config: transportConfiguration))
        let implemented = Set(ModalRPC.allPaths)
        server = GRPCServer(
            transport: transport,
            services: [
                ModalControlPlaneService(hub: hub), ModalCommandRouterService(hub: hub),
                UnrecordedMethodsService(implemented: implemented, statistics: statistics),
            ])
    }

    // MARK: Per-test cassettes

    /// Makes a test's cassette current (``ModalServeConfiguration/followsControl``): sandboxes bind to it at their
    /// first exec, and a sandbox bound to an earlier test's cassette binds anew at its next exec. Reads the
    /// cassette's recorded sandboxes now when the mode replays.
    ///
    /// - Throws: ``CassetteError`` when the cassette cannot be read.
    public func activate(_ activation: ModalActivation) async throws {
        _ = await hub.deactivate()
        try await hub.activate(activation)
    }

    /// Ends the current test's cassette: its execs in flight are recorded as they stand and every recording is
    /// written before it returns.
    ///
    /// - Returns: what its calls did, or `nil` when none was active.
    public func deactivate() async -> ModalActivationReport? {
        await hub.deactivate()
    }

    /// What the current test's Modal calls did so far.
    public var activeReport: ModalActivationReport? { hub.currentTerm?.report }

    /// Serves until ``beginShutdown()``; then waits for the calls in flight.
    ///
    /// - Throws: ``ModalServeError`` with code ``ModalServeError/Code/listen`` when the port cannot be bound.
    public func run() async throws {
        do {
            try await server.serve()
        } catch {
            throw ModalServeError(
                code: .listen,
                message: "the Modal port could not listen on \(configuration.host):\(configuration.port) (\(error)); "
                    + "pick another --modal-port (0 picks a free one)")
        }
    }

    /// `http://HOST:PORT` once listening (the URL Modal clients take as `MODAL_SERVER_URL`).
    public func listeningURL() async throws -> String {
        let address = try await transport.wrapped.listeningAddress
        guard let ipv4 = address.ipv4 else {
            throw ModalServeError(code: .listen, message: "the Modal port is bound to \(address), not an IPv4 address")
        }
        let url = "http://\(ipv4.host):\(ipv4.port)"
        hub.setRouterURL(url)
        return url
    }

    /// Stops the server: first lets the execs in flight finish (an exec spans several calls, e.g. the Python SDK's
    /// repeated `TaskExecWait`), then the calls in flight, then waits until no call has run for half a second (grpclib
    /// clients take `GOAWAY` as the end of the connection, and drop answers they have not taken yet), for up to the
    /// shutdown grace in all; then stops accepting calls. ``run()`` returns when the calls still open are answered.
    public func beginShutdown() {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        Task { [hub, transport, server, connections, logger] in
            await hub.drainExecs(until: deadline)
            let left = await transport.waitUntilQuiet(until: deadline)
            if left > 0 {
                logger.notice("the Modal port stops with \(left) call(s) still in flight: the shutdown grace ended")
            }
            server.beginGracefulShutdown()
            // A connection whose client does not answer the GOAWAY's PING (libcurl leaves an idle one unread) would
            // stay open for ever: close what is left after a moment.
            try? await Task.sleep(for: Self.goAwayGrace)
            let closed = connections.closeAll()
            if closed > 0 { logger.debug("the Modal port closed \(closed) idle connection(s) at shutdown") }
        }
    }

    /// How long connections may stay open after `GOAWAY` at shutdown (clients that read their connection close it at
    /// once: grpclib at the `GOAWAY`, grpc-swift and libcurl with a call open after the `PING`).
    static var goAwayGrace: Duration { .seconds(2) }

    /// Saves every recording still open and terminates the upstream sandboxes serve created. Call it after
    /// ``run()`` returned (or was cancelled).
    public func finish() async {
        await hub.finishRecordings()
        await hub.terminateUpstreamSandboxes()
        await hub.finishRecordings()
    }
}
