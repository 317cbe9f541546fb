internal import CSQLite
internal import Dispatch
internal import Foundation
internal import Synchronization

/// The cassette's dedicated SQLite thread: a serial job queue. Callers suspend on a continuation while their
/// job runs, so no blocking SQLite call ever runs on Swift's cooperative pool.
///
/// Jobs that write are grouped: every write waiting when the thread wakes runs inside one `BEGIN IMMEDIATE`
/// transaction (each in its own savepoint, so one failing job does not undo the others), then one commit.
final class CassetteWorker: Sendable {
    struct Job: Sendable {
        var isWrite: Bool
        var body: @Sendable (SQLiteConnection) throws -> any Sendable
        var completion: @Sendable (Result<any Sendable, any Error>) -> Void
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

        /// Whether the caller must signal `wakeUp` (the thread sleeps); at most one caller gets `true`.
        mutating func takeSleeper() -> Bool {
            defer { isSleeping = false }
            return isSleeping
        }

        var hasWork: Bool { !jobs.isEmpty || isStopping || touches.count >= 1024 }
    }

    /// At most this many background writes wait at once; beyond it callers wait for their write.
    static let backgroundLimit = 4096

    let path: String
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    private init(path: String) { self.path = path }

    /// Starts the thread, opens the connection on it and runs `setUp` there before any job.
    static func start(
        path: String, name: String, open: @escaping @Sendable () throws -> SQLiteConnection,
        setUp: @escaping @Sendable (SQLiteConnection) throws -> Void
    ) async throws -> CassetteWorker {
        let worker = CassetteWorker(path: path)
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
    func perform<T: Sendable>(
        write: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let job = Job(
                isWrite: write, body: { try body($0) },
                completion: { result in
                    switch result {
                    case .success(let value): continuation.resume(returning: value as! T)
                    case .failure(let error): continuation.resume(throwing: error)
                    }
                })
            let (accepted, mustSignal) = state.withLock { state -> (Bool, Bool) in
                guard !state.isStopping else { return (false, false) }
                state.jobs.append(job)
                return (true, state.takeSleeper())
            }
            if mustSignal { wakeUp.signal() }
            if !accepted {
                continuation.resume(
                    throwing: CassetteError(
                        code: .io, message: "the cassette was closed; open it again to use it", path: path))
            }
        }
    }

    /// Queues a write without waiting for it to commit (jobs run in order, so later reads see it). A failure is
    /// reported by the next ``submit(_:)`` or ``takeBackgroundError()``. Waits when too many writes are queued.
    func submit(_ body: @escaping @Sendable (SQLiteConnection) throws -> Void) async throws {
        if let error = takeBackgroundError() { throw error }
        let job = Job(
            isWrite: true, body: { try body($0) },
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
            return (true, state.takeSleeper())
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
        while true {
            waitForWork()
            let (jobs, touches, isStopping) = state.withLock { state in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                var touches: [Int64: Double] = [:]
                let hasWrites = jobs.contains(where: \.isWrite)
                if hasWrites || state.isStopping || state.touches.count >= 1024 {
                    touches = state.touches
                    state.touches.removeAll()
                }
                return (jobs, touches, state.isStopping)
            }
            if jobs.contains(where: \.isWrite) || (!touches.isEmpty && !connection.isReadOnly) {
                runTransaction(jobs, touches: touches, connection)
            } else {
                for job in jobs { job.completion(read(job, connection)) }
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
    /// the next job within microseconds, and catching it without sleeping saves a thread wake-up.
    private func waitForWork() {
        let deadline = ContinuousClock.now + .microseconds(30)
        repeat {
            if state.withLock({ $0.hasWork }) { return }
        } while ContinuousClock.now < deadline
        let mustWait = state.withLock { state -> Bool in
            guard !state.hasWork else { return false }
            state.isSleeping = true
            return true
        }
        if mustWait { wakeUp.wait() }
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
        let writeCount = jobs.count { $0.isWrite }
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(jobs.count)
        for job in jobs {
            // A lone write needs no savepoint: its failure rolls back the whole transaction below.
            if !job.isWrite || writeCount == 1 {
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

    private func restore(_ touches: [Int64: Double]) {
        guard !touches.isEmpty else { return }
        state.withLock { state in state.touches.merge(touches) { newer, _ in newer } }
    }
}
