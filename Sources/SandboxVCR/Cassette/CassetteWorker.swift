internal import CSQLite
internal import Dispatch
internal import Foundation
internal import Synchronization

/// A job's answer, handed from the SQLite thread to the caller: read directly by a caller spinning for it, or
/// through a continuation by a caller that suspended. `state` orders the hand-off: the thread stores `result`
/// before it publishes `ready`; the caller stores `continuation` before it publishes `waiting`.
private final class Reply: @unchecked Sendable {
    private static let pending = 0
    private static let ready = 1
    private static let waiting = 2

    private let state = Atomic(Reply.pending)
    private var result: Result<any Sendable, any Error>?
    private var continuation: CheckedContinuation<any Sendable, any Error>?

    /// Called once, on the SQLite thread.
    func deliver(_ result: Result<any Sendable, any Error>) {
        self.result = result
        if state.exchange(Self.ready, ordering: .acquiringAndReleasing) == Self.waiting {
            continuation!.resume(with: result)
        }
    }

    /// The answer, if it arrives within `limit`; the caller keeps its thread meanwhile.
    func spin(for limit: Duration) -> Result<any Sendable, any Error>? {
        let deadline = ContinuousClock.now + limit
        var rounds = 0
        while state.load(ordering: .acquiring) != Self.ready {
            rounds &+= 1
            if rounds & 31 == 0, ContinuousClock.now >= deadline { return nil }
        }
        return result
    }

    /// Suspends until the answer arrives (at once if it already has).
    func wait() async throws -> any Sendable {
        try await withCheckedThrowingContinuation { continuation in
            self.continuation = continuation
            let (published, _) = state.compareExchange(
                expected: Self.pending, desired: Self.waiting, ordering: .acquiringAndReleasing)
            if !published { continuation.resume(with: result!) }
        }
    }
}

/// The cassette's dedicated SQLite thread: a serial job queue. Callers suspend on a continuation while their
/// job runs, so no blocking SQLite call ever runs on Swift's cooperative pool.
///
/// Jobs that write are grouped: every write waiting when the thread wakes runs inside one `BEGIN IMMEDIATE`
/// transaction, then one commit. The batch runs without savepoints first; when a write fails it is undone and the
/// batch runs again with each write in its own savepoint, so one failing job does not undo the others.
///
/// Background writes (``submit(keys:_:)``, nobody waits for them) are group-committed: they are held, not yet
/// run, until ``batchLimit`` of them gather, ``commitDelay`` passes (at most twice that), or another job needs
/// them (a waited write, ``Cassette/flush()``, a read, a lookup of a key they write, closing). So a SIGKILL loses
/// at most the background writes of the last `2 × commitDelay`, all uncommitted; nothing is ever half-written.
/// Lookups by a key no held write touches (``perform(write:lookupKey:_:)``) run at once, before the held writes.
final class CassetteWorker: Sendable {
    struct Job: Sendable {
        var isWrite: Bool
        /// For a background write: the request keys it writes (it may be held for a group commit).
        var writtenKeys: [SHA256.Digest]?
        /// For a lookup: the request key it reads (it need not wait for held writes of other keys).
        var lookupKey: SHA256.Digest?
        var body: @Sendable (SQLiteConnection) throws -> any Sendable
        var completion: @Sendable (Result<any Sendable, any Error>) -> Void
    }

    /// Background writes held by the thread for the next group commit (thread-confined).
    private struct HeldWrites {
        var jobs: [Job] = []
        var keys: Set<SHA256.Digest> = []
        var since: ContinuousClock.Instant?

        mutating func add(_ job: Job, keys written: [SHA256.Digest]) {
            if jobs.isEmpty { since = .now }
            jobs.append(job)
            keys.formUnion(written)
        }

        mutating func take() -> [Job] {
            defer {
                jobs.removeAll(keepingCapacity: true)
                keys.removeAll(keepingCapacity: true)
                since = nil
            }
            return jobs
        }

        var isDue: Bool {
            guard let since else { return false }
            return jobs.count >= CassetteWorker.batchLimit || ContinuousClock.now >= since + CassetteWorker.commitDelay
        }
    }

    /// A read transaction kept open across a run of lookups (thread-confined). Each SQLite read transaction
    /// takes and releases file locks (about ten `fcntl` calls); a replay loop, or the lookups of many tasks
    /// recording in mode `missing`, share one instead. It ends before any other job (a group commit included),
    /// when the thread goes idle with nothing held, and once older than ``maxAge``, so lookups see other
    /// processes' commits at most that late.
    private struct ReadSnapshot {
        static let maxAge = Duration.milliseconds(5)
        var since: ContinuousClock.Instant?

        var isExpired: Bool { since.map { ContinuousClock.now - $0 > Self.maxAge } ?? false }

        /// Begins a snapshot unless one is open; `true` when it began one.
        mutating func begin(_ connection: SQLiteConnection) -> Bool {
            guard since == nil, !connection.isInsideTransaction else { return false }
            do {
                try connection.execute("BEGIN")
                since = .now
                return true
            } catch {
                return false  // Lookups then run in their own transactions, as without a snapshot.
            }
        }

        mutating func end(_ connection: SQLiteConnection) {
            guard since != nil else { return }
            since = nil
            if connection.isInsideTransaction { try? connection.execute("COMMIT") }
        }
    }

    private struct State {
        var jobs: [Job] = []
        var isStopping = false
        /// Interaction ids replayed but not yet stamped with `last_replayed_at`, with the time.
        var touches: [Int64: Double] = [:]
        /// Background writes queued or running.
        var pendingBackgroundWrites = 0
        /// The first background write failure not yet reported.
        var backgroundError: (any Error)?
        /// The thread is (about to be) blocked on `wakeUp`; whoever gives it work signals once.
        var isSleeping = false
        /// A queued job someone waits for (anything but a background write).
        var hasUrgentJob = false
        /// The thread is running a batch with writes (a lookup queued now waits for its commit).
        var isCommitting = false
        /// Background writes queued since the thread last took the queue.
        var queuedBackgroundWrites = 0

        /// The sleeping thread has no timer running (it holds no background writes).
        var sleepsUntimed = false

        /// Whether the caller must signal `wakeUp` (the thread sleeps); at most one caller gets `true`.
        mutating func takeSleeper() -> Bool {
            defer {
                isSleeping = false
                sleepsUntimed = false
            }
            return isSleeping
        }

        var hasWork: Bool {
            hasUrgentJob || isStopping || touches.count >= 1024 || queuedBackgroundWrites >= batchLimit
        }
    }

    /// At most this many background writes wait at once; beyond it callers wait for their write.
    static let backgroundLimit = 4096
    /// A group commit of background writes happens once this many are held...
    static let batchLimit = 512
    /// ...or once the oldest has been held this long.
    static let commitDelay = Duration.milliseconds(20)
    /// How long the idle thread polls for the next job before it sleeps. A replay loop computes the next key
    /// (tens of microseconds for requests with large files) and a futex wake-up costs as much again, so the
    /// window covers a typical gap between replays; it is bounded and spent only right after a job.
    static let replayPollWindow = Duration.microseconds(250)
    /// How long a caller spins for a lookup's answer before suspending. A replay's lookup takes 5-20 µs on the
    /// SQLite thread, while a suspended task resumes only after a cooperative-pool thread wakes up (25-35 µs
    /// measured here); spinning is bounded, and only done when the lookup is the next job of an awake thread.
    static let lookupSpinLimit = Duration.microseconds(60)

    let path: String
    /// How long the idle thread polls before it sleeps (``replayPollWindow`` unless a test sets another).
    let pollWindow: Duration
    /// The cassette's key filter, told the `data_version` at the start of each transaction.
    private let knownKeys: KnownKeys?
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    private init(path: String, pollWindow: Duration, knownKeys: KnownKeys?) {
        self.path = path
        self.pollWindow = pollWindow
        self.knownKeys = knownKeys
    }

    /// Starts the thread, opens the connection on it and runs `setUp` there before any job.
    static func start(
        path: String, name: String, pollWindow: Duration = replayPollWindow, knownKeys: KnownKeys? = nil,
        open: @escaping @Sendable () throws -> SQLiteConnection,
        setUp: @escaping @Sendable (SQLiteConnection) throws -> Void
    ) async throws -> CassetteWorker {
        let worker = CassetteWorker(path: path, pollWindow: pollWindow, knownKeys: knownKeys)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let thread = Thread {
                worker.main(open: open, setUp: setUp, started: { continuation.resume(with: $0) })
                worker.finished.signal()
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
        return worker
    }

    /// The thread's body: the connection lives (and is closed) inside this call.
    private func main(
        open: () throws -> SQLiteConnection, setUp: (SQLiteConnection) throws -> Void,
        started: (Result<Void, any Error>) -> Void
    ) {
        let connection: SQLiteConnection
        do {
            connection = try open()
            try setUp(connection)
        } catch {
            started(.failure(error))
            return
        }
        started(.success(()))
        loop(connection)
    }

    /// Runs `body` on the SQLite thread and returns its value.
    ///
    /// - Parameter lookupKey: for a read of one request key's rows only: it may run before held background writes
    ///   of other keys (it sees those of its own key). When the thread is idle and nothing is being recorded, the
    ///   caller waits for a lookup's answer by spinning for up to ``lookupSpinLimit`` before it suspends (see
    ///   ``Reply``).
    func perform<T: Sendable>(
        write: Bool = false, lookupKey: SHA256.Digest? = nil, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        let reply = Reply()
        let job = Job(
            isWrite: write, writtenKeys: nil, lookupKey: write ? nil : lookupKey, body: { try body($0) },
            completion: reply.deliver)
        let (accepted, mustSignal, spins) = state.withLock { state -> (Bool, Bool, Bool) in
            guard !state.isStopping else { return (false, false, false) }
            // The answer comes within microseconds only if this lookup runs next on a thread that is awake.
            let spins =
                job.lookupKey != nil && state.jobs.isEmpty && !state.isSleeping && !state.isCommitting
                && state.pendingBackgroundWrites == 0
            state.jobs.append(job)
            state.hasUrgentJob = true
            return (true, state.takeSleeper(), spins)
        }
        if mustSignal { wakeUp.signal() }
        guard accepted else {
            throw CassetteError(code: .io, message: "the cassette was closed; open it again to use it", path: path)
        }
        if spins, let result = reply.spin(for: Self.lookupSpinLimit) { return try result.get() as! T }
        return try await reply.wait() as! T
    }

    /// Queues a write without waiting for it to commit (jobs run in order, so later reads see it). A failure is
    /// reported by the next ``submit(keys:_:)`` or ``takeBackgroundError()``. Waits when too many writes are queued.
    ///
    /// - Parameter keys: the request keys whose rows `body` writes (or deletes); it must touch no others.
    func submit(keys: [SHA256.Digest], _ body: @escaping @Sendable (SQLiteConnection) throws -> Void) async throws {
        if let error = takeBackgroundError() { throw error }
        let job = Job(
            isWrite: true, writtenKeys: keys, lookupKey: nil, body: { try body($0) },
            completion: { [self] result in
                state.withLock { state in
                    state.pendingBackgroundWrites -= 1
                    if case .failure(let error) = result, state.backgroundError == nil { state.backgroundError = error }
                }
            })
        let (accepted, mustSignal) = state.withLock { state -> (Bool, Bool) in
            guard !state.isStopping, state.pendingBackgroundWrites < Self.backgroundLimit else { return (false, false) }
            state.pendingBackgroundWrites += 1
            state.jobs.append(job)
            state.queuedBackgroundWrites += 1
            // A thread with a timer running picks the write up on time; wake it for a full batch, or to start one.
            let mustWake = state.queuedBackgroundWrites >= Self.batchLimit || state.sleepsUntimed
            return (true, mustWake && state.takeSleeper())
        }
        if mustSignal { wakeUp.signal() }
        if !accepted { try await perform(write: true, body) }
    }

    /// The first background write failure since the last call, if any.
    func takeBackgroundError() -> (any Error)? {
        state.withLock { state in
            defer { state.backgroundError = nil }
            return state.backgroundError
        }
    }

    /// Notes that an interaction was replayed; stamped in the next write transaction or at close.
    func touch(_ id: Int64, at time: Double) {
        let mustSignal = state.withLock { state -> Bool in
            state.touches[id] = time
            return state.touches.count >= 1024 && state.takeSleeper()
        }
        if mustSignal { wakeUp.signal() }
    }

    /// Finishes queued jobs, writes pending stamps, closes the connection and ends the thread.
    func stop() {
        let mustSignal = state.withLock { state -> Bool in
            state.isStopping = true
            return state.takeSleeper()
        }
        if mustSignal { wakeUp.signal() }
    }

    /// Stops and waits for the thread to close the file.
    func stopAndWait() async {
        stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                self.finished.wait()
                self.finished.signal()
                continuation.resume()
            }.start()
        }
    }

    private func loop(_ connection: SQLiteConnection) {
        var held = HeldWrites()
        var snapshot = ReadSnapshot()
        while true {
            waitForWork(holding: held.since, snapshot: &snapshot, connection)
            if snapshot.isExpired { snapshot.end(connection) }
            let (jobs, isStopping, touchesDue) = state.withLock { state in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                state.hasUrgentJob = false
                state.queuedBackgroundWrites = 0
                return (jobs, state.isStopping, state.touches.count >= 1024)
            }
            // In queue order: background writes are held; a lookup of a key no held write touches runs now; from
            // the first other job on, everything runs in order after the held writes.
            var batch: [Job] = []
            for job in jobs {
                if batch.isEmpty, let keys = job.writtenKeys, !connection.isReadOnly {
                    held.add(job, keys: keys)
                } else if batch.isEmpty, let key = job.lookupKey, !held.keys.contains(key) {
                    if snapshot.begin(connection) { checkDataVersion(connection) }
                    job.completion(read(job, connection))
                } else {
                    batch.append(job)
                }
            }
            if !batch.isEmpty || isStopping || touchesDue || held.isDue {
                snapshot.end(connection)
                let due = held.take() + batch
                let hasWrites = due.contains(where: \.isWrite)
                var touches: [Int64: Double] = [:]
                if hasWrites || isStopping || touchesDue {
                    touches = state.withLock { state in
                        defer { state.touches.removeAll() }
                        return state.touches
                    }
                }
                if hasWrites || (!touches.isEmpty && !connection.isReadOnly) {
                    state.withLock { $0.isCommitting = true }
                    runTransaction(due, touches: touches, connection)
                    state.withLock { $0.isCommitting = false }
                } else {
                    for job in due { job.completion(read(job, connection)) }
                }
            }
            if isStopping {
                let remaining = state.withLock { state in
                    defer { state.jobs.removeAll() }
                    return state.jobs
                }
                let closed = CassetteError(
                    code: .io, message: "the cassette was closed; open it again to use it", path: path)
                for job in remaining { job.completion(.failure(closed)) }
                return
            }
        }
    }

    /// Blocks until jobs may be queued. Polls briefly first: a caller replaying requests one after another sends
    /// the next job within microseconds, and catching it without sleeping saves a thread wake-up. While background
    /// writes are held or queued, sleeps at most until their group commit is due, and does not poll: many callers
    /// are recording then, and polling would take CPU from them.
    private func waitForWork(
        holding since: ContinuousClock.Instant?, snapshot: inout ReadSnapshot, _ connection: SQLiteConnection
    ) {
        if since == nil {
            let deadline = ContinuousClock.now + pollWindow
            repeat {
                let (hasWork, isRecording) = state.withLock { ($0.hasWork, $0.queuedBackgroundWrites > 0) }
                if hasWork { return }
                if isRecording { break }
            } while ContinuousClock.now < deadline
        }
        let (mustWait, hasBackgroundWrites) = state.withLock { state -> (Bool, Bool) in
            guard !state.hasWork else { return (false, false) }
            state.isSleeping = true
            state.sleepsUntimed = since == nil && state.queuedBackgroundWrites == 0
            return (true, state.queuedBackgroundWrites > 0)
        }
        guard mustWait else { return }
        guard since != nil || hasBackgroundWrites else {
            // Idle for as long as it takes: let the next lookup see what other connections commit meanwhile (and
            // let checkpoints pass). A timed sleep keeps the snapshot: while recording, lookups arrive between
            // group commits, and the commit or ``ReadSnapshot/maxAge`` ends it.
            snapshot.end(connection)
            return wakeUp.wait()
        }
        let due = (since ?? .now) + Self.commitDelay
        let remaining = ContinuousClock.now.duration(to: due).components
        let nanoseconds = max(0, remaining.seconds * 1_000_000_000 + remaining.attoseconds / 1_000_000_000)
        if wakeUp.wait(timeout: .now() + .nanoseconds(Int(nanoseconds))) == .timedOut {
            // Nobody signalled; stop others from signalling a thread that is awake (a late signal only causes one
            // spurious wake-up).
            state.withLock { state in
                state.isSleeping = false
                state.sleepsUntimed = false
            }
        }
    }

    /// Tells the key filter whether another connection committed (``KnownKeys``). Called first thing in a
    /// transaction: the statement starts the transaction's read, so it sees the latest commit.
    private func checkDataVersion(_ connection: SQLiteConnection) {
        guard let knownKeys, knownKeys.isComplete else { return }
        guard let version = try? connection.scalarInt("PRAGMA data_version") else { return }
        knownKeys.checked(dataVersion: version)
    }

    private func read(_ job: Job, _ connection: SQLiteConnection) -> Result<any Sendable, any Error> {
        Result { try job.body(connection) }.mapError { mapped($0, connection) }
    }

    private func readOnlyError() -> CassetteError {
        CassetteError(
            code: .readOnly,
            message: "the cassette is open read-only; make the file writable, or use record mode `never`",
            path: path)
    }

    private func mapped(_ error: any Error, _ connection: SQLiteConnection) -> any Error {
        if let error = error as? SQLiteError {
            return CassetteError.from(error, path: path, readOnly: connection.isReadOnly)
        }
        return error
    }

    /// Runs a batch in order inside one `BEGIN IMMEDIATE` transaction (reads see the writes before them), stamps
    /// replays, commits, then completes every job.
    private func runTransaction(_ jobs: [Job], touches: [Int64: Double], _ connection: SQLiteConnection) {
        func failWrites(_ error: any Error) {
            for job in jobs { job.completion(job.isWrite ? .failure(error) : read(job, connection)) }
        }
        if connection.isReadOnly { return failWrites(readOnlyError()) }
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch {
            return failWrites(mapped(error, connection))
        }
        checkDataVersion(connection)
        let writeCount = jobs.count { $0.isWrite }
        // First every job without savepoints (writes rarely fail). A lone write needs none: its failure rolls back
        // the whole transaction below.
        var results = jobs.map { read($0, connection) }
        if writeCount > 1, jobs.indices.contains(where: { jobs[$0].isWrite && isFailure(results[$0]) }) {
            // A write failed: undo everything and run the batch again, each write in its own savepoint, so one
            // failing write does not undo the others. Job bodies only touch the database, so running again is safe.
            try? connection.execute("ROLLBACK")
            do {
                try connection.execute("BEGIN IMMEDIATE")
            } catch {
                restore(touches)
                return failWrites(mapped(error, connection))
            }
            results = runWithSavepoints(jobs, connection)
        }
        if writeCount == 1, let index = jobs.firstIndex(where: \.isWrite), case .failure = results[index] {
            try? connection.execute("ROLLBACK")
            restore(touches)
            for (job, result) in zip(jobs, results) { job.completion(result) }
            return
        }
        do {
            if !touches.isEmpty {
                let statement = try connection.statement("UPDATE interactions SET last_replayed_at = ? WHERE id = ?")
                for (id, time) in touches {
                    statement.reset()
                    statement.bind(1, time)
                    statement.bind(2, id)
                    try statement.run()
                }
            }
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            restore(touches)
            let failure = mapped(error, connection)
            for (job, result) in zip(jobs, results) { job.completion(job.isWrite ? .failure(failure) : result) }
            return
        }
        for (job, result) in zip(jobs, results) { job.completion(result) }
    }

    private func isFailure(_ result: Result<any Sendable, any Error>) -> Bool {
        if case .failure = result { return true }
        return false
    }

    /// Runs each write of a batch in its own savepoint.
    private func runWithSavepoints(_ jobs: [Job], _ connection: SQLiteConnection) -> [Result<any Sendable, any Error>] {
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(jobs.count)
        for job in jobs {
            guard job.isWrite else {
                results.append(read(job, connection))
                continue
            }
            do {
                try connection.statement("SAVEPOINT job").run()
                let value = try job.body(connection)
                try connection.statement("RELEASE job").run()
                results.append(.success(value))
            } catch {
                try? connection.statement("ROLLBACK TO job").run()
                try? connection.statement("RELEASE job").run()
                results.append(.failure(mapped(error, connection)))
            }
        }
        return results
    }

    private func restore(_ touches: [Int64: Double]) {
        guard !touches.isEmpty else { return }
        state.withLock { state in state.touches.merge(touches) { newer, _ in newer } }
    }
}
