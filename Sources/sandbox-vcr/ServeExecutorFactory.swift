import ArgumentParser
import Foundation
import Logging
import SandboxVCR
import SandboxVCRServer
import SandboxVCRTesting

/// The executor options of `sandbox-vcr serve`, as parsed.
struct ServeExecutorOptions: Sendable {
    var cassette: String?
    var record: String?
    var upstreams: [String]
    var fake: String?
    /// Test mode: answer every request with success and stdout = stdin.
    var echo: Bool
    /// The most upstream calls at once (the server's `--max-concurrency`).
    var maxConcurrency = 64
}

/// What the server answers from: the executor, how to describe outcomes, and what to do at shutdown.
struct ServeBackend: Sendable {
    var executor: any SandboxExecutor
    /// Called after the last request was answered (flush and close a cassette here).
    var shutdown: @Sendable () async throws -> Void
    /// One line for the log: what the server answers from.
    var summary: String
}

/// Builds the backend from the options.
///
/// | options | executor |
/// |---|---|
/// | `--upstream URL…` | a proxy: ``SandboxFusionExecutor`` over the URLs, nothing recorded |
/// | `--fake RULES.json` | ``FakeExecutor`` from the rules file |
/// | `--cassette PATH [--record MODE]` | ``RecordingExecutor`` replaying the cassette, with no live executor |
/// | `--cassette PATH [--record MODE] --upstream URL…` or `--fake RULES.json` | ``RecordingExecutor`` recording what the upstream (or the fake) answers |
///
/// The mode is `--record`, else `SANDBOX_VCR_RECORD`, else `missing` (`never` with `CI`) when there is an upstream
/// or a fake, and `never` without one. Without a live executor, `missing` is allowed (a request that is not in the
/// cassette is answered as a miss, whose message says no live executor was given); `all` and `live` are refused.
/// In `never` mode the cassette must exist and is opened read-only, and no live executor is made.
///
/// - Throws: `ValidationError` for impossible combinations; ``CassetteError`` or ``FakeRulesError`` for files
///   that cannot be read.
func makeServeBackend(
    options: ServeExecutorOptions, environment: [String: String], logger: Logger
) async throws -> ServeBackend {
    if options.echo {
        guard options.cassette == nil, options.upstreams.isEmpty, options.fake == nil, options.record == nil else {
            throw ValidationError("--echo answers by itself; drop --cassette, --record, --upstream and --fake")
        }
        return ServeBackend(executor: EchoExecutor(), shutdown: {}, summary: "echo")
    }
    if !options.upstreams.isEmpty, options.fake != nil {
        throw ValidationError(
            "--upstream and --fake both give the live answers; use one (the fake for edge cases, the upstream to record)"
        )
    }
    let explicitMode: RecordMode?
    if let record = options.record {
        guard let mode = RecordMode(record) else {
            throw ValidationError("unknown --record \(record); use never, missing, all or live")
        }
        explicitMode = mode
    } else {
        explicitMode = nil
    }
    guard let cassettePath = options.cassette else {
        if options.record != nil {
            throw ValidationError("--record needs --cassette PATH (the file to replay from and record into)")
        }
        guard let live = try makeServeLiveExecutor(options: options, environment: environment, logger: logger) else {
            throw ValidationError(
                "serve needs something to answer from: --cassette PATH (replay), --upstream URL (proxy) or "
                    + "--fake RULES.json (fake rules); see `sandbox-vcr serve --help`")
        }
        let summary = options.fake.map { "fake rules \($0)" } ?? "upstream \(options.upstreams.joined(separator: ", "))"
        return ServeBackend(executor: live.executor, shutdown: {}, summary: summary)
    }

    let hasLive = !options.upstreams.isEmpty || options.fake != nil
    let mode: RecordMode =
        hasLive
        ? RecordMode.resolve(explicitMode, environment: environment)
        : explicitMode ?? environment[RecordMode.environmentVariable].flatMap(RecordMode.init) ?? .never
    if !hasLive, mode == .all || mode == .live {
        throw ValidationError(
            "--record \(mode) calls the live executor for every request; add --upstream URL or --fake RULES.json, "
                + "or replay with --record never")
    }
    // Only `never` skips the live executor: `live` and `all` need it, `missing` records through it.
    let live =
        mode == .never ? nil : try makeServeLiveExecutor(options: options, environment: environment, logger: logger)
    let cassette = try await Cassette.open(
        at: URL(fileURLWithPath: cassettePath), readOnly: mode == .never, create: mode != .never)
    let recording = RecordingExecutor(
        cassette: cassette, mode: mode, live: live?.executor,
        configuration: RecordingExecutor.Configuration(backendVersion: "sandbox-vcr \(SandboxVCRVersion.current)"))
    var summary = "cassette \(cassettePath) (record mode \(mode))"
    if let live { summary += ", live: \(live.summary)" } else if hasLive { summary += ", live executor unused" }
    return ServeBackend(
        executor: recording,
        shutdown: {
            // Commit every recording before the process exits; close even when a write failed.
            do {
                try await cassette.flush()
            } catch {
                await cassette.close()
                throw error
            }
            await cassette.close()
        },
        summary: summary)
}

/// The live executor chosen by `--upstream` or `--fake`, or `nil` when neither was given.
private func makeServeLiveExecutor(
    options: ServeExecutorOptions, environment: [String: String], logger: Logger
) throws -> (executor: any SandboxExecutor, summary: String)? {
    if let fake = options.fake {
        return (try FakeExecutor(rulesFile: URL(fileURLWithPath: fake)), "fake rules \(fake)")
    }
    guard !options.upstreams.isEmpty else { return nil }
    let urls = options.upstreams.flatMap { $0.split(separator: ",").map(String.init) }
    var upstreamEnvironment = environment
    upstreamEnvironment["SANDBOX_URL"] = urls.joined(separator: ",")
    upstreamEnvironment["SANDBOX_FUSION_ENDPOINT"] = nil
    var configuration: SandboxFusionConfiguration
    do {
        configuration = try SandboxFusionConfiguration.fromEnvironment(upstreamEnvironment)
    } catch let error as ExecutionError {
        throw ValidationError(
            "bad --upstream: \(error.message.replacingOccurrences(of: "SANDBOX_URL", with: "--upstream"))")
    }
    // The server already limits executor calls; let the client carry as many (unless the environment says less).
    if environment["SANDBOX_MAX_CONCURRENCY"] == nil { configuration.maxConcurrency = max(1, options.maxConcurrency) }
    return (
        SandboxFusionExecutor(configuration: configuration, logger: logger),
        "upstream \(configuration.endpoints.joined(separator: ", "))"
    )
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
