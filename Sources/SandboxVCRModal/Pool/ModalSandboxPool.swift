public import Foundation
public import Logging
public import SandboxVCR
import Synchronization

/// A warm pool of Modal sandboxes that runs each piece of work in a fresh sandbox, then retires it.
///
/// At most ``ModalConfiguration/poolSize`` sandboxes are alive at once (warm or in use), at most
/// ``ModalConfiguration/creationRateLimit`` are created per second, and each sandbox serves one use and is then
/// terminated; a replacement is warmed in the background. It is a ``SandboxExecutor``: a source-code request runs
/// as a file plus its interpreter (or compiler, reported as the `compile` step), a command request runs its argv,
/// so any grader runs on Modal unchanged. A request whose sandbox dies under it runs again in a fresh one (at most
/// ``sandboxRetries`` times; a timed-out program is a result, never retried).
///
/// ```swift
/// let pool = ModalSandboxPool(configuration: try .fromEnvironment(ProcessInfo.processInfo.environment))
/// let result = try await pool.execute(ExecutionRequest(code: "print(1)", language: .python))
/// await pool.terminate()
/// ```
public final class ModalSandboxPool: SandboxExecutor {
    private enum Lease {
        case sandbox(ModalSandbox)
        case create
    }

    private struct State {
        var alive = 0
        var warm: [ModalSandbox] = []
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Lease, any Error>)] = []
        var nextWaiterID: UInt64 = 0
        var inFlight = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var terminating = false
        var limiter: CreationRateLimiter
        /// Every sandbox created and not yet retired (warm or in use), by id.
        var live: [String: ModalSandbox] = [:]
        /// Sandbox creations under way.
        var creating = 0
        var creationWaiters: [CheckedContinuation<Void, Never>] = []
        /// What ``terminateNow(grace:)`` did so far, and how many sandboxes it set out to terminate.
        var interrupted = Termination()
        var interruptTargets = 0
    }

    /// What ``terminateNow(grace:)`` did.
    public struct Termination: Hashable, Sendable {
        /// Sandboxes Modal confirmed terminated.
        public var terminated = 0
        /// Sandboxes whose end was not confirmed (a failed call, or the grace period ran out): they end at their
        /// own timeout (``ModalSandbox/Options/timeout``).
        public var unconfirmed = 0
    }

    public let configuration: ModalConfiguration
    /// How each sandbox is made.
    public let sandboxOptions: ModalSandbox.Options
    /// The cap on each output stream of a run.
    public let maxOutputBytes: Int
    /// Whether retired sandboxes are replaced by warm ones in the background.
    public let keepsWarm: Bool
    /// How many times a request whose sandbox died under it runs again in a fresh sandbox.
    public let sandboxRetries: Int
    private let client: ModalClient
    private let state: Mutex<State>
    private let logger: Logger
    private let clock = ContinuousClock()
    private let epoch: ContinuousClock.Instant

    /// - Parameters:
    ///   - configuration: credentials, server, pool size and creation rate.
    ///   - sandboxOptions: app, image and lifetime of each sandbox (default lifetime 1200 s).
    ///   - maxOutputBytes: the cap on each output stream (default 128 KiB).
    ///   - keepsWarm: replace each retired sandbox with a warm one in the background (default `true`).
    ///   - sandboxRetries: how many times a request whose sandbox died under it
    ///     (``ExecutionError/Code/sandboxTerminated``) runs again in a fresh sandbox (default 1; not once the pool
    ///     is terminating, nor after the sandbox's lifetime).
    ///   - logger: sandbox creations and failures; never credentials.
    public init(
        configuration: ModalConfiguration, sandboxOptions: ModalSandbox.Options = .init(timeout: .seconds(1200)),
        maxOutputBytes: Int = ModalSandbox.defaultMaxOutputBytes, keepsWarm: Bool = true, sandboxRetries: Int = 1,
        logger: Logger = Logger(label: "sandbox-vcr.modal")
    ) {
        self.configuration = configuration
        self.sandboxOptions = sandboxOptions
        self.maxOutputBytes = maxOutputBytes
        self.keepsWarm = keepsWarm
        self.sandboxRetries = max(0, sandboxRetries)
        self.logger = logger
        self.client = ModalClient(configuration: configuration, logger: logger)
        self.state = Mutex(State(limiter: CreationRateLimiter(ratePerSecond: configuration.creationRateLimit)))
        self.epoch = clock.now
    }

    // MARK: Work

    /// Runs `command` (`bash -lc`) in a fresh `/workspace/<id>` folder of a fresh sandbox holding `files`.
    ///
    /// - Parameters:
    ///   - files: files to write first, by path relative to the folder.
    ///   - command: the shell command.
    ///   - timeout: how long the command may run.
    ///   - stdin: bytes for its standard input.
    /// - Throws: ``ExecutionError`` (``ExecutionError/Code/sandboxTerminated`` when the sandbox of every try died,
    ///   ``ExecutionError/Code/cancelled`` once the pool is terminating).
    public func runInWorkdir(
        files: [String: Data] = [:], command: String, timeout: Duration = .seconds(60), stdin: Data = Data()
    ) async throws -> ModalCommandResult {
        try await withRetriedSandbox { sandbox, workdir in
            try await Self.prepare(sandbox, workdir: workdir, files: files)
            return try await sandbox.runCommand(
                command, workdir: workdir, timeout: timeout, maxOutputBytes: maxOutputBytes, stdin: stdin)
        }
    }

    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        var files = request.files
        let compileCommand: String?
        let runCommand: String
        var workdirOverride: String?
        switch request.program {
        case .source(let language, let code):
            guard let runner = ModalLanguageRunner.runner(for: language) else {
                throw ExecutionError(
                    code: .unsupportedRequest,
                    message: "the Modal backend cannot run \(language) code; it runs "
                        + ModalLanguageRunner.supported.map(\.rawValue).joined(separator: ", ")
                        + " (or send a command request)")
            }
            files[runner.fileName] = Data(code.utf8)
            compileCommand = runner.compile
            runCommand = runner.run
        case .command(let argv, let workdir):
            guard !argv.isEmpty else {
                throw ExecutionError(code: .unsupportedRequest, message: "a command request needs a non-empty argv")
            }
            compileCommand = nil
            runCommand = argv.map(shellQuoted).joined(separator: " ")
            workdirOverride = workdir
        }
        let cap = maxOutputBytes
        let (files_, workdirOverride_) = (files, workdirOverride)
        return try await withRetriedSandbox { sandbox, freshFolder in
            let files = files_
            let workdirOverride = workdirOverride_
            let workdir = workdirOverride ?? freshFolder
            try await Self.prepare(sandbox, workdir: workdir, files: files)
            var hints: Set<ResultHint> = []
            var compile: CommandOutcome?
            if let compileCommand {
                let result = try await sandbox.runCommand(
                    compileCommand, workdir: workdir, timeout: request.compileTimeout, maxOutputBytes: cap)
                compile = Self.outcome(result, step: .compile, cap: cap, hints: &hints)
                if result.exitCode != 0 {
                    return ExecutionResult(
                        status: ExecutionResult.derivedStatus(compile: compile, run: nil), compile: compile,
                        backend: .modal, hints: hints)
                }
            }
            // A memory limit becomes a virtual-memory ulimit of the run's shell.
            let limited =
                request.memoryLimitMB.map { "ulimit -v \($0 * 1024) 2>/dev/null; " + runCommand } ?? runCommand
            let result = try await sandbox.runCommand(
                limited, workdir: workdir, timeout: request.runTimeout, maxOutputBytes: cap, stdin: request.stdin)
            let run = Self.outcome(result, step: .run, cap: cap, hints: &hints)
            var fetched: [String: Data] = [:]
            for path in request.fetchFiles.sorted() {
                let full = path.hasPrefix("/") ? path : workdir + "/" + path
                if let data = try? await sandbox.readFile(full) { fetched[path] = data }
            }
            return ExecutionResult(
                status: ExecutionResult.derivedStatus(compile: compile, run: run), compile: compile, run: run,
                files: fetched, backend: .modal, hints: hints)
        }
    }

    /// A step's outcome from a command result, with hints for cut output and signals.
    static func outcome(
        _ result: ModalCommandResult, step: ResultHint.Step, cap: Int, hints: inout Set<ResultHint>
    ) -> CommandOutcome {
        if result.stdoutDroppedBytes > 0 {
            hints.insert(.outputPossiblyTruncated(step: step, stream: .stdout, limit: cap))
        }
        if result.stderrDroppedBytes > 0 {
            hints.insert(.outputPossiblyTruncated(step: step, stream: .stderr, limit: cap))
        }
        if let signal = result.signal, !result.timedOut { hints.insert(.killedBySignal(step: step, signal: signal)) }
        return CommandOutcome(
            status: result.timedOut ? .timeLimitExceeded : .finished, exitCode: result.exitCode,
            signal: result.timedOut ? nil : result.signal, stdout: result.stdout, stderr: result.stderr,
            wallTime: result.duration)
    }

    /// Makes the folder and writes the files (relative paths inside it).
    static func prepare(_ sandbox: ModalSandbox, workdir: String, files: [String: Data]) async throws {
        if files.isEmpty {
            let made = try await sandbox.runCommand("mkdir -p -- \(shellQuoted(workdir))", timeout: .seconds(60))
            guard made.exitCode == 0 else {
                throw ExecutionError(
                    code: .sandboxError, message: "cannot make \(workdir) in the Modal sandbox: \(made.stderrText)")
            }
            return
        }
        for (path, content) in files.sorted(by: { $0.key < $1.key }) {
            guard !path.split(separator: "/").contains("..") else {
                throw ExecutionError(code: .unsupportedRequest, message: "file path \(path) leaves the run's folder")
            }
            let full = path.hasPrefix("/") ? path : workdir + "/" + path
            try await sandbox.writeFile(full, content: content)
        }
    }

    /// Runs `body` as ``withSandbox(_:)`` does, again in a fresh sandbox when the sandbox died under it (at most
    /// ``sandboxRetries`` times; not once the pool is terminating, nor when the sandbox outlived its lifetime).
    private func withRetriedSandbox<T: Sendable>(
        _ body: @Sendable (ModalSandbox, String) async throws -> T
    ) async throws -> T {
        var retries = 0
        while true {
            let began = clock.now
            do {
                return try await withSandbox(body)
            } catch let error as ExecutionError where error.code == .sandboxTerminated {
                let retryable =
                    retries < sandboxRetries && !Task.isCancelled && !state.withLock(\.terminating)
                    && clock.now - began < sandboxOptions.timeout
                guard retryable else { throw error }
                retries += 1
                logger.warning(
                    "a Modal sandbox died during a request; running it again in a fresh sandbox",
                    metadata: ["retry": "\(retries) of \(sandboxRetries)", "error": "\(error)"])
            }
        }
    }

    /// Runs `body` with a fresh sandbox and a fresh `/workspace/<id>` folder name, then retires the sandbox.
    private func withSandbox<T: Sendable>(
        _ body: @Sendable (ModalSandbox, String) async throws -> T
    ) async throws -> T {
        try enter()
        defer { leave() }
        let sandbox = try await acquire()
        let workdir = "/workspace/" + UUID().uuidString.lowercased().prefix(12)
        do {
            let result = try await body(sandbox, workdir)
            await retire(sandbox)
            return result
        } catch {
            await retire(sandbox)
            throw error
        }
    }

    // MARK: Slots

    private func enter() throws {
        try state.withLock { state in
            guard !state.terminating else { throw Self.terminatingError }
            state.inFlight += 1
        }
    }

    private func leave() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.inFlight -= 1
            guard state.inFlight == 0 else { return [] }
            defer { state.idleWaiters = [] }
            return state.idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private static let cancelledError = ExecutionError(
        code: .cancelled, message: "the task was cancelled while waiting for a Modal sandbox")

    private static let terminatingError = ExecutionError(
        code: .cancelled, message: "the Modal sandbox pool is terminating; make a new pool for more work")

    private func acquire() async throws -> ModalSandbox {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let lease: Lease = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate = state.withLock { state -> Result<Lease, any Error>? in
                    if state.terminating { return .failure(Self.terminatingError) }
                    if Task.isCancelled { return .failure(Self.cancelledError) }
                    if let sandbox = state.warm.popLast() { return .success(.sandbox(sandbox)) }
                    if state.alive < configuration.poolSize {
                        state.alive += 1
                        return .success(.create)
                    }
                    state.waiters.append((id, continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Lease, any Error>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: Self.cancelledError)
        }
        switch lease {
        case .sandbox(let sandbox):
            return sandbox
        case .create:
            do {
                return try await createSandbox()
            } catch {
                slotFreed(refill: false)
                throw error
            }
        }
    }

    /// Creates a sandbox once the rate limiter allows it (the caller holds a slot); one that arrives once the pool is
    /// terminating is terminated at once.
    private func createSandbox() async throws -> ModalSandbox {
        let now = clock.now - epoch
        let wait = state.withLock { state in
            state.limiter.reserve(now: now.inSeconds)
        }
        if wait > 0 { try await GRPCChannel.sleep(Duration(secondsClamped: wait)) }
        try state.withLock { state in
            guard !state.terminating else { throw Self.terminatingError }
            state.creating += 1
        }
        let created: Result<ModalSandbox, any Error>
        do {
            created = .success(try await ModalSandbox.create(client: client, options: sandboxOptions))
        } catch {
            created = .failure(error)
        }
        let terminating = state.withLock { state in
            guard case .success(let sandbox) = created else { return state.terminating }
            if state.terminating {
                state.interruptTargets += 1
            } else {
                state.live[sandbox.sandboxID] = sandbox
            }
            return state.terminating
        }
        if terminating, case .success(let sandbox) = created {
            let ended = await sandbox.terminateIgnoringCancellation()
            state.withLock { state in
                if ended { state.interrupted.terminated += 1 } else { state.interrupted.unconfirmed += 1 }
            }
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.creating -= 1
            guard state.creating == 0 else { return [] }
            defer { state.creationWaiters = [] }
            return state.creationWaiters
        }
        for waiter in waiters { waiter.resume() }
        if terminating { throw Self.terminatingError }
        return try created.get()
    }

    /// Terminates a used sandbox (even from a cancelled task) and frees its slot.
    private func retire(_ sandbox: ModalSandbox) async {
        await sandbox.terminateIgnoringCancellation()
        state.withLock { _ = $0.live.removeValue(forKey: sandbox.sandboxID) }
        slotFreed(refill: keepsWarm)
    }

    /// A slot is free: hand it to a waiter, or warm a replacement.
    private func slotFreed(refill: Bool) {
        enum Next {
            case nothing
            case wake(CheckedContinuation<Lease, any Error>)
            case warm
        }
        let next = state.withLock { state -> Next in
            state.alive -= 1
            if !state.waiters.isEmpty {
                state.alive += 1
                return .wake(state.waiters.removeFirst().continuation)
            }
            if refill, !state.terminating, state.alive < configuration.poolSize {
                state.alive += 1
                state.inFlight += 1
                return .warm
            }
            return .nothing
        }
        switch next {
        case .nothing: break
        case .wake(let waiter): waiter.resume(returning: .create)
        case .warm: Task { await self.warmOne() }
        }
    }

    /// Creates one warm sandbox for the slot already counted, and hands it to a waiter or the warm list.
    private func warmOne() async {
        defer { leave() }
        let sandbox: ModalSandbox
        do {
            sandbox = try await createSandbox()
        } catch {
            if !state.withLock(\.terminating) {
                logger.warning("warming a Modal sandbox failed", metadata: ["error": "\(error)"])
            }
            slotFreed(refill: false)
            return
        }
        enum Next {
            case wake(CheckedContinuation<Lease, any Error>)
            case kept
            case retire
        }
        let next = state.withLock { state -> Next in
            if state.terminating { return .retire }
            if !state.waiters.isEmpty { return .wake(state.waiters.removeFirst().continuation) }
            state.warm.append(sandbox)
            return .kept
        }
        switch next {
        case .wake(let waiter): waiter.resume(returning: .sandbox(sandbox))
        case .kept: break
        case .retire: await retire(sandbox)
        }
    }

    /// Sandboxes alive now (warm or in use), as counted by the pool.
    public var aliveCount: Int { state.withLock { $0.alive } }

    /// Stops taking work, waits for the work in flight, then terminates every warm sandbox.
    public func terminate() async {
        let waiters = state.withLock { state -> [CheckedContinuation<Lease, any Error>] in
            state.terminating = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for waiter in waiters { waiter.resume(throwing: Self.terminatingError) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.inFlight == 0 { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
        let warm = state.withLock { state -> [ModalSandbox] in
            defer { state.warm = [] }
            return state.warm
        }
        await withTaskGroup(of: Void.self) { group in
            for sandbox in warm { group.addTask { await self.retire(sandbox) } }
        }
    }

    /// Terminates every sandbox of the pool at once, warm or in use, for a process that is about to exit (on SIGINT
    /// or SIGTERM): the pool takes no more work, waiting callers get ``ExecutionError/Code/cancelled``, running
    /// commands fail with ``ExecutionError/Code/sandboxTerminated`` (not retried), and sandboxes still being created
    /// are terminated when they arrive. Returns within `grace`.
    ///
    /// - Returns: how many sandboxes were terminated, and how many were not confirmed within `grace`.
    public func terminateNow(grace: Duration) async -> Termination {
        let (waiters, sandboxes) = state.withLock { state in
            state.terminating = true
            state.interruptTargets += state.live.count
            defer { state.waiters = [] }
            return (state.waiters.map(\.continuation), Array(state.live.values))
        }
        for waiter in waiters { waiter.resume(throwing: Self.terminatingError) }
        let work = Task {
            await withTaskGroup(of: Void.self) { group in
                for sandbox in sandboxes {
                    group.addTask {
                        let ended = await sandbox.terminateIgnoringCancellation()
                        self.state.withLock { state in
                            if ended { state.interrupted.terminated += 1 } else { state.interrupted.unconfirmed += 1 }
                        }
                    }
                }
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state -> Bool in
                    if state.creating == 0 { return true }
                    state.creationWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await work.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            defer { group.cancelAll() }
            return await group.next() ?? false
        }
        return state.withLock { state in
            var termination = state.interrupted
            if !finished {
                termination.unconfirmed = max(0, state.interruptTargets + state.creating - termination.terminated)
            }
            return termination
        }
    }

    /// Terminates the pool's sandboxes (``terminate()``) when its user is done with it.
    public func shutdown() async {
        await terminate()
    }
}
