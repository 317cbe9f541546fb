import ArgumentParser
import Foundation
import Logging
import SandboxVCR

/// `sandbox-vcr run`: execute one request and print its result.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Execute one piece of code and print the result.",
        discussion: """
            The exit status says how the run went: 0 success, 1 the program failed (non-zero exit, signal, \
            time limit, compile error), 2 the sandbox reported an error, 3 no result (connection, HTTP, \
            cassette, rules file or configuration error), 64 bad arguments or an unreadable input file. With \
            --backend modal, SIGINT or SIGTERM terminates the sandboxes it created (within 10 s), says how many on \
            standard error and exits with 128 + the signal (130, 143); a second signal exits at once.
            """)

    @Argument(help: "A source file to run (or use -c).")
    var file: String?

    @Option(name: .short, help: "The code to run, given inline.")
    var code: String?

    @Option(help: "The language (python, cpp, bash, nodejs, ...). Default: from the file's extension, else python.")
    var language: String?

    @Option(help: "Text for standard input; @PATH reads a file.")
    var stdin: String?

    @Option(name: .customLong("file"), help: "A file for the sandbox, as NAME=PATH (repeatable).")
    var files: [String] = []

    @Option(help: "The run timeout in seconds (at most a year).")
    var timeout: Double = ExecutionRequest.defaultTimeout.inSeconds

    @Option(help: "The compile timeout in seconds (at most a year).")
    var compileTimeout: Double = ExecutionRequest.defaultTimeout.inSeconds

    @Option(help: "The memory limit in MiB.")
    var memoryLimit: Int?

    @Option(help: "A file to fetch back after the run (repeatable).")
    var fetch: [String] = []

    @OptionGroup var executorOptions: ExecutorOptions

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "Log requests and retries on standard error.")
    var verbose = false

    func validate() throws {
        if file == nil && code == nil { throw ValidationError("give a source file or -c CODE") }
        if file != nil && code != nil { throw ValidationError("give a source file or -c CODE, not both") }
        if !(timeout > 0) { throw ValidationError("--timeout must be positive") }
        for entry in files where !entry.contains("=") {
            throw ValidationError("--file takes NAME=PATH, got \"\(entry)\"")
        }
        try executorConfiguration.validate()
    }

    /// The options; with no live backend named, SandboxFusion at `$SANDBOX_URL`.
    var executorConfiguration: ExecutorConfiguration {
        executorOptions.configuration(unnamedBackend: .sandboxFusion)
    }

    func makeRequest() throws -> ExecutionRequest {
        let source: String
        if let code {
            source = code
        } else {
            source = try readText(file!, what: "source file")
        }
        var sandboxFiles: [String: Data] = [:]
        for entry in files {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            sandboxFiles[parts[0]] = try readData(parts[1], what: "file for --file \(parts[0])")
        }
        var input = Data()
        if let stdin {
            input =
                stdin.hasPrefix("@")
                ? try readData(String(stdin.dropFirst()), what: "stdin file") : Data(stdin.utf8)
        }
        return ExecutionRequest(
            program: .source(language: Language(rawValue: language ?? Self.inferLanguage(file)), code: source),
            files: sandboxFiles, stdin: input, runTimeout: Duration(secondsClamped: timeout),
            compileTimeout: Duration(secondsClamped: compileTimeout),
            memoryLimitMB: memoryLimit, fetchFiles: Set(fetch))
    }

    static func inferLanguage(_ file: String?) -> String {
        switch file.map({ URL(fileURLWithPath: $0).pathExtension.lowercased() }) {
        case "cpp", "cc", "cxx": "cpp"
        case "sh", "bash": "bash"
        case "js", "mjs": "nodejs"
        case "ts": "typescript"
        case "go": "go"
        case "rs": "rust"
        case "java": "java"
        case "rb": "ruby"
        case "lua": "lua"
        case "pl": "perl"
        case "php": "php"
        default: "python"
        }
    }

    func run() async throws {
        let logger = makeCommandLogger(label: "sandbox-vcr.run", level: verbose ? .debug : .warning)
        let request: ExecutionRequest
        do {
            request = try makeRequest()
        } catch let error as ValidationError {
            throw commandFailure("run", error.message, status: ExitCode.validationFailure)
        }
        let stack: ExecutorStack
        do {
            stack = try await ExecutorStack.make(
                executorConfiguration,
                environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch let error as ValidationError {
            throw commandFailure("run", error.message, status: ExitCode.validationFailure)
        } catch {
            throw noResult(error)  // A cassette that cannot be opened, a bad rules file or configuration.
        }
        let interruption = SandboxInterruption.install(command: "run", stack: stack)
        let (outcome, recordingError) = await stack.use { executor -> Result<ExecutionResult, any Error> in
            do {
                return .success(try await executor.execute(request))
            } catch {
                return .failure(error)
            }
        }
        await interruption?.commandFinished()
        switch outcome {
        case .success(let result):
            print(json ? ResultPrinter.json(result) : ResultPrinter.text(result), terminator: "")
            if let recordingError {
                throw commandFailure("run", "the result could not be recorded: \(recordingError)", status: ExitCode(3))
            }
            switch result.status {
            case .success: return
            case .failed: throw ExitCode(1)
            default: throw ExitCode(2)
            }
        case .failure(let error):
            throw noResult(error)
        }
    }

    /// Reports an error that left no result (as JSON on standard output with `--json`) and returns exit status 3.
    private func noResult(_ error: any Error) -> ExitCode {
        if json {
            print(ResultPrinter.json(error: error), terminator: "")
            return ExitCode(3)
        }
        return commandFailure("run", "\(error)", status: ExitCode(3))
    }
}

/// Writes `sandbox-vcr COMMAND: MESSAGE` on standard error and returns `status` to throw: a clean failure,
/// without the usage text ArgumentParser prints for a `ValidationError` thrown from `run()`.
func commandFailure(_ command: String, _ message: String, status: ExitCode) -> ExitCode {
    FileHandle.standardError.write(Data("sandbox-vcr \(command): \(message)\n".utf8))
    return status
}

/// Reads a whole file as text, with an error that names it.
func readText(_ path: String, what: String) throws -> String {
    String(decoding: try readData(path, what: what), as: UTF8.self)
}

/// Reads a whole file, with an error that names it.
func readData(_ path: String, what: String) throws -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw ValidationError("cannot read the \(what) \(path): \(error.localizedDescription)")
    }
}
