internal import CSQLite
internal import Foundation

/// The cassette's tables, migrations and row mapping. Runs on the cassette's thread only.
///
/// ```sql
/// meta(key TEXT PRIMARY KEY, value TEXT)                 -- schema_version, created_at, created_by
/// blobs(hash BLOB PRIMARY KEY, size INTEGER, compression INTEGER, bytes BLOB) -- SHA-256 -> bytes, each once;
///                                          compression 0 raw, 1 zlib; hash and size of the uncompressed bytes
/// interactions(id, key, ordinal, session, step, backend, backend_version, request, outcome,
///              recorded_at, duration, last_replayed_at, program, code_hash)  -- UNIQUE(key, ordinal)
/// ```
///
/// `request` and `outcome` hold the records themselves; parts of 256 bytes or more inside them are references
/// to `blobs`. (Schema 1 stored the records as blobs too, in `request_blob` and `outcome_blob`.)
enum CassetteSchema {
    static let createInteractions = """
        CREATE TABLE interactions(
            id INTEGER PRIMARY KEY,
            key BLOB NOT NULL,
            ordinal INTEGER NOT NULL,
            session TEXT,
            step INTEGER,
            backend TEXT NOT NULL,
            backend_version TEXT,
            request BLOB NOT NULL,
            outcome BLOB NOT NULL,
            recorded_at REAL NOT NULL,
            duration REAL,
            last_replayed_at REAL,
            program TEXT NOT NULL,
            code_hash INTEGER
        );
        CREATE UNIQUE INDEX interactions_key_ordinal ON interactions(key, ordinal);
        CREATE INDEX interactions_program ON interactions(program, code_hash);
        """

    static let create = """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE blobs(
            hash BLOB PRIMARY KEY, size INTEGER NOT NULL, compression INTEGER NOT NULL DEFAULT 0,
            bytes BLOB NOT NULL
        );
        """ + createInteractions

    /// Forward migrations: entry `n` upgrades schema version `n + 1` to `n + 2`. Each runs inside the migration's
    /// transaction.
    static let migrations: [@Sendable (SQLiteConnection, String) throws -> Void] = [migrateRecordsInline]

    /// Schema 1 to 2: the request and outcome records move from `blobs` into the interaction's row (a recording
    /// then writes one row instead of three, and a replay reads one row fewer). Ids, keys and every other column
    /// are kept; the record blobs no interaction needs any more are deleted.
    static func migrateRecordsInline(_ connection: SQLiteConnection, path: String) throws {
        try connection.execute("ALTER TABLE interactions RENAME TO interactions_v1")
        try connection.execute("DROP INDEX interactions_key_ordinal")
        try connection.execute("DROP INDEX interactions_program")
        try connection.execute(createInteractions)
        // Every column as it was; `request` and `outcome` hold the record hashes until the loop below.
        try connection.execute(
            "INSERT INTO interactions(id, key, ordinal, session, step, backend, backend_version, request, outcome, "
                + "recorded_at, duration, last_replayed_at, program, code_hash) "
                + "SELECT id, key, ordinal, session, step, backend, backend_version, request_blob, outcome_blob, "
                + "recorded_at, duration, last_replayed_at, program, NULL FROM interactions_v1")
        let rows = try connection.statement("SELECT id, request_blob, outcome_blob FROM interactions_v1")
        let update = try connection.statement(
            "UPDATE interactions SET request = ?, outcome = ?, code_hash = ? WHERE id = ?")
        var records: Set<[UInt8]> = []
        while try rows.step() {
            let id = rows.int(0)
            let requestHash = rows.bytes(1)
            let outcomeHash = rows.bytes(2)
            records.insert(requestHash)
            records.insert(outcomeHash)
            let request = Array(try loadBlob(requestHash, connection, path: path))
            // Schema 1's code hash was a SHA-256; schema 2's is `codeHash(_:)` of the code.
            let code = try decodeRequest(request, id: id, connection, path: path).code
            update.reset()
            update.bind(1, bytes: request)
            update.bind(2, bytes: Array(try loadBlob(outcomeHash, connection, path: path)))
            update.bind(3, code.map(codeHash))
            update.bind(4, id)
            try update.run()
        }
        rows.reset()
        try connection.execute("DROP TABLE interactions_v1")
        // The record blobs are now unused, unless a record is also a part of another record (never in practice).
        let referenced = try referencedParts(connection)
        let delete = try connection.statement("DELETE FROM blobs WHERE hash = ?")
        for record in records where !referenced.contains(record) {
            delete.reset()
            delete.bind(1, bytes: record)
            try delete.run()
        }
    }

    /// Prepares a freshly opened connection, retrying while other processes hold locks.
    ///
    /// Two processes switching a new file to WAL at once can get `SQLITE_BUSY` without the busy handler being
    /// called (each holds a shared lock and wants an exclusive one), so this retries with a short back-off for up
    /// to the busy timeout.
    static func prepare(_ connection: SQLiteConnection, path: String) throws {
        let deadline = ContinuousClock.now + .seconds(10)
        var pause: UInt32 = 1000
        while true {
            do {
                return try prepareOnce(connection, path: path)
            } catch let error as SQLiteError where error.code == SQLITE_BUSY || error.code == SQLITE_LOCKED {
                if connection.isInsideTransaction { try? connection.execute("ROLLBACK") }
                guard ContinuousClock.now < deadline else { throw error }
                usleep(pause)
                pause = min(pause * 2, 50_000)
            }
        }
    }

    private static func prepareOnce(_ connection: SQLiteConnection, path: String) throws {
        try connection.execute("PRAGMA busy_timeout = 10000")
        try connection.execute("PRAGMA cache_size = -8000")
        try connection.execute("PRAGMA mmap_size = 268435456")
        if !connection.isReadOnly {
            _ = try connection.scalarText("PRAGMA journal_mode = WAL")
            try connection.execute("PRAGMA synchronous = NORMAL")
            // Checkpoint (which syncs) every ~16 MB of WAL rather than every 4 MB; closing checkpoints anyway.
            try connection.execute("PRAGMA wal_autocheckpoint = 4000")
        }
        let tables = try connection.scalarInt("SELECT count(*) FROM sqlite_master") ?? 0
        if tables == 0 {
            guard !connection.isReadOnly else {
                throw CassetteError(
                    code: .notACassette,
                    message: "the file is an empty database opened read-only; record into a writable copy",
                    path: path)
            }
            try connection.execute("BEGIN IMMEDIATE")
            do {
                if try connection.scalarInt("SELECT count(*) FROM sqlite_master") ?? 0 == 0 {
                    try connection.execute(create)
                    try connection.execute("PRAGMA application_id = \(Cassette.applicationID)")
                    let insert = try connection.statement("INSERT INTO meta(key, value) VALUES (?, ?)")
                    for (key, value) in [
                        ("schema_version", String(Cassette.schemaVersion)),
                        ("created_at", ISO8601DateFormatter().string(from: Date())),
                        ("created_by", "sandbox-vcr"),
                    ] {
                        insert.reset()
                        insert.bind(1, key)
                        insert.bind(2, value)
                        try insert.run()
                    }
                }
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
        let applicationID = try connection.scalarInt("PRAGMA application_id") ?? 0
        guard applicationID == Int64(Cassette.applicationID) else {
            throw CassetteError(
                code: .notACassette,
                message: "the file is a SQLite database but not a SandboxVCR cassette (application_id "
                    + "\(applicationID)); pass the path of a cassette, or move this file away",
                path: path)
        }
        let version = Int(try connection.scalarText("SELECT value FROM meta WHERE key = 'schema_version'") ?? "") ?? 0
        if version > Cassette.schemaVersion {
            throw CassetteError(
                code: .newerSchema,
                message: "the cassette has schema version \(version), newer than the \(Cassette.schemaVersion) this "
                    + "sandbox-vcr reads; upgrade sandbox-vcr (the SandboxVCR package) to use it",
                path: path)
        }
        if version < Cassette.schemaVersion {
            guard version >= 1, !connection.isReadOnly else {
                throw CassetteError(
                    code: version >= 1 ? .readOnly : .corrupted,
                    message: version >= 1
                        ? "the cassette has schema version \(version) and must be migrated to "
                            + "\(Cassette.schemaVersion), which needs write access; make the file writable"
                        : "the cassette has no schema version; restore it from version control or re-record it",
                    path: path)
            }
            try migrate(connection, from: version, path: path)
        }
    }

    static func migrate(_ connection: SQLiteConnection, from version: Int, path: String) throws {
        try connection.execute("BEGIN IMMEDIATE")
        do {
            var current =
                Int(try connection.scalarText("SELECT value FROM meta WHERE key = 'schema_version'") ?? "")
                ?? version
            while current < Cassette.schemaVersion {
                try migrations[current - 1](connection, path)
                current += 1
            }
            try connection.execute("UPDATE meta SET value = '\(current)' WHERE key = 'schema_version'")
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    // MARK: Rows

    static let interactionColumns =
        "id, key, ordinal, session, step, backend, backend_version, request, outcome, recorded_at, "
        + "duration, last_replayed_at"

    struct Row {
        var id: Int64
        var key: [UInt8]
        var ordinal: Int
        var session: String?
        var step: Int?
        var backend: String
        var backendVersion: String?
        var request: [UInt8]
        var outcome: [UInt8]
        var recordedAt: Double
        var duration: Double?
        var lastReplayedAt: Double?

        init(_ statement: SQLiteStatement) {
            id = statement.int(0)
            key = statement.bytes(1)
            ordinal = Int(statement.int(2))
            session = statement.text(3)
            step = statement.isNull(4) ? nil : Int(statement.int(4))
            backend = statement.text(5) ?? ""
            backendVersion = statement.text(6)
            request = statement.bytes(7)
            outcome = statement.bytes(8)
            recordedAt = statement.double(9)
            duration = statement.optionalDouble(10)
            lastReplayedAt = statement.optionalDouble(11)
        }
    }

    static func corrupted(_ path: String, _ detail: String) -> CassetteError {
        CassetteError(
            code: .corrupted,
            message: "\(detail); run `sandbox-vcr cassette verify \(path)`, then restore the file from version "
                + "control or re-record it",
            path: path)
    }

    static func loadBlob(_ hash: [UInt8], _ connection: SQLiteConnection, path: String) throws -> Data {
        let statement = try connection.statement("SELECT compression, size, bytes FROM blobs WHERE hash = ?")
        statement.bind(1, bytes: hash)
        guard try statement.step() else {
            statement.reset()
            throw corrupted(path, "blob \(SHA256.Digest(unchecked: hash).hex) is missing")
        }
        let data = BlobCompression.unpack(
            statement.data(2), compression: statement.int(0), size: Int(statement.int(1)))
        statement.reset()
        guard let data else { throw corrupted(path, "blob \(SHA256.Digest(unchecked: hash).hex) cannot be read") }
        return data
    }

    /// Decodes an outcome record, loading the parts it references.
    static func decodeOutcome(_ record: [UInt8], id: Int64, _ connection: SQLiteConnection, path: String) throws
        -> Cassette.Outcome
    {
        do {
            return try RecordCoding.decodeOutcome(record) { try loadBlob($0.bytes, connection, path: path) }
        } catch is ByteReader.CodingFailure {
            throw corrupted(path, "the outcome record of interaction \(id) cannot be decoded")
        }
    }

    /// Decodes a request record, loading the parts it references.
    static func decodeRequest(_ record: [UInt8], id: Int64, _ connection: SQLiteConnection, path: String) throws
        -> ExecutionRequest
    {
        do {
            return try RecordCoding.decodeRequest(record) { try loadBlob($0.bytes, connection, path: path) }
        } catch is ByteReader.CodingFailure {
            throw corrupted(path, "the request record of interaction \(id) cannot be decoded")
        }
    }

    static func interaction(from row: Row, _ connection: SQLiteConnection, path: String) throws
        -> Cassette.Interaction
    {
        Cassette.Interaction(
            id: row.id, key: SHA256.Digest(unchecked: row.key), ordinal: row.ordinal, session: row.session,
            step: row.step, backend: row.backend, backendVersion: row.backendVersion,
            request: try decodeRequest(row.request, id: row.id, connection, path: path),
            outcome: try decodeOutcome(row.outcome, id: row.id, connection, path: path),
            recordedAt: Date(timeIntervalSince1970: row.recordedAt), duration: row.duration,
            lastReplayedAt: row.lastReplayedAt.map { Date(timeIntervalSince1970: $0) },
            outcomeHash: SHA256.hash(row.outcome))
    }

    // MARK: Writing

    /// An interaction encoded off the SQLite thread, ready to insert.
    struct EncodedInteraction: Sendable {
        var key: [UInt8]
        var ordinal: Int
        var session: String?
        var step: Int?
        var backend: String
        var backendVersion: String?
        var request: [UInt8]
        var outcome: [UInt8]
        /// The parts the records reference, by hash.
        var blobs: [SHA256.Digest: Data]
        var recordedAt: Double
        var duration: Double?
        var lastReplayedAt: Double?
        var program: String
        var codeHash: Int64?

        init(_ interaction: Cassette.NewInteraction, cache: PartDigestCache? = nil) {
            var sink = BlobSink(cache: cache)
            request = RecordCoding.encode(interaction.request, sink: &sink)
            outcome = RecordCoding.encode(interaction.outcome, sink: &sink)
            blobs = sink.blobs
            key = interaction.key.bytes
            ordinal = interaction.ordinal
            session = interaction.session
            step = interaction.step
            backend = interaction.backend
            backendVersion = interaction.backendVersion
            recordedAt = interaction.recordedAt.timeIntervalSince1970
            duration = interaction.duration
            lastReplayedAt = interaction.lastReplayedAt?.timeIntervalSince1970
            program = programKind(interaction.request)
            codeHash = interaction.request.code.map(CassetteSchema.codeHash)
        }
    }

    /// The `code_hash` column: FNV-1a (64 bits) of the code's UTF-8, to put recordings of the same code first in
    /// miss diagnostics. Not a content address: equal hashes are only a hint.
    static func codeHash(_ code: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in code.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// `python`, `cpp`, ... for source requests; `command:<argv0>` for commands.
    static func programKind(_ request: ExecutionRequest) -> String {
        switch request.program {
        case .source(let language, _): language.rawValue
        case .command(let argv, _): "command:" + (argv.first ?? "")
        }
    }

    static func write(
        _ interactions: [EncodedInteraction], replacingOlderThan cutoff: Double?, _ connection: SQLiteConnection
    ) throws {
        if let cutoff {
            let delete = try connection.statement("DELETE FROM interactions WHERE key = ? AND recorded_at < ?")
            for key in Set(interactions.map(\.key)) {
                delete.reset()
                delete.bind(1, bytes: key)
                delete.bind(2, cutoff)
                try delete.run()
            }
        }
        let exists = try connection.statement("SELECT 1 FROM blobs WHERE hash = ?")
        let blob = try connection.statement(
            "INSERT OR IGNORE INTO blobs(hash, size, compression, bytes) VALUES (?, ?, ?, ?)")
        let insert = try connection.statement(
            "INSERT OR REPLACE INTO interactions(key, ordinal, session, step, backend, backend_version, "
                + "request, outcome, recorded_at, duration, last_replayed_at, program, code_hash) "
                + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        for interaction in interactions {
            for (hash, bytes) in interaction.blobs {
                if bytes.count < BlobCompression.minimumSize {
                    // Small blobs are stored raw: no need to look before inserting.
                    blob.reset()
                    blob.bind(1, digest: hash)
                    blob.bind(2, Int64(bytes.count))
                    blob.bind(3, BlobCompression.raw)
                    blob.bind(4, data: bytes)
                    try blob.run()
                    continue
                }
                exists.reset()
                exists.bind(1, digest: hash)
                let isStored = try exists.step()
                exists.reset()
                if isStored { continue }
                let packed = BlobCompression.pack(bytes)
                blob.reset()
                blob.bind(1, digest: hash)
                blob.bind(2, Int64(bytes.count))
                blob.bind(3, packed.compression)
                blob.bind(4, data: packed.bytes)
                try blob.run()
            }
            insert.reset()
            insert.bind(1, bytes: interaction.key)
            insert.bind(2, Int64(interaction.ordinal))
            insert.bind(3, interaction.session)
            insert.bind(4, interaction.step.map(Int64.init))
            insert.bind(5, interaction.backend)
            insert.bind(6, interaction.backendVersion)
            insert.bind(7, bytes: interaction.request)
            insert.bind(8, bytes: interaction.outcome)
            insert.bind(9, interaction.recordedAt)
            insert.bind(10, interaction.duration)
            insert.bind(11, interaction.lastReplayedAt)
            insert.bind(12, interaction.program)
            insert.bind(13, interaction.codeHash)
            try insert.run()
        }
    }

    static func delete(key: SHA256.Digest, _ connection: SQLiteConnection) throws {
        let statement = try connection.statement("DELETE FROM interactions WHERE key = ?")
        statement.bind(1, digest: key)
        try statement.run()
    }

    /// The hashes of every part the stored records reference.
    static func referencedParts(_ connection: SQLiteConnection) throws -> Set<[UInt8]> {
        var referenced = Set<[UInt8]>()
        let rows = try connection.statement("SELECT request, outcome FROM interactions")
        // Decode with a loader that notes references instead of loading them.
        let loader: (SHA256.Digest) throws -> Data = { digest in
            referenced.insert(digest.bytes)
            return Data()
        }
        while try rows.step() {
            // A record that cannot be decoded references nothing it can be asked for; `verify` reports it.
            _ = try? RecordCoding.decodeRequest(rows.bytes(0), load: loader)
            _ = try? RecordCoding.decodeOutcome(rows.bytes(1), load: loader)
        }
        rows.reset()
        return referenced
    }

    /// Deletes blobs no interaction references any more.
    static func collectGarbage(_ connection: SQLiteConnection, path: String) throws -> Int {
        let referenced = try referencedParts(connection)
        let all = try connection.statement("SELECT hash FROM blobs")
        var unreferenced: [[UInt8]] = []
        while try all.step() {
            let hash = all.bytes(0)
            if !referenced.contains(hash) { unreferenced.append(hash) }
        }
        all.reset()
        let delete = try connection.statement("DELETE FROM blobs WHERE hash = ?")
        for hash in unreferenced {
            delete.reset()
            delete.bind(1, bytes: hash)
            try delete.run()
        }
        return unreferenced.count
    }
}
