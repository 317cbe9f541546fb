public import Foundation
import Synchronization

/// A running `Tools/fake_modal_server.py`: a loopback fake of Modal's gRPC API (cleartext HTTP/2) for tests.
///
/// The server runs commands as local subprocesses, checks credentials, injects faults on request and keeps counters
/// (``Stats``) in a JSON file. It stops when ``stop()`` is called, and also by itself when this process dies (its
/// standard input is a pipe from here; it runs with `--exit-on-stdin-eof`). Prefer ``withFakeModalServer(_:filePath:_:)``.
///
/// ```swift
/// try await withFakeModalServer(.init(faults: [.unavailableOnce])) { server in
///     // point the client at server.url with server.tokenID / server.tokenSecret
///     #expect(try server.stats().maxAlive <= 8)
/// }
/// ```
public final class FakeModalServer: Sendable {
    /// A fault switch of the fake server (`--fault NAME`).
    public struct Fault: Sendable, Hashable, CustomStringConvertible {
        /// The switch's name on the command line.
        public let name: String
        public var description: String { name }

        /// Creates a switch by name, for switches added to the server after this list.
        public init(_ name: String) { self.name = name }

        /// The first call of each RPC answers UNAVAILABLE, later calls work.
        public static let unavailableOnce = Fault("unavailable-once")
        /// The first call of each RPC answers RESOURCE_EXHAUSTED with an `RPCRetryPolicy` in the status details.
        public static let throttle = Fault("throttle")
        /// Every control-plane call answers UNAUTHENTICATED.
        public static let unauthenticated = Fault("unauthenticated")
        /// The first router call of each task answers UNAUTHENTICATED.
        public static let routerUnauthenticatedOnce = Fault("router-unauthenticated-once")
        /// A command still running after `--terminate-after` seconds gets its sandbox terminated.
        public static let terminateMidCommand = Fault("terminate-mid-command")
        /// As ``terminateMidCommand``, for the first such command only: one sandbox dies, the next ones live.
        public static let terminateMidCommandOnce = Fault("terminate-mid-command-once")
        /// Exec timeouts are ignored (as Modal's own test server does): the client must enforce them.
        public static let ignoreExecTimeouts = Fault("ignore-exec-timeouts")
        /// The first stdio stream of each exec breaks with UNAVAILABLE after its first message.
        public static let stdioBreakOnce = Fault("stdio-break-once")
        /// Stdio streams send small chunks with delays.
        public static let slowStreams = Fault("slow-streams")
        /// Error answers are sent before the request body is read.
        public static let rejectBeforeRead = Fault("reject-before-read")
        /// Every call answers in full but ends without the trailers that carry `grpc-status` (as libcurl before 8.1
        /// delivers an answer whose trailers it dropped); use with ``Options/faultRPCs``. Its outcome in the call
        /// log is `OK, status dropped`.
        public static let dropStatus = Fault("drop-status")
        /// As ``dropStatus``, for the first call of each RPC only.
        public static let dropStatusOnce = Fault("drop-status-once")
    }

    /// How to start the server.
    public struct Options: Sendable {
        /// Fault switches to turn on.
        public var faults: [Fault]
        /// Method names the faults apply to (e.g. `SandboxCreateV2`); empty means all.
        public var faultRPCs: [String]
        /// The credentials the server accepts (`x-modal-token-id` / `x-modal-token-secret`).
        public var tokenID: String
        public var tokenSecret: String
        /// More command-line arguments, e.g. `["--terminate-after", "0.2"]`.
        public var extraArguments: [String]
        /// Whether the server keeps its stats file (``stats()``); it rewrites the file on every call, which slows
        /// it down under load (hundreds of sandboxes).
        public var writesStats = true

        public init(
            faults: [Fault] = [],
            faultRPCs: [String] = [],
            tokenID: String = "ak-fake-modal-test",
            tokenSecret: String = "as-fake-modal-test-secret",
            extraArguments: [String] = []
        ) {
            self.faults = faults
            self.faultRPCs = faultRPCs
            self.tokenID = tokenID
            self.tokenSecret = tokenSecret
            self.extraArguments = extraArguments
        }
    }

    /// The server's counters, read from its stats file (the format is documented at the top of the script).
    public struct Stats: Decodable, Sendable {
        /// One call as the server saw it.
        public struct Call: Decodable, Sendable {
            public var path: String
            public var idempotencyKey: String?
            public var retryAttempt: String?
            /// `OK` or the gRPC status name the call ended with, e.g. `UNAVAILABLE` (`OK, status dropped` for an answer
            /// the ``Fault/dropStatus`` faults sent without its trailers).
            public var outcome: String

            enum CodingKeys: String, CodingKey {
                case path, outcome
                case idempotencyKey = "idempotency_key"
                case retryAttempt = "retry_attempt"
            }
        }

        /// An image definition the server was asked for.
        public struct Image: Decodable, Sendable {
            public var imageID: String
            public var dockerfileCommands: [String]
            public var baseImages: [String]

            enum CodingKeys: String, CodingKey {
                case imageID = "image_id"
                case dockerfileCommands = "dockerfile_commands"
                case baseImages = "base_images"
            }
        }

        public var sandboxesCreated: Int
        public var sandboxesAlive: Int
        public var maxAlive: Int
        public var sandboxesTerminated: Int
        /// Unix times (seconds) of each sandbox creation, in order.
        public var createdAt: [Double]
        public var terminatedAt: [Double]
        public var execsStarted: Int
        public var faultsInjected: Int
        /// Calls per full method path, faulted ones included.
        public var calls: [String: Int]
        /// The last 1000 calls, oldest first.
        public var callLog: [Call]
        public var images: [Image]
        /// App ids by `environment/name`.
        public var apps: [String: String]

        enum CodingKeys: String, CodingKey {
            case calls, images, apps
            case sandboxesCreated = "sandboxes_created"
            case sandboxesAlive = "sandboxes_alive"
            case maxAlive = "max_alive"
            case sandboxesTerminated = "sandboxes_terminated"
            case createdAt = "created_at"
            case terminatedAt = "terminated_at"
            case execsStarted = "execs_started"
            case faultsInjected = "faults_injected"
            case callLog = "call_log"
        }

        /// How many calls a method got, by its name (e.g. `SandboxCreateV2`).
        public func calls(to method: String) -> Int {
            calls.filter { $0.key.hasSuffix("/" + method) }.values.reduce(0, +)
        }
    }

    /// What went wrong starting or reading the server.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The server's base URL, `http://127.0.0.1:PORT` (control plane and command router alike).
    public let url: String
    /// The credentials it accepts.
    public let tokenID: String
    public let tokenSecret: String
    /// The JSON file holding ``Stats``.
    public let statsFile: URL

    private let folder: URL
    private let process: ChildProcess

    private init(url: String, options: Options, folder: URL, process: ChildProcess) {
        self.url = url
        self.tokenID = options.tokenID
        self.tokenSecret = options.tokenSecret
        self.statsFile = folder.appendingPathComponent("stats.json")
        self.folder = folder
        self.process = process
    }

    /// Starts the server from `Tools/.venv` (installed by `Tools/setup`) and returns once it listens.
    ///
    /// - Parameters:
    ///   - options: faults, credentials and extra arguments.
    ///   - filePath: a source file of this package, to find its root (the default is the caller's file).
    /// - Throws: ``Failure`` when the venv is missing or the server exits before listening (with its stderr).
    public static func start(_ options: Options = Options(), filePath: String = #filePath) async throws
        -> FakeModalServer
    {
        let root = CommandRunner.packageRoot(from: filePath)
        let python = root.appendingPathComponent("Tools/.venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw Failure(
                description:
                    "\(python.path) is missing: run Tools/setup to install the fake Modal server's Python packages")
        }
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("fake-modal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        var arguments = [
            root.appendingPathComponent("Tools/fake_modal_server.py").path,
            "--port", "0",
            "--token-id", options.tokenID,
            "--token-secret", options.tokenSecret,
            "--exit-on-stdin-eof",
        ]
        if options.writesStats { arguments += ["--stats-file", folder.appendingPathComponent("stats.json").path] }
        for fault in options.faults { arguments += ["--fault", fault.name] }
        if !options.faultRPCs.isEmpty { arguments += ["--fault-rpcs", options.faultRPCs.joined(separator: ",")] }
        arguments += options.extraArguments

        let errorFile = folder.appendingPathComponent("stderr.log")
        let process = try ChildProcess(
            python, arguments, environment: ProcessInfo.processInfo.environment, stderr: .file(errorFile))
        guard let output = process.stdout else { throw Failure(description: "the fake Modal server has no stdout") }

        let stdout = OutputCollector(reading: output)
        _ = await stdout.wait(for: "\n", timeout: .seconds(120))
        let line = stdout.text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
        let prefix = "fake-modal: listening on "
        guard let line, line.hasPrefix(prefix) else {
            try? process.stdin?.close()
            process.terminate()
            let stderr = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
            _ = await process.exit.waitOrKill(process, timeout: .seconds(30))
            try? FileManager.default.removeItem(at: folder)
            throw Failure(
                description: "the fake Modal server did not start: \(stderr.isEmpty ? line ?? "no output" : stderr)")
        }
        let url = String(line.dropFirst(prefix.count))
        return FakeModalServer(url: url, options: options, folder: folder, process: process)
    }

    /// The server's current counters.
    public func stats() throws -> Stats {
        try JSONDecoder().decode(Stats.self, from: Data(contentsOf: statsFile))
    }

    /// Stops the server (its commands are killed, its sandbox folders removed) and waits for it to exit (killing it
    /// if it has not within 30 seconds).
    ///
    /// - Returns: the server's exit status (0 after a clean stop).
    @discardableResult
    public func stop() async -> Int32 {
        // SIGTERM alone: closing stdin as well (the server's other way to stop) could end its event loop first, which
        // restores SIGTERM's default action, so that the signal then killed it (status 15) instead of stopping it.
        process.terminate()
        let status = await process.exit.waitOrKill(process, timeout: .seconds(30)).status
        try? process.stdin?.close()
        try? FileManager.default.removeItem(at: folder)
        return status
    }
}

/// Runs `body` with a started ``FakeModalServer`` and always stops it afterwards.
public func withFakeModalServer<Result: Sendable>(
    _ options: FakeModalServer.Options = FakeModalServer.Options(),
    filePath: String = #filePath,
    _ body: (FakeModalServer) async throws -> Result
) async throws -> Result {
    let server = try await FakeModalServer.start(options, filePath: filePath)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
