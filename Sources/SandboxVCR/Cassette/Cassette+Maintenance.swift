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
        var stats = try await scan { try CassetteDatabase.statistics($0) }
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
        return try await scan { try CassetteDatabase.verify($0, path: path, progress: progress) }
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

    /// Deletes interactions not used since `date` (replayed or recorded before it), or not used since replays were
    /// first stamped, then deletes blobs nothing references and compacts the file.
    ///
    /// Replays are stamped only on request (``RecordingExecutor/Configuration/stampsReplays``, or
    /// `SANDBOX_VCR_STAMP_REPLAYS=1`), so that replaying leaves committed cassettes unchanged: run the suite once
    /// with stamping on, then prune with `neverReplayed`.
    ///
    /// - Parameters:
    ///   - date: delete interactions whose last replay (or recording, if never replayed) is older.
    ///   - neverReplayed: delete interactions no run used (replayed or recorded) since replays were first stamped.
    /// - Returns: the number of interactions deleted.
    /// - Throws: ``CassetteError`` `notTracked` with `neverReplayed` when no replay was ever stamped.
    @discardableResult
    public func prune(unusedSince date: Date? = nil, neverReplayed: Bool = false) async throws -> Int {
        let cutoff = date?.timeIntervalSince1970
        let path = self.path
        let deleted = try await write {
            try CassetteDatabase.prune(unusedSince: cutoff, neverReplayed: neverReplayed, $0, path: path)
        }
        try await writer?.vacuum()
        return deleted
    }
}
