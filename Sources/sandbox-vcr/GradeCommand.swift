import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRWebUI

/// `sandbox-vcr grade`: grade every candidate of every problem through a sandbox or a cassette.
struct GradeCommand: AsyncParsableCommand {
    static let defaultProblems = "Fixtures/grading-demo/problems.jsonl"
    static let defaultCassette = "Fixtures/grading-demo/cassette.sqlite"

    static let configuration = CommandConfiguration(
        commandName: "grade",
        abstract: "Grade candidate solutions of stdin/stdout problems and print a table of rewards.",
        discussion: """
            With no arguments it grades the committed demo problems (\(defaultProblems)) from the committed \
            cassette (\(defaultCassette)) in `never` mode: offline, no sandbox. Name a live backend (--backend, \
            --url, --rules or $SANDBOX_BACKEND) to record into the cassette instead (mode missing by default). \
            A test passes when the status is Success and stdout equals the expected output after removing \
            trailing white space from each line and trailing empty lines; a candidate's reward is 1.0 when every \
            test passes. Exit status: 0 when every candidate got the reward its intent expects and nothing \
            failed to execute, 1 otherwise, 2 when grading could not start or its recordings could not be written \
            (cassette, rules file, configuration), 64 bad arguments or an invalid problems file. With --backend \
            modal, SIGINT or SIGTERM terminates the sandboxes it created (within 10 s), commits what was recorded, \
            says how many sandboxes it terminated on standard error and exits with 128 + the signal (130, 143); a \
            second signal exits at once.
            """)

    @Option(help: "The problems, one JSON object a line.")
    var problems = defaultProblems

    @OptionGroup var executorOptions: ExecutorOptions

    @Flag(help: "Call the backend directly, with no cassette.")
    var noCassette = false

    @Option(help: "How many executions at once.")
    var concurrency = 8

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(
        help: """
            Also write the report as one self-contained HTML file (a problems x candidates matrix coloured by \
            verdict, each test's expected and actual output, the time of each execution); open it in a browser.
            """)
    var html: String?

    @Flag(name: .shortAndLong, help: "Log requests and retries on standard error.")
    var verbose = false

    func validate() throws {
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if noCassette && (executorOptions.cassette != nil || executorOptions.record != nil) {
            throw ValidationError("--no-cassette excludes --cassette and --record")
        }
        try executorConfiguration.validate()
    }

    /// The options, with the demo cassette unless `--cassette` or `--no-cassette`; replay only unless a live
    /// backend is named.
    var executorConfiguration: ExecutorConfiguration {
        var configuration = executorOptions.configuration(unnamedBackend: .sandboxFusionWhenRecording)
        configuration.cassette = noCassette ? nil : (configuration.cassette ?? Self.defaultCassette)
        return configuration
    }

    func run() async throws {
        let logger = makeCommandLogger(label: "sandbox-vcr.grade", level: verbose ? .debug : .warning)
        let problemList: [GradingProblem]
        do {
            problemList = try GradingProblem.load(contentsOf: URL(fileURLWithPath: problems))
        } catch {
            var message = "\(error)"
            if error.code == .unreadableFile && problems == Self.defaultProblems {
                message +=
                    " (with no --problems, grade reads the demo from the repository root: run it there, "
                    + "or pass --problems FILE)"
            }
            throw commandFailure("grade", message, status: ExitCode.validationFailure)
        }
        let stack: ExecutorStack
        do {
            stack = try await ExecutorStack.make(
                executorConfiguration, environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch let error as ValidationError {
            throw commandFailure("grade", error.message, status: ExitCode.validationFailure)
        } catch {
            throw commandFailure("grade", "\(error)", status: ExitCode(2))  // Cassette, rules file, configuration.
        }
        let interruption = SandboxInterruption.install(command: "grade", stack: stack)
        let (report, recordingError) = await stack.use { executor in
            await Grader(executor: executor, maxConcurrency: concurrency).grade(problemList)
        }
        await interruption?.commandFinished()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.renderTable(), terminator: "")
        }
        if let html {
            do {
                try Data(GradeReportPage.html(report, problems: problemList).utf8)
                    .write(to: URL(fileURLWithPath: html), options: .atomic)
            } catch {
                throw commandFailure(
                    "grade", "could not write the HTML report \(html): \(error.localizedDescription)",
                    status: ExitCode(2))
            }
        }
        if let recordingError {
            throw commandFailure("grade", "the results could not be recorded: \(recordingError)", status: ExitCode(2))
        }
        if !report.expectationsMet || !report.executionErrors.isEmpty { throw ExitCode(1) }
    }
}
