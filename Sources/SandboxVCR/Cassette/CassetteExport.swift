public import Foundation

/// The JSON Lines form of a cassette: one interaction per line, sorted by key then ordinal, byte strings as
/// text when they are valid UTF-8 and `{"base64": …}` otherwise. Import is its exact inverse.
enum CassetteExport {
    /// Bytes as a JSON string when valid UTF-8, else `{"base64": "…"}`.
    struct Bytes: Codable {
        var data: Data

        init(_ data: Data) { self.data = data }

        private enum CodingKeys: String, CodingKey { case base64 }

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                data = Data(text.utf8)
                return
            }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard let data = Data(base64Encoded: try container.decode(String.self, forKey: .base64)) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .base64, in: container, debugDescription: "invalid base64")
            }
            self.data = data
        }

        func encode(to encoder: any Encoder) throws {
            if let text = String(data: data, encoding: .utf8), Data(text.utf8) == data {
                var container = encoder.singleValueContainer()
                try container.encode(text)
            } else {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(data.base64EncodedString(), forKey: .base64)
            }
        }
    }

    struct Request: Codable {
        var language: String?
        var code: Bytes?
        var argv: [Bytes]?
        var workdir: String?
        var files: [String: Bytes]
        var stdin: Bytes
        var run_timeout: Double
        var compile_timeout: Double
        var memory_limit_mb: Int?
        var fetch_files: [String]

        init(_ request: ExecutionRequest) {
            switch request.program {
            case .source(let language, let code):
                self.language = language.rawValue
                self.code = Bytes(Data(code.utf8))
            case .command(let argv, let workdir):
                self.argv = argv.map { Bytes(Data($0.utf8)) }
                self.workdir = workdir
            }
            files = request.files.mapValues(Bytes.init)
            stdin = Bytes(request.stdin)
            run_timeout = request.runTimeout.inSeconds
            compile_timeout = request.compileTimeout.inSeconds
            memory_limit_mb = request.memoryLimitMB
            fetch_files = request.fetchFiles.sorted(by: RecordCoding.utf8Order)
        }

        var value: ExecutionRequest {
            let program: ExecutionRequest.Program =
                if let language {
                    .source(
                        language: Language(rawValue: language),
                        code: String(decoding: code?.data ?? Data(), as: UTF8.self))
                } else {
                    .command(argv: (argv ?? []).map { String(decoding: $0.data, as: UTF8.self) }, workdir: workdir)
                }
            return ExecutionRequest(
                program: program, files: files.mapValues(\.data), stdin: stdin.data,
                runTimeout: Duration(secondsClamped: run_timeout),
                compileTimeout: Duration(secondsClamped: compile_timeout), memoryLimitMB: memory_limit_mb,
                fetchFiles: Set(fetch_files))
        }
    }

    struct Step: Codable {
        var status: String
        var exit_code: Int?
        var signal: Int?
        var stdout: Bytes
        var stderr: Bytes
        var wall_time: Double?
        var cpu_time: Double?

        init(_ outcome: CommandOutcome) {
            status = outcome.status.rawValue
            exit_code = outcome.exitCode
            signal = outcome.signal
            stdout = Bytes(outcome.stdout)
            stderr = Bytes(outcome.stderr)
            wall_time = outcome.wallTime
            cpu_time = outcome.cpuTime
        }

        var value: CommandOutcome {
            CommandOutcome(
                status: CommandStatus(rawValue: status), exitCode: exit_code, signal: signal, stdout: stdout.data,
                stderr: stderr.data, wallTime: wall_time, cpuTime: cpu_time)
        }
    }

    struct Hint: Codable {
        var kind: String
        var step: String
        var stream: String?
        var limit: Int?
        var signal: Int?
        var field: String?

        init(_ hint: ResultHint) {
            switch hint {
            case .outputPossiblyTruncated(let step, let stream, let limit):
                kind = "outputPossiblyTruncated"
                self.step = step.rawValue
                self.stream = stream.rawValue
                self.limit = limit
            case .outputReplacedByDecodeError(let step, let stream):
                kind = "outputReplacedByDecodeError"
                self.step = step.rawValue
                self.stream = stream.rawValue
            case .killedBySignal(let step, let signal):
                kind = "killedBySignal"
                self.step = step.rawValue
                self.signal = signal
            case .redacted(let field):
                kind = "redacted"
                self.step = ""
                self.field = field
            }
        }

        var value: ResultHint? {
            if kind == "redacted" { return field.map { .redacted(field: $0) } }
            guard let step = ResultHint.Step(rawValue: step) else { return nil }
            let stream = stream.flatMap(ResultHint.Stream.init(rawValue:))
            switch kind {
            case "outputPossiblyTruncated":
                guard let stream, let limit else { return nil }
                return .outputPossiblyTruncated(step: step, stream: stream, limit: limit)
            case "outputReplacedByDecodeError":
                guard let stream else { return nil }
                return .outputReplacedByDecodeError(step: step, stream: stream)
            case "killedBySignal":
                guard let signal else { return nil }
                return .killedBySignal(step: step, signal: signal)
            default: return nil
            }
        }

        var sortKey: String { "\(kind) \(step) \(stream ?? "") \(limit ?? 0) \(signal ?? 0) \(field ?? "")" }
    }

    struct Result: Codable {
        var status: String
        var compile: Step?
        var run: Step?
        var files: [String: Bytes]
        var message: Bytes
        var backend: String
        var executor_name: String?
        var hints: [Hint]

        init(_ result: ExecutionResult) {
            status = result.status.rawValue
            compile = result.compile.map(Step.init)
            run = result.run.map(Step.init)
            files = result.files.mapValues(Bytes.init)
            message = Bytes(Data(result.message.utf8))
            backend = result.backend.rawValue
            executor_name = result.executorName
            hints = result.hints.map(Hint.init).sorted { $0.sortKey < $1.sortKey }
        }

        var value: ExecutionResult {
            ExecutionResult(
                status: ExecutionStatus(rawValue: status), compile: compile?.value, run: run?.value,
                files: files.mapValues(\.data), message: String(decoding: message.data, as: UTF8.self),
                backend: Backend(rawValue: backend), executorName: executor_name,
                hints: Set(hints.compactMap(\.value)))
        }
    }

    struct Failure: Codable {
        struct Issue: Codable {
            var type: String
            var location: [String]
            var message: String
        }

        var code: String
        var message: Bytes
        var http_status: Int?
        var validation_issues: [Issue]
        var url: String?
        var attempts: Int

        init(_ error: ExecutionError) {
            code = error.code.rawValue
            message = Bytes(Data(error.message.utf8))
            http_status = error.httpStatus
            validation_issues = error.validationIssues.map {
                Issue(type: $0.type, location: $0.location, message: $0.message)
            }
            url = error.url
            attempts = error.attempts
        }

        var value: ExecutionError {
            ExecutionError(
                code: ExecutionError.Code(rawValue: code), message: String(decoding: message.data, as: UTF8.self),
                httpStatus: http_status,
                validationIssues: validation_issues.map {
                    .init(type: $0.type, location: $0.location, message: $0.message)
                },
                url: url, attempts: attempts)
        }
    }

    struct Line: Codable {
        var key: String
        var ordinal: Int
        var session: String?
        var step: Int?
        var backend_version: String?
        var recorded_at: Double
        var duration: Double?
        var last_replayed_at: Double?
        var request: Request
        var result: Result?
        var error: Failure?

        init(_ interaction: Cassette.Interaction) {
            key = interaction.key.hex
            ordinal = interaction.ordinal
            session = interaction.session
            step = interaction.step
            backend_version = interaction.backendVersion
            recorded_at = interaction.recordedAt.timeIntervalSince1970
            duration = interaction.duration
            last_replayed_at = interaction.lastReplayedAt?.timeIntervalSince1970
            request = Request(interaction.request)
            switch interaction.outcome {
            case .result(let value): result = Result(value)
            case .failure(let value): error = Failure(value)
            }
        }

        func interaction() throws -> Cassette.NewInteraction {
            guard let digest = ContentHash(hex: key) else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "bad key \(key)"))
            }
            // Ordinals count the recordings of one key: never negative, and far from overflowing the next one.
            guard (0...Cassette.maximumOrdinal).contains(ordinal) else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: [], debugDescription: "ordinal \(ordinal) is outside 0...\(Cassette.maximumOrdinal)"
                    ))
            }
            let outcome: Cassette.Outcome
            if let result {
                outcome = .result(result.value)
            } else if let error {
                outcome = .failure(error.value)
            } else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no result or error"))
            }
            return Cassette.NewInteraction(
                key: digest, ordinal: ordinal, session: session, step: step, backendVersion: backend_version,
                request: request.value, outcome: outcome, recordedAt: Date(timeIntervalSince1970: recorded_at),
                duration: duration, lastReplayedAt: last_replayed_at.map { Date(timeIntervalSince1970: $0) })
        }
    }

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension Cassette {
    /// Writes every interaction as JSON Lines (sorted by key, then ordinal; stable across runs).
    ///
    /// - Parameters:
    ///   - write: receives each line, newline included.
    ///   - progress: called with (done, total) now and then.
    /// - Returns: the number of lines written.
    @discardableResult
    public func exportJSONLines(
        progress: (@Sendable (Int, Int) -> Void)? = nil, to write: (Data) throws -> Void
    ) async throws -> Int {
        let total = try await count()
        let encoder = CassetteExport.encoder()
        var done = 0
        try await forEachInteraction { interaction in
            var line = try encoder.encode(CassetteExport.Line(interaction))
            line.append(UInt8(ascii: "\n"))
            try write(line)
            done += 1
            if done % 500 == 0 { progress?(done, total) }
        }
        progress?(done, total)
        return done
    }

    /// The JSON Lines export as one `Data`.
    public func exportJSONLines() async throws -> Data {
        var data = Data()
        try await exportJSONLines { data.append($0) }
        return data
    }

    /// Imports JSON Lines written by ``exportJSONLines(progress:to:)``; keys and ordinals are kept, so an
    /// existing `(key, ordinal)` is replaced.
    ///
    /// - Parameters:
    ///   - data: the JSON Lines.
    ///   - progress: called with (lines done, lines in all) as the import goes.
    /// - Returns: the number of interactions imported.
    @discardableResult
    public func importJSONLines(_ data: Data, progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> Int {
        let decoder = JSONDecoder()
        var batch: [NewInteraction] = []
        var batchBytes = 0
        var imported = 0
        let lines = data.split(separator: UInt8(ascii: "\n"))
        for (number, line) in lines.enumerated() where !line.allSatisfy({ $0 == 32 || $0 == 13 }) {
            batchBytes += line.count
            do {
                batch.append(try decoder.decode(CassetteExport.Line.self, from: Data(line)).interaction())
            } catch {
                throw CassetteError(
                    code: .io,
                    message: "line \(number + 1) of the JSON Lines input is not an exported interaction (\(error)); "
                        + "import only files written by `sandbox-vcr cassette export`",
                    path: path)
            }
            // Every 1,000 lines or 16 MB: memory stays near one batch whatever the size of the input.
            if batch.count == 1000 || batchBytes >= 16 << 20 {
                try await record(batch)
                imported += batch.count
                batchBytes = 0
                batch.removeAll(keepingCapacity: true)
                progress?(imported, lines.count)
            }
        }
        try await record(batch)
        imported += batch.count
        progress?(imported, lines.count)
        return imported
    }

    /// A readable, stable text rendering of every interaction, for `git diff` (`sandbox-vcr cassette show`).
    ///
    /// Replay stamps are left out so that replaying never changes the text.
    public func showText() async throws -> String {
        var text = "cassette \(url.lastPathComponent): \(try await count()) interaction(s)\n"
        try await forEachInteraction { interaction in
            text += "\n" + Self.render(interaction)
        }
        return text
    }

    static func render(_ interaction: Interaction) -> String {
        func block(_ label: String, _ data: Data) -> String {
            guard !data.isEmpty else { return "" }
            guard let string = String(data: data, encoding: .utf8) else {
                return "  \(label): \(data.count) bytes of binary, sha256 \(ContentHash.sha256(data).hex.prefix(16))\n"
            }
            var lines = string.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            let shown = lines.prefix(200).map { "    | " + $0 }.joined(separator: "\n")
            let more = lines.count > 200 ? "\n    | ... (\(lines.count - 200) more lines)" : ""
            return "  \(label):\n\(shown)\(more)\n"
        }
        let request = interaction.request
        let formatter = ISO8601DateFormatter()
        var text = "## \(interaction.key.hex.prefix(16)) #\(interaction.ordinal)"
        if let session = interaction.session { text += " session \(oneLine(session)) step \(interaction.step ?? 0)" }
        text += " · recorded \(formatter.string(from: interaction.recordedAt))"
        if let duration = interaction.duration { text += " in \(String(format: "%.3f", duration))s" }
        text += "\n"
        switch request.program {
        case .source(let language, let code):
            text += "request: \(oneLine(language.rawValue))"
            text +=
                ", run timeout \(request.runTimeout.formattedSeconds), compile timeout "
                + request.compileTimeout.formattedSeconds
            if let memory = request.memoryLimitMB { text += ", memory \(memory) MB" }
            text += "\n" + block("code", Data(code.utf8))
        case .command(let argv, let workdir):
            text +=
                "request: command \(oneLine(argv.joined(separator: " ")))"
                + (workdir.map { " in \(oneLine($0))" } ?? "")
            text += ", run timeout \(request.runTimeout.formattedSeconds)\n"
        }
        for path in request.files.keys.sorted(by: RecordCoding.utf8Order) {
            text += block("file \(oneLine(path))", request.files[path]!)
        }
        text += block("stdin", request.stdin)
        if !request.fetchFiles.isEmpty {
            text += "  fetch: \(oneLine(request.fetchFiles.sorted().joined(separator: ", ")))\n"
        }
        switch interaction.outcome {
        case .result(let result):
            text += "result: \(oneLine(result.status.rawValue)) from \(oneLine(result.backend.rawValue))"
            if let version = interaction.backendVersion { text += " \(oneLine(version))" }
            text += "\n"
            for (name, step) in [("compile", result.compile), ("run", result.run)] {
                guard let step else { continue }
                text += "  \(name): \(step.status)"
                if let exit = step.exitCode { text += " exit \(exit)" }
                if let signal = step.signal { text += " signal \(signal)" }
                text += "\n" + block("\(name) stdout", step.stdout) + block("\(name) stderr", step.stderr)
            }
            for path in result.files.keys.sorted(by: RecordCoding.utf8Order) {
                text += block("fetched \(oneLine(path))", result.files[path]!)
            }
            if !result.message.isEmpty { text += block("message", Data(result.message.utf8)) }
            for hint in result.hints.map(\.description).sorted() { text += "  hint: \(oneLine(hint))\n" }
        case .failure(let error):
            text += "error: \(oneLine(error.code.rawValue))" + (error.httpStatus.map { " HTTP \($0)" } ?? "") + "\n"
            text += block("message", Data(error.message.utf8))
            for issue in error.validationIssues { text += "  issue: \(oneLine("\(issue)"))\n" }
        }
        return text
    }

    /// A value shown on one line of `show`'s output (a file name, argv, a session id): line breaks and other control
    /// characters are escaped (`\n`, `\u{1B}`), so a value cannot forge lines in a `git diff` view.
    static func oneLine(_ value: String) -> String {
        var escaped = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case "\\": escaped += "\\\\"
            case _ where scalar.properties.generalCategory == .control || scalar == "\u{2028}" || scalar == "\u{2029}":
                escaped += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
