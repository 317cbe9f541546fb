public import Foundation
internal import Synchronization

/// A ``SandboxExecutor`` that records what a live executor does into a ``Cassette`` and replays it.
///
/// The nth identical request (same key, see ``RequestMatcher``) replays the nth recording; the counter lives
/// in the executor, so each executor (each test) starts from the first recording. Requests and outcomes are
/// redacted before they are written. In `missing` mode a request past its last recording is recorded; in
/// `never` mode the ``ExhaustionPolicy`` decides. Recordings are written in the background, in order (later
/// lookups see them); ``Cassette/flush()`` waits for them and reports a failed write.
///
/// ```swift
/// let cassette = try await Cassette.open(at: url)
/// let executor = RecordingExecutor(cassette: cassette, live: sandboxFusion)  // mode from env, default missing
/// let result = try await executor.execute(ExecutionRequest(code: "print(1)", language: .python))
/// ```
public final class RecordingExecutor: SandboxExecutor {
    /// What a `never`-mode replay does when a request is made more often than it was recorded.
    public struct ExhaustionPolicy: RawRepresentable, Hashable, Sendable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Replay the last recording again (the default).
        public static let repeatLast = ExhaustionPolicy(rawValue: "repeatLast")
        /// Throw a ``CassetteError/Code/exhausted`` error.
        public static let fail = ExhaustionPolicy(rawValue: "fail")
    }

    /// How requests are matched, redacted and recorded.
    public struct Configuration: Sendable {
        /// Which parts of a request count when matching.
        public var matcher: RequestMatcher = .exact
        /// What is removed before writing.
        public var redactor: Redactor = .standard
        /// What happens past the last recording of a request (mode `never`).
        public var exhaustion: ExhaustionPolicy = .repeatLast
        /// Recordings older than this are re-recorded in mode `missing` (`nil`: never expire).
        public var maxAge: Duration?
        /// Record ``ExecutionError``s thrown by the live executor, so replay throws them again. Only failures
        /// about the request are recorded (an HTTP 4xx such as a 422, an undecodable answer); a failure of the
        /// moment (connection refused or reset, timeout, cancellation, HTTP 429/502/503/504) or a fake executor's
        /// missing rule never is, so the next run calls the live executor again.
        public var recordsFailures = true
        /// Stored with each recording, e.g. the server's version.
        public var backendVersion: String?
        /// Stamp `last_replayed_at` on replayed recordings, for `cassette prune --never-replayed`. `nil`: only when
        /// the environment has `SANDBOX_VCR_STAMP_REPLAYS=1`. Off by default, so a run whose calls all replay
        /// leaves committed cassettes byte for byte as they were (`git status` stays clean).
        public var stampsReplays: Bool?

        public init(
            matcher: RequestMatcher = .exact, redactor: Redactor = .standard,
            exhaustion: ExhaustionPolicy = .repeatLast, maxAge: Duration? = nil, recordsFailures: Bool = true,
            backendVersion: String? = nil, stampsReplays: Bool? = nil
        ) {
            self.matcher = matcher
            self.redactor = redactor
            self.exhaustion = exhaustion
            self.maxAge = maxAge
            self.recordsFailures = recordsFailures
            self.backendVersion = backendVersion
            self.stampsReplays = stampsReplays
        }
    }

    /// Counters and usage shared by an executor and its sessions.
    private final class Shared: Sendable {
        struct State {
            var counters: [ContentHash: Int] = [:]
            var used: Set<UsedRecording> = []
        }

        struct UsedRecording: Hashable {
            var key: ContentHash
            var ordinal: Int
        }

        let state = Mutex(State())
        let digests = PartDigestCache()
        let startedAt = Date()
    }

    /// A session's chain: the previous step's key.
    private final class Chain: Sendable {
        let id: String
        let state = Mutex<(step: Int, previous: ContentHash)>((0, ContentHash.sha256(Array("session".utf8))))
        init(id: String) { self.id = id }
    }

    /// The executor a `.cassette` test trait gives the current test.
    @TaskLocal public static var current: RecordingExecutor?

    public let cassette: Cassette
    public let mode: RecordMode
    /// The live executor: the one given, or the one the factory made (`nil` until a call needed it).
    public var live: (any SandboxExecutor)? { liveSource.madeExecutor }
    public let configuration: Configuration
    /// Where the live executor comes from: given, or made on the first call that needs it.
    private let liveSource: LiveSource
    private let shared: Shared
    private let chain: Chain?
    /// Why the mode could not be resolved (`SANDBOX_VCR_RECORD` names no mode), if so.
    private let modeError: ExecutionError?

    /// - Parameters:
    ///   - cassette: where recordings live.
    ///   - mode: the record mode; `nil` resolves it (task-local, `SANDBOX_VCR_RECORD`, default).
    ///   - live: the executor to call when recording; may be `nil` for `never`.
    ///   - configuration: matching, redaction, exhaustion and expiry.
    public convenience init(
        cassette: Cassette, mode: RecordMode? = nil, live: (any SandboxExecutor)? = nil,
        configuration: Configuration = Configuration()
    ) {
        self.init(cassette: cassette, mode: mode, liveSource: LiveSource(executor: live), configuration: configuration)
    }

    /// A recording executor whose live executor is made only when a call needs one (a miss to record, mode `all` or
    /// `live`), by `makeLive`, at most once. A replay that hits every time never makes it, so a test needs no live
    /// configuration to replay; a factory that throws makes those calls fail with its error (nothing crashes).
    ///
    /// - Parameters:
    ///   - cassette: where recordings live.
    ///   - mode: the record mode; `nil` resolves it (task-local, `SANDBOX_VCR_RECORD`, default).
    ///   - makeLive: makes the executor to call when recording; `nil` from it means there is none.
    ///   - configuration: matching, redaction, exhaustion and expiry.
    public convenience init(
        cassette: Cassette, mode: RecordMode? = nil,
        makeLive: @escaping @Sendable () throws -> (any SandboxExecutor)?,
        configuration: Configuration = Configuration()
    ) {
        self.init(cassette: cassette, mode: mode, liveSource: LiveSource(makeLive), configuration: configuration)
    }

    private init(cassette: Cassette, mode: RecordMode?, liveSource: LiveSource, configuration: Configuration) {
        self.cassette = cassette
        do {
            self.mode = try RecordMode.resolve(mode)
            self.modeError = nil
        } catch {
            // Every call reports the bad setting (an init that cannot throw must not pick a mode silently).
            self.mode = .never
            self.modeError = error as? ExecutionError
        }
        self.liveSource = liveSource
        self.configuration = configuration
        self.shared = Shared()
        self.chain = nil
    }

    private init(parent: RecordingExecutor, chain: Chain) {
        cassette = parent.cassette
        mode = parent.mode
        modeError = parent.modeError
        liveSource = parent.liveSource
        configuration = parent.configuration
        shared = parent.shared
        self.chain = chain
    }

    /// An executor for one stateful session: step k's key is `hash(key of step k-1, key of request k)`, so a
    /// step matches only after the same earlier steps. Use it for one sequence of calls at a time.
    public func session(id: String = UUID().uuidString) -> RecordingExecutor {
        RecordingExecutor(parent: self, chain: Chain(id: id))
    }

    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        try await outcome(of: request).result.get()
    }

    /// Replays, records, passes through or misses, as the mode says, and tells which it did.
    ///
    /// A recording is answered only once it is committed to the cassette; a failed write is this call's error.
    public func outcome(of request: ExecutionRequest) async -> ExecutionOutcome {
        if let modeError { return ExecutionOutcome(source: .error, result: .failure(modeError)) }
        if mode == .live {
            return await callLive(request, key: nil, recording: nil)
        }
        var key = configuration.matcher.key(for: request, cache: shared.digests)
        var step: Int?
        if let chain {
            (key, step) = chain.state.withLock { state in
                let chained = RequestMatcher.chainedKey(previous: state.previous, current: key)
                defer {
                    state.previous = chained
                    state.step += 1
                }
                return (chained, state.step)
            }
        }
        let ordinal = shared.state.withLock { state in
            let ordinal = state.counters[key, default: 0]
            state.counters[key] = ordinal + 1
            return ordinal
        }
        let slot = Slot(key: key, ordinal: ordinal, step: step)
        do {
            switch mode {
            case .all:
                return await callLive(request, key: key, recording: slot)
            case .missing:
                if let recording = try cassette.recording(key: key, ordinal: ordinal, orLast: false) {
                    let age = Date().timeIntervalSince1970 - recording.recordedAt
                    if let maxAge = configuration.maxAge, age > maxAge.inSeconds {
                        return await callLive(request, key: key, recording: slot)
                    }
                    return replay(recording, key: key)
                }
                guard liveSource.mayHaveExecutor else {
                    if try cassette.recording(key: key, ordinal: ordinal, orLast: true) == nil {
                        shared.state.withLock { _ = $0.counters.removeValue(forKey: key) }
                    }
                    throw try await missError(request, noLive: true)
                }
                return await callLive(request, key: key, recording: slot)
            default:
                let repeatsLast = configuration.exhaustion == .repeatLast
                if let recording = try cassette.recording(key: key, ordinal: ordinal, orLast: repeatsLast) {
                    return replay(recording, key: key)
                }
                if ordinal > 0, try cassette.recording(key: key, ordinal: ordinal, orLast: true) != nil {
                    throw CassetteError(
                        code: .exhausted,
                        message: "request made \(ordinal + 1) times but recorded only \(ordinal) time(s) in "
                            + "cassette \(cassette.path) (record mode `\(mode)`, exhaustion policy `fail`): "
                            + "\(request.summary). Re-record with SANDBOX_VCR_RECORD=all, or use the exhaustion "
                            + "policy `repeatLast`",
                        path: cassette.path)
                }
                // Nothing will ever be recorded under this key here: forget its count, so that distinct misses
                // (every new program a grader sends) do not add up in memory over a long replay.
                shared.state.withLock { _ = $0.counters.removeValue(forKey: key) }
                throw try await missError(request)
            }
        } catch let error as CassetteError where error.code == .miss || error.code == .exhausted {
            return ExecutionOutcome(source: .miss, result: .failure(error), key: key)
        } catch {
            return ExecutionOutcome(source: .error, result: .failure(error), key: key)
        }
    }

    /// Where a recording goes: its key, ordinal and session step.
    private struct Slot {
        var key: ContentHash
        var ordinal: Int
        var step: Int?
    }

    /// `SANDBOX_VCR_STAMP_REPLAYS=1`: stamp replays when the configuration does not say.
    private static let environmentStampsReplays =
        ProcessInfo.processInfo.environment["SANDBOX_VCR_STAMP_REPLAYS"] == "1"

    private func replay(_ recording: CassetteDatabase.Recording, key: ContentHash) -> ExecutionOutcome {
        if configuration.stampsReplays ?? Self.environmentStampsReplays { cassette.markReplayed(recording.id) }
        noteUse(key: key, ordinal: recording.ordinal)
        switch recording.outcome {
        case .result(let result): return ExecutionOutcome(source: .hit, result: .success(result), key: key)
        case .failure(let error): return ExecutionOutcome(source: .hit, result: .failure(error), key: key)
        }
    }

    /// Calls the live executor and, with a slot, records what it answered (a recordable failure too) before
    /// answering.
    private func callLive(_ request: ExecutionRequest, key: ContentHash?, recording slot: Slot?) async
        -> ExecutionOutcome
    {
        let made: (any SandboxExecutor)?
        do {
            made = try liveSource.executor()
        } catch {
            let failure = ExecutionError(
                code: .configuration,
                message: "the live executor could not be made to run \(request.summary): \(error); fix its "
                    + "configuration, or replay with SANDBOX_VCR_RECORD=never")
            return ExecutionOutcome(source: .error, result: .failure(failure), key: key)
        }
        guard let live = made else {
            let error = ExecutionError(
                code: .configuration,
                message: "record mode `\(mode)` needs a live executor to run \(request.summary), and none was "
                    + "given; pass `live:` to the RecordingExecutor (or the .cassette trait), or replay with "
                    + "SANDBOX_VCR_RECORD=never")
            return ExecutionOutcome(source: .error, result: .failure(error), key: key)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let outcome: Cassette.Outcome
        do {
            outcome = .result(try await live.execute(request))
        } catch let error as ExecutionError where slot != nil && configuration.recordsFailures && error.isRecordable {
            outcome = .failure(error)
        } catch {
            return ExecutionOutcome(source: .error, result: .failure(error), key: key, liveDuration: clock.now - start)
        }
        let elapsed = clock.now - start
        let result: Result<ExecutionResult, any Error> =
            switch outcome {
            case .result(let result): .success(result)
            case .failure(let error): .failure(error)
            }
        guard let slot else { return ExecutionOutcome(source: .live, result: result, liveDuration: elapsed) }
        let redactor = configuration.redactor
        let interaction = Cassette.NewInteraction(
            key: slot.key, ordinal: slot.ordinal, session: chain?.id, step: slot.step,
            backendVersion: configuration.backendVersion, request: redactor.redact(request),
            outcome: redactor.redact(outcome), recordedAt: Date(), duration: elapsed.inSeconds)
        do {
            // Mode `all` replaces earlier runs' recordings of the key when it records the key's first repetition;
            // the later repetitions of this run then find none left to delete.
            try await cassette.record(
                [interaction], replacingOlderThan: mode == .all && slot.ordinal == 0 ? shared.startedAt : nil)
        } catch {
            return ExecutionOutcome(source: .error, result: .failure(error), key: slot.key, liveDuration: elapsed)
        }
        noteUse(key: slot.key, ordinal: slot.ordinal)
        return ExecutionOutcome(source: .recorded, result: result, key: slot.key, liveDuration: elapsed)
    }

    /// How many keys the executor counts repetitions of, and how many recordings it noted as used (tests check that
    /// both stay bounded by the cassette over a long replay).
    package var trackedCounts: (keys: Int, used: Int) {
        shared.state.withLock { ($0.counters.count, $0.used.count) }
    }

    /// Notes a recording replayed or recorded (for the unused report). Only recordings that exist are noted, so the
    /// set stays as small as the cassette however many requests repeat one (`repeatLast`) or miss.
    private func noteUse(key: ContentHash, ordinal: Int) {
        shared.state.withLock { _ = $0.used.insert(.init(key: key, ordinal: ordinal)) }
    }

    private func missError(_ request: ExecutionRequest, noLive: Bool = false) async throws -> CassetteError {
        let redacted = configuration.redactor.redact(request)
        let candidates = try await cassette.candidates(like: redacted, limit: 20)
        let count = try await cassette.count()
        // Ranked once: each ranking diffs every candidate.
        let ranked = MissDiagnostics.nearest(candidates, to: redacted)
        var message = MissDiagnostics.message(
            request: redacted, mode: mode, path: cassette.path, ranked: ranked, recordingCount: count)
        if noLive { message += "\n(Mode `missing` would record it, but no live executor was given.)" }
        var error = CassetteError(code: .miss, message: message, path: cassette.path)
        error.nearest = ranked.map(\.0)
        return error
    }

    /// Recordings in the cassette this executor never replayed or recorded (for a test's "unused" summary).
    public func unusedRecordings() async throws -> [Cassette.Interaction] {
        let used = shared.state.withLock { $0.used }
        let unused = try await cassette.index().filter { !used.contains(.init(key: $0.key, ordinal: $0.ordinal)) }
        return try await cassette.interactions(ids: unused.map(\.id))
    }

    /// The ids of the cassette's recordings this executor replayed or recorded, and of the others, from one scan of
    /// the index (`serve --control` reports them).
    ///
    /// - Parameter excludingSessions: leave out the steps of sessions (e.g. Modal sandboxes, which serve's Modal port
    ///   replays, not this executor).
    public func recordingUsage(excludingSessions: Bool = false) async throws -> (used: [Int64], unused: [Int64]) {
        let used = shared.state.withLock { $0.used }
        var usage: (used: [Int64], unused: [Int64]) = ([], [])
        for entry in try await cassette.index() where !(excludingSessions && entry.inSession) {
            if used.contains(.init(key: entry.key, ordinal: entry.ordinal)) {
                usage.used.append(entry.id)
            } else {
                usage.unused.append(entry.id)
            }
        }
        return usage
    }
}

extension ExecutionError {
    /// Whether the failure says something about the request (and so replays the same), not about the
    /// connection or the server's state at that moment.
    fileprivate var isRecordable: Bool {
        switch code {
        case .connectionRefused, .connectionReset, .timedOut, .transport, .cancelled, .configuration: false
        case .unmatchedRequest: false  // A fake executor missing a rule: fix the rules, then record.
        case .httpStatus: ![429, 502, 503, 504].contains(httpStatus ?? 0)
        default: true
        }
    }
}

/// Where a ``RecordingExecutor``'s live executor comes from: given, or made once by a factory on first need.
private final class LiveSource: Sendable {
    private enum State {
        case made((any SandboxExecutor)?)
        case factory(@Sendable () throws -> (any SandboxExecutor)?)
        case failed(any Error)
    }

    private let state: Mutex<State>

    init(executor: (any SandboxExecutor)?) { state = Mutex(.made(executor)) }
    init(_ factory: @escaping @Sendable () throws -> (any SandboxExecutor)?) { state = Mutex(.factory(factory)) }

    /// The executor if it exists now (given, or already made); never calls the factory.
    var madeExecutor: (any SandboxExecutor)? {
        state.withLock { if case .made(let executor) = $0 { executor } else { nil } }
    }

    /// Whether a call could get an executor: one was given, or a factory may make one.
    var mayHaveExecutor: Bool {
        state.withLock {
            switch $0 {
            case .made(let executor): executor != nil
            case .factory, .failed: true
            }
        }
    }

    /// The executor, made now by the factory if needed (once: a failure is remembered and thrown again).
    func executor() throws -> (any SandboxExecutor)? {
        try state.withLock { state in
            switch state {
            case .made(let executor):
                return executor
            case .failed(let error):
                throw error
            case .factory(let make):
                do {
                    let executor = try make()
                    state = .made(executor)
                    return executor
                } catch {
                    state = .failed(error)
                    throw error
                }
            }
        }
    }
}
