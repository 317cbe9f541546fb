import Foundation
import Logging
import SandboxVCR
import Synchronization

/// The live side of a ``ModalSession``: one sandbox, created on first use, running command requests.
final class ModalSessionExecutor: SandboxExecutor {
    private struct State {
        var sandbox: Task<ModalSandbox, any Error>?
        var cap = ModalSandbox.defaultMaxOutputBytes
    }

    private let configuration: ModalConfiguration
    private let options: ModalSandbox.Options
    private let logger: Logger
    private let state = Mutex(State())

    init(configuration: ModalConfiguration, options: ModalSandbox.Options, logger: Logger) {
        self.configuration = configuration
        self.options = options
        self.logger = logger
    }

    func setCap(_ cap: Int) { state.withLock { $0.cap = cap } }

    private func sandbox() async throws -> ModalSandbox {
        let task = state.withLock { state in
            if let task = state.sandbox { return task }
            let configuration = self.configuration
            let options = self.options
            let logger = self.logger
            let task = Task {
                try await ModalSandbox.create(configuration: configuration, options: options, logger: logger)
            }
            state.sandbox = task
            return task
        }
        return try await task.value
    }

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        guard case .command(let argv, let workdir) = request.program else {
            throw ExecutionError(code: .unsupportedRequest, message: "a Modal session runs command requests only")
        }
        let cap = state.withLock { $0.cap }
        let result = try await sandbox().exec(
            argv, workdir: workdir, timeout: request.runTimeout, maxOutputBytes: cap, stdin: request.stdin)
        var hints: Set<ResultHint> = []
        let run = ModalSandboxPool.outcome(result, step: .run, cap: cap, hints: &hints)
        var message = ""
        if result.isTruncated {
            message =
                "output cut: stdout dropped \(result.stdoutDroppedBytes) bytes, stderr dropped "
                + "\(result.stderrDroppedBytes) bytes"
        }
        return ExecutionResult(
            status: ExecutionResult.derivedStatus(compile: nil, run: run), run: run, message: message, backend: .modal,
            hints: hints)
    }

    /// The command result a recorded step stands for.
    static func commandResult(from result: ExecutionResult) -> ModalCommandResult {
        let run = result.run
        var dropped = (0, 0)
        if result.message.hasPrefix("output cut: ") {
            let numbers = result.message.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count >= 2 { dropped = (numbers[0], numbers[1]) }
        }
        let timedOut = run?.status == .timeLimitExceeded
        return ModalCommandResult(
            exitCode: run?.exitCode, signal: run?.signal ?? (timedOut ? 9 : nil), stdout: run?.stdout ?? Data(),
            stderr: run?.stderr ?? Data(), stdoutDroppedBytes: dropped.0, stderrDroppedBytes: dropped.1,
            timedOut: timedOut, duration: run?.wallTime ?? 0)
    }

    func terminate() async throws {
        let task = state.withLock { $0.sandbox }
        guard let task else { return }
        try await task.value.terminate()
    }
}
