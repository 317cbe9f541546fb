public import Foundation

/// What an execution produced, the same for every backend (and for a replay from a cassette).
public struct ExecutionResult: Hashable, Sendable, Codable {
    /// The overall verdict.
    public var status: ExecutionStatus
    /// The compile step, for compiled languages.
    public var compile: CommandOutcome?
    /// The run step; `nil` when compilation failed or timed out, or the sandbox failed before running.
    public var run: CommandOutcome?
    /// Files fetched back after the run, by the path they were asked for.
    public var files: [String: Data]
    /// The server's message: empty unless something went wrong in the sandbox itself.
    public var message: String
    /// Which backend produced this result.
    public var backend: Backend
    /// The name of the executor pod or sandbox that ran it, when the backend says.
    public var executorName: String?
    /// Quirks of the backend that touched this result (cut output, replaced output, signals).
    public var hints: Set<ResultHint>

    public init(
        status: ExecutionStatus,
        compile: CommandOutcome? = nil,
        run: CommandOutcome? = nil,
        files: [String: Data] = [:],
        message: String = "",
        backend: Backend,
        executorName: String? = nil,
        hints: Set<ResultHint> = []
    ) {
        self.status = status
        self.compile = compile
        self.run = run
        self.files = files
        self.message = message
        self.backend = backend
        self.executorName = executorName
        self.hints = hints
    }

    /// Whether the execution succeeded (status `success`).
    public var isSuccess: Bool { status == .success }
    /// The run step's standard output, or empty.
    public var stdout: Data { run?.stdout ?? Data() }
    /// The run step's standard error, or empty.
    public var stderr: Data { run?.stderr ?? Data() }
    /// The run step's standard output as text (invalid UTF-8 replaced).
    public var stdoutText: String { run?.stdoutText ?? "" }
    /// The run step's standard error as text (invalid UTF-8 replaced).
    public var stderrText: String { run?.stderrText ?? "" }

    /// The status SandboxFusion derives from the steps: any `error` step gives `sandboxError`, else any time
    /// limit or non-zero exit (or signal) gives `failed`, else `success`.
    public static func derivedStatus(compile: CommandOutcome?, run: CommandOutcome?) -> ExecutionStatus {
        let steps = [compile, run].compactMap { $0 }
        if steps.contains(where: { $0.status == .error }) { return .sandboxError }
        if steps.contains(where: { $0.status == .timeLimitExceeded }) { return .failed }
        if steps.contains(where: { ($0.exitCode ?? 0) != 0 || $0.signal != nil }) { return .failed }
        return .success
    }
}

/// The overall verdict of an execution. An open set: compare with the static members.
public struct ExecutionStatus: OpenStringValue {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Every step finished with exit code 0.
    public static let success = ExecutionStatus(rawValue: "Success")
    /// The program ran but failed: non-zero exit, signal, time limit, or compile error.
    public static let failed = ExecutionStatus(rawValue: "Failed")
    /// The sandbox itself failed (bad input, no runner for the language, internal error).
    public static let sandboxError = ExecutionStatus(rawValue: "SandboxError")
}

/// How one step (compile or run) ended. An open set: compare with the static members.
public struct CommandStatus: OpenStringValue {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The step ran to its end (whatever its exit code).
    public static let finished = CommandStatus(rawValue: "Finished")
    /// The step could not be run.
    public static let error = CommandStatus(rawValue: "Error")
    /// The step was stopped at its time limit.
    public static let timeLimitExceeded = CommandStatus(rawValue: "TimeLimitExceeded")
}

/// One step's outcome: how it ended, its exit code or signal, its output and its timing.
public struct CommandOutcome: Hashable, Sendable, Codable {
    public var status: CommandStatus
    /// The exit code, when the process exited by itself.
    public var exitCode: Int?
    /// The signal that killed the process, when one did (SandboxFusion reports it as a negative return code).
    public var signal: Int?
    public var stdout: Data
    public var stderr: Data
    /// Wall-clock time in seconds, when known.
    public var wallTime: Double?
    /// CPU time in seconds, when known.
    public var cpuTime: Double?

    public init(
        status: CommandStatus,
        exitCode: Int? = nil,
        signal: Int? = nil,
        stdout: Data = Data(),
        stderr: Data = Data(),
        wallTime: Double? = nil,
        cpuTime: Double? = nil
    ) {
        self.status = status
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.wallTime = wallTime
        self.cpuTime = cpuTime
    }

    /// Standard output as text (invalid UTF-8 replaced).
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// Standard error as text (invalid UTF-8 replaced).
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Which backend answered. An open set: compare with the static members.
public struct Backend: OpenStringValue {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let sandboxFusion = Backend(rawValue: "sandboxfusion")
    public static let modal = Backend(rawValue: "modal")
    public static let fake = Backend(rawValue: "fake")
}

/// A quirk of the backend that shaped a result, surfaced instead of hidden.
public enum ResultHint: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The stream may have been cut at the backend's output limit (SandboxFusion: about 219 KB, no marker).
    case outputPossiblyTruncated(step: Step, stream: Stream, limit: Int)
    /// The stream was not valid UTF-8 and the backend replaced it whole with a `[DecodeError] …` text.
    case outputReplacedByDecodeError(step: Step, stream: Stream)
    /// The process was killed by a signal (SandboxFusion reports this as a negative return code).
    case killedBySignal(step: Step, signal: Int)
    /// Secret-looking text in this field (`run.stdout`, `compile.stderr`, `message`, `files[PATH]`) was redacted
    /// before the result was recorded, so a replay shows `<redacted>` where the live answer had the text, and a
    /// grader that compares it may decide differently than it did live.
    case redacted(field: String)

    public enum Step: String, Hashable, Sendable, Codable { case compile, run }
    public enum Stream: String, Hashable, Sendable, Codable { case stdout, stderr }

    public var description: String {
        switch self {
        case .outputPossiblyTruncated(let step, let stream, let limit):
            "\(step) \(stream) may be cut at the backend's \(limit)-byte limit"
        case .outputReplacedByDecodeError(let step, let stream):
            "\(step) \(stream) was not UTF-8 and was replaced by the backend's [DecodeError] text"
        case .killedBySignal(let step, let signal):
            "\(step) was killed by signal \(signal)"
        case .redacted(let field):
            "\(field) was redacted when recorded: secret-looking text reads <redacted>, not what the program printed"
        }
    }
}
