import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

/// The built `sandbox-vcr` binary, or `nil` when it is not built.
let builtBinary = CommandRunner.builtProduct(named: "sandbox-vcr")

/// Variables that would change what `sandbox-vcr` records, removed from the children's environment.
private let clearedEnvironment: [String: String?] = [
    "SANDBOX_VCR_RECORD": nil, "CI": nil, "MODAL_SERVER_URL": nil, "MODAL_TOKEN_ID": nil, "MODAL_TOKEN_SECRET": nil,
    "MODAL_CONFIG_PATH": "/nonexistent/sandbox-vcr-tests/.modal.toml",
]

/// A running `sandbox-vcr serve` child process on a free loopback port.
final class ServeProcess: Sendable {
    let process: ChildProcess
    let port: Int
    /// The Modal port's URL (`--modal-port`), from the readiness line.
    let modalURL: String?
    /// Standard error: the request log lines and warnings.
    let log: OutputCollector
    private let exit: ProcessExit

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(_ started: CommandRunner.Started, port: Int, modalURL: String?, log: OutputCollector) {
        self.process = started.process
        self.exit = started.exit
        self.port = port
        self.modalURL = modalURL
        self.log = log
    }

    /// Starts `sandbox-vcr serve ARGUMENTS --port 0` and waits for its readiness line.
    static func start(_ arguments: [String], logLevel: String = "info") async throws -> ServeProcess {
        let binary = try #require(builtBinary, "build the sandbox-vcr product first")
        let started = try CommandRunner.start(
            binary, ["serve"] + arguments + ["--port", "0", "--log-level", logLevel], environment: clearedEnvironment)
        let process = started.process
        let stdout = OutputCollector(reading: started.stdout)
        let log = OutputCollector(reading: started.stderr)
        let prefix = "sandbox-vcr serve: listening on http://127.0.0.1:"
        // `…:PORT`, or `…:PORT, modal: URL` with --modal-port.
        guard await stdout.wait(for: "\n"), let line = stdout.text.split(separator: "\n").first,
            line.hasPrefix(prefix),
            let port = Int(line.dropFirst(prefix.count).prefix { $0 != "," })
        else {
            if process.isRunning { process.terminate() }
            _ = await started.exit.waitOrKill(process, timeout: .seconds(10))
            _ = await log.waitForEnd()
            throw RawHTTPError(description: "serve \(arguments) did not start: \(stdout.text) \(log.text)")
        }
        let modalMarker = ", modal: "
        let modalURL = line.range(of: modalMarker).map { String(line[$0.upperBound...]) }
        return ServeProcess(started, port: port, modalURL: modalURL, log: log)
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        return try await waitForExit()
    }

    /// Waits for the process to exit; returns its exit status.
    ///
    /// A server still running after `timeout` is hung: it gets `SIGQUIT` (the Swift runtime then prints every
    /// thread's backtrace into its log), then `SIGKILL`, and the wait throws with the end of the log.
    func waitForExit(timeout: Duration = .seconds(90)) async throws -> Int32 {
        if let status = await exit.wait(timeout: timeout) { return status }
        kill(process.processIdentifier, SIGQUIT)
        _ = await exit.waitOrKill(process, timeout: .seconds(60))
        _ = await log.waitForEnd(timeout: .seconds(10))
        throw RawHTTPError(
            description: "serve did not exit within \(timeout); its log ends:\n\(log.text.suffix(20_000))")
    }

    /// Kills the process if it is still running (for `defer`).
    func terminate() {
        if process.isRunning { process.terminate() }
    }

    func postJSON(_ path: String, _ body: String) async throws -> RawHTTPResponse {
        try await RawHTTP.exchange(port: port, request: RawHTTP.postJSON(path: path, body: body))
    }

    /// `GET path`, its body parsed as JSON.
    func getJSON(_ path: String) async throws -> JSONValue {
        let response = try await RawHTTP.exchange(port: port, request: RawHTTP.request(method: "GET", path: path))
        return try parseJSON(response.body)
    }

    /// The `GET /stats` counts.
    func stats() async throws -> [String: Int] {
        try await statsObject().compactMapValues { $0 as? Int }
    }

    /// The Modal port's counts in `GET /stats`.
    func modalStats() async throws -> [String: Int] {
        (try await statsObject()["modal"] as? [String: Any] ?? [:]).compactMapValues { $0 as? Int }
    }

    private func statsObject() async throws -> [String: Any] {
        let response = try await RawHTTP.exchange(port: port, request: RawHTTP.request(method: "GET", path: "/stats"))
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }
}

/// Runs `sandbox-vcr ARGUMENTS` to completion; returns its status and standard error.
func runSandboxVCR(_ arguments: [String]) async throws -> (status: Int32, errors: String) {
    let binary = try #require(builtBinary, "build the sandbox-vcr product first")
    let output = try await CommandRunner.run(binary, arguments, environment: clearedEnvironment)
    return (output.status, output.stderrText)
}

/// A fresh temporary folder, removed by the caller.
func makeTemporaryFolder(_ name: String) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID())")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}
