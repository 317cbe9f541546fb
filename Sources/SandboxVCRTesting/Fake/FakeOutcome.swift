import Foundation

/// What a ``FakeExecutor`` answers: a result, a thrown error, or a closure that decides per request.
///
/// Ready-made outcomes build results the way SandboxFusion would (backend ``Backend/fake``, status from
/// ``ExecutionResult/derivedStatus(compile:run:)``):
///
/// ```swift
/// fake.on(.codeContains("a + b"), answer: .success(stdout: "7\n"))
/// fake.on(.language(.cpp), answer: .compileError(stderr: "error: expected ';'"))
/// fake.on(.stdinContains("999"), answer: .transportError(.connectionRefused))
/// ```
public struct FakeOutcome: Sendable, CustomStringConvertible {
    enum Storage: Sendable {
        case result(ExecutionResult)
        case timeLimit(stdout: Data, stderr: Data)
        case error(ExecutionError)
        case closure(label: String, @Sendable (ExecutionRequest) async throws -> ExecutionResult)
    }

    let storage: Storage

    init(_ storage: Storage) { self.storage = storage }

    /// Answers with exactly this result.
    public static func result(_ result: ExecutionResult) -> FakeOutcome { FakeOutcome(.result(result)) }

    /// Throws this error instead of answering (as a live backend does when it gets no result).
    public static func error(_ error: ExecutionError) -> FakeOutcome { FakeOutcome(.error(error)) }

    /// Answers by calling `body` with the request; an error it throws is thrown by the executor.
    ///
    /// - Parameters:
    ///   - label: How the outcome is described in diagnostics (e.g. in an unmatched-request error).
    ///   - body: Builds the result for a request.
    public static func respond(
        label: String = "closure",
        _ body: @escaping @Sendable (ExecutionRequest) async throws -> ExecutionResult
    ) -> FakeOutcome {
        FakeOutcome(.closure(label: label, body))
    }

    /// The program ran and exited 0 with this output.
    public static func success(stdout: String = "", stderr: String = "") -> FakeOutcome {
        .run(CommandOutcome(status: .finished, exitCode: 0, stdout: Data(stdout.utf8), stderr: Data(stderr.utf8)))
    }

    /// The program ran, exited 0, and printed the wrong thing: the same as ``success(stdout:stderr:)``, named
    /// for what the test means.
    public static func wrongOutput(stdout: String) -> FakeOutcome { .success(stdout: stdout) }

    /// The program ran and exited with a non-zero code (an exception, `sys.exit(3)`...).
    public static func runtimeError(exitCode: Int = 1, stdout: String = "", stderr: String = "") -> FakeOutcome {
        .run(
            CommandOutcome(
                status: .finished, exitCode: exitCode, stdout: Data(stdout.utf8), stderr: Data(stderr.utf8)))
    }

    /// Compilation failed (exit code 1) and nothing ran, as SandboxFusion reports a C++ compile error.
    public static func compileError(stderr: String = "", exitCode: Int = 1) -> FakeOutcome {
        let compile = CommandOutcome(status: .finished, exitCode: exitCode, stderr: Data(stderr.utf8))
        return .result(
            ExecutionResult(
                status: ExecutionResult.derivedStatus(compile: compile, run: nil), compile: compile, backend: .fake))
    }

    /// The run was stopped at its time limit; its wall time is the request's run timeout.
    public static var timeLimit: FakeOutcome { .timeLimit(stdout: "", stderr: "") }

    /// The run was stopped at its time limit after printing this; its wall time is the request's run timeout.
    public static func timeLimit(stdout: String, stderr: String = "") -> FakeOutcome {
        FakeOutcome(.timeLimit(stdout: Data(stdout.utf8), stderr: Data(stderr.utf8)))
    }

    /// The run was killed by a signal (9: SIGKILL, 11: SIGSEGV), with the matching result hint.
    public static func killedBySignal(_ signal: Int = 9, stdout: String = "", stderr: String = "") -> FakeOutcome {
        let run = CommandOutcome(
            status: .finished, signal: signal, stdout: Data(stdout.utf8), stderr: Data(stderr.utf8))
        return .result(
            ExecutionResult(
                status: ExecutionResult.derivedStatus(compile: nil, run: run), run: run, backend: .fake,
                hints: [.killedBySignal(step: .run, signal: signal)]))
    }

    /// The sandbox itself failed: status `SandboxError` with this message and no steps, as SandboxFusion answers
    /// for a language it has no runner for or a file it cannot decode.
    public static func sandboxError(message: String = "exception on running code") -> FakeOutcome {
        .result(ExecutionResult(status: .sandboxError, message: message, backend: .fake))
    }

    /// The executor throws an ``ExecutionError`` with this code, as a live client does when the server cannot
    /// be reached.
    public static func transportError(_ code: ExecutionError.Code = .connectionRefused, message: String? = nil)
        -> FakeOutcome
    {
        .error(
            ExecutionError(
                code: code, message: message ?? "simulated by FakeExecutor: \(code) (no sandbox was contacted)"))
    }

    /// A result with only a run step, its status derived from it.
    static func run(_ run: CommandOutcome) -> FakeOutcome {
        .result(
            ExecutionResult(status: ExecutionResult.derivedStatus(compile: nil, run: run), run: run, backend: .fake))
    }

    /// Produces the answer for a request: returns the result or throws.
    func answer(to request: ExecutionRequest) async throws -> ExecutionResult {
        switch storage {
        case .result(let result):
            return result
        case .timeLimit(let stdout, let stderr):
            let run = CommandOutcome(
                status: .timeLimitExceeded, stdout: stdout, stderr: stderr, wallTime: request.runTimeout.inSeconds)
            return ExecutionResult(
                status: ExecutionResult.derivedStatus(compile: nil, run: run), run: run, backend: .fake)
        case .error(let error):
            throw error
        case .closure(_, let body):
            return try await body(request)
        }
    }

    public var description: String {
        switch storage {
        case .result(let result): Self.describe(result)
        case .timeLimit(let stdout, _): "timeLimit" + (stdout.isEmpty ? "" : "(stdout: \(Self.quote(stdout)))")
        case .error(let error): "throw \(error.code)"
        case .closure(let label, _): label
        }
    }

    static func describe(_ result: ExecutionResult) -> String {
        if result.status == .sandboxError { return "sandboxError(\(quote(Data(result.message.utf8))))" }
        if let compile = result.compile, compile.status != .finished || (compile.exitCode ?? 0) != 0 {
            return "compileError(exit \(compile.exitCode.map(String.init) ?? "-"))"
        }
        guard let run = result.run else { return "\(result.status)" }
        if run.status == .timeLimitExceeded { return "timeLimit" }
        if let signal = run.signal { return "killedBySignal(\(signal))" }
        if let code = run.exitCode, code != 0 { return "runtimeError(exit \(code))" }
        return "\(result.status)(stdout: \(quote(run.stdout)))"
    }

    static func quote(_ data: Data, limit: Int = 40) -> String {
        let text = String(decoding: data, as: UTF8.self)
        let shown = text.count > limit ? String(text.prefix(limit - 3)) + "..." : text
        return "\""
            + shown.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
            .replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
