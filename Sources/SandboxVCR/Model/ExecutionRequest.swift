public import Foundation

/// One execution: a program plus its inputs and limits, the same for every backend.
///
/// Every field has a default, and a request that leaves a field out is equal to (and hashes like) one that
/// spells the default out, so requests can key a cassette. Maps are unordered and `fetchFiles` is a set.
/// Timeouts compare as the `Double` seconds a cassette key carries: `.seconds(7.8)` (7.799999999999999872 s, as the
/// standard library rounds it) equals the 7.8 s read back from a cassette.
///
/// ```swift
/// let request = ExecutionRequest(code: "print(input())", language: .python, stdin: "hi\n")
/// let result = try await executor.execute(request)
/// ```
public struct ExecutionRequest: Hashable, Sendable, Codable {
    /// What to run.
    public enum Program: Hashable, Sendable, Codable {
        /// Source code in a language (the SandboxFusion way): the sandbox compiles it if needed and runs it.
        case source(language: Language, code: String)
        /// A command line (the Modal way), run in `workdir` or the sandbox's default folder.
        case command(argv: [String], workdir: String?)
    }

    /// The default run and compile timeout, as on SandboxFusion: 10 seconds.
    public static let defaultTimeout: Duration = .seconds(10)

    public var program: Program
    /// Files written into the run's working folder before it starts, by relative path.
    public var files: [String: Data]
    /// Bytes given to the program's standard input (empty: none).
    public var stdin: Data
    /// Wall-clock limit for the run.
    ///
    /// Cassettes, keys and SandboxFusion's JSON carry it as a `Double` of seconds; a value read from one of them
    /// is clamped between zero and `Duration.maximumTimeLimit` (one year).
    public var runTimeout: Duration
    /// Wall-clock limit for compilation (compiled languages only).
    public var compileTimeout: Duration
    /// Memory limit in MiB, or `nil` for no limit.
    public var memoryLimitMB: Int?
    /// Paths, relative to the working folder, to read back after the run.
    public var fetchFiles: Set<String>

    public init(
        program: Program,
        files: [String: Data] = [:],
        stdin: Data = Data(),
        runTimeout: Duration = ExecutionRequest.defaultTimeout,
        compileTimeout: Duration = ExecutionRequest.defaultTimeout,
        memoryLimitMB: Int? = nil,
        fetchFiles: Set<String> = []
    ) {
        self.program = program
        self.files = files
        self.stdin = stdin
        self.runTimeout = runTimeout
        self.compileTimeout = compileTimeout
        self.memoryLimitMB = memoryLimitMB.flatMap { $0 < 0 ? nil : $0 }
        self.fetchFiles = fetchFiles
    }

    /// A source-code request, with `stdin` given as text.
    public init(
        code: String,
        language: Language,
        files: [String: Data] = [:],
        stdin: String = "",
        runTimeout: Duration = ExecutionRequest.defaultTimeout,
        compileTimeout: Duration = ExecutionRequest.defaultTimeout,
        memoryLimitMB: Int? = nil,
        fetchFiles: Set<String> = []
    ) {
        self.init(
            program: .source(language: language, code: code), files: files, stdin: Data(stdin.utf8),
            runTimeout: runTimeout, compileTimeout: compileTimeout, memoryLimitMB: memoryLimitMB,
            fetchFiles: fetchFiles)
    }

    /// A command-line request (`argv[0]` is the program), with `stdin` given as text.
    public init(
        argv: [String],
        workdir: String? = nil,
        files: [String: Data] = [:],
        stdin: String = "",
        runTimeout: Duration = ExecutionRequest.defaultTimeout,
        memoryLimitMB: Int? = nil,
        fetchFiles: Set<String> = []
    ) {
        self.init(
            program: .command(argv: argv, workdir: workdir), files: files, stdin: Data(stdin.utf8),
            runTimeout: runTimeout, memoryLimitMB: memoryLimitMB, fetchFiles: fetchFiles)
    }

    /// The language, for a source-code request.
    public var language: Language? {
        if case .source(let language, _) = program { return language }
        return nil
    }

    /// The source code, for a source-code request.
    public var code: String? {
        if case .source(_, let code) = program { return code }
        return nil
    }

    /// The command line, for a command request.
    public var argv: [String]? {
        if case .command(let argv, _) = program { return argv }
        return nil
    }

    /// `stdin` decoded as UTF-8 (invalid bytes replaced).
    public var stdinText: String { String(decoding: stdin, as: UTF8.self) }

    /// One line for logs and diagnostics (never the whole code): the kind of program, a preview of its first line
    /// with secret-looking values scrubbed (``Redactor/scrub(_:)``), sizes and the run timeout.
    public var summary: String {
        switch program {
        case .source(let language, let code):
            // Scrubbed before it is cut, so that no part of a secret is left (the summary goes to logs and errors).
            let firstLine = Redactor.scrub(code.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? "")
            let shown = firstLine.count > 60 ? String(firstLine.prefix(57)) + "..." : firstLine
            return "\(language) code (\(code.utf8.count) bytes: \"\(shown)\"), stdin \(stdin.count) bytes, "
                + "\(files.count) file(s), run timeout \(runTimeout.formattedSeconds)"
        case .command(let argv, let workdir):
            let line = Redactor.scrub(argv.joined(separator: " "))
            let shown = line.count > 60 ? String(line.prefix(57)) + "..." : line
            return "command \"\(shown)\"\(workdir.map { " in \($0)" } ?? ""), stdin \(stdin.count) bytes, "
                + "\(files.count) file(s), run timeout \(runTimeout.formattedSeconds)"
        }
    }
}

extension ExecutionRequest {
    public static func == (lhs: ExecutionRequest, rhs: ExecutionRequest) -> Bool {
        lhs.program == rhs.program && lhs.files == rhs.files && lhs.stdin == rhs.stdin
            && lhs.runTimeout.inSeconds == rhs.runTimeout.inSeconds
            && lhs.compileTimeout.inSeconds == rhs.compileTimeout.inSeconds && lhs.memoryLimitMB == rhs.memoryLimitMB
            && lhs.fetchFiles == rhs.fetchFiles
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(program)
        hasher.combine(files)
        hasher.combine(stdin)
        hasher.combine(runTimeout.inSeconds)
        hasher.combine(compileTimeout.inSeconds)
        hasher.combine(memoryLimitMB)
        hasher.combine(fetchFiles)
    }
}

extension ExecutionRequest {
    private enum CodingKeys: String, CodingKey {
        case program, files, stdin, runTimeout, compileTimeout, memoryLimitMB, fetchFiles
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            program: try container.decode(Program.self, forKey: .program),
            files: try container.decodeIfPresent([String: Data].self, forKey: .files) ?? [:],
            stdin: try container.decodeIfPresent(Data.self, forKey: .stdin) ?? Data(),
            runTimeout: try container.decodeIfPresent(Double.self, forKey: .runTimeout)
                .map(Duration.init(secondsClamped:)) ?? Self.defaultTimeout,
            compileTimeout: try container.decodeIfPresent(Double.self, forKey: .compileTimeout)
                .map(Duration.init(secondsClamped:)) ?? Self.defaultTimeout,
            memoryLimitMB: try container.decodeIfPresent(Int.self, forKey: .memoryLimitMB),
            fetchFiles: try container.decodeIfPresent(Set<String>.self, forKey: .fetchFiles) ?? [])
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(program, forKey: .program)
        if !files.isEmpty { try container.encode(files, forKey: .files) }
        if !stdin.isEmpty { try container.encode(stdin, forKey: .stdin) }
        try container.encode(runTimeout.inSeconds, forKey: .runTimeout)
        try container.encode(compileTimeout.inSeconds, forKey: .compileTimeout)
        try container.encodeIfPresent(memoryLimitMB, forKey: .memoryLimitMB)
        if !fetchFiles.isEmpty { try container.encode(fetchFiles.sorted(), forKey: .fetchFiles) }
    }
}

extension Double {
    /// `2s`, `0.5s`: seconds without a trailing `.0`.
    var formattedSeconds: String {
        self == rounded() && abs(self) < 1e15 ? "\(Int(self))s" : "\(self)s"
    }
}
