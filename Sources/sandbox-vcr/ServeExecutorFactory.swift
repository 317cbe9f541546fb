import Foundation
import Logging
import SandboxVCR
import SandboxVCRServer

// TEMPORARY: the lead replaces this file to wire the cassette, the upstream client and the fake executor.

/// The executor options of `sandbox-vcr serve`, as parsed.
struct ServeExecutorOptions: Sendable {
    var cassette: String?
    var record: String?
    var upstreams: [String]
    var fake: String?
    /// Test mode: answer every request with success and stdout = stdin.
    var echo: Bool
}

/// What the server answers from: the executor, how to describe outcomes, and what to do at shutdown.
struct ServeBackend: Sendable {
    var executor: any SandboxExecutor
    var reporter: (any ServeOutcomeReporting)?
    /// Called after the last request was answered (flush and close a cassette here).
    var shutdown: @Sendable () async throws -> Void
}

/// Builds the backend from the options.
///
/// - Throws: `ValidationError` for options that are not wired yet.
func makeServeBackend(options: ServeExecutorOptions, logger: Logger) throws -> ServeBackend {
    if options.echo {
        return ServeBackend(executor: EchoExecutor(), reporter: nil, shutdown: {})
    }
    throw ServeFactoryError(
        message: "sandbox-vcr serve: --cassette, --upstream and --fake are not wired yet in this build; use --echo")
}

struct ServeFactoryError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Answers every request with success and stdout = stdin (for testing `serve` end to end).
struct EchoExecutor: SandboxExecutor {
    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        ExecutionResult(
            status: .success,
            run: CommandOutcome(status: .finished, exitCode: 0, stdout: request.stdin, wallTime: 0),
            backend: Backend(rawValue: "echo"))
    }
}
