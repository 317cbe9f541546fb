internal import Dispatch
public import Foundation
internal import GRDB
internal import Synchronization

/// A SQLite file of recorded executions: requests, and the results (or errors) they produced.
///
/// Built on GRDB the way GRDB's `DatabasePool` is meant to be used: lookups run on the caller's thread through a
/// pool of WAL reader connections (a point read takes microseconds, less than a hand-off to another thread), and
/// recordings go through one serialized writer that commits concurrent recordings together (`CassetteWriter`).
/// A recording returns only once it is committed. The file uses WAL and a 10 s busy timeout, so many tasks and
/// several processes can record and replay through one file. Large parts of requests and results are stored once
/// by SHA-256. See the "Cassette format" article.
///
/// ```swift
/// let cassette = try await Cassette.open(at: URL(filePath: "grading.sqlite"))
/// let executor = RecordingExecutor(cassette: cassette, mode: .never)
/// ```
public final class Cassette: Sendable {
    /// What a recorded execution produced: a result, or the error the live executor threw.
    public enum Outcome: Hashable, Sendable {
        case result(ExecutionResult)
        case failure(ExecutionError)
    }

    /// One interaction to write.
    public struct NewInteraction: Sendable {
        /// The request key (see ``RequestMatcher/key(for:)``).
        public var key: ContentHash
        /// Which repetition of the key this is (0 for the first).
        public var ordinal: Int
        public var session: String?
        public var step: Int?
        public var backendVersion: String?
        /// The request as stored (already redacted).
        public var request: ExecutionRequest
        public var outcome: Outcome
        public var recordedAt: Date
        /// How long the live call took, in seconds.
        public var duration: Double?
        public var lastReplayedAt: Date?

        public init(
            key: ContentHash, ordinal: Int, session: String? = nil, step: Int? = nil, backendVersion: String? = nil,
            request: ExecutionRequest, outcome: Outcome, recordedAt: Date = Date(), duration: Double? = nil,
            lastReplayedAt: Date? = nil
        ) {
            self.key = key
            self.ordinal = ordinal
            self.session = session
            self.step = step
            self.backendVersion = backendVersion
            self.request = request
            self.outcome = outcome
            self.recordedAt = recordedAt
            self.duration = duration
            self.lastReplayedAt = lastReplayedAt
        }

        /// The backend recorded in the outcome (or `error` for a recorded failure).
        public var backend: String {
            if case .result(let result) = outcome { return result.backend.rawValue }
            return "error"
        }
    }

    /// One stored interaction, read back.
    public struct Interaction: Sendable, Hashable {
        public var id: Int64
        public var key: ContentHash
        public var ordinal: Int
        public var session: String?
        public var step: Int?
        public var backend: String
        public var backendVersion: String?
        public var request: ExecutionRequest
        public var outcome: Outcome
        public var recordedAt: Date
        public var duration: Double?
        public var lastReplayedAt: Date?
        /// The content address of the stored outcome record (equal outcomes have equal hashes).
        public var outcomeHash: ContentHash
    }

    /// The current schema version. Older cassettes are migrated forward when opened writable.
    public static let schemaVersion = CassetteDatabase.schemaVersion
    /// `PRAGMA application_id` of every cassette: "SVCR".
    public static let applicationID: Int32 = 0x5356_4352

    /// The cassette file.
    public let url: URL
    /// Whether the cassette was opened read-only (explicitly, or because the file is not writable).
    public var isReadOnly: Bool { writer == nil }
    /// The connection lookups and scans use until the writer opens (then its pool of WAL readers serves them).
    let reader: DatabaseQueue
    /// `reader`, and once the cassette has served ``readsBeforeMoreReaders`` point reads, a few more connections
    /// like it (one per core, at most 4) that point reads take in turn, so that concurrent replays do not queue
    /// behind one connection. A cassette that serves a few reads (one test's) opens one connection.
    private let pointReaders: Mutex<[DatabaseQueue]>
    private let pointReads = Atomic<Int>(0)
    /// How to open more reading connections (`nil`: the writer's pool serves reads).
    private let access: CassetteFileAccess?
    static let readsBeforeMoreReaders = 256
    /// Recordings, replay stamps, maintenance; `nil` when read-only.
    let writer: CassetteWriter?
    /// Remembers digests of large parts written recently (a shared harness file is hashed once).
    let digests = PartDigestCache()
    private let isClosed = Mutex(false)
    /// The file's entry in ``OpenCassettes``.
    private let openKey: String
    /// ``index()``, once read, for a small read-only cassette.
    private let keptIndex = Mutex<[IndexEntry]?>(nil)

    private init(url: URL, reader: DatabaseQueue, access: CassetteFileAccess?, writer: CassetteWriter?) {
        openKey = OpenCassettes.key(url.path)
        OpenCassettes.insert(key: openKey)
        self.url = url
        self.reader = reader
        self.pointReaders = Mutex([reader])
        self.access = access
        self.writer = writer
    }

    deinit {
        guard !isClosed.withLock({ $0 }) else { return }
        defer { OpenCassettes.remove(key: openKey) }
        writer?.finishNow()
        closeConnections()
    }

    var path: String { url.path }

    /// Opens (or creates) a cassette. Constant time and memory: nothing is loaded up front.
    ///
    /// - Parameters:
    ///   - url: the `.sqlite` file.
    ///   - readOnly: open without writing; also chosen automatically when the file is not writable.
    ///   - create: create the file (and its folder) when missing; otherwise a missing file is an `io` error.
    /// - Throws: ``CassetteError`` (`notACassette`, `corrupted`, `newerSchema`, `readOnly`, `io`).
    public static func open(at url: URL, readOnly: Bool = false, create: Bool = true) async throws -> Cassette {
        let access = try CassetteFileAccess(url: url, readOnly: readOnly, create: create)
        // A cassette with the current schema opens here: one connection and one read, well under a millisecond.
        if let cassette = try openCurrent(url: url, access: access) { return cassette }
        // Creating or migrating may take long on a large file: on a thread of its own, not on the cooperative pool.
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try createOrMigrate(url: url, access: access) })
            }
        }
    }

    /// Opens an existing cassette whose schema is current; `nil` when the file must be created or migrated.
    private static func openCurrent(url: URL, access: CassetteFileAccess) throws -> Cassette? {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            // Before any connection opens it: SQLite would drop unreadable committed frames without a word.
            if !OpenCassettes.contains(key: OpenCassettes.key(path)),
                let damage = WALInspection.damage(walPath: path + "-wal", shmPath: path + "-shm")
            {
                throw CassetteError(
                    code: .corrupted,
                    message: "the WAL file beside the cassette (\(url.lastPathComponent)-wal) holds recordings "
                        + "that cannot be read: \(damage). Opening it would drop them silently, so it was not "
                        + "opened. Restore the -wal file (or the cassette) from a backup; to keep only what can "
                        + "be read, move the -wal and -shm files away and open it again",
                    path: path)
            }
            // Read first: a writable cassette that holds a current schema opens its writer on the first write.
            let readers = try openReader(access)
            let state = try readers.unsafeRead { db in
                try Self.inReadTransaction(db) { try CassetteDatabase.schemaState($0, path: path) }
            }
            switch state {
            case .current:
                return Cassette(
                    url: url, reader: readers, access: access,
                    writer: access.isReadOnly ? nil : CassetteWriter(path: path, pool: nil))
            case .empty where access.isReadOnly:
                throw CassetteError(
                    code: .notACassette,
                    message: "the file is an empty database opened read-only; record into a writable copy",
                    path: path)
            case .needsMigration(let version) where access.isReadOnly:
                throw CassetteError(
                    code: .readOnly,
                    message: "the cassette has schema version \(version) and must be migrated to "
                        + "\(schemaVersion), which needs write access: run `sandbox-vcr cassette migrate \(path)` "
                        + "(and commit the result), or make the file writable",
                    path: path)
            case .empty, .needsMigration:
                try readers.close()
                return nil
            }
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// Creates the file, or migrates it to the current schema, through the writer's pool.
    private static func createOrMigrate(url: URL, access: CassetteFileAccess) throws -> Cassette {
        let path = url.path
        do {
            let pool = try CassetteWriter.openPool(path: path)
            try CassetteDatabase.migrate(pool, path: path)
            return Cassette(
                url: url, reader: try openReader(access), access: nil,
                writer: CassetteWriter(path: path, pool: pool))
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// The connection lookups use until (unless) the writer opens. On a file that can be written it is a read-write
    /// connection that only reads (`query_only`): unlike a read-only one it may remove the WAL and its index when it
    /// closes, so replaying leaves the folder as it was. A file that cannot be written is opened read-only (as
    /// `immutable` when it has no WAL).
    private static func openReader(_ access: CassetteFileAccess) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = !access.isWritable
        configuration.foreignKeysEnabled = false  // it only reads
        configuration.busyMode = .timeout(10)
        configuration.label = "sandbox-vcr cassette"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA query_only = ON; PRAGMA cache_size = -8000; PRAGMA mmap_size = 268435456")
        }
        return try DatabaseQueue(path: access.sqlitePath, configuration: configuration)
    }

    /// Opens a cassette, runs `body` with it, and closes it however `body` ends, so the `.sqlite` file alone holds
    /// every recording afterwards (the WAL is checkpointed into it and removed). The safe way to use a cassette
    /// outside a test trait: a cassette that is never closed leaves its recordings in a `-wal` file beside it.
    ///
    /// ```swift
    /// let result = try await Cassette.withCassette(at: URL(filePath: "grader.sqlite")) { cassette in
    ///     try await RecordingExecutor(cassette: cassette, live: live).execute(request)
    /// }
    /// ```
    ///
    /// - Throws: what ``open(at:readOnly:create:)`` or `body` throws.
    public static func withCassette<T>(
        at url: URL, readOnly: Bool = false, create: Bool = true,
        _ body: (Cassette) async throws -> sending T
    ) async throws -> sending T {
        let cassette = try await open(at: url, readOnly: readOnly, create: create)
        do {
            let value = try await body(cassette)
            try await cassette.flush()
            await cassette.close()
            return value
        } catch {
            await cassette.close()
            throw error
        }
    }

    /// Opens the connections for point reads beside the first: one per core beyond the first, at most 3. A failure
    /// leaves reads on the first connection.
    private func openMoreReaders() {
        guard let access else { return }
        let more = (1..<min(4, max(1, ProcessInfo.processInfo.activeProcessorCount))).compactMap { _ in
            try? Self.openReader(access)
        }
        let isOpen = pointReaders.withLock { readers in
            guard !isClosed.withLock({ $0 }) else { return false }
            readers += more
            return true
        }
        if !isOpen { for connection in more { try? connection.close() } }
    }

    /// Commits every pending replay stamp and closes the file (the WAL is checkpointed into it and removed). Later
    /// calls fail with an `io` error. Calling it twice is harmless.
    public func close() async {
        guard
            isClosed.withLock({ closed in
                defer { closed = true }; return !closed
            })
        else { return }
        await writer?.finish()
        closeConnections()
        OpenCassettes.remove(key: openKey)
    }

    /// Closes the readers, then the writer (the last connection to close checkpoints the WAL and removes it).
    private func closeConnections() {
        for connection in pointReaders.withLock({ $0 }).reversed() { try? connection.close() }
        writer?.closeConnections()
    }

    /// Waits until every recording and replay stamp so far is committed, and copies the WAL into the main file (so a
    /// copy of the `.sqlite` file alone holds every recording, unless another connection is reading).
    ///
    /// - Throws: ``CassetteError`` when the commit fails (disk full, read-only file).
    public func flush() async throws {
        try await writer?.flush()
    }

    // MARK: Reading

    /// The writer's pool of WAL readers once it is open, else the reading connection.
    private var readers: any DatabaseReader { writer?.openPool ?? reader }

    /// Where the next point read runs: the writer's pool once it is open, else the next reading connection.
    private var pointReader: any DatabaseReader {
        if let pool = writer?.openPool { return pool }
        let turn = pointReads.wrappingAdd(1, ordering: .relaxed).oldValue
        if turn == Self.readsBeforeMoreReaders { openMoreReaders() }
        return pointReaders.withLock { $0[Int(UInt(bitPattern: turn) % UInt($0.count))] }
    }

    /// Runs a point read on the caller's thread, through the pool's readers (microseconds; no hand-off), in one read
    /// transaction (``inReadTransaction(_:_:)``: these connections only read, so GRDB's `query_only` switching, four
    /// statements compiled per read, is left out).
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pointReader.unsafeRead { db in try Self.inReadTransaction(db, body) }
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// Runs `body` in one read transaction on a reading connection, with two cached statements (GRDB's `read` would
    /// also switch the connection to `query_only` and back).
    private static func inReadTransaction<T>(_ db: Database, _ body: (Database) throws -> T) throws -> T {
        try db.cachedStatement(sql: "BEGIN DEFERRED").execute()
        defer { try? db.cachedStatement(sql: "COMMIT").execute() }
        return try body(db)
    }

    /// Runs a read of many rows (up to a scan of the whole file): on the caller's thread when the file is small (as
    /// one test's cassette is: the hand-off would cost more than the read), else on a reader's own queue, off the
    /// cooperative pool.
    func scan<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        if isSmall { return try read(body) }
        do {
            return try await readers.read(body)
        } catch let error as DatabaseError {
            throw CassetteError(error, path: path)
        }
    }

    /// The largest file (with its WAL) that ``scan(_:)`` reads on the caller's thread.
    static let inlineScanBytes = 1 << 20

    /// Whether the file and its WAL hold at most ``inlineScanBytes``.
    private var isSmall: Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        var size = Int(info.st_size)
        if stat(path + "-wal", &info) == 0 { size += Int(info.st_size) }
        return size <= Self.inlineScanBytes
    }

    /// The number of interactions.
    public func count() async throws -> Int { try await scan { try CassetteDatabase.count($0) } }

    /// The recording for `(key, ordinal)`; with `orLast`, the highest ordinal below it when there is none. Runs on
    /// the caller's thread.
    func recording(key: ContentHash, ordinal: Int, orLast: Bool) throws -> CassetteDatabase.Recording? {
        let path = self.path
        return try read { try CassetteDatabase.recording(key: key, ordinal: ordinal, orLast: orLast, $0, path: path) }
    }

    /// Notes that an interaction was replayed now (stamped with the next commit, or at close).
    func markReplayed(_ id: Int64) {
        writer?.stampReplay(of: id, at: Date().timeIntervalSince1970)
    }

    /// Interactions in `(key, ordinal)` order, a page at a time.
    ///
    /// - Parameters:
    ///   - after: the last interaction of the previous page, or `nil` for the first page.
    ///   - limit: the page size.
    public func interactions(after: Interaction? = nil, limit: Int = 500) async throws -> [Interaction] {
        let path = self.path
        return try await scan {
            try CassetteDatabase.interactions(after: after?.key, ordinal: after?.ordinal, limit: limit, $0, path: path)
        }
    }

    /// Calls `body` with every interaction in `(key, ordinal)` order, loading a page at a time.
    public func forEachInteraction(_ body: (Interaction) async throws -> Void) async throws {
        var last: Interaction?
        while true {
            let page = try await interactions(after: last, limit: 500)
            for interaction in page { try await body(interaction) }
            guard let end = page.last else { return }
            last = end
        }
    }

    /// All interactions of one key, by ordinal.
    public func interactions(forKey key: ContentHash) async throws -> [Interaction] {
        let path = self.path
        return try await scan { try CassetteDatabase.interactions(forKey: key, $0, path: path) }
    }

    /// The steps of every session whose id starts with `prefix` (e.g. `modal/`), by id; other interactions are not
    /// decoded.
    public func interactions(inSessionsPrefixed prefix: String) async throws -> [Interaction] {
        // A read-only cassette's index is kept: one without sessions (most) needs no query.
        if writer == nil, try await !index().contains(where: \.inSession) { return [] }
        let path = self.path
        return try await scan { db in
            let ids = try Int64.fetchAll(
                db, sql: "SELECT id FROM interactions WHERE substr(session, 1, length(?)) = ? ORDER BY id",
                arguments: [prefix, prefix])
            return try CassetteDatabase.interactions(ids: ids, db, path: path)
        }
    }

    /// Interactions by id (ids that do not exist are left out).
    public func interactions(ids: [Int64]) async throws -> [Interaction] {
        let path = self.path
        return try await scan { try CassetteDatabase.interactions(ids: ids, $0, path: path) }
    }

    /// Up to `limit` stored requests most like `request` (same language or command, same code first); for miss
    /// diagnostics.
    func candidates(like request: ExecutionRequest, limit: Int) async throws -> [Interaction] {
        let path = self.path
        let programKind = EncodedInteraction.programKind(request)
        let codeHash = request.code.map(EncodedInteraction.codeHash)
        return try await scan {
            try CassetteDatabase.candidates(
                programKind: programKind, codeHash: codeHash, limit: limit, $0, path: path)
        }
    }

    /// The id, key and ordinal of every interaction, and whether it is a session's step, by id (for "never replayed"
    /// summaries).
    func index() async throws -> [IndexEntry] {
        if let kept = keptIndex.withLock({ $0 }) { return kept }
        let index = try await scan { try CassetteDatabase.index($0) }
        // Kept for a small read-only cassette, which only another process could change (an open cassette reads a
        // snapshot anyway): read once per test when the control API opens one per test.
        if writer == nil, index.count <= Self.keptIndexEntries { keptIndex.withLock { $0 = index } }
        return index
    }

    typealias IndexEntry = (id: Int64, key: ContentHash, ordinal: Int, inSession: Bool)

    /// The most index entries a read-only cassette keeps.
    static let keptIndexEntries = 10_000

    /// One past the highest recorded ordinal of a key (0 when it has none).
    /// The highest ordinal a cassette holds: the recordings of one key are counted far below it.
    static let maximumOrdinal = 1 << 48

    func nextOrdinal(for key: ContentHash) throws -> Int {
        try read { [path] in try CassetteDatabase.nextOrdinal(for: key, $0, path: path) }
    }

    // MARK: Writing

    /// Writes interactions in one transaction, replacing any with the same `(key, ordinal)`, and returns once they
    /// are committed. Concurrent calls share commits.
    ///
    /// - Parameters:
    ///   - interactions: the interactions to write (their keys from ``RequestMatcher/key(for:)``).
    ///   - cutoff: also delete recordings of the same keys made before this date (record mode `all` passes the
    ///     executor's start, so recordings from earlier runs go, this run's stay).
    /// - Throws: ``CassetteError`` `readOnly`, or the failure of this write (disk full, lock timeout).
    public func record(_ interactions: [NewInteraction], replacingOlderThan cutoff: Date? = nil) async throws {
        guard !interactions.isEmpty else { return }
        guard let writer else { throw readOnlyError }
        let encoded = interactions.map { EncodedInteraction($0, cache: digests) }
        try await writer.record(encoded, replacingOlderThan: cutoff?.timeIntervalSince1970)
    }

    var readOnlyError: CassetteError {
        CassetteError(
            code: .readOnly,
            message: "the cassette is read-only (file or folder not writable, or opened read-only); make it "
                + "writable to record, or replay with record mode `never`",
            path: path)
    }

    /// Runs a maintenance write (prune, merge, import) in one transaction of the writer.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        guard let writer else { throw readOnlyError }
        return try await writer.write(body)
    }
}

/// The cassette files this process has open (a count per path), so that opening one again does not inspect its WAL
/// (see ``WALInspection``).
enum OpenCassettes {
    private static let paths = Mutex([String: Int]())

    /// The file's canonical path (symbolic links resolved), or `path` standardized when it cannot be resolved.
    static func key(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return URL(fileURLWithPath: path).standardizedFileURL.path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func insert(key: String) {
        paths.withLock { $0[key, default: 0] += 1 }
    }

    static func remove(key: String) {
        paths.withLock { paths in
            paths[key, default: 1] -= 1
            if paths[key] == 0 { paths[key] = nil }
        }
    }

    static func contains(key: String) -> Bool {
        paths.withLock { $0[key] != nil }
    }
}
