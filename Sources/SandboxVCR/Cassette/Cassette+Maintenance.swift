public import Foundation

extension Cassette {
    /// Figures about a cassette (`sandbox-vcr cassette stats`).
    public struct Statistics: Sendable, Hashable {
        public var interactions = 0
        /// Bytes on disk: the database plus its WAL.
        public var fileSize: Int64 = 0
        public var blobCount = 0
        /// Bytes stored in blobs (each distinct part once, compressed where that helps).
        public var storedBytes: Int64 = 0
        /// Bytes the interactions hold if every part were stored with each interaction.
        public var logicalBytes: Int64 = 0
        /// Interactions per backend.
        public var backends: [String: Int] = [:]
        public var oldest: Date?
        public var newest: Date?
        /// Interactions no replay has used yet.
        public var neverReplayed = 0

        public init() {}

        /// `logicalBytes / storedBytes`: how much content addressing saves (1 = nothing).
        public var dedupeRatio: Double { storedBytes == 0 ? 1 : Double(logicalBytes) / Double(storedBytes) }
    }

    /// Counts, sizes, dedupe ratio, backends, ages and never-replayed interactions.
    public func statistics() async throws -> Statistics {
        var stats = try await perform { connection -> Statistics in
            var stats = Statistics()
            stats.interactions = Int(try connection.scalarInt("SELECT count(*) FROM interactions") ?? 0)
            stats.blobCount = Int(try connection.scalarInt("SELECT count(*) FROM blobs") ?? 0)
            // Stored: every blob once, plus the records in the rows.
            stats.storedBytes =
                (try connection.scalarInt("SELECT coalesce(sum(length(bytes)), 0) FROM blobs") ?? 0)
                + (try connection.scalarInt(
                    "SELECT coalesce(sum(length(request) + length(outcome)), 0) FROM interactions") ?? 0)
            stats.neverReplayed = Int(
                try connection.scalarInt("SELECT count(*) FROM interactions WHERE last_replayed_at IS NULL") ?? 0)
            let ages = try connection.statement("SELECT min(recorded_at), max(recorded_at) FROM interactions")
            if try ages.step(), !ages.isNull(0) {
                stats.oldest = Date(timeIntervalSince1970: ages.double(0))
                stats.newest = Date(timeIntervalSince1970: ages.double(1))
            }
            ages.reset()
            let backends = try connection.statement("SELECT backend, count(*) FROM interactions GROUP BY backend")
            while try backends.step() { stats.backends[backends.text(0) ?? "", default: 0] += Int(backends.int(1)) }
            backends.reset()
            // Logical size: each interaction's records plus every part they reference.
            var sizes: [[UInt8]: Int64] = [:]
            let all = try connection.statement("SELECT hash, size FROM blobs")
            while try all.step() { sizes[all.bytes(0)] = all.int(1) }
            all.reset()
            let rows = try connection.statement("SELECT request, outcome FROM interactions")
            while try rows.step() {
                let request = rows.bytes(0)
                let outcome = rows.bytes(1)
                var total = Int64(request.count + outcome.count)
                let loader: (SHA256.Digest) throws -> Data = { digest in
                    total += sizes[digest.bytes] ?? 0
                    return Data()
                }
                _ = try? RecordCoding.decodeRequest(request, load: loader)
                _ = try? RecordCoding.decodeOutcome(outcome, load: loader)
                stats.logicalBytes += total
            }
            rows.reset()
            return stats
        }
        for suffix in ["", "-wal"] {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + suffix)
            stats.fileSize += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return stats
    }

    /// What ``Cassette/verify(progress:)`` found.
    public struct VerifyReport: Sendable, Hashable {
        /// `PRAGMA integrity_check` lines (`["ok"]` when fine).
        public var integrity: [String] = []
        /// Blobs whose bytes no longer hash to their address, or whose size is wrong.
        public var damagedBlobs: [String] = []
        /// Interactions whose request or outcome record is missing or unreadable.
        public var unreadableInteractions: [Int64] = []
        public var checkedBlobs = 0
        public var checkedInteractions = 0

        public init() {}

        public var isOK: Bool { integrity == ["ok"] && damagedBlobs.isEmpty && unreadableInteractions.isEmpty }
    }

    /// Runs `PRAGMA integrity_check`, re-hashes every blob and decodes every interaction.
    public func verify(progress: (@Sendable (Int, Int) -> Void)? = nil) async throws -> VerifyReport {
        let path = self.path
        return try await perform { connection in
            var report = VerifyReport()
            let check = try connection.statement("PRAGMA integrity_check")
            while try check.step() { report.integrity.append(check.text(0) ?? "") }
            check.reset()
            let total = Int(try connection.scalarInt("SELECT count(*) FROM blobs") ?? 0)
            let blobs = try connection.statement("SELECT hash, size, compression, bytes FROM blobs")
            while try blobs.step() {
                let hash = blobs.bytes(0)
                let size = Int(blobs.int(1))
                let bytes = BlobCompression.unpack(blobs.data(3), compression: blobs.int(2), size: size)
                if bytes.map({ SHA256.hash($0).bytes != hash || $0.count != size }) ?? true {
                    report.damagedBlobs.append(SHA256.Digest(unchecked: hash).hex)
                }
                report.checkedBlobs += 1
                if report.checkedBlobs % 1000 == 0 { progress?(report.checkedBlobs, total) }
            }
            blobs.reset()
            let rows = try connection.statement("SELECT \(CassetteSchema.interactionColumns) FROM interactions")
            var all: [CassetteSchema.Row] = []
            while try rows.step() { all.append(CassetteSchema.Row(rows)) }
            rows.reset()
            for row in all {
                do {
                    _ = try CassetteSchema.interaction(from: row, connection, path: path)
                } catch {
                    report.unreadableInteractions.append(row.id)
                }
                report.checkedInteractions += 1
            }
            progress?(total, total)
            return report
        }
    }

    /// What ``merge(_:progress:)`` did.
    public struct MergeReport: Sendable, Hashable {
        public var added = 0
        /// Interactions whose `(key, ordinal)` was already present (the destination's recording is kept).
        public var skipped = 0
        public init() {}
    }

    /// Copies every interaction of other cassettes into this one (shards recorded on many machines). When both
    /// hold the same `(key, ordinal)`, this cassette's recording is kept.
    public func merge(_ sources: [Cassette], progress: (@Sendable (Int, Int) -> Void)? = nil) async throws
        -> MergeReport
    {
        var report = MergeReport()
        var present = Set(try await index().map { "\($0.key.hex)#\($0.ordinal)" })
        var total = 0
        for source in sources { total += try await source.count() }
        var done = 0
        for source in sources {
            var batch: [NewInteraction] = []
            try await source.forEachInteraction { interaction in
                done += 1
                let id = "\(interaction.key.hex)#\(interaction.ordinal)"
                guard !present.contains(id) else {
                    report.skipped += 1
                    return
                }
                present.insert(id)
                batch.append(
                    NewInteraction(
                        key: interaction.key, ordinal: interaction.ordinal, session: interaction.session,
                        step: interaction.step, backendVersion: interaction.backendVersion,
                        request: interaction.request, outcome: interaction.outcome,
                        recordedAt: interaction.recordedAt, duration: interaction.duration,
                        lastReplayedAt: interaction.lastReplayedAt))
                if batch.count == 500 {
                    try await record(batch)
                    report.added += batch.count
                    batch.removeAll(keepingCapacity: true)
                    progress?(done, total)
                }
            }
            try await record(batch)
            report.added += batch.count
        }
        progress?(done, total)
        return report
    }

    /// Deletes interactions not used since `date` (replayed or recorded before it), or never replayed, then
    /// deletes blobs nothing references and compacts the file.
    ///
    /// - Parameters:
    ///   - date: delete interactions whose last replay (or recording, if never replayed) is older.
    ///   - neverReplayed: delete interactions that were never replayed.
    /// - Returns: the number of interactions deleted.
    @discardableResult
    public func prune(unusedSince date: Date? = nil, neverReplayed: Bool = false) async throws -> Int {
        let path = self.path
        let cutoff = date?.timeIntervalSince1970
        let deleted = try await perform(write: true) { connection -> Int in
            var deleted = 0
            if let cutoff {
                let statement = try connection.statement(
                    "DELETE FROM interactions WHERE coalesce(last_replayed_at, recorded_at) < ?")
                statement.bind(1, cutoff)
                try statement.run()
                deleted += connection.changes
            }
            if neverReplayed {
                try connection.execute("DELETE FROM interactions WHERE last_replayed_at IS NULL")
                deleted += connection.changes
            }
            _ = try CassetteSchema.collectGarbage(connection, path: path)
            return deleted
        }
        try await perform { connection in try connection.execute("VACUUM") }
        return deleted
    }
}
