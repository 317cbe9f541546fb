internal import Foundation
internal import GRDB

/// The cassette's schema, built by named migrations (GRDB's `DatabaseMigrator`).
///
/// ```sql
/// meta(key TEXT PRIMARY KEY, value TEXT)                 -- schema_version, created_at, created_by
/// blobs(hash BLOB PRIMARY KEY, size INTEGER, compression INTEGER, bytes BLOB, checksum INTEGER)
///                                          -- SHA-256 -> bytes, each once; compression 0 raw, 1 zlib; hash and
///                                          size of the uncompressed bytes, checksum (CRC-32) of the stored ones
/// interactions(id, key, ordinal, session, step, backend, backend_version, request, outcome,
///              recorded_at, duration, last_replayed_at, program, code_hash,
///              request_checksum, outcome_checksum)  -- UNIQUE(key, ordinal); CRC-32 of each record
/// ```
///
/// `request` and `outcome` hold the records themselves; parts of 256 bytes or more inside them are references to
/// `blobs`. Cassettes written before the migrator existed carry only `meta.schema_version`; ``adoptLegacyVersion(_:)``
/// marks the migrations that version stands for as applied. `meta.schema_version` is kept up to date, so an older
/// sandbox-vcr refuses a newer file with a clear error.
extension CassetteDatabase {
    /// The schema version the newest migration leaves (`meta.schema_version`).
    static let schemaVersion = 3

    /// The migrations, oldest first, each with the schema version it leaves.
    static let migrations:
        [(identifier: String, version: Int, migrate: @Sendable (Database, _ path: String) throws -> Void)] = [
            ("createTables", 1, createTables),
            ("recordsInline", 2, moveRecordsInline),
            ("recordChecksums", 3, addChecksums),
        ]

    /// The migrator of the cassette at `path` (named in errors).
    static func migrator(path: String) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.identifier) { db in
                try migration.migrate(db, path)
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    arguments: [String(migration.version)])
            }
        }
        return migrator
    }

    /// Schema 1: `meta`, `blobs`, and `interactions` referencing its records in `blobs`.
    private static func createTables(_ db: Database, path: String) throws {
        try db.execute(
            sql: """
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE blobs(
                    hash BLOB PRIMARY KEY, size INTEGER NOT NULL, compression INTEGER NOT NULL DEFAULT 0,
                    bytes BLOB NOT NULL
                );
                CREATE TABLE interactions(
                    id INTEGER PRIMARY KEY,
                    key BLOB NOT NULL,
                    ordinal INTEGER NOT NULL,
                    session TEXT,
                    step INTEGER,
                    backend TEXT NOT NULL,
                    backend_version TEXT,
                    request_blob BLOB NOT NULL,
                    outcome_blob BLOB NOT NULL,
                    recorded_at REAL NOT NULL,
                    duration REAL,
                    last_replayed_at REAL,
                    program TEXT NOT NULL,
                    code_hash BLOB
                );
                CREATE UNIQUE INDEX interactions_key_ordinal ON interactions(key, ordinal);
                CREATE INDEX interactions_program ON interactions(program, code_hash);
                """)
        try db.execute(
            sql: "INSERT INTO meta(key, value) VALUES ('created_at', ?), ('created_by', 'sandbox-vcr')",
            arguments: [ISO8601DateFormatter().string(from: Date())])
    }

    /// Schema 1 to 2: the request and outcome records move from `blobs` into the interaction's row (a recording
    /// then writes one row instead of three, and a replay reads one row fewer). Ids, keys and every other column are
    /// kept; `code_hash` becomes ``EncodedInteraction/codeHash(_:)`` of the code; the record blobs no interaction
    /// needs any more are deleted.
    private static func moveRecordsInline(_ db: Database, path: String) throws {
        try db.execute(
            sql: """
                ALTER TABLE interactions RENAME TO interactions_v1;
                DROP INDEX interactions_key_ordinal;
                DROP INDEX interactions_program;
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
                INSERT INTO interactions(id, key, ordinal, session, step, backend, backend_version, request, outcome,
                    recorded_at, duration, last_replayed_at, program, code_hash)
                SELECT id, key, ordinal, session, step, backend, backend_version, request_blob, outcome_blob,
                    recorded_at, duration, last_replayed_at, program, NULL FROM interactions_v1;
                """)
        // `request` and `outcome` hold the record hashes until this loop replaces them with the records.
        let update = try db.makeStatement(
            sql: "UPDATE interactions SET request = ?, outcome = ?, code_hash = ? WHERE id = ?")
        var records = Set<ContentHash>()
        let rows = try Row.fetchCursor(db, sql: "SELECT id, request_blob, outcome_blob FROM interactions_v1")
        while let row = try rows.next() {
            let id: Int64 = try column(row, 0, path: path)
            let requestHash = ContentHash(unchecked: Array(try column(row, 1, path: path) as Data))
            let outcomeHash = ContentHash(unchecked: Array(try column(row, 2, path: path) as Data))
            records.insert(requestHash)
            records.insert(outcomeHash)
            let request = try loadBlob(requestHash, db, path: path, checksum: false)
            let code = try decodeRequest(Array(request), id: id, db, path: path, checksums: false).code
            try update.execute(arguments: [
                request, try loadBlob(outcomeHash, db, path: path, checksum: false),
                code.map(EncodedInteraction.codeHash), id,
            ])
        }
        try db.execute(sql: "DROP TABLE interactions_v1")
        // The record blobs are now unused, unless a record is also a part of another record (never in practice).
        let referenced = try referencedParts(db)
        let delete = try db.makeStatement(sql: "DELETE FROM blobs WHERE hash = ?")
        for record in records.subtracting(referenced) { try delete.execute(arguments: [record.data]) }
    }

    /// Schema 3: a CRC-32 of every record and every stored blob, checked on each read.
    private static func addChecksums(_ db: Database, path: String) throws {
        try db.execute(
            sql: """
                ALTER TABLE interactions ADD COLUMN request_checksum INTEGER;
                ALTER TABLE interactions ADD COLUMN outcome_checksum INTEGER;
                ALTER TABLE blobs ADD COLUMN checksum INTEGER;
                """)
        let records = try Row.fetchAll(db, sql: "SELECT id, request, outcome FROM interactions").map { row in
            (
                id: try column(row, 0, path: path) as Int64,
                request: RecordChecksum.of(try column(row, 1, path: path) as Data),
                outcome: RecordChecksum.of(try column(row, 2, path: path) as Data)
            )
        }
        let update = try db.makeStatement(
            sql: "UPDATE interactions SET request_checksum = ?, outcome_checksum = ? WHERE id = ?")
        for record in records { try update.execute(arguments: [record.request, record.outcome, record.id]) }
        let hashes = try Data.fetchAll(db, sql: "SELECT hash FROM blobs")
        let stored = try db.makeStatement(sql: "SELECT bytes FROM blobs WHERE hash = ?")
        let updateBlob = try db.makeStatement(sql: "UPDATE blobs SET checksum = ? WHERE hash = ?")
        for hash in hashes {
            let checksum = try Row.fetchOne(stored, arguments: [hash]).map { row in
                try row.withUnsafeData(atIndex: 0) { RecordChecksum.of($0 ?? Data()) }
            }
            try updateBlob.execute(arguments: [checksum, hash])
        }
    }

    // MARK: Opening

    /// What an open found: the file's schema state.
    enum SchemaState: Equatable {
        /// No tables at all: a new cassette.
        case empty
        /// Every migration applied.
        case current
        /// Some migrations to run (needs write access); version 0 while another process creates the cassette.
        case needsMigration(version: Int)
    }

    /// Checks that the database is a cassette this version can read, and how far its schema is.
    ///
    /// - Throws: ``CassetteError`` `notACassette` (another SQLite file), `newerSchema`, `corrupted` (no version).
    static func schemaState(_ db: Database, path: String) throws -> SchemaState {
        // What the file holds, in one statement (a new connection compiles every statement it runs).
        let overview = try Row.fetchOne(
            db,
            sql: """
                SELECT (SELECT count(*) FROM sqlite_master), (SELECT application_id FROM pragma_application_id()),
                    EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'),
                    EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'grdb_migrations')
                """)
        guard let overview, overview[0] as Int != 0 else { return .empty }
        let applicationID: Int32 = overview[1] ?? 0
        guard applicationID == Cassette.applicationID else {
            throw CassetteError(
                code: .notACassette,
                message: "the file is a SQLite database but not a SandboxVCR cassette (application_id "
                    + "\(applicationID)); pass the path of a cassette, or move this file away",
                path: path)
        }
        // Another process is creating this cassette: it has set the application id but not yet made `meta`.
        guard overview[2] as Bool else { return .needsMigration(version: 0) }
        let version =
            try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'").flatMap { Int($0) } ?? 0
        let known = Set(migrations.map(\.identifier))
        let superseded =
            try overview[3] as Bool
            && String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations").contains { !known.contains($0) }
        if version > schemaVersion || superseded {
            throw CassetteError(
                code: .newerSchema,
                message: "the cassette has schema version \(version), newer than the \(schemaVersion) this "
                    + "sandbox-vcr reads; upgrade sandbox-vcr (the SandboxVCR package) to use it",
                path: path)
        }
        guard version >= 1 else {
            throw CassetteError(
                code: .corrupted,
                message: "the cassette has no schema version; restore it from version control or re-record it",
                path: path)
        }
        return version == schemaVersion ? .current : .needsMigration(version: version)
    }

    /// Creates the schema of a new cassette, or migrates an older one, before any other access.
    ///
    /// Two processes creating one new cassette at once may both start the first migration; the one that loses gets
    /// an error from it (the tables exist) and, on a second try, finds every migration applied. So this tries twice.
    static func migrate(_ writer: any DatabaseWriter, path: String) throws {
        var attempts = 0
        while true {
            attempts += 1
            do {
                try writer.barrierWriteWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        if try schemaState(db, path: path) == .empty {
                            try db.execute(sql: "PRAGMA application_id = \(Cassette.applicationID)")
                        } else {
                            try adoptLegacyVersion(db)
                        }
                        return .commit
                    }
                }
                return try migrator(path: path).migrate(writer)
            } catch let error as DatabaseError where attempts < 2 {
                _ = error  // Another process migrated meanwhile: look again.
            }
        }
    }

    /// Marks the migrations that `meta.schema_version` stands for as applied, in a cassette written before the
    /// migrator existed (it has no `grdb_migrations` table).
    private static func adoptLegacyVersion(_ db: Database) throws {
        guard try !db.tableExists("grdb_migrations") else { return }
        let version = try metaSchemaVersion(db)
        try db.execute(sql: "CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
        for migration in migrations where migration.version <= version {
            try db.execute(sql: "INSERT INTO grdb_migrations VALUES (?)", arguments: [migration.identifier])
        }
    }

    private static func metaSchemaVersion(_ db: Database) throws -> Int {
        guard try db.tableExists("meta") else { return 0 }
        let text = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'")
        return text.flatMap { Int($0) } ?? 0
    }
}
