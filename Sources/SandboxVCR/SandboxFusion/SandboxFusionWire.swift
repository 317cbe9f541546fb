public import Foundation

/// The SandboxFusion JSON wire format, both ways: what a client sends and reads, and what a server (or
/// `sandbox-vcr serve`) reads and answers. Field names, defaults and status rules follow the real server.
public enum SandboxFusionWire {
    /// The most a stream carries back from the real server before it is cut silently (observed: 219,264 bytes).
    public static let observedStreamLimit = 219_264
    /// A stream at least this long is flagged as possibly cut (the exact cut point varies with buffering, so this
    /// sits a little below ``observedStreamLimit``).
    public static let truncationHintThreshold = 208 * 1024
    /// The prefix the server puts in place of output that is not valid UTF-8.
    public static let decodeErrorPrefix = "[DecodeError]"

    // MARK: Wire shapes

    /// The body of `POST /run_code`.
    public struct RunCodeBody: Codable, Sendable, Hashable {
        public var code: String
        public var language: String
        public var compile_timeout: Double?
        public var run_timeout: Double?
        public var memory_limit_MB: Int?
        public var stdin: String?
        public var files: [String: String?]?
        public var fetch_files: [String]?

        public init(
            code: String, language: String, compile_timeout: Double? = nil, run_timeout: Double? = nil,
            memory_limit_MB: Int? = nil, stdin: String? = nil, files: [String: String?]? = nil,
            fetch_files: [String]? = nil
        ) {
            self.code = code
            self.language = language
            self.compile_timeout = compile_timeout
            self.run_timeout = run_timeout
            self.memory_limit_MB = memory_limit_MB
            self.stdin = stdin
            self.files = files
            self.fetch_files = fetch_files
        }
    }

    /// A `CommandRunResult` (`compile_result`, `run_result`, `driver`).
    public struct CommandRunResult: Codable, Sendable, Hashable {
        public var status: String
        public var execution_time: Double?
        public var return_code: Int?
        public var stdout: String?
        public var stderr: String?

        public init(
            status: String, execution_time: Double? = nil, return_code: Int? = nil, stdout: String? = nil,
            stderr: String? = nil
        ) {
            self.status = status
            self.execution_time = execution_time
            self.return_code = return_code
            self.stdout = stdout
            self.stderr = stderr
        }

        private enum CodingKeys: String, CodingKey { case status, execution_time, return_code, stdout, stderr }

        public func encode(to encoder: any Encoder) throws {
            // The real server always sends every key, null included.
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(execution_time, forKey: .execution_time)
            try container.encode(return_code, forKey: .return_code)
            try container.encode(stdout, forKey: .stdout)
            try container.encode(stderr, forKey: .stderr)
        }
    }

    /// The answer of `POST /run_code`.
    public struct RunCodeResponse: Codable, Sendable, Hashable {
        public var status: String
        public var message: String?
        public var compile_result: CommandRunResult?
        public var run_result: CommandRunResult?
        public var executor_pod_name: String?
        public var files: [String: String]?

        public init(
            status: String, message: String? = "", compile_result: CommandRunResult? = nil,
            run_result: CommandRunResult? = nil, executor_pod_name: String? = nil, files: [String: String]? = [:]
        ) {
            self.status = status
            self.message = message
            self.compile_result = compile_result
            self.run_result = run_result
            self.executor_pod_name = executor_pod_name
            self.files = files
        }

        private enum CodingKeys: String, CodingKey {
            case status, message, compile_result, run_result, executor_pod_name, files
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status, forKey: .status)
            try container.encode(message ?? "", forKey: .message)
            try container.encode(compile_result, forKey: .compile_result)
            try container.encode(run_result, forKey: .run_result)
            try container.encode(executor_pod_name, forKey: .executor_pod_name)
            try container.encode(files ?? [:], forKey: .files)
        }
    }

    /// A 422 answer: `{"detail": [...]}`.
    public struct ValidationErrorBody: Codable, Sendable {
        public struct Item: Codable, Sendable {
            public var type: String
            public var loc: [LocationPart]
            public var msg: String
        }

        /// A `loc` entry: a field name or an index.
        public enum LocationPart: Codable, Sendable, CustomStringConvertible {
            case name(String)
            case index(Int)

            public init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let number = try? container.decode(Int.self) {
                    self = .index(number)
                } else {
                    self = .name(try container.decode(String.self))
                }
            }

            public func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .name(let name): try container.encode(name)
                case .index(let index): try container.encode(index)
                }
            }

            public var description: String {
                switch self {
                case .name(let name): name
                case .index(let index): String(index)
                }
            }
        }

        public var detail: [Item]
    }

    // MARK: Client side

    /// Builds the `/run_code` body for a request.
    ///
    /// - Throws: ``ExecutionError/Code/unsupportedRequest`` for a command request or stdin that is not UTF-8
    ///   (the SandboxFusion API carries stdin as a JSON string).
    public static func runCodeBody(for request: ExecutionRequest) throws(ExecutionError) -> RunCodeBody {
        guard case .source(let language, let code) = request.program else {
            throw ExecutionError(
                code: .unsupportedRequest,
                message: "SandboxFusion runs source code, not command lines; use the Modal backend for "
                    + "\(request.summary), or send the command as a bash script (language .bash).")
        }
        var stdin: String?
        if !request.stdin.isEmpty {
            guard let text = String(data: request.stdin, encoding: .utf8) else {
                throw ExecutionError(
                    code: .unsupportedRequest,
                    message: "SandboxFusion carries stdin as a JSON string, and this stdin is not valid UTF-8 "
                        + "(\(request.stdin.count) bytes); pass binary input as a file in `files` instead.")
            }
            stdin = text
        }
        return RunCodeBody(
            code: code,
            language: language.rawValue,
            compile_timeout: request.compileTimeout.inSeconds,
            run_timeout: request.runTimeout.inSeconds,
            memory_limit_MB: request.memoryLimitMB ?? -1,
            stdin: stdin,
            files: request.files.mapValues { Optional($0.base64EncodedString()) },
            fetch_files: request.fetchFiles.sorted())
    }

    /// Reads a `/run_code` body back into a request (the server side). Null files are skipped, as the real
    /// server does.
    ///
    /// - Throws: ``ExecutionError/Code/undecodableResponse`` when a file is not valid base64.
    public static func request(from body: RunCodeBody) throws(ExecutionError) -> ExecutionRequest {
        var files: [String: Data] = [:]
        for (path, content) in body.files ?? [:] {
            guard let content else { continue }
            guard let data = Data(base64Encoded: content) else {
                throw ExecutionError(
                    code: .undecodableResponse, message: "file \"\(path)\" is not valid base64")
            }
            files[path] = data
        }
        return ExecutionRequest(
            program: .source(language: Language(rawValue: body.language), code: body.code),
            files: files,
            stdin: Data((body.stdin ?? "").utf8),
            runTimeout: body.run_timeout.map(Duration.init(secondsClamped:)) ?? ExecutionRequest.defaultTimeout,
            compileTimeout: body.compile_timeout.map(Duration.init(secondsClamped:)) ?? ExecutionRequest.defaultTimeout,
            memoryLimitMB: body.memory_limit_MB,
            fetchFiles: Set(body.fetch_files ?? []))
    }

    /// Turns a decoded `/run_code` answer into a result, with hints for the server's quirks.
    ///
    /// - Throws: ``ExecutionError/Code/undecodableResponse`` when a fetched file is not valid base64.
    public static func result(from response: RunCodeResponse) throws(ExecutionError) -> ExecutionResult {
        var files: [String: Data] = [:]
        for (path, content) in response.files ?? [:] {
            guard let data = Data(base64Encoded: content) else {
                throw ExecutionError(
                    code: .undecodableResponse,
                    message: "the server's answer has fetched file \"\(path)\" that is not valid base64")
            }
            files[path] = data
        }
        var hints: Set<ResultHint> = []
        let compile = response.compile_result.map { outcome(from: $0, step: .compile, hints: &hints) }
        let run = response.run_result.map { outcome(from: $0, step: .run, hints: &hints) }
        return ExecutionResult(
            status: ExecutionStatus(rawValue: response.status),
            compile: compile,
            run: run,
            files: files,
            message: response.message ?? "",
            backend: .sandboxFusion,
            executorName: response.executor_pod_name,
            hints: hints)
    }

    /// Decodes a `/run_code` answer body.
    public static func decodeResult(from body: Data) throws(ExecutionError) -> ExecutionResult {
        let response: RunCodeResponse
        do {
            response = try JSONDecoder().decode(RunCodeResponse.self, from: body)
        } catch {
            throw ExecutionError(
                code: .undecodableResponse,
                message: "the server's answer is not a SandboxFusion /run_code result (\(body.count) bytes, "
                    + "starting \(preview(body))); check that the URL points at a SandboxFusion server")
        }
        return try result(from: response)
    }

    static func outcome(from wire: CommandRunResult, step: ResultHint.Step, hints: inout Set<ResultHint>)
        -> CommandOutcome
    {
        var exitCode = wire.return_code
        var signal: Int?
        // A negative code is a signal (as the real server reports one); Int.min has no negation and is no signal.
        if let code = wire.return_code, code < 0, code != .min {
            signal = -code
            exitCode = nil
            hints.insert(.killedBySignal(step: step, signal: -code))
        }
        let stdout = Data((wire.stdout ?? "").utf8)
        let stderr = Data((wire.stderr ?? "").utf8)
        for (stream, data, text) in [(ResultHint.Stream.stdout, stdout, wire.stdout), (.stderr, stderr, wire.stderr)] {
            if data.count >= truncationHintThreshold {
                hints.insert(.outputPossiblyTruncated(step: step, stream: stream, limit: observedStreamLimit))
            }
            if text?.hasPrefix(decodeErrorPrefix) == true {
                hints.insert(.outputReplacedByDecodeError(step: step, stream: stream))
            }
        }
        return CommandOutcome(
            status: CommandStatus(rawValue: wire.status), exitCode: exitCode, signal: signal, stdout: stdout,
            stderr: stderr, wallTime: wire.execution_time)
    }

    // MARK: Server side

    /// The wire form of a result, as the real server would answer it.
    public static func response(from result: ExecutionResult) -> RunCodeResponse {
        RunCodeResponse(
            status: result.status.rawValue,
            message: result.message,
            compile_result: result.compile.map(commandRunResult(from:)),
            run_result: result.run.map(commandRunResult(from:)),
            executor_pod_name: result.executorName,
            files: result.files.mapValues { $0.base64EncodedString() })
    }

    /// The wire form of one step.
    public static func commandRunResult(from outcome: CommandOutcome) -> CommandRunResult {
        let returnCode: Int? =
            if let signal = outcome.signal { -signal } else { outcome.exitCode }
        return CommandRunResult(
            status: outcome.status.rawValue,
            execution_time: outcome.wallTime,
            return_code: returnCode,
            stdout: outcome.stdoutText,
            stderr: outcome.stderrText)
    }

    /// The first bytes of a body, printable, for error messages.
    static func preview(_ body: Data, limit: Int = 80) -> String {
        if body.isEmpty { return "(empty)" }
        let text = String(decoding: body.prefix(limit), as: UTF8.self)
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(text)\"" + (body.count > limit ? "..." : "")
    }
}
