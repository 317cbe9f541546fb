import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTesting

/// What a command executes against, from its options: a live backend, a cassette in front of it, or both.
struct ExecutorConfiguration: Sendable {
    /// What a command does when no option (nor, except in `serve`, `SANDBOX_BACKEND`) names a live backend.
    enum UnnamedBackend: Sendable {
        /// SandboxFusion at `$SANDBOX_URL`, as if named (`run`).
        case sandboxFusion
        /// Replay only by default; SandboxFusion at `$SANDBOX_URL` when the record mode calls for a live backend
        /// (`grade`).
        case sandboxFusionWhenRecording
        /// None, and `SANDBOX_BACKEND` is not read: replay only, and modes that call the live backend for every
        /// request are refused (`serve`: `$SANDBOX_URL` may point at the server itself).
        case none
    }

    var backend: BackendKind?
    /// SandboxFusion URLs; each may list several, separated by commas.
    var urls: [String] = []
    /// The fake executor's rules file.
    var rules: String?
    var cassette: String?
    /// The record mode given on the command line.
    var mode: RecordMode?
    var unnamedBackend: UnnamedBackend
    /// The most requests the SandboxFusion client sends at once, unless `SANDBOX_MAX_CONCURRENCY` says otherwise.
    var clientConcurrency: Int?
    /// Whether a recording mode may go without a live SandboxFusion backend (`serve --modal-port` records Modal
    /// only): the SandboxFusion port then replays and answers misses as such.
    var recordsModalOnly = false

    /// Refuses options that contradict each other.
    ///
    /// - Throws: `ValidationError` saying which options to drop.
    func validate() throws {
        if let backend, backend != .fake, rules != nil {
            throw ValidationError("--rules is for --backend fake, not --backend \(backend)")
        }
        if !urls.isEmpty, let kind = backend ?? (rules == nil ? nil : .fake), kind != .sandboxfusion {
            throw ValidationError("--url names SandboxFusion servers, which --backend \(kind) does not use")
        }
        if mode != nil, cassette == nil {
            throw ValidationError("--record needs --cassette FILE (without a cassette nothing is recorded)")
        }
    }

    /// The live backend the options name (`--backend`, else `--rules`, else `--url`), else `SANDBOX_BACKEND`
    /// (except with ``UnnamedBackend/none``), else `nil`.
    ///
    /// - Throws: `ValidationError` for an unknown `SANDBOX_BACKEND`.
    func namedBackend(environment: [String: String]) throws -> BackendKind? {
        if let backend { return backend }
        if rules != nil { return .fake }
        if !urls.isEmpty { return .sandboxfusion }
        guard unnamedBackend != .none, let name = environment["SANDBOX_BACKEND"], !name.isEmpty else { return nil }
        guard let kind = BackendKind(argument: name) else {
            throw ValidationError("unknown backend \"\(name)\" in SANDBOX_BACKEND; use sandboxfusion, modal or fake")
        }
        return kind
    }
}

/// The executor a command sends its requests to, and what to do when done with it.
struct ExecutorStack: Sendable {
    /// A ``RecordingExecutor`` in front of the live backend when there is a cassette, else the live backend.
    var executor: any SandboxExecutor
    /// The cassette the executor replays from and records into.
    var cassette: Cassette?
    /// What the executor answers from, for a log line.
    var summary: String
    /// The cassette's record mode, when there is a cassette.
    var mode: RecordMode?
    /// The Modal sandbox pool behind the executor, when the live backend is Modal (``SandboxInterruption`` ends its
    /// sandboxes on SIGINT and SIGTERM).
    var modalPool: ModalSandboxPool?

    /// Builds the executor.
    ///
    /// | configuration | executor |
    /// |---|---|
    /// | no cassette | the live backend (none named: see ``ExecutorConfiguration/UnnamedBackend``) |
    /// | a cassette, mode `never` | a ``RecordingExecutor`` replaying the cassette, which must exist and is opened read-only; no live backend is made |
    /// | a cassette, another mode | a ``RecordingExecutor`` recording what the live backend answers (in `serve` without one, `missing` answers misses as such) |
    ///
    /// The mode is `--record`, else `SANDBOX_VCR_RECORD`, else `missing` (`never` with `CI`) when a live backend is
    /// in use (named, or `run`'s default) and `never` when none is. `all` and `live` without a live backend are
    /// refused.
    ///
    /// - Throws: `ValidationError` for what is missing or contradictory; ``CassetteError``, ``FakeRulesError`` or
    ///   ``ExecutionError`` for files and configuration that cannot be read.
    static func make(
        _ configuration: ExecutorConfiguration, environment: [String: String], logger: Logger
    ) async throws -> ExecutorStack {
        let named = try configuration.namedBackend(environment: environment)
        let fallback: BackendKind? = configuration.unnamedBackend == .none ? nil : .sandboxfusion
        guard let path = configuration.cassette else {
            guard let kind = named ?? fallback else {
                throw ValidationError(
                    "serve needs something to answer from: --cassette FILE (replay), --url URL (a proxy), "
                        + "--rules FILE (fake rules) or --backend modal; see `sandbox-vcr serve --help`")
            }
            let live = try makeLiveExecutor(kind, configuration, environment: environment, logger: logger)
            return ExecutorStack(
                executor: live.executor, summary: live.summary, modalPool: live.executor as? ModalSandboxPool)
        }
        // Without a live backend, the default is replay (`never`), whatever `CI` says.
        let replaysByDefault =
            named == nil && configuration.unnamedBackend != .sandboxFusion
            && (environment[RecordMode.environmentVariable] ?? "").isEmpty
        let mode = try configuration.mode ?? (replaysByDefault ? .never : resolvedMode(environment: environment))
        // Only `never` goes without the live backend: `live` and `all` need it, `missing` records through it.
        let liveKind = mode == .never ? nil : named ?? fallback
        if liveKind == nil, mode == .all || mode == .live, !configuration.recordsModalOnly {
            throw ValidationError(
                "--record \(mode) calls the live backend for every request; name one (--url URL, also spelled "
                    + "--upstream; --backend modal; --rules FILE), or replay with --record never")
        }
        let live = try liveKind.map {
            try makeLiveExecutor($0, configuration, environment: environment, logger: logger)
        }
        let cassette = try await Cassette.open(
            at: URL(fileURLWithPath: path), readOnly: mode == .never, create: mode != .never)
        let recording = RecordingExecutor(
            cassette: cassette, mode: live == nil && mode != .never ? .missing : mode, live: live?.executor,
            configuration: RecordingExecutor.Configuration(backendVersion: "sandbox-vcr \(SandboxVCRVersion.current)"))
        var summary = "cassette \(path) (record mode \(mode))"
        if let live { summary += ", live: \(live.summary)" } else if named != nil { summary += ", live backend unused" }
        return ExecutorStack(
            executor: recording, cassette: cassette, summary: summary, mode: mode,
            modalPool: live?.executor as? ModalSandboxPool)
    }

    /// Makes the live backend `kind` from the configuration and the environment.
    /// The mode from `SANDBOX_VCR_RECORD` (and `CI`); one that names no mode is a usage error.
    private static func resolvedMode(environment: [String: String]) throws -> RecordMode {
        do {
            return try RecordMode.resolve(environment: environment)
        } catch let error as ExecutionError {
            throw ValidationError(error.message)
        }
    }

    private static func makeLiveExecutor(
        _ kind: BackendKind, _ configuration: ExecutorConfiguration, environment: [String: String], logger: Logger
    ) throws -> (executor: any SandboxExecutor, summary: String) {
        switch kind {
        case .sandboxfusion:
            var environment = environment
            if !configuration.urls.isEmpty {
                environment["SANDBOX_URL"] = configuration.urls.joined(separator: ",")
                environment["SANDBOX_FUSION_ENDPOINT"] = nil
            }
            var sandboxFusion: SandboxFusionConfiguration
            do {
                sandboxFusion = try SandboxFusionConfiguration.fromEnvironment(environment)
            } catch let error as ExecutionError where !configuration.urls.isEmpty {
                throw ValidationError(
                    "bad --url: \(error.message.replacingOccurrences(of: "SANDBOX_URL", with: "--url"))")
            }
            if let concurrency = configuration.clientConcurrency, environment["SANDBOX_MAX_CONCURRENCY"] == nil {
                sandboxFusion.maxConcurrency = max(1, concurrency)
            }
            let summary = "SandboxFusion at \(sandboxFusion.endpoints.joined(separator: ", "))"
            return (SandboxFusionExecutor(configuration: sandboxFusion, logger: logger), summary)
        case .fake:
            guard let rules = configuration.rules else {
                throw ValidationError("--backend fake needs --rules FILE (a JSON rules file; see README.md)")
            }
            return (try FakeExecutor(rulesFile: URL(fileURLWithPath: rules)), "fake rules \(rules)")
        case .modal:
            do {
                let modal = try ModalConfiguration.fromEnvironment(environment)
                return (ModalSandboxPool(configuration: modal, logger: logger), "Modal")
            } catch let error as ExecutionError {
                throw ValidationError("--backend modal: \(error.message)")
            }
        }
    }

    /// Shuts the executor down (a Modal pool terminates its sandboxes), then commits every recording and closes
    /// the cassette.
    ///
    /// - Throws: the first error of a recording written in the background (disk full, read-only file); the
    ///   cassette is closed either way.
    func finish() async throws {
        await executor.shutdown()
        guard let cassette else { return }
        do {
            try await cassette.flush()
        } catch {
            await cassette.close()
            throw error
        }
        await cassette.close()
    }

    /// Runs `body` with the executor, then ``finish()``es whatever `body` did.
    ///
    /// - Returns: what `body` returned, and the error of ``finish()`` (a recording that could not be written).
    func use<Result>(
        _ body: (any SandboxExecutor) async -> Result
    ) async -> (result: Result, finishError: (any Error)?) {
        let result = await body(executor)
        do {
            try await finish()
            return (result, nil)
        } catch {
            return (result, error)
        }
    }
}
