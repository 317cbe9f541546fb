import ArgumentParser
import Logging
import SandboxVCR

/// `sandbox-vcr`: run, grade, record and replay code executions against sandboxes and cassettes.
struct SandboxVCRCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-vcr",
        abstract: "Record and replay code-execution sandboxes (SandboxFusion, Modal) for testing graders.",
        discussion: """
            Environment: SANDBOX_BACKEND, SANDBOX_URL, SANDBOX_FUSION_ENDPOINT, SANDBOX_MAX_CONCURRENCY, \
            SANDBOX_VCR_RECORD, CI. See README.md for details.
            """,
        version: SandboxVCRVersion.current,
        subcommands: [RunCommand.self, GradeCommand.self, CassetteCommand.self, ServeCommand.self]
    )
}

/// Bootstraps logging to standard error at `level` and returns the command's logger.
func makeCommandLogger(label: String, level: Logger.Level) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = CommandLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
    return Logger(label: label)
}
