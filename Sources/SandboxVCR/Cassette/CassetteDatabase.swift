internal import Foundation
internal import GRDB

/// Every SQL statement of a cassette, in one place: the queries, the writes and the maintenance passes. The schema
/// and its migrations are in `CassetteDatabase+Migrations.swift`.
///
/// Each function takes a GRDB `Database` and runs inside whatever access its caller opened (a reader's read
/// transaction, or the writer's transaction); none opens its own. See the "Cassette format" article.
enum CassetteDatabase {
    /// The columns ``interaction(_:path:)`` reads, in order.
    static let interactionColumns =
        "id, key, ordinal, session, step, backend, backend_version, request, outcome, recorded_at, duration, "
        + "last_replayed_at, request_checksum, outcome_checksum"

    // MARK: Lookups

    /// A replayable recording: its id, ordinal, outcome and age.
    struct Recording: Sendable {
        var id: Int64
        var ordinal: Int
        var outcome: Cassette.Outcome
        var recordedAt: Double
    }

    /// The recording of `(key, ordinal)`; with `orLast`, the highest ordinal below it when there is none.
    static func recording(key: ContentHash, ordinal: Int, orLast: Bool, _ db: Database, path: String) throws
        -> Recording?
    {
        let statement = try db.cachedStatement(
            sql: orLast
                ? "SELECT id, outcome, recorded_at, ordinal, outcome_checksum FROM interactions WHERE key = ? AND "
                    + "ordinal <= ? ORDER BY ordinal DESC LIMIT 1"
                : "SELECT id, outcome, recorded_at, ordinal, outcome_checksum FROM interactions WHERE key = ? AND "
                    + "ordinal = ?")
        // A cursor's row reads the statement's current values in place (no copy of the row).
        let rows = try Row.fetchCursor(statement, arguments: [key.data, ordinal])
        guard let row = try rows.next() else { return nil }
        let id: Int64 = try column(row, 0, path: path)
        let recordedAt: Double = try column(row, 2, path: path)
        let found: Int = try column(row, 3, path: path)
        let record = try row.withUnsafeData(atIndex: 1) { $0.map { [UInt8]($0) } ?? [] }
        try check(record, against: row, 4, "outcome", id: id, path: path)
        let outcome = try decodeOutcome(record, id: id, db, path: path)
        return Recording(id: id, ordinal: found, outcome: outcome, recordedAt: recordedAt)
    }

    /// One past the highest recorded ordinal of a key (0 when it has none).
    ///
    /// - Throws: a `corrupted` error when the highest is beyond ``Cassette/maximumOrdinal`` (a file written by
    ///   something else: SandboxVCR never records so many).
    static func nextOrdinal(for key: ContentHash, _ db: Database, path: String) throws -> Int {
        let highest = try Int.fetchOne(
            db.cachedStatement(sql: "SELECT max(ordinal) FROM interactions WHERE key = ?"), arguments: [key.data])
        guard let highest else { return 0 }
        guard highest < Cassette.maximumOrdinal else {
            throw corrupted(path, "key \(key.hex.prefix(16)) has ordinal \(highest), beyond \(Cassette.maximumOrdinal)")
        }
        return highest + 1
    }

    static func count(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions") ?? 0
    }

    /// Interactions in `(key, ordinal)` order after a given one, a page at a time.
    static func interactions(
        after key: ContentHash?, ordinal: Int?, limit: Int, _ db: Database, path: String
    ) throws -> [Cassette.Interaction] {
        try fetchInteractions(
            "SELECT \(interactionColumns) FROM interactions WHERE (?1 IS NULL OR key > ?1 OR (key = ?1 AND "
                + "ordinal > ?2)) ORDER BY key, ordinal LIMIT ?3",
            [key?.data, ordinal, limit], db, path: path)
    }

    /// All interactions of one key, by ordinal.
    static func interactions(forKey key: ContentHash, _ db: Database, path: String) throws
        -> [Cassette.Interaction]
    {
        try fetchInteractions(
            "SELECT \(interactionColumns) FROM interactions WHERE key = ? ORDER BY ordinal", [key.data], db,
            path: path)
    }

    /// Interactions by id, in the order given (missing ids are skipped).
    static func interactions(ids: [Int64], _ db: Database, path: String) throws -> [Cassette.Interaction] {
        if ids.isEmpty { return [] }
        let statement = try db.cachedStatement(sql: "SELECT \(interactionColumns) FROM interactions WHERE id = ?")
        return try ids.compactMap { id in
            try Row.fetchOne(statement, arguments: [id]).map { try interaction($0, db, path: path) }
        }
    }

    /// Up to `limit` stored requests most like one with this program kind (same language or command), those with
    /// the same code first; any recordings when none has that kind. For miss diagnostics.
    static func candidates(programKind: String, codeHash: Int64?, limit: Int, _ db: Database, path: String) throws
        -> [Cassette.Interaction]
    {
        let similar = try fetchInteractions(
            "SELECT \(interactionColumns) FROM interactions WHERE program = ?1 ORDER BY (code_hash IS ?2) DESC, "
                + "id DESC LIMIT ?3",
            [programKind, codeHash, limit], db, path: path)
        if !similar.isEmpty { return similar }
        return try fetchInteractions(
            "SELECT \(interactionColumns) FROM interactions ORDER BY id DESC LIMIT ?", [limit], db, path: path)
    }

    /// The id, key and ordinal of every interaction, and whether it is a step of a session, by id.
    static func index(_ db: Database) throws -> [(id: Int64, key: ContentHash, ordinal: Int, inSession: Bool)] {
        try Row.fetchAll(db, sql: "SELECT id, key, ordinal, session IS NOT NULL FROM interactions ORDER BY id").map {
            row in
            (
                try column(row, 0, path: ""), ContentHash(unchecked: Array(bytes(row, 1))),
                try column(row, 2, path: ""),
                try column(row, 3, path: "")
            )
        }
    }

    private static func fetchInteractions(
        _ sql: String, _ arguments: StatementArguments, _ db: Database, path: String
    ) throws -> [Cassette.Interaction] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { try interaction($0, db, path: path) }
    }

    /// An interaction from a row of ``interactionColumns``.
    static func interaction(_ row: Row, _ db: Database, path: String) throws -> Cassette.Interaction {
        let id: Int64 = try column(row, 0, path: path)
        let request = bytes(row, 7)
        let outcome = bytes(row, 8)
        try check(request, against: row, 12, "request", id: id, path: path)
        try check(outcome, against: row, 13, "outcome", id: id, path: path)
        return Cassette.Interaction(
            id: id, key: ContentHash(unchecked: Array(bytes(row, 1))), ordinal: try column(row, 2, path: path),
            session: try optionalColumn(row, 3, path: path), step: try optionalColumn(row, 4, path: path),
            backend: try optionalColumn(row, 5, path: path) ?? "",
            backendVersion: try optionalColumn(row, 6, path: path),
            request: try decodeRequest(request, id: id, db, path: path),
            outcome: try decodeOutcome(outcome, id: id, db, path: path),
            recordedAt: Date(timeIntervalSince1970: try column(row, 9, path: path)),
            duration: try optionalColumn(row, 10, path: path),
            lastReplayedAt: (try optionalColumn(row, 11, path: path) as Double?).map {
                Date(timeIntervalSince1970: $0)
            },
            outcomeHash: ContentHash.sha256(outcome))
    }

    /// Checks a record against the checksum in column `index` of its row.
    ///
    /// - Throws: a `corrupted` error naming the interaction when they differ (or the checksum is missing).
    private static func check(
        _ record: [UInt8], against row: Row, _ index: Int, _ name: String, id: Int64, path: String
    ) throws {
        let stored: Int64? = try optionalColumn(row, index, path: path)
        guard stored == RecordChecksum.of(record) else {
            throw corrupted(
                path, "the \(name) record of interaction \(id) does not match its checksum (a byte of the file changed)"
            )
        }
    }

    /// A column's value. GRDB's subscripts trap on a NULL or a value of another type; a damaged or foreign file must
    /// give a `corrupted` error instead.
    static func column<Value: DatabaseValueConvertible>(_ row: Row, _ index: Int, path: String) throws -> Value {
        guard let value: Value = try optionalColumn(row, index, path: path) else {
            throw corrupted(path, "a required value is missing (column \(index) is NULL)")
        }
        return value
    }

    /// A column's value, `nil` for NULL; a value of another type is a `corrupted` error.
    static func optionalColumn<Value: DatabaseValueConvertible>(_ row: Row, _ index: Int, path: String) throws
        -> Value?
    {
        do {
            return try row.decode(Value?.self, atIndex: index)
        } catch {
            throw corrupted(path, "column \(index) holds a value of the wrong type")
        }
    }

    /// A blob column's bytes (empty for NULL).
    private static func bytes(_ row: Row, _ index: Int) -> [UInt8] {
        Array(data(row, index))
    }

    /// A blob column's bytes as `Data` (empty for NULL).
    private static func data(_ row: Row, _ index: Int) -> Data {
        ((try? row.decode(Data?.self, atIndex: index)) ?? nil) ?? Data()
    }

    // MARK: Records and their parts

    static func corrupted(_ path: String, _ detail: String) -> CassetteError {
        CassetteError(
            code: .corrupted,
            message: "\(detail); run `sandbox-vcr cassette verify \(path)`, then restore the file from version "
                + "control or re-record it",
            path: path)
    }

    /// A stored part, uncompressed, its checksum checked (`checksum: false`: a schema older than 3, which has none).
    static func loadBlob(_ hash: ContentHash, _ db: Database, path: String, checksum checks: Bool = true) throws -> Data
    {
        let statement = try db.cachedStatement(
            sql: checks
                ? "SELECT compression, size, bytes, checksum FROM blobs WHERE hash = ?"
                : "SELECT compression, size, bytes, NULL FROM blobs WHERE hash = ?")
        let rows = try Row.fetchCursor(statement, arguments: [hash.data])
        guard let row = try rows.next() else { throw corrupted(path, "blob \(hash.hex) is missing") }
        let compression: Int64 = try column(row, 0, path: path)
        let size: Int = try column(row, 1, path: path)
        let checksum: Int64? = try optionalColumn(row, 3, path: path)
        // The bytes are SQLite's until the next step: unpacking copies them (or inflates them into new storage).
        let unpacked = try row.withUnsafeData(atIndex: 2) { stored -> Data? in
            guard !checks || checksum == RecordChecksum.of(stored ?? Data()) else {
                throw corrupted(path, "blob \(hash.hex) does not match its checksum (a byte of the file changed)")
            }
            return BlobCompression.unpack(stored ?? Data(), compression: compression, size: size).map { unpacked in
                compression == BlobCompression.raw ? unpacked.withUnsafeBytes { Data($0) } : unpacked
            }
        }
        guard let unpacked else { throw corrupted(path, "blob \(hash.hex) cannot be read") }
        return unpacked
    }

    /// Decodes an outcome record, loading the parts it references.
    static func decodeOutcome(_ record: [UInt8], id: Int64, _ db: Database, path: String) throws
        -> Cassette.Outcome
    {
        do {
            return try RecordCoding.decodeOutcome(record) { try loadBlob($0, db, path: path) }
        } catch is ByteReader.CodingFailure {
            throw corrupted(path, "the outcome record of interaction \(id) cannot be decoded")
        }
    }

    /// Decodes a request record, loading the parts it references (`checksums: false` in a schema older than 3).
    static func decodeRequest(_ record: [UInt8], id: Int64, _ db: Database, path: String, checksums: Bool = true)
        throws -> ExecutionRequest
    {
        do {
            return try RecordCoding.decodeRequest(record) { try loadBlob($0, db, path: path, checksum: checksums) }
        } catch is ByteReader.CodingFailure {
            throw corrupted(path, "the request record of interaction \(id) cannot be decoded")
        }
    }

    // MARK: Writing

    /// Inserts interactions, replacing any with the same `(key, ordinal)`; with `cutoff`, first deletes the
    /// recordings of the same keys made before it.
    static func insert(_ interactions: [EncodedInteraction], replacingOlderThan cutoff: Double?, _ db: Database)
        throws
    {
        if let cutoff {
            let delete = try db.cachedStatement(sql: "DELETE FROM interactions WHERE key = ? AND recorded_at < ?")
            for key in Set(interactions.map(\.key)) { try delete.execute(arguments: [key, cutoff]) }
        }
        let exists = try db.cachedStatement(sql: "SELECT 1 FROM blobs WHERE hash = ?")
        let blob = try db.cachedStatement(
            sql: "INSERT OR IGNORE INTO blobs(hash, size, compression, bytes, checksum) VALUES (?, ?, ?, ?, ?)")
        let insert = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO interactions(key, ordinal, session, step, backend, backend_version, "
                + "request, outcome, recorded_at, duration, last_replayed_at, program, code_hash, request_checksum, "
                + "outcome_checksum) "
                + "VALUES (:key, :ordinal, :session, :step, :backend, :backendVersion, :request, :outcome, "
                + ":recordedAt, :duration, :lastReplayedAt, :program, :codeHash, :requestChecksum, :outcomeChecksum)")
        for interaction in interactions {
            for (hash, bytes) in interaction.blobs {
                // Small blobs are stored raw and need no look first; a large one is compressed only when new.
                if bytes.count >= BlobCompression.minimumSize,
                    try Bool.fetchOne(exists, arguments: [hash.data]) == true
                {
                    continue
                }
                let packed = BlobCompression.pack(bytes)
                try blob.execute(arguments: [
                    hash.data, bytes.count, packed.compression, packed.bytes, RecordChecksum.of(packed.bytes),
                ])
            }
            try insert.execute(arguments: [
                "key": interaction.key, "ordinal": interaction.ordinal, "session": interaction.session,
                "step": interaction.step, "backend": interaction.backend,
                "backendVersion": interaction.backendVersion, "request": interaction.request,
                "outcome": interaction.outcome, "recordedAt": interaction.recordedAt,
                "duration": interaction.duration, "lastReplayedAt": interaction.lastReplayedAt,
                "program": interaction.program, "codeHash": interaction.codeHash,
                "requestChecksum": interaction.requestChecksum, "outcomeChecksum": interaction.outcomeChecksum,
            ])
        }
    }

    /// Stamps `last_replayed_at` on replayed interactions, and notes in `meta.replay_stamps_since` when the first
    /// stamp was written (what `prune --never-replayed` relies on).
    static func stampReplays(_ touches: [Int64: Double], _ db: Database) throws {
        let statement = try db.cachedStatement(sql: "UPDATE interactions SET last_replayed_at = ? WHERE id = ?")
        for (id, time) in touches { try statement.execute(arguments: [time, id]) }
        if let first = touches.values.min() {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO meta(key, value) VALUES ('replay_stamps_since', ?)")
                .execute(arguments: [String(first)])
        }
    }

    /// When replays were first stamped on this cassette (`nil`: never).
    static func replayStampsSince(_ db: Database) throws -> Double? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'replay_stamps_since'").flatMap(Double.init)
    }

    /// Deletes interactions not used since `cutoff` (replayed or recorded before it) and, with `neverReplayed`,
    /// those not used since replays were first stamped; then the blobs nothing references. Returns the number of
    /// interactions deleted.
    ///
    /// - Throws: a `notTracked` error for `neverReplayed` when no replay was ever stamped on the cassette.
    static func prune(unusedSince cutoff: Double?, neverReplayed: Bool, _ db: Database, path: String) throws -> Int {
        var deleted = 0
        if neverReplayed {
            guard let since = try replayStampsSince(db) else {
                throw CassetteError(
                    code: .notTracked,
                    message: "no replay was ever stamped on this cassette, so \"never replayed\" would mean every "
                        + "recording; run the tests that use it once with SANDBOX_VCR_STAMP_REPLAYS=1, then prune "
                        + "again (or give --unused-since DATE)",
                    path: path)
            }
            // Not used (recorded or replayed) since stamping began: no stamped run needed it.
            try db.execute(
                sql: "DELETE FROM interactions WHERE coalesce(last_replayed_at, recorded_at) < ?", arguments: [since])
            deleted += db.changesCount
        }
        if let cutoff {
            try db.execute(
                sql: "DELETE FROM interactions WHERE coalesce(last_replayed_at, recorded_at) < ?", arguments: [cutoff])
            deleted += db.changesCount
        }
        try collectGarbage(db)
        return deleted
    }

    /// The hashes of every part the stored records reference.
    static func referencedParts(_ db: Database) throws -> Set<ContentHash> {
        var referenced = Set<ContentHash>()
        // Decode with a loader that notes references instead of loading them.
        let loader: (ContentHash) throws -> Data = { digest in
            referenced.insert(digest)
            return Data()
        }
        let rows = try Row.fetchCursor(db, sql: "SELECT request, outcome FROM interactions")
        while let row = try rows.next() {
            // A record that cannot be decoded references nothing it can be asked for; `verify` reports it.
            _ = try? RecordCoding.decodeRequest(bytes(row, 0), load: loader)
            _ = try? RecordCoding.decodeOutcome(bytes(row, 1), load: loader)
        }
        return referenced
    }

    /// Deletes the blobs no interaction references any more.
    @discardableResult
    static func collectGarbage(_ db: Database) throws -> Int {
        let referenced = try referencedParts(db)
        let unreferenced = try Data.fetchAll(db, sql: "SELECT hash FROM blobs").filter {
            !referenced.contains(ContentHash(unchecked: Array($0)))
        }
        let delete = try db.cachedStatement(sql: "DELETE FROM blobs WHERE hash = ?")
        for hash in unreferenced { try delete.execute(arguments: [hash]) }
        return unreferenced.count
    }

    static func vacuum(_ db: Database) throws { try db.execute(sql: "VACUUM") }

    // MARK: Statistics and verification

    /// Counts, sizes, backends, ages and never-replayed interactions (the file size is the caller's).
    static func statistics(_ db: Database) throws -> Cassette.Statistics {
        var stats = Cassette.Statistics()
        stats.interactions = try count(db)
        stats.blobCount = try Int.fetchOne(db, sql: "SELECT count(*) FROM blobs") ?? 0
        // Stored: every blob once, plus the records in the rows.
        stats.storedBytes =
            (try Int64.fetchOne(db, sql: "SELECT coalesce(sum(length(bytes)), 0) FROM blobs") ?? 0)
            + (try Int64.fetchOne(
                db, sql: "SELECT coalesce(sum(length(request) + length(outcome)), 0) FROM interactions") ?? 0)
        stats.neverReplayed =
            try Int.fetchOne(db, sql: "SELECT count(*) FROM interactions WHERE last_replayed_at IS NULL") ?? 0
        if let ages = try Row.fetchOne(db, sql: "SELECT min(recorded_at), max(recorded_at) FROM interactions"),
            let oldest = try optionalColumn(ages, 0, path: "") as Double?,
            let newest = try optionalColumn(ages, 1, path: "") as Double?
        {
            stats.oldest = Date(timeIntervalSince1970: oldest)
            stats.newest = Date(timeIntervalSince1970: newest)
        }
        for row in try Row.fetchAll(db, sql: "SELECT backend, count(*) FROM interactions GROUP BY backend") {
            let count: Int = try column(row, 1, path: "")
            stats.backends[try optionalColumn(row, 0, path: "") ?? "", default: 0] += count
        }
        // Logical size: each interaction's records plus every part they reference.
        var sizes: [ContentHash: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT hash, size FROM blobs") {
            sizes[ContentHash(unchecked: Array(bytes(row, 0)))] = try optionalColumn(row, 1, path: "") ?? 0
        }
        let rows = try Row.fetchCursor(db, sql: "SELECT request, outcome FROM interactions")
        while let row = try rows.next() {
            let request = bytes(row, 0)
            let outcome = bytes(row, 1)
            var total = Int64(request.count + outcome.count)
            let loader: (ContentHash) throws -> Data = { digest in
                total += sizes[digest] ?? 0
                return Data()
            }
            _ = try? RecordCoding.decodeRequest(request, load: loader)
            _ = try? RecordCoding.decodeOutcome(outcome, load: loader)
            stats.logicalBytes += total
        }
        return stats
    }

    /// `PRAGMA integrity_check`, every blob re-hashed, every interaction decoded.
    static func verify(_ db: Database, path: String, progress: (@Sendable (Int, Int) -> Void)?) throws
        -> Cassette.VerifyReport
    {
        var report = Cassette.VerifyReport()
        report.integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
        let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM blobs") ?? 0
        let blobs = try Row.fetchCursor(db, sql: "SELECT hash, size, compression, bytes, checksum FROM blobs")
        while let row = try blobs.next() {
            let hash = bytes(row, 0)
            let size: Int? = try? optionalColumn(row, 1, path: path)
            let compression: Int64? = try? optionalColumn(row, 2, path: path)
            let unpacked = size.flatMap { size in
                compression.flatMap { BlobCompression.unpack(data(row, 3), compression: $0, size: size) }
            }
            let checksum: Int64? = try? optionalColumn(row, 4, path: path)
            if unpacked.map({ ContentHash.sha256($0).bytes != hash || $0.count != size }) ?? true
                || checksum != RecordChecksum.of(data(row, 3))
            {
                report.damagedBlobs.append(ContentHash(unchecked: hash).hex)
            }
            report.checkedBlobs += 1
            if report.checkedBlobs % 1000 == 0 { progress?(report.checkedBlobs, total) }
        }
        let rows = try Row.fetchCursor(db, sql: "SELECT \(interactionColumns) FROM interactions")
        while let row = try rows.next() {
            do {
                _ = try interaction(row, db, path: path)
            } catch {
                report.unreadableInteractions.append((try? column(row, 0, path: path)) ?? -1)
            }
            report.checkedInteractions += 1
        }
        progress?(total, total)
        return report
    }
}

extension ContentHash {
    /// The digest's 32 bytes, as SQLite stores keys and blob hashes.
    var data: Data { withUnsafeBytes { Data($0) } }
}
