public import SandboxVCR

extension JSONValue {
    /// A `/run_code` answer with the real server's key order (`status, message, compile_result, run_result,
    /// executor_pod_name, files`) and Python's number formatting. (`JSONEncoder` on Linux does not keep key order.)
    public init(_ response: SandboxFusionWire.RunCodeResponse) {
        let files: [(String, JSONValue)] = (response.files ?? [:]).sorted { $0.key < $1.key }
            .map { ($0.key, .string($0.value)) }
        self = .object([
            ("status", .string(response.status)),
            ("message", .string(response.message ?? "")),
            ("compile_result", response.compile_result.map(JSONValue.init) ?? .null),
            ("run_result", response.run_result.map(JSONValue.init) ?? .null),
            ("executor_pod_name", response.executor_pod_name.map(JSONValue.string) ?? .null),
            ("files", .object(files)),
        ])
    }

    /// A `CommandRunResult` with every key, null included, as the real server sends it.
    public init(_ result: SandboxFusionWire.CommandRunResult) {
        self = .object([
            ("status", .string(result.status)),
            ("execution_time", result.execution_time.map(JSONValue.float) ?? .null),
            ("return_code", result.return_code.map { .integer(String($0)) } ?? .null),
            ("stdout", result.stdout.map(JSONValue.string) ?? .null),
            ("stderr", result.stderr.map(JSONValue.string) ?? .null),
        ])
    }
}
