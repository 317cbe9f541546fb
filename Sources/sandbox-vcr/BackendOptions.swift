import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTesting

/// The options that choose a live backend, shared by `run`, `grade` and `serve`.
struct BackendOptions: ParsableArguments {
    @Option(
        help:
            "The live backend: sandboxfusion (default), modal (MODAL_* credentials) or fake (with --rules). Default: $SANDBOX_BACKEND."
    )
    var backend: String?

    @Option(
        name: .customLong("url"),
        help: "A SandboxFusion URL (repeat, or separate with commas, for several). Default: $SANDBOX_URL.")
    var urls: [String] = []

    @Option(help: "The fake executor's rules file (JSON), for --backend fake.")
    var rules: String?

    /// Whether the user chose a live backend explicitly (flag, URL or environment).
    func choosesLiveBackend(environment: [String: String]) -> Bool {
        backend != nil || !urls.isEmpty || rules != nil || !(environment["SANDBOX_BACKEND"] ?? "").isEmpty
    }

    /// The backend's name, from the flag, then `SANDBOX_BACKEND`, then `sandboxfusion`.
    func backendName(environment: [String: String]) -> String {
        if let backend { return backend.lowercased() }
        if let name = environment["SANDBOX_BACKEND"], !name.isEmpty { return name.lowercased() }
        return rules != nil ? "fake" : "sandboxfusion"
    }

    /// Makes the live executor.
    ///
    /// - Throws: `ValidationError` naming what is missing or unknown.
    func makeLiveExecutor(environment: [String: String], logger: Logger) throws -> any SandboxExecutor {
        switch backendName(environment: environment) {
        case "sandboxfusion", "sandbox-fusion", "sandbox_fusion":
            var configuration = try SandboxFusionConfiguration.fromEnvironment(environment)
            if !urls.isEmpty {
                var overridden = environment
                overridden["SANDBOX_URL"] = urls.joined(separator: ",")
                overridden["SANDBOX_FUSION_ENDPOINT"] = nil
                configuration = try SandboxFusionConfiguration.fromEnvironment(overridden)
            }
            return SandboxFusionExecutor(configuration: configuration, logger: logger)
        case "fake":
            guard let rules else {
                throw ValidationError("--backend fake needs --rules FILE (a JSON rules file; see README.md)")
            }
            return try FakeExecutor(rulesFile: URL(fileURLWithPath: rules))
        case "modal":
            let configuration: ModalConfiguration
            do {
                configuration = try ModalConfiguration.fromEnvironment(environment)
            } catch let error as ExecutionError {
                throw ValidationError("--backend modal: \(error.message)")
            }
            return ModalSandboxPool(configuration: configuration, logger: logger)
        case let other:
            throw ValidationError("unknown backend \"\(other)\"; use sandboxfusion, modal or fake")
        }
    }
}

/// The options that put a cassette in front of the backend.
struct CassetteOptions: ParsableArguments {
    @Option(help: "A cassette file to replay from and record into.")
    var cassette: String?

    @Option(
        help: "Record mode: never, missing, all or live. Default: $SANDBOX_VCR_RECORD, else missing (never with $CI).")
    var record: String?

    func explicitMode() throws -> RecordMode? {
        guard let record else { return nil }
        guard let mode = RecordMode(record) else {
            throw ValidationError("unknown --record \(record); use never, missing, all or live")
        }
        return mode
    }
}

/// An executor stack built from the options, and what to do when done with it.
struct ExecutorStack: Sendable {
    var executor: any SandboxExecutor
    var recording: RecordingExecutor?
    var cassette: Cassette?

    /// Terminates a Modal pool's sandboxes, commits every recording, then closes the cassette.
    ///
    /// - Throws: the first error of a recording written in the background (disk full, read-only file); the
    ///   cassette is closed either way.
    func finish() async throws {
        if let pool = (executor as? ModalSandboxPool) ?? (recording?.live as? ModalSandboxPool) {
            await pool.terminate()
        }
        guard let cassette else { return }
        do {
            try await cassette.flush()
        } catch {
            await cassette.close()
            throw error
        }
        await cassette.close()
    }

    /// Builds a live executor, wrapped in a recording executor when a cassette is given.
    ///
    /// In `never` mode no live executor is made at all, so replays need no backend and no configuration.
    static func make(
        backend: BackendOptions, cassettePath: String?, mode explicitMode: RecordMode?,
        environment: [String: String], logger: Logger
    ) async throws -> ExecutorStack {
        guard let cassettePath else {
            return ExecutorStack(
                executor: try backend.makeLiveExecutor(environment: environment, logger: logger))
        }
        let mode = RecordMode.resolve(explicitMode, environment: environment)
        let cassette = try await Cassette.open(
            at: URL(fileURLWithPath: cassettePath), readOnly: mode == .never, create: mode != .never)
        let live: (any SandboxExecutor)? =
            mode == .never ? nil : try backend.makeLiveExecutor(environment: environment, logger: logger)
        let recording = RecordingExecutor(
            cassette: cassette, mode: mode, live: live,
            configuration: RecordingExecutor.Configuration(backendVersion: "sandbox-vcr \(SandboxVCRVersion.current)"))
        return ExecutorStack(executor: recording, recording: recording, cassette: cassette)
    }
}

/// Logging for the command line: warnings and errors on standard error, or more with `--verbose`.
func makeCommandLogger(label: String, verbose: Bool) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = verbose ? .debug : .warning
        return handler
    }
    return Logger(label: label)
}
