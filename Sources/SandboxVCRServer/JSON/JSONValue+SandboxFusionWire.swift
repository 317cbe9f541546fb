public import SandboxVCR

extension JSONValue {
    /// A `/run_code` answer with the real server's key order (`status, message, compile_result, run_result,
    /// executor_pod_name, files`) and Python's number formatting. (`JSONEncoder` on Linux does not keep key order.)
    ///
    /// - Parameter fileOrder: the request's `fetch_files`: fetched files are listed in that order, as the real
    ///   server does; any others follow, sorted.
    public init(_ response: SandboxFusionWire.RunCodeResponse, fileOrder: [String] = []) {
        let all = response.files ?? [:]
        var files: [(String, JSONValue)] = []
        var listed = Set<String>()
        for path in fileOrder where !listed.contains(path) {
            guard let content = all[path] else { continue }
            listed.insert(path)
            files.append((path, .string(content)))
        }
        for (path, content) in all.sorted(by: { $0.key < $1.key }) where !listed.contains(path) {
            files.append((path, .string(content)))
        }
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
