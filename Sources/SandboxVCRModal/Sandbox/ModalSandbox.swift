public import Foundation
public import Logging
import ModalProto
import SandboxVCR
import SwiftProtobuf
import Synchronization

/// One persistent Modal sandbox: commands run in it one after another (or at once), files are read and written
/// through commands, and it lives until ``terminate()`` or its timeout.
///
/// ```swift
/// let sandbox = try await ModalSandbox.create(configuration: .fromEnvironment(ProcessInfo.processInfo.environment))
/// let result = try await sandbox.runCommand("python3 -c 'print(6 * 7)'")
/// try await sandbox.terminate()
/// ```
///
/// A sandbox that died or was terminated makes every call throw ``ExecutionError`` with code
/// ``ExecutionError/Code/sandboxTerminated``; other failures throw typed ``ExecutionError``s too (never a fake exit code).
public final class ModalSandbox: Sendable {
    /// How a sandbox is made.
    public struct Options: Hashable, Sendable {
        /// The app the sandbox belongs to (created if missing).
        public var appName: String
        /// The image.
        public var image: ModalImage
        /// How long the sandbox may live (Modal ends it afterwards; sent as whole seconds, rounded up).
        public var timeout: Duration
        /// Whether the sandbox may reach the network.
        public var networkAccess: Bool

        public init(
            appName: String = "sandbox-vcr", image: ModalImage = .debianSlim(), timeout: Duration = .seconds(600),
            networkAccess: Bool = true
        ) {
            self.appName = appName
            self.image = image
            self.timeout = timeout
            self.networkAccess = networkAccess
        }
    }

    /// The default cap on each output stream of ``runCommand(_:workdir:timeout:maxOutputBytes:stdin:)``: 128 KiB.
    public static let defaultMaxOutputBytes = 128 * 1024
    /// The chunk size for standard input writes.
    static let stdinChunkBytes = 1024 * 1024

    private struct Access {
        var taskID: String
        var jwt: String
        var url: String
    }

    /// The server-assigned sandbox id (`sb-…`).
    public let sandboxID: String
    public let client: ModalClient
    private let access: Mutex<Access>
    private let terminated = Atomic<Bool>(false)

    private init(sandboxID: String, access: Access, client: ModalClient) {
        self.sandboxID = sandboxID
        self.access = Mutex(access)
        self.client = client
    }

    /// The server-assigned task id (`ta-…`).
    public var taskID: String { access.withLock { $0.taskID } }

    /// Creates a sandbox with a client of its own.
    public static func create(
        configuration: ModalConfiguration, options: Options = Options(),
        logger: Logger = Logger(label: "sandbox-vcr.modal")
    ) async throws -> ModalSandbox {
        try await create(client: ModalClient(configuration: configuration, logger: logger), options: options)
    }

    /// Creates a sandbox: app, image (built if needed), `SandboxCreateV2`, task id and command-router access.
    ///
    /// - Throws: ``ExecutionError``: ``ExecutionError/Code/configuration`` for refused credentials, others for
    ///   transport or server failures.
    public static func create(client: ModalClient, options: Options = Options()) async throws -> ModalSandbox {
        let appID = try await client.appID(name: options.appName)
        let imageID = try await client.imageID(for: options.image, appID: appID)
        var definition = Modal_Client_Sandbox()
        definition.imageID = imageID
        definition.timeoutSecs = options.timeout.wholeSeconds(clampedTo: 1...UInt32.max)
        definition.resources = Modal_Client_Resources()
        var network = Modal_Client_NetworkAccess()
        network.networkAccessType = options.networkAccess ? .open : .blocked
        definition.networkAccess = network
        var request = Modal_Client_SandboxCreateV2Request()
        request.appID = appID
        request.definition = definition
        let response = try await client.unary(ModalRPC.ModalClient.sandboxCreateV2, request, v2: true)
        var taskID = response.taskID
        var polls = 0
        while taskID.isEmpty {
            polls += 1
            var poll = Modal_Client_SandboxGetTaskIdRequest()
            poll.sandboxID = response.sandboxID
            poll.timeout = 10
            poll.waitUntilReady = true
            let answer = try await client.unary(
                ModalRPC.ModalClient.sandboxGetTaskIdV2, poll, v2: true, timeout: .seconds(15), sandboxCall: true)
            if answer.hasTaskID, !answer.taskID.isEmpty {
                taskID = answer.taskID
            } else if answer.hasTaskResult || polls > 30 {
                throw ExecutionError(
                    code: .sandboxTerminated,
                    message: "the Modal sandbox \(response.sandboxID) ended before it started "
                        + "(\(answer.taskResult.status)): \(answer.taskResult.exception)")
            }
        }
        var access = Access(
            taskID: taskID, jwt: response.commandRouterAccess.jwt, url: response.commandRouterAccess.url)
        if !response.hasCommandRouterAccess || access.url.isEmpty {
            let fresh = try await Self.routerAccess(client: client, sandboxID: response.sandboxID)
            access.jwt = fresh.jwt
            access.url = fresh.url
        }
        client.logger.debug("Modal sandbox created", metadata: ["sandbox": "\(response.sandboxID)"])
        return ModalSandbox(sandboxID: response.sandboxID, access: access, client: client)
    }

    private static func routerAccess(client: ModalClient, sandboxID: String) async throws
        -> Modal_Client_SandboxGetCommandRouterAccessResponse
    {
        var request = Modal_Client_SandboxGetCommandRouterAccessRequest()
        request.sandboxID = sandboxID
        return try await client.unary(
            ModalRPC.ModalClient.sandboxGetCommandRouterAccess, request, v2: true, sandboxCall: true)
    }

    // MARK: Commands

    /// Runs `bash -lc command`.
    ///
    /// - Parameters:
    ///   - command: the shell command line.
    ///   - workdir: the folder to run in (must exist), or `nil` for the sandbox's default.
    ///   - timeout: how long the command may run (whole seconds, rounded up); it is killed (signal 9,
    ///     ``ModalCommandResult/timedOut``) afterwards. The client enforces it too: a command still running
    ///     ``clientTimeoutGrace`` after its timeout ends its sandbox, which is terminated (see
    ///     ``exec(_:workdir:timeout:maxOutputBytes:stdin:)``).
    ///   - maxOutputBytes: the most bytes kept of each stream (the rest is read and dropped).
    ///   - stdin: bytes for standard input, streamed in chunks; closed afterwards.
    /// - Throws: ``ExecutionError`` (``ExecutionError/Code/sandboxTerminated`` when the sandbox is gone).
    public func runCommand(
        _ command: String, workdir: String? = nil, timeout: Duration = .seconds(60),
        maxOutputBytes: Int = ModalSandbox.defaultMaxOutputBytes, stdin: Data = Data()
    ) async throws -> ModalCommandResult {
        try await exec(
            ["bash", "-lc", command], workdir: workdir, timeout: timeout, maxOutputBytes: maxOutputBytes, stdin: stdin)
    }

    /// How long past its timeout a command may take before the client gives up on the server ending it.
    ///
    /// Modal kills a command at its timeout; a server that does not (Modal's own test server, a stuck worker) would
    /// leave the call waiting forever. As Modal's Go SDK does (its `ExecWait` and `ExecStdioRead` take a deadline),
    /// the client stops waiting at timeout + this grace, terminates the sandbox (the command cannot be killed alone)
    /// and reports a timed-out result with signal 9 and the output read so far.
    public static let clientTimeoutGrace = Duration.seconds(3)

    /// Runs a program with arguments (no shell), as ``runCommand(_:workdir:timeout:maxOutputBytes:stdin:)`` does.
    ///
    /// A command the server did not end within ``clientTimeoutGrace`` of its timeout terminates this sandbox (later
    /// calls throw ``ExecutionError/Code/sandboxTerminated``) and comes back as a timed-out result.
    public func exec(
        _ argv: [String], workdir: String? = nil, timeout: Duration = .seconds(60),
        maxOutputBytes: Int = ModalSandbox.defaultMaxOutputBytes, stdin: Data = Data()
    ) async throws -> ModalCommandResult {
        guard !terminated.load(ordering: .relaxed) else {
            throw ExecutionError(
                code: .sandboxTerminated, message: "the Modal sandbox \(sandboxID) was terminated; create a new one")
        }
        let execID = UUID().uuidString.lowercased()
        let taskID = self.taskID
        let timeoutSecs = timeout.wholeSeconds(clampedTo: 1...UInt32.max)
        var start = Modal_TaskCommandRouter_TaskExecStartRequest()
        start.taskID = taskID
        start.execID = execID
        start.commandArgs = argv
        start.stdoutConfig = .pipe
        start.stderrConfig = .pipe
        start.timeoutSecs = timeoutSecs
        if let workdir { start.workdir = workdir }
        let clock = ContinuousClock()
        let began = clock.now
        let deadline = began + .seconds(timeoutSecs) + Self.clientTimeoutGrace
        let stdout = StreamCollector(cap: maxOutputBytes)
        let stderr = StreamCollector(cap: maxOutputBytes)
        let startRequest = start
        let status = try await Self.untilDeadline(deadline) {
            _ = try await self.routerUnary(
                ModalRPC.TaskCommandRouter.taskExecStart, startRequest, timeout: .seconds(30))
            try await self.writeStdin(stdin, taskID: taskID, execID: execID)
            let streamTimeout = Duration.seconds(timeoutSecs) + .seconds(30)
            async let output: Void = self.readStream(
                .stdout, taskID: taskID, execID: execID, into: stdout, timeout: streamTimeout)
            async let errors: Void = self.readStream(
                .stderr, taskID: taskID, execID: execID, into: stderr, timeout: streamTimeout)
            async let exit = self.waitForExit(taskID: taskID, execID: execID, timeout: streamTimeout)
            let (_, _, status) = try await (output, errors, exit)
            return status
        }
        let seconds = (clock.now - began).inSeconds
        let (out, err) = (stdout.result, stderr.result)
        var result = ModalCommandResult(
            exitCode: nil, stdout: out.kept, stderr: err.kept, stdoutDroppedBytes: out.dropped,
            stderrDroppedBytes: err.dropped, duration: seconds)
        switch status {
        case .code(let code): result.exitCode = Int(code)
        case .signal(let signal):
            result.signal = Int(signal)
            result.timedOut = signal == 9 && seconds >= Double(timeoutSecs) * 0.95
        case nil:
            client.logger.warning(
                "a Modal command outlived its timeout and the server did not end it; terminating its sandbox",
                metadata: ["sandbox": "\(sandboxID)", "timeout": "\(timeoutSecs) s"])
            await terminateIgnoringCancellation()
            result.signal = 9
            result.timedOut = true
        }
        return result
    }

    /// Runs `body` until `deadline`: its value, or `nil` once the deadline passed first (`body` is cancelled).
    ///
    /// - Throws: what `body` throws; ``ExecutionError/Code/cancelled`` when the calling task is cancelled.
    private static func untilDeadline<T: Sendable>(
        _ deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                do {
                    try await CancellableSleep.sleep(until: deadline)
                } catch {
                    throw ExecutionError(code: .cancelled, message: "the task was cancelled while a command ran")
                }
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    /// Terminates the sandbox from a task of its own, so a cancelled caller still ends it; failures are logged.
    ///
    /// - Returns: whether Modal confirmed the termination.
    @discardableResult
    func terminateIgnoringCancellation() async -> Bool {
        let sandbox = self
        return await Task {
            do {
                try await sandbox.terminate()
                return true
            } catch {
                sandbox.client.logger.warning(
                    "terminating a Modal sandbox failed",
                    metadata: ["sandbox": "\(sandbox.sandboxID)", "error": "\(error)"])
                return false
            }
        }.value
    }

    private enum ExitStatus {
        case code(Int32)
        case signal(Int32)
    }

    private func writeStdin(_ data: Data, taskID: String, execID: String) async throws {
        var offset = 0
        repeat {
            let end = min(data.count, offset + Self.stdinChunkBytes)
            var request = Modal_TaskCommandRouter_TaskExecStdinWriteRequest()
            request.taskID = taskID
            request.execID = execID
            request.offset = UInt64(offset)
            request.data = data.subdata(in: (data.startIndex + offset)..<(data.startIndex + end))
            request.eof = end == data.count
            _ = try await routerUnary(ModalRPC.TaskCommandRouter.taskExecStdinWrite, request, timeout: .seconds(60))
            offset = end
        } while offset < data.count
    }

    /// Reads one output stream to its end into `collector` as it arrives (it keeps its cap and counts the rest,
    /// never holding more than the cap and one message); after a transient error it reconnects at the offset
    /// already received, and at once after a stream that ended whole without its status (a lost trailer: every
    /// message arrived, so the reconnection usually just confirms the end).
    private func readStream(
        _ descriptor: Modal_TaskCommandRouter_TaskExecStdioFileDescriptor, taskID: String, execID: String,
        into collector: StreamCollector, timeout: Duration
    ) async throws {
        var retries = 0
        var missingStatuses = 0
        var refreshed = false
        let policy = GRPCRetryPolicy.router
        while true {
            var request = Modal_TaskCommandRouter_TaskExecStdioReadRequest()
            request.taskID = taskID
            request.execID = execID
            request.offset = collector.offset
            request.fileDescriptor = descriptor
            let access = self.access.withLock { $0 }
            var failure: any Error
            do {
                let status = try await client.routerChannel(url: access.url).attemptStreaming(
                    path: ModalRPC.TaskCommandRouter.taskExecStdioRead.path, body: try request.serializedData(),
                    metadata: ["authorization": "Bearer \(access.jwt)"], timeout: timeout,
                    onMessage: { collector.receive($0) })
                if let undecodable = collector.failure { throw undecodable }
                guard let status else { return }
                if status.isStatusMissing {
                    missingStatuses += 1
                    guard missingStatuses <= policy.maxMissingStatusRetries else {
                        throw GRPCChannel.missingStatusError(
                            status, answers: missingStatuses, isSafeToRepeat: true, url: access.url)
                    }
                    client.logger.debug(
                        "Modal stdio stream ended without its status; reconnecting",
                        metadata: ["offset": "\(collector.offset)"])
                    continue
                }
                if status.code == .unauthenticated, !refreshed {
                    refreshed = true
                    try await refreshAccess()
                    continue
                }
                guard status.isRetryable || status.retryAfter != nil else { throw mapRouterError(status) }
                failure = status
            } catch let error as ExecutionError where [.connectionReset, .timedOut].contains(error.code) {
                failure = error
            }
            guard retries < policy.maxRetries else {
                throw (failure as? GRPCStatusError).map(mapRouterError) ?? failure
            }
            let wait =
                (failure as? GRPCStatusError)?.retryAfter
                ?? policy.delay(beforeRetry: retries)
            retries += 1
            client.logger.debug(
                "Modal stdio stream reconnects", metadata: ["offset": "\(collector.offset)", "error": "\(failure)"])
            try await GRPCChannel.sleep(wait)
        }
    }

    private func waitForExit(taskID: String, execID: String, timeout: Duration) async throws -> ExitStatus {
        var request = Modal_TaskCommandRouter_TaskExecWaitRequest()
        request.taskID = taskID
        request.execID = execID
        for _ in 0..<100 {
            let response = try await routerUnary(ModalRPC.TaskCommandRouter.taskExecWait, request, timeout: timeout)
            switch response.exitStatus {
            case .code(let code): return .code(code)
            case .signal(let signal): return .signal(signal)
            case nil: continue
            }
        }
        throw ExecutionError(
            code: .timedOut, message: "the command in Modal sandbox \(sandboxID) never reported its exit")
    }

    /// A router call with retries; UNAUTHENTICATED refreshes the router JWT once, NOT_FOUND means the sandbox is gone.
    private func routerUnary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request, timeout: Duration
    ) async throws -> Response {
        var refreshed = false
        while true {
            let access = self.access.withLock { $0 }
            do {
                return try await client.routerChannel(url: access.url).unary(
                    method, request, metadata: { ["authorization": "Bearer \(access.jwt)"] }, timeout: timeout,
                    retry: .router, idempotencyKeys: false)
            } catch let error as GRPCStatusError {
                if error.code == .unauthenticated, !refreshed {
                    refreshed = true
                    try await refreshAccess()
                    continue
                }
                throw mapRouterError(error)
            }
        }
    }

    private func mapRouterError(_ error: GRPCStatusError) -> ExecutionError {
        if error.code == .notFound || error.code == .failedPrecondition {
            terminated.store(true, ordering: .relaxed)
            return ExecutionError(
                code: .sandboxTerminated,
                message: "the Modal sandbox \(sandboxID) is gone (\(error)); it was terminated, timed out or died; "
                    + "create a new one")
        }
        if error.code == .unauthenticated {
            return ExecutionError(
                code: .configuration,
                message: "the Modal command router refused the sandbox's token (\(error)) even after a refresh; "
                    + "check the credentials (MODAL_TOKEN_ID / MODAL_TOKEN_SECRET)")
        }
        return error.executionError(sandboxCall: true)
    }

    private func refreshAccess() async throws {
        let fresh = try await Self.routerAccess(client: client, sandboxID: sandboxID)
        access.withLock {
            $0.jwt = fresh.jwt
            if !fresh.url.isEmpty { $0.url = fresh.url }
        }
    }

    // MARK: Files and lifecycle

    /// Reads a file (`cat`, or `head -c maxBytes`).
    ///
    /// - Throws: ``ExecutionError`` with code ``ExecutionError/Code/sandboxError`` when the file cannot be read.
    public func readFile(_ path: String, maxBytes: Int? = nil, timeout: Duration = .seconds(300)) async throws -> Data {
        let command = maxBytes.map { "head -c \(max(0, $0)) -- \(shellQuoted(path))" } ?? "cat -- \(shellQuoted(path))"
        let result = try await runCommand(command, timeout: timeout, maxOutputBytes: maxBytes ?? Int.max)
        guard result.exitCode == 0 else {
            throw ExecutionError(
                code: .sandboxError,
                message: "cannot read \(path) in Modal sandbox \(sandboxID) (exit \(result.exitStatus)): "
                    + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return result.stdout
    }

    /// Writes a file of any size (streamed through standard input in chunks), creating its folder.
    ///
    /// - Throws: ``ExecutionError`` with code ``ExecutionError/Code/sandboxError`` when the file cannot be written.
    public func writeFile(_ path: String, content: Data, executable: Bool = false, timeout: Duration = .seconds(300))
        async throws
    {
        let command = Self.writeCommand(path: path, executable: executable)
        let result = try await runCommand(command, timeout: timeout, stdin: content)
        guard result.exitCode == 0 else {
            throw ExecutionError(
                code: .sandboxError,
                message: "cannot write \(path) in Modal sandbox \(sandboxID) (exit \(result.exitStatus)): "
                    + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// The shell command that writes standard input to `path`.
    static func writeCommand(path: String, executable: Bool) -> String {
        let quoted = shellQuoted(path)
        return "mkdir -p -- \"$(dirname -- \(quoted))\" && cat > \(quoted)"
            + (executable ? " && chmod +x -- \(quoted)" : "")
    }

    /// Runs `true`: proves the sandbox is alive.
    public func heartbeat() async throws {
        _ = try await runCommand("true", timeout: .seconds(30))
    }

    /// Terminates the sandbox and waits until Modal reports it ended. Calling it again does nothing.
    public func terminate() async throws {
        guard !terminated.exchange(true, ordering: .relaxed) else { return }
        var request = Modal_Client_SandboxTerminateRequest()
        request.sandboxID = sandboxID
        _ = try await client.unary(ModalRPC.ModalClient.sandboxTerminateV2, request, v2: true)
        var wait = Modal_Client_SandboxWaitRequest()
        wait.sandboxID = sandboxID
        wait.timeout = 10
        for _ in 0..<30 {
            let response = try await client.unary(
                ModalRPC.ModalClient.sandboxWaitV2, wait, v2: true, timeout: .seconds(14))
            if response.hasResult, response.result.status != .unspecified { return }
        }
        client.logger.warning("Modal sandbox did not report its end", metadata: ["sandbox": "\(sandboxID)"])
    }
}

/// A word quoted for bash (`'…'`).
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// One output stream's bytes as they arrive: the first `cap` kept, the rest counted, the offset for reconnects.
private final class StreamCollector: Sendable {
    private struct State {
        var kept = Data()
        var dropped = 0
        var offset: UInt64 = 0
        var failure: (any Error)?
    }

    private let cap: Int
    private let state = Mutex(State())

    init(cap: Int) { self.cap = cap }

    func receive(_ message: Data) {
        do {
            let data = try Modal_TaskCommandRouter_TaskExecStdioReadResponse(serializedBytes: message).data
            state.withLock { state in
                state.offset += UInt64(data.count)
                let room = max(0, cap - state.kept.count)
                if data.count <= room {
                    state.kept.append(data)
                } else {
                    state.kept.append(data.prefix(room))
                    state.dropped += data.count - room
                }
            }
        } catch {
            state.withLock { $0.failure = $0.failure ?? error }
        }
    }

    var offset: UInt64 { state.withLock { $0.offset } }
    var failure: (any Error)? { state.withLock { $0.failure } }
    var result: (kept: Data, dropped: Int) { state.withLock { ($0.kept, $0.dropped) } }
}
