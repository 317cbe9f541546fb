import Foundation

/// The answer of ``SandboxFusionExecutor/run(code:files:timeout:language:)``, shaped like the dictionary the
/// tinker-cookbook client returns: the server's `/run_code` fields, plus `error` when something went wrong.
///
/// Encodes to the same JSON keys as the Python dictionary (`run_result`, `compile_result`, …).
public struct SandboxFusionRunResponse: Hashable, Sendable, Codable {
    /// `Success`, `Failed` or `SandboxError`; `nil` when the server gave no result (transport or HTTP error).
    public var status: String?
    public var message: String?
    public var compileResult: SandboxFusionWire.CommandRunResult?
    public var runResult: SandboxFusionWire.CommandRunResult?
    public var executorPodName: String?
    /// Fetched files, base64 as on the wire.
    public var files: [String: String]?
    /// What went wrong: `HTTP <code>: <text>`, the sandbox's message for a `SandboxError`, or the transport
    /// error; `nil` when the server returned a result that is not a `SandboxError`.
    public var error: String?

    public init(
        status: String? = nil,
        message: String? = nil,
        compileResult: SandboxFusionWire.CommandRunResult? = nil,
        runResult: SandboxFusionWire.CommandRunResult? = nil,
        executorPodName: String? = nil,
        files: [String: String]? = nil,
        error: String? = nil
    ) {
        self.status = status
        self.message = message
        self.compileResult = compileResult
        self.runResult = runResult
        self.executorPodName = executorPodName
        self.files = files
        self.error = error
    }

    /// A response carrying the server's answer.
    public init(_ wire: SandboxFusionWire.RunCodeResponse, error: String? = nil) {
        self.init(
            status: wire.status, message: wire.message, compileResult: wire.compile_result,
            runResult: wire.run_result, executorPodName: wire.executor_pod_name, files: wire.files, error: error)
    }

    private enum CodingKeys: String, CodingKey {
        case status, message, compileResult = "compile_result", runResult = "run_result",
            executorPodName = "executor_pod_name", files, error
    }

    /// The run step's standard output, or empty (`response["run_result"]["stdout"]` in Python).
    public var stdout: String { runResult?.stdout ?? "" }
    /// The run step's standard error, or empty.
    public var stderr: String { runResult?.stderr ?? "" }
}
