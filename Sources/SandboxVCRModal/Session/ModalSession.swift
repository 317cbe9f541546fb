public import Foundation
public import Logging
public import SandboxVCR
import Synchronization

/// A stateful Modal sandbox session that records its steps into a cassette and replays them, in order.
///
/// Each call becomes an ``ExecutionRequest`` (`.command(argv: ["bash", "-lc", command], workdir:)`, stdin,
/// timeout) that goes through a ``RecordingExecutor/session(id:)``: step k's key chains the keys of steps 1…k, so a
/// multi-step agent replays exactly, with no server, while it makes the same calls, and a deviation is a miss
/// whose message names the step. Server-assigned ids (sandbox, task, exec) are never part of a key. The live
/// sandbox is created on the first step that is not replayed.
///
/// ```swift
/// let session = try ModalSession(cassette: cassette, configuration: try? .fromEnvironment(env))
/// let listing = try await session.runCommand("ls /")
/// try await session.terminate()
/// ```
///
/// Make one call at a time (a session is a sequence).
public final class ModalSession: Sendable {
    /// The session's id in the cassette.
    public let id: String
    private let recording: RecordingExecutor
    private let live: ModalSessionExecutor?
    private let step = Mutex(0)

    /// - Parameters:
    ///   - cassette: where steps are recorded and replayed from.
    ///   - mode: the record mode; `nil` resolves it (`SANDBOX_VCR_RECORD`, default `missing`).
    ///   - configuration: Modal credentials; needed unless `mode` is `never`.
    ///   - options: how the live sandbox is made.
    ///   - id: the session's id (any; not part of keys).
    ///   - recordingConfiguration: matching and redaction of the recording executor.
    ///   - logger: for the live sandbox.
    /// - Throws: ``ExecutionError`` with code ``ExecutionError/Code/configuration`` when a live mode has no
    ///   configuration, or `SANDBOX_VCR_RECORD` names no mode.
    public init(
        cassette: Cassette, mode: RecordMode? = nil, configuration: ModalConfiguration?,
        options: ModalSandbox.Options = .init(), id: String = UUID().uuidString,
        recordingConfiguration: RecordingExecutor.Configuration = .init(),
        logger: Logger = Logger(label: "sandbox-vcr.modal")
    ) throws {
        let resolved = try RecordMode.resolve(mode)
        var live: ModalSessionExecutor?
        if resolved != .never {
            guard let configuration else {
                throw ExecutionError(
                    code: .configuration,
                    message: "record mode `\(resolved)` needs Modal credentials for the session; "
                        + ModalConfiguration.credentialsHelp + " (or replay with SANDBOX_VCR_RECORD=never)")
            }
            live = ModalSessionExecutor(configuration: configuration, options: options, logger: logger)
        }
        self.id = id
        self.live = live
        self.recording = RecordingExecutor(
            cassette: cassette, mode: resolved, live: live, configuration: recordingConfiguration
        ).session(id: id)
    }

    /// How many steps ran so far.
    public var stepCount: Int { step.withLock { $0 } }

    /// Runs `bash -lc command` as the next step (see ``ModalSandbox/runCommand(_:workdir:timeout:maxOutputBytes:stdin:)``).
    ///
    /// - Throws: ``ExecutionError`` as the sandbox does (replayed as recorded), or a ``CassetteError`` with code
    ///   ``CassetteError/Code/miss`` naming the step when the session deviates from its recording.
    public func runCommand(
        _ command: String, workdir: String? = nil, timeout: Duration = .seconds(60),
        maxOutputBytes: Int = ModalSandbox.defaultMaxOutputBytes, stdin: Data = Data()
    ) async throws -> ModalCommandResult {
        let request = ExecutionRequest(
            program: .command(argv: ["bash", "-lc", command], workdir: workdir), stdin: stdin, runTimeout: timeout)
        let number = step.withLock { step in
            step += 1
            return step
        }
        live?.setCap(maxOutputBytes)
        let result: ExecutionResult
        do {
            result = try await recording.execute(request)
        } catch let error as CassetteError where error.code == .miss || error.code == .exhausted {
            let shown = command.count > 80 ? String(command.prefix(77)) + "..." : command
            throw CassetteError(
                code: error.code,
                message: "Modal session \(id) deviates from its recording at step \(number) (runCommand \"\(shown)\""
                    + "\(workdir.map { " in \($0)" } ?? "")): no recording of this step after the same earlier "
                    + "steps. Re-record the session (SANDBOX_VCR_RECORD=all) if the change is intended.\n"
                    + error.message,
                path: error.path)
        }
        return ModalSessionExecutor.commandResult(from: result)
    }

    /// Reads a file through a step (`cat` / `head -c`).
    public func readFile(_ path: String, maxBytes: Int? = nil) async throws -> Data {
        let command = maxBytes.map { "head -c \(max(0, $0)) -- \(shellQuoted(path))" } ?? "cat -- \(shellQuoted(path))"
        let result = try await runCommand(command, timeout: .seconds(300), maxOutputBytes: maxBytes ?? Int.max)
        guard result.exitCode == 0 else {
            throw ExecutionError(
                code: .sandboxError,
                message: "cannot read \(path) in the Modal session (exit \(result.exitStatus)): "
                    + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return result.stdout
    }

    /// Writes a file through a step (the content goes through standard input).
    public func writeFile(_ path: String, content: Data, executable: Bool = false) async throws {
        let result = try await runCommand(
            ModalSandbox.writeCommand(path: path, executable: executable), timeout: .seconds(300), stdin: content)
        guard result.exitCode == 0 else {
            throw ExecutionError(
                code: .sandboxError,
                message: "cannot write \(path) in the Modal session (exit \(result.exitStatus)): "
                    + result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Terminates the live sandbox, if one was created (replays create none).
    public func terminate() async throws {
        try await live?.terminate()
    }
}
