internal import CSQLite
public import Foundation
internal import Synchronization

/// A SQLite file of recorded executions: requests, and the results (or errors) they produced.
///
/// Every SQLite call runs on the cassette's own thread. The file uses WAL, a 10 s busy timeout and
/// `BEGIN IMMEDIATE` for writes, so many tasks and several processes can record and replay through one file.
/// Large parts of requests and results are stored once by SHA-256. See the "Cassette format" article.
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
        public var key: SHA256.Digest
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
            key: SHA256.Digest, ordinal: Int, session: String? = nil, step: Int? = nil, backendVersion: String? = nil,
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

        /// The backend recorded in the outcome (or `unknown` for an error).
        public var backend: String {
            if case .result(let result) = outcome { return result.backend.rawValue }
            return "error"
        }
    }

    /// One stored interaction, read back.
    public struct Interaction: Sendable, Hashable {
        public var id: Int64
        public var key: SHA256.Digest
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
        public var outcomeHash: SHA256.Digest
    }

    /// The current schema version. Older cassettes are migrated forward when opened writable.
    public static let schemaVersion = 2
    /// `PRAGMA application_id` of every cassette: "SVCR".
    public static let applicationID: Int32 = 0x5356_4352

    /// The cassette file.
    public let url: URL
    /// Whether the cassette was opened read-only (explicitly, or because the file is not writable).
    public let isReadOnly: Bool
    let worker: CassetteWorker
    /// Remembers digests of large parts written recently (a shared harness file is hashed once).
    let digests = PartDigestCache()
    /// The keys this cassette holds, while this connection knows them all (see ``KnownKeys``).
    let knownKeys: KnownKeys
    /// Lookups sent to the SQLite thread (``recording(key:ordinal:orLast:)`` calls), for tests.
    let lookupCount = Atomic(0)

    private init(url: URL, isReadOnly: Bool, worker: CassetteWorker, knownKeys: KnownKeys) {
        self.url = url
        self.isReadOnly = isReadOnly
        self.worker = worker
        self.knownKeys = knownKeys
    }

    deinit { worker.stop() }

    var path: String { url.path }

    /// Opens (or creates) a cassette. Constant time and memory: nothing is loaded up front.
    ///
    /// - Parameters:
    ///   - url: the `.sqlite` file.
    ///   - readOnly: open without writing; also chosen automatically when the file is not writable.
    ///   - create: create the file (and its folder) when missing; otherwise a missing file is an `io` error.
    /// - Throws: ``CassetteError`` (`notACassette`, `corrupted`, `newerSchema`, `readOnly`, `io`).
    public static func open(at url: URL, readOnly: Bool = false, create: Bool = true) async throws -> Cassette {
        try await open(at: url, readOnly: readOnly, create: create, pollWindow: CassetteWorker.replayPollWindow)
    }

    /// ``open(at:readOnly:create:)`` with the SQLite thread's idle poll window set (tests use a long one to keep
    /// the thread from going idle).
    static func open(at url: URL, readOnly: Bool, create: Bool, pollWindow: Duration) async throws -> Cassette {
        let path = url.path
        let manager = FileManager.default
        var readOnly = readOnly
        var immutable = false
        if manager.fileExists(atPath: path) {
            try checkHeader(path: path)
            var info = stat()
            let hasNoWriteBits = stat(path, &info) == 0 && info.st_mode & 0o222 == 0
            if !readOnly
                && (access(path, W_OK) != 0 || hasNoWriteBits
                    || access(url.deletingLastPathComponent().path, W_OK) != 0)
            {
                readOnly = true
                // Without write access SQLite cannot use the WAL index; read the file as immutable unless a WAL
                // with committed data is present (then a plain read-only open reads it).
                var walInfo = stat()
                immutable = stat(path + "-wal", &walInfo) != 0 || walInfo.st_size == 0
            }
        } else {
            guard create, !readOnly else {
                throw CassetteError(
                    code: .io,
                    message: "no cassette at this path; check the path, or record one first (record mode `missing`)",
                    path: path)
            }
            do {
                try manager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            } catch {
                throw CassetteError(
                    code: .io, message: "cannot create the cassette's folder (\(error)); check permissions",
                    path: path)
            }
        }
        let isReadOnly = readOnly
        let useImmutable = immutable
        let knownKeys = KnownKeys()
        let worker = try await CassetteWorker.start(
            path: path, name: "sandbox-vcr cassette", pollWindow: pollWindow, knownKeys: knownKeys,
            open: {
                do {
                    if useImmutable {
                        return try SQLiteConnection(path: immutableURI(path), readOnly: true, create: false)
                    }
                    return try SQLiteConnection(path: path, readOnly: isReadOnly, create: !isReadOnly)
                } catch let error as SQLiteError {
                    throw CassetteError.from(error, path: path)
                }
            },
            setUp: { connection in
                do {
                    try CassetteSchema.prepare(connection, path: path)
                    if !connection.isReadOnly {
                        // The version first: a commit by another connection after it turns the filter off.
                        let version = try connection.scalarInt("PRAGMA data_version") ?? 0
                        if try connection.scalarInt("SELECT EXISTS (SELECT 1 FROM interactions)") == 0 {
                            knownKeys.startEmpty(dataVersion: version)
                        }
                    }
                } catch let error as SQLiteError {
                    throw CassetteError.from(error, path: path)
                }
            })
        return Cassette(url: url, isReadOnly: isReadOnly, worker: worker, knownKeys: knownKeys)
    }

    private static func immutableURI(_ path: String) -> String {
        var escaped = ""
        for character in path.unicodeScalars {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return "file:\(escaped)?immutable=1"
    }

    /// Rejects files that cannot be SQLite databases before SQLite sees them.
    private static func checkHeader(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CassetteError(
                code: .io, message: "the file cannot be read; check its permissions", path: path)
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        if header.isEmpty { return }
        if header != Data("SQLite format 3\0".utf8) {
            throw CassetteError(
                code: .notACassette,
                message: "the file is not a SQLite database, so not a cassette; pass the path of a `.sqlite` "
                    + "cassette, or move this file away and record a new cassette",
                path: path)
        }
    }

    /// Finishes pending work, stamps replayed interactions and closes the file (checkpointing the WAL). Call
    /// ``flush()`` first to learn about failed background writes.
    public func close() async { await worker.stopAndWait() }

    /// Runs a job on the cassette's thread (a `lookupKey` job reads only that request key's rows).
    func perform<T: Sendable>(
        write: Bool = false, lookupKey: SHA256.Digest? = nil, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        if write && isReadOnly {
            throw CassetteError(
                code: .readOnly,
                message: "the cassette is read-only (file or folder not writable, or opened read-only); make "
                    + "it writable to record, or replay with record mode `never`",
                path: path)
        }
        return try await worker.perform(write: write, lookupKey: lookupKey, body)
    }

    // MARK: Reading

    /// The number of interactions.
    public func count() async throws -> Int {
        try await perform { Int(try $0.scalarInt("SELECT count(*) FROM interactions") ?? 0) }
    }

    /// A replayable recording: its id, outcome and age.
    struct Recording: Sendable {
        var id: Int64
        var ordinal: Int
        var outcome: Outcome
        var recordedAt: Double
    }

    /// The recording for `(key, ordinal)`; with `orLast`, the highest ordinal below it when there is none.
    func recording(key: SHA256.Digest, ordinal: Int, orLast: Bool) async throws -> Recording? {
        lookupCount.add(1, ordering: .relaxed)
        let path = self.path
        return try await perform(lookupKey: key) { connection in
            let statement = try connection.statement(
                orLast
                    ? "SELECT id, outcome, recorded_at, ordinal FROM interactions WHERE key = ? AND ordinal <= ? "
                        + "ORDER BY ordinal DESC LIMIT 1"
                    : "SELECT id, outcome, recorded_at, ordinal FROM interactions WHERE key = ? AND ordinal = ?")
            statement.bind(1, digest: key)
            statement.bind(2, Int64(ordinal))
            guard try statement.step() else { return nil }
            let id = statement.int(0)
            let record = statement.bytes(1)
            let recordedAt = statement.double(2)
            let found = Int(statement.int(3))
            statement.reset()
            let outcome = try CassetteSchema.decodeOutcome(record, id: id, connection, path: path)
            return Recording(id: id, ordinal: found, outcome: outcome, recordedAt: recordedAt)
        }
    }

    /// Notes that an interaction was replayed now (written lazily, in batches).
    func markReplayed(_ id: Int64) {
        guard !isReadOnly else { return }
        worker.touch(id, at: Date().timeIntervalSince1970)
    }

    /// Interactions in `(key, ordinal)` order, a page at a time.
    ///
    /// - Parameters:
    ///   - after: the last interaction of the previous page, or `nil` for the first page.
    ///   - limit: the page size.
    public func interactions(after: Interaction? = nil, limit: Int = 500) async throws -> [Interaction] {
        let path = self.path
        let afterKey = after?.key.bytes
        let afterOrdinal = after.map { Int64($0.ordinal) }
        return try await perform { connection in
            let statement = try connection.statement(
                "SELECT \(CassetteSchema.interactionColumns) FROM interactions "
                    + "WHERE (?1 IS NULL OR key > ?1 OR (key = ?1 AND ordinal > ?2)) ORDER BY key, ordinal LIMIT ?3")
            statement.bind(1, bytes: afterKey)
            statement.bind(2, afterOrdinal)
            statement.bind(3, Int64(limit))
            var rows: [CassetteSchema.Row] = []
            while try statement.step() { rows.append(CassetteSchema.Row(statement)) }
            statement.reset()
            return try rows.map { try CassetteSchema.interaction(from: $0, connection, path: path) }
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
    public func interactions(forKey key: SHA256.Digest) async throws -> [Interaction] {
        let path = self.path
        return try await perform { connection in
            let statement = try connection.statement(
                "SELECT \(CassetteSchema.interactionColumns) FROM interactions WHERE key = ? ORDER BY ordinal")
            statement.bind(1, digest: key)
            var rows: [CassetteSchema.Row] = []
            while try statement.step() { rows.append(CassetteSchema.Row(statement)) }
            statement.reset()
            return try rows.map { try CassetteSchema.interaction(from: $0, connection, path: path) }
        }
    }

    /// Interactions by id.
    func interactions(ids: [Int64]) async throws -> [Interaction] {
        let path = self.path
        return try await perform { connection in
            let statement = try connection.statement(
                "SELECT \(CassetteSchema.interactionColumns) FROM interactions WHERE id = ?")
            var result: [Interaction] = []
            for id in ids {
                statement.reset()
                statement.bind(1, id)
                if try statement.step() {
                    let row = CassetteSchema.Row(statement)
                    result.append(try CassetteSchema.interaction(from: row, connection, path: path))
                }
            }
            statement.reset()
            return result
        }
    }

    /// Up to `limit` stored requests most like one with this program kind (same language or command),
    /// preferring identical code; for miss diagnostics.
    func candidates(programKind: String, codeHash: Int64?, limit: Int) async throws -> [Interaction] {
        let path = self.path
        return try await perform { connection in
            let statement = try connection.statement(
                "SELECT \(CassetteSchema.interactionColumns) FROM interactions WHERE program = ?1 "
                    + "ORDER BY (code_hash IS ?2) DESC, id DESC LIMIT ?3")
            statement.bind(1, programKind)
            statement.bind(2, codeHash)
            statement.bind(3, Int64(limit))
            var rows: [CassetteSchema.Row] = []
            while try statement.step() { rows.append(CassetteSchema.Row(statement)) }
            statement.reset()
            if rows.isEmpty {
                let any = try connection.statement(
                    "SELECT \(CassetteSchema.interactionColumns) FROM interactions ORDER BY id DESC LIMIT ?1")
                any.bind(1, Int64(limit))
                while try any.step() { rows.append(CassetteSchema.Row(any)) }
                any.reset()
            }
            return try rows.map { try CassetteSchema.interaction(from: $0, connection, path: path) }
        }
    }

    // MARK: Writing

    /// Writes interactions in one transaction, replacing any with the same `(key, ordinal)`.
    ///
    /// - Parameters:
    ///   - interactions: the interactions to write (their keys from ``RequestMatcher/key(for:)``).
    ///   - cutoff: also delete recordings of the same keys made before this date (record mode `all` passes the
    ///     executor's start, so recordings from earlier runs go, this run's stay).
    public func record(_ interactions: [NewInteraction], replacingOlderThan cutoff: Date? = nil) async throws {
        guard !interactions.isEmpty else { return }
        let encoded = encodedForWriting(interactions)
        let cutoffTime = cutoff?.timeIntervalSince1970
        try await perform(write: true) { connection in
            try CassetteSchema.write(encoded, replacingOlderThan: cutoffTime, connection)
        }
    }

    /// Queues interactions to be written without waiting for the commit (record mode paths); see ``flush()``.
    func recordInBackground(_ interactions: [NewInteraction], replacingOlderThan cutoff: Date? = nil) async throws {
        if isReadOnly {
            throw CassetteError(
                code: .readOnly,
                message: "the cassette is read-only (file or folder not writable, or opened read-only); make "
                    + "it writable to record, or replay with record mode `never`",
                path: path)
        }
        let encoded = encodedForWriting(interactions)
        let cutoffTime = cutoff?.timeIntervalSince1970
        try await worker.submit(keys: interactions.map(\.key)) { connection in
            try CassetteSchema.write(encoded, replacingOlderThan: cutoffTime, connection)
        }
    }

    /// Notes the keys about to be written (before the write is queued, so no lookup can miss them) and encodes
    /// the interactions off the SQLite thread.
    private func encodedForWriting(_ interactions: [NewInteraction]) -> [CassetteSchema.EncodedInteraction] {
        if !isReadOnly { for interaction in interactions { knownKeys.insert(interaction.key) } }
        return interactions.map { CassetteSchema.EncodedInteraction($0, cache: digests) }
    }

    /// Waits until every recording made so far is committed to the file.
    ///
    /// - Throws: the first error of a recording written in the background (disk full, read-only file).
    public func flush() async throws {
        if !isReadOnly { try await worker.perform(write: true) { _ in } }
        if let error = worker.takeBackgroundError() { throw error }
    }

    /// The id, key and ordinal of every interaction, by id (for "never replayed" summaries).
    func index() async throws -> [(id: Int64, key: SHA256.Digest, ordinal: Int)] {
        try await perform { connection in
            let statement = try connection.statement("SELECT id, key, ordinal FROM interactions ORDER BY id")
            var rows: [(id: Int64, key: SHA256.Digest, ordinal: Int)] = []
            while try statement.step() {
                rows.append((statement.int(0), SHA256.Digest(unchecked: statement.bytes(1)), Int(statement.int(2))))
            }
            statement.reset()
            return rows
        }
    }
}
