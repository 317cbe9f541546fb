internal import Foundation
internal import GRDB
internal import Synchronization

/// The cassette's one writer: recordings and replay stamps, group-committed (``GroupCommit``) on GRDB's serialized
/// writer connection, off the cooperative pool.
///
/// The writer connection is opened on the first write, so a writable cassette that only replays never writes to the
/// file (a WAL pool's first open writes to it, and a committed cassette would show as changed).
///
/// A recording's caller is answered once the transaction holding it has committed, or with the error that made
/// its write fail: when a transaction fails, each of its writes is tried again in a transaction of its own, so one
/// failing write does not fail the others. Replay stamps ride along with the next transaction (or a flush, or
/// closing). A second after a recording commits, the WAL is checkpointed into the main file (as a flush does), so
/// recordings do not live only in the `-wal` file for long, where damage to it would lose them.
final class CassetteWriter: Sendable {
    /// One caller's write, and how to answer it (`nil`: nobody waits).
    enum Write: Sendable {
        case record([EncodedInteraction], cutoff: Double?, CheckedContinuation<Void, any Error>)
        /// Commit what is queued and the replay stamps, then checkpoint the WAL.
        case flush(CheckedContinuation<Void, any Error>?)
        /// As `flush`, and the last write accepted.
        case close(CheckedContinuation<Void, any Error>)

        var continuation: CheckedContinuation<Void, any Error>? {
            switch self {
            case .record(_, _, let continuation), .close(let continuation): continuation
            case .flush(let continuation): continuation
            }
        }
    }

    /// Stamps gathered before they are written (they are written anyway once this many wait).
    static let stampLimit = 1024
    /// How long after a recording commits the WAL is checkpointed into the main file.
    static let checkpointDelay = DispatchTimeInterval.seconds(1)

    let path: String
    /// The writer's pool, once opened.
    private let connection: Mutex<DatabasePool?>
    private let state = Mutex(GroupCommit<Write>())
    /// Interaction ids replayed but not yet stamped with `last_replayed_at`, with the time.
    private let stamps = Mutex([Int64: Double]())
    /// Whether a checkpoint is due (``checkpointDelay`` after a recording).
    private let isCheckpointScheduled = Mutex(false)

    /// - Parameter pool: the writer's pool if it is open already; else it opens on the first write.
    init(path: String, pool: DatabasePool?) {
        self.path = path
        self.connection = Mutex(pool)
    }

    /// The writer's pool if it is open.
    var openPool: DatabasePool? { connection.withLock { $0 } }

    /// The writer's pool, opened now if it was not yet.
    func pool() throws -> DatabasePool {
        try connection.withLock { pool in
            if let pool { return pool }
            let opened = try Self.openPool(path: path)
            pool = opened
            return opened
        }
    }

    /// Opens the file's WAL pool, retrying while other processes hold locks.
    ///
    /// Two processes switching a new file to WAL at once can get `SQLITE_BUSY` without the busy handler being
    /// called (each holds a shared lock and wants an exclusive one), so this retries with a short back-off for up to
    /// the busy timeout.
    static func openPool(path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "sandbox-vcr cassette"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -8000; PRAGMA mmap_size = 268435456")
            // Checkpoint (which syncs) every ~16 MB of WAL rather than every 4 MB; closing checkpoints anyway.
            if !db.configuration.readonly { try db.execute(sql: "PRAGMA wal_autocheckpoint = 4000") }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        var pause: UInt32 = 1000
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError
                where (error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED)
                && ContinuousClock.now < deadline
            {
                usleep(pause)
                pause = min(pause * 2, 50_000)
            }
        }
    }

    /// Writes interactions; returns once they are committed.
    func record(_ interactions: [EncodedInteraction], replacingOlderThan cutoff: Double?) async throws {
        try await withCheckedThrowingContinuation { continuation in
            submit(.record(interactions, cutoff: cutoff, continuation))
        }
    }

    /// Commits everything queued so far and the replay stamps, then copies the WAL into the main file.
    func flush() async throws {
        try await withCheckedThrowingContinuation { continuation in submit(.flush(continuation)) }
    }

    /// Notes a replay; stamped with the next transaction.
    func stampReplay(of id: Int64, at time: Double) {
        let isDue = stamps.withLock { stamps in
            stamps[id] = time
            return stamps.count == Self.stampLimit
        }
        if isDue { submit(.flush(nil)) }
    }

    /// Runs one maintenance write (prune, merge) in a transaction of its own, serialized with the recordings.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool().write(body)
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// Rebuilds the file without its free pages (`VACUUM`, which runs outside any transaction).
    func vacuum() async throws {
        do {
            try await pool().writeWithoutTransaction { try CassetteDatabase.vacuum($0) }
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// Commits what is queued and the stamps; later writes are refused. Then call ``closeConnections()``.
    func finish() async {
        try? await withCheckedThrowingContinuation { continuation in
            submit(.close(continuation), closes: true)
        }
    }

    /// Writes the pending stamps without waiting for a commit (the cassette was released without being closed), and
    /// refuses later writes. Then call ``closeConnections()``.
    func finishNow() {
        let isFinished = state.withLock { state in
            if case .reject = state.submit(.flush(nil), closes: true) { return true }
            return false
        }
        let pending = takeStamps()
        guard !isFinished, !pending.isEmpty else { return }
        try? pool().writeWithoutTransaction { db in
            try db.inTransaction(.immediate) {
                try CassetteDatabase.stampReplays(pending, db)
                return .commit
            }
        }
    }

    /// Closes the writer's connections, if open. When it is the last connection to the file, closing checkpoints the
    /// WAL into the file and removes it and its index (only a connection that can write does that).
    func closeConnections() {
        guard let pool = connection.withLock({ $0 }) else { return }
        pool.releaseMemory()  // Its readers first, so that the writer closes last.
        try? pool.close()
    }

    private func submit(_ write: Write, closes: Bool = false) {
        perform(state.withLock { $0.submit(write, closes: closes) })
    }

    private func perform(_ action: GroupCommit<Write>.Action) {
        switch action {
        case .none:
            return
        case .reject(let write):
            write.continuation?.resume(
                throwing: CassetteError(
                    code: .io, message: "the cassette was closed; open it again to use it", path: path))
        case .commit(let batch):
            if !hasWork(batch) {
                // A flush or close with nothing to write: the file need not be opened for writing.
                for write in batch { write.continuation?.resume() }
                return perform(state.withLock { $0.commitFinished() })
            }
            let pool: DatabasePool
            do {
                pool = try self.pool()
            } catch {
                for write in batch { write.continuation?.resume(throwing: mapped(error)) }
                return perform(state.withLock { $0.commitFinished() })
            }
            pool.asyncWriteWithoutTransaction { db in
                let results = self.commit(batch, db)
                for (write, result) in zip(batch, results) { write.continuation?.resume(with: result) }
                if batch.contains(where: { if case .record = $0 { true } else { false } }) {
                    self.scheduleCheckpoint()
                }
                self.perform(self.state.withLock { $0.commitFinished() })
            }
        }
    }

    /// Whether a batch writes anything (a recording, or stamps), or checkpoints a writer that is open.
    private func hasWork(_ batch: [Write]) -> Bool {
        connection.withLock { $0 != nil } || stamps.withLock { !$0.isEmpty }
            || batch.contains { if case .record = $0 { true } else { false } }
    }

    /// Runs a batch in one transaction (each write alone when that fails), with the pending stamps; returns each
    /// write's result.
    private func commit(_ batch: [Write], _ db: Database) -> [Result<Void, any Error>] {
        var results = [Result<Void, any Error>](repeating: .success(()), count: batch.count)
        let pending = takeStamps()
        do {
            try db.inTransaction(.immediate) {
                for write in batch {
                    if case .record(let interactions, let cutoff, _) = write {
                        try CassetteDatabase.insert(interactions, replacingOlderThan: cutoff, db)
                    }
                }
                try CassetteDatabase.stampReplays(pending, db)
                return .commit
            }
        } catch {
            for (index, write) in batch.enumerated() {
                guard case .record(let interactions, let cutoff, _) = write else { continue }
                do {
                    try db.inTransaction(.immediate) {
                        try CassetteDatabase.insert(interactions, replacingOlderThan: cutoff, db)
                        return .commit
                    }
                } catch {
                    results[index] = .failure(mapped(error))
                }
            }
            do {
                try db.inTransaction(.immediate) {
                    try CassetteDatabase.stampReplays(pending, db)
                    return .commit
                }
            } catch {
                restore(pending)
            }
        }
        if batch.contains(where: { if case .record = $0 { false } else { true } }) {
            // Flush or close: copy the WAL into the file, without waiting for readers of other connections.
            _ = try? db.checkpoint(.passive)
        }
        return results
    }

    /// Flushes (commit the stamps, checkpoint the WAL) ``checkpointDelay`` from now, unless one is due already.
    private func scheduleCheckpoint() {
        let isNew = isCheckpointScheduled.withLock { scheduled in
            defer { scheduled = true }
            return !scheduled
        }
        guard isNew else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.checkpointDelay) { [weak self] in
            guard let self else { return }
            self.isCheckpointScheduled.withLock { $0 = false }
            self.submit(.flush(nil))
        }
    }

    private func takeStamps() -> [Int64: Double] {
        stamps.withLock { stamps in
            defer { stamps.removeAll() }
            return stamps
        }
    }

    private func restore(_ pending: [Int64: Double]) {
        guard !pending.isEmpty else { return }
        stamps.withLock { stamps in stamps.merge(pending) { newer, _ in newer } }
    }

    private func mapped(_ error: any Error) -> any Error {
        (error as? DatabaseError).map { CassetteError($0, path: path) } ?? error
    }
}
