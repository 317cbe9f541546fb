public import Foundation

/// Runs a built executable of this package (or any program) to completion and captures its output, for
/// end-to-end tests of the command-line tool.
public enum CommandRunner {
    /// What a finished process left behind.
    public struct Output: Sendable {
        public var status: Int32
        /// Whether it exited or was ended by a signal (whose number is then ``status``).
        public var reason: ChildProcess.TerminationReason = .exit
        public var stdout: Data
        public var stderr: Data
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// The folder holding the built products next to the running test bundle (`.build/<triple>/debug`).
    public static var productsFolder: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The path of a built executable product, e.g. `sandbox-vcr`.
    public static func product(_ name: String) -> URL {
        productsFolder.appendingPathComponent(name)
    }

    /// The built executable product `name` (e.g. `sandbox-vcr`), or `nil` when it is not built.
    ///
    /// Looks next to the running test bundle (``productsFolder``), then in the package's `.build/debug`. The one
    /// place tests find the tools they run end to end.
    public static func builtProduct(named name: String) -> URL? {
        [product(name), packageRoot().appendingPathComponent(".build/debug/\(name)")]
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    /// The package's root folder, found by walking up from a source file to the folder with `Package.swift`.
    public static func packageRoot(from filePath: String = #filePath) -> URL {
        var url = URL(fileURLWithPath: filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
            url.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// A started process and the pipes to talk to it.
    public struct Started: Sendable {
        public var process: ChildProcess
        /// Its standard input (close it to send end of file).
        public var stdin: FileHandle
        public var stdout: FileHandle
        public var stderr: FileHandle
        /// Its exit, to await with a time limit.
        public var exit: ProcessExit
    }

    /// Starts `executable` with `arguments` without waiting for it (a server a test talks to while it runs).
    ///
    /// - Parameter environment: variables added to (or, with a `nil` value, removed from) this process's
    ///   environment.
    public static func start(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String?] = [:],
        currentDirectory: URL? = nil
    ) throws -> Started {
        var env = ProcessInfo.processInfo.environment
        for (name, value) in environment { env[name] = value }
        let process = try ChildProcess(executable, arguments, environment: env, currentDirectory: currentDirectory)
        // Every stream is a pipe (ChildProcess's defaults), so all three handles exist.
        return Started(
            process: process, stdin: process.stdin!, stdout: process.stdout!, stderr: process.stderr!,
            exit: process.exit)
    }

    /// Runs `executable` with `arguments` and waits for it, reading its output on threads of their own (never the
    /// cooperative pool).
    ///
    /// A process still running after `timeout` is killed (`SIGKILL`): its status is then `SIGKILL`'s and its
    /// standard error ends with a line that says so, so a hung child fails its test instead of hanging the run.
    ///
    /// - Parameters:
    ///   - environment: variables added to (or, with a `nil` value, removed from) this process's environment.
    ///   - stdin: bytes written to the process's standard input, which is then closed.
    public static func run(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String?] = [:],
        stdin: Data = Data(),
        currentDirectory: URL? = nil,
        timeout: Duration = .seconds(600)
    ) async throws -> Output {
        let started = try start(executable, arguments, environment: environment, currentDirectory: currentDirectory)
        let stdout = OutputCollector(reading: started.stdout)
        let stderr = OutputCollector(reading: started.stderr)
        let input = started.stdin
        Thread {
            if !stdin.isEmpty { try? input.write(contentsOf: stdin) }
            try? input.close()
        }.start()
        let (status, killed) = await started.exit.waitOrKill(started.process, timeout: timeout)
        // Children it left behind may hold its pipes open: the output is what arrived within a minute of the exit.
        _ = await stdout.waitForEnd(timeout: .seconds(60))
        _ = await stderr.waitForEnd(timeout: .seconds(60))
        var errors = stderr.bytes
        if killed {
            let name = executable.lastPathComponent
            errors.append(Data("\n[CommandRunner] \(name) still ran after \(timeout): killed\n".utf8))
        }
        return Output(status: status, reason: started.exit.reason, stdout: stdout.bytes, stderr: errors)
    }
}
