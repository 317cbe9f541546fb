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
    }

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
            let accepted = state.withLock { state -> Bool in
                guard !state.isStopping else { return false }
                state.jobs.append(job)
                return true
            }
            if accepted {
                wakeUp.signal()
            } else {
                continuation.resume(
                    throwing: CassetteError(
                        code: .io, message: "the cassette was closed; open it again to use it", path: path))
            }
        }
    }

    /// Notes that an interaction was replayed; stamped in the next write transaction or at close.
    func touch(_ id: Int64, at time: Double) {
        let shouldFlush = state.withLock { state -> Bool in
            state.touches[id] = time
            return state.touches.count >= 1024
        }
        if shouldFlush { wakeUp.signal() }
    }

    /// Finishes queued jobs, writes pending stamps, closes the connection and ends the thread.
    func stop() {
        let wasRunning = state.withLock { state -> Bool in
            defer { state.isStopping = true }
            return !state.isStopping
        }
        guard wasRunning else { return }
        wakeUp.signal()
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
            wakeUp.wait()
            let (jobs, touches, isStopping) = state.withLock { state in
                let jobs = state.jobs
                state.jobs.removeAll(keepingCapacity: true)
                var touches: [Int64: Double] = [:]
                let hasWrites = jobs.contains(where: \.isWrite)
                if hasWrites || state.isStopping || state.touches.count >= 1024 {
                    touches = state.touches
                    state.touches.removeAll()
                }
                return (jobs, touches, state.isStopping && state.jobs.isEmpty)
            }
            var writes: [Job] = []
            for job in jobs {
                if job.isWrite {
                    writes.append(job)
                } else {
                    let result = Result<any Sendable, any Error> { try job.body(connection) }
                    job.completion(result.mapError { self.mapped($0, connection) })
                }
            }
            if !writes.isEmpty || (!touches.isEmpty && !connection.isReadOnly) {
                runWrites(writes, touches: touches, connection)
            } else {
                for job in writes { job.completion(.failure(readOnlyError())) }
            }
            if isStopping {
                let remaining = state.withLock { state in
                    defer { state.jobs.removeAll() }
                    return state.jobs
                }
                for job in remaining { job.completion(.failure(readOnlyError())) }
                return
            }
        }
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

    private func runWrites(_ writes: [Job], touches: [Int64: Double], _ connection: SQLiteConnection) {
        if connection.isReadOnly {
            for job in writes { job.completion(.failure(readOnlyError())) }
            return
        }
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch {
            for job in writes { job.completion(.failure(mapped(error, connection))) }
            return
        }
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(writes.count)
        for job in writes {
            // A lone job needs no savepoint: its failure rolls back the whole (one-job) transaction below.
            if writes.count == 1 {
                results.append(Result { try job.body(connection) }.mapError { mapped($0, connection) })
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
        if writes.count == 1, case .failure(let error) = results[0] {
            try? connection.execute("ROLLBACK")
            writes[0].completion(.failure(error))
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
            let failure = mapped(error, connection)
            for job in writes { job.completion(.failure(failure)) }
            return
        }
        for (job, result) in zip(writes, results) { job.completion(result) }
    }
}
