import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@Suite struct CassetteFileTests {
    let folder = TemporaryFolder()

    func recordSome(_ url: URL, count: Int = 3) async throws {
        let cassette = try await Cassette.open(at: url)
        let executor = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        for index in 0..<count { _ = try await executor.execute(request(stdin: "\(index)")) }
        await cassette.close()
    }

    @Test func reopenKeepsInteractionsAndSchema() async throws {
        let url = folder.file("a.sqlite")
        try await recordSome(url)
        #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"), "close checkpoints the WAL away")
        let cassette = try await Cassette.open(at: url)
        #expect(try await cassette.count() == 3)
        #expect(try await cassette.verify().isOK)
    }

    @Test func replayingInNeverModeLeavesTheFileUnchanged() async throws {
        let url = folder.file("committed.sqlite")
        try await recordSome(url)
        let before = try Data(contentsOf: url)
        let cassette = try await Cassette.open(at: url)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        for index in 0..<3 { _ = try await replay.execute(request(stdin: "\(index)")) }
        await cassette.close()
        #expect(try Data(contentsOf: url) == before)
        #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"))
    }

    /// `Fixtures/cassettes/schema-v1-demo.sqlite` is the demo cassette as schema 1 wrote it (records in `blobs`).
    @Test func schemaOneCassetteIsMigratedWithEveryInteractionKept() async throws {
        let legacy = packageRoot().appendingPathComponent("Fixtures/cassettes/schema-v1-demo.sqlite")
        let url = folder.file("legacy.sqlite")
        try FileManager.default.copyItem(at: legacy, to: url)
        func query(_ sql: String) -> String {
            (try? RawSQLite.text(sql, in: url)) ?? "no row"
        }
        #expect(query("SELECT value FROM meta WHERE key = 'schema_version'") == "1")
        let blobsBefore = Int(query("SELECT count(*) FROM blobs")) ?? 0

        let cassette = try await Cassette.open(at: url)
        #expect(try await cassette.verify().isOK)
        let migrated = try await cassette.interactions(limit: 1000)
        await cassette.close()
        #expect(query("SELECT value FROM meta WHERE key = 'schema_version'") == String(Cassette.schemaVersion))
        #expect(query("SELECT count(*) FROM pragma_table_info('interactions') WHERE name = 'request_blob'") == "0")
        // The 96 request and outcome record blobs moved into the rows; the parts they reference stayed.
        let blobsAfter = Int(query("SELECT count(*) FROM blobs")) ?? 0
        #expect(blobsAfter > 0 && blobsAfter < blobsBefore)

        // The same exchanges imported by this version give the same interactions.
        let fresh = try await Cassette.open(at: folder.file("fresh.sqlite"))
        _ = try await fresh.importExchanges(
            from: [packageRoot().appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl")])
        let expected = try await fresh.interactions(limit: 1000)
        #expect(migrated.count == 96)
        #expect(migrated.map(\.key) == expected.map(\.key))
        #expect(migrated.map(\.request) == expected.map(\.request))
        #expect(migrated.map(\.outcome) == expected.map(\.outcome))
        #expect(migrated.map(\.outcomeHash) == expected.map(\.outcomeHash))

        // And it replays.
        let reopened = try await Cassette.open(at: url)
        let replay = RecordingExecutor(cassette: reopened, mode: .never)
        let first = try #require(expected.first)
        let replayed = try await replay.execute(first.request)
        #expect(Cassette.Outcome.result(replayed) == first.outcome)
    }

    @Test func plainTextFileIsNotACassette() async throws {
        let url = folder.file("notes.sqlite")
        try Data("hello, this is text\n".utf8).write(to: url)
        let error = try await #require(throws: CassetteError.self) { try await Cassette.open(at: url) }
        #expect(error.code == .notACassette)
        #expect(error.message.contains("not a SQLite database"))
        #expect(error.path == url.path)
    }

    @Test func otherSQLiteDatabaseIsNotACassette() async throws {
        let url = folder.file("other.sqlite")
        try RawSQLite.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1);", in: url)
        let error = try await #require(throws: CassetteError.self) { try await Cassette.open(at: url) }
        #expect(error.code == .notACassette)
        #expect(error.message.contains("not a SandboxVCR cassette"))
    }

    @Test func newerSchemaSaysToUpgrade() async throws {
        let url = folder.file("new.sqlite")
        try await recordSome(url, count: 1)
        try RawSQLite.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", in: url)
        let error = try await #require(throws: CassetteError.self) { try await Cassette.open(at: url) }
        #expect(error.code == .newerSchema)
        #expect(error.message.contains("99"))
        #expect(error.message.contains("upgrade sandbox-vcr"))
    }

    @Test func corruptBytesAreReported() async throws {
        let url = folder.file("corrupt.sqlite")
        let cassette = try await Cassette.open(at: url)
        let executor = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        for index in 0..<200 {
            _ = try await executor.execute(request(String(repeating: "x", count: 3000) + "\(index)", stdin: "\(index)"))
        }
        await cassette.close()
        var bytes = try Data(contentsOf: url)
        #expect(bytes.count > 8192)
        // Overwrite everything after the first page with garbage.
        for index in 4096..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        try bytes.write(to: url)
        let error: CassetteError
        do {
            let damaged = try await Cassette.open(at: url)
            let replay = RecordingExecutor(cassette: damaged, mode: .never)
            error = try await #require(throws: CassetteError.self) {
                _ = try await replay.execute(request(String(repeating: "x", count: 3000) + "5", stdin: "5"))
                _ = try await damaged.verify()
                _ = try await damaged.count()
            }
        } catch let openError as CassetteError {
            error = openError
        }
        #expect(error.code == .corrupted)
        #expect(error.message.contains("verify"))
    }

    @Test func headerOnlyGarbageIsCorrupted() async throws {
        let url = folder.file("garbage.sqlite")
        try (Data("SQLite format 3\0".utf8) + Data(repeating: 0xAB, count: 4000)).write(to: url)
        let error = try await #require(throws: CassetteError.self) { try await Cassette.open(at: url) }
        #expect(error.code == .corrupted)
    }

    @Test func readOnlyFileReplaysButCannotRecord() async throws {
        let url = folder.file("ro.sqlite")
        try await recordSome(url, count: 1)
        #expect(chmod(url.path, 0o444) == 0)
        let cassette = try await Cassette.open(at: url)
        #expect(cassette.isReadOnly)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        #expect(try await replay.execute(request(stdin: "0")).stdoutText == "0")
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        let error = try await #require(throws: CassetteError.self) { try await recorder.execute(request(stdin: "9")) }
        #expect(error.code == .readOnly)
        #expect(error.message.contains("writable"))
    }

    @Test func explicitReadOnlyRefusesWrites() async throws {
        let url = folder.file("explicit.sqlite")
        try await recordSome(url, count: 1)
        let cassette = try await Cassette.open(at: url, readOnly: true)
        let error = try await #require(throws: CassetteError.self) {
            try await cassette.record([
                .init(
                    key: ContentHash.sha256(Data()), ordinal: 0, request: request(),
                    outcome: .failure(ExecutionError(code: .timedOut, message: "t")))
            ])
        }
        #expect(error.code == .readOnly)
    }

    @Test func missingFileWithoutCreateIsAnIOError() async throws {
        let error = try await #require(throws: CassetteError.self) {
            try await Cassette.open(at: folder.file("none.sqlite"), create: false)
        }
        #expect(error.code == .io)
    }

    // MARK: Several processes

    static func stressTool() -> URL? {
        CommandRunner.builtProduct(named: "cassette-stress")
    }

    static func run(_ tool: URL, _ arguments: [String]) async throws -> (
        status: Int32, reason: ChildProcess.TerminationReason, output: String, errors: String
    ) {
        let run = try await CommandRunner.run(tool, arguments)
        return (run.status, run.reason, run.stdoutText, run.stderrText)
    }

    @Test func fourProcessesShareOneFile() async throws {
        let tool = try #require(Self.stressTool(), "build the cassette-stress tool (swift build --build-tests)")
        let url = folder.file("shared.sqlite")
        let results = try await withThrowingTaskGroup(of: (Int32, String, String).self) { group in
            for index in 0..<4 {
                group.addTask {
                    let run = try await Self.run(tool, ["record", url.path, "p\(index)", "150", "40"])
                    return (run.status, run.output, run.errors)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for (status, output, errors) in results {
            #expect(status == 0, "child failed: \(errors)")
            #expect(output.contains("done 190"))
        }
        let cassette = try await Cassette.open(at: url)
        #expect(try await cassette.count() == 4 * 150 + 40)
        #expect(try await cassette.verify().isOK)
    }

    @Test func sigkillDuringRecordingLosesOnlyUncommitted() async throws {
        let tool = try #require(Self.stressTool(), "build the cassette-stress tool (swift build --build-tests)")
        let url = folder.file("killed.sqlite")
        let run = try await Self.run(tool, ["crash", url.path, "300"])
        #expect(run.reason == .uncaughtSignal)
        #expect(run.status == SIGKILL)
        #expect(run.output.contains("committed 300"))
        let cassette = try await Cassette.open(at: url)
        let report = try await cassette.verify()
        #expect(report.integrity == ["ok"])
        #expect(report.isOK)
        let count = try await cassette.count()
        #expect(count >= 300)
        // Every committed interaction replays.
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        var replayed = 0
        try await cassette.forEachInteraction { interaction in
            _ = try await replay.execute(interaction.request)
            replayed += 1
        }
        #expect(replayed == count)
    }

    /// A value of the wrong type where the store expects a number (a damaged or hand-edited file) is a `corrupted`
    /// error naming the file, never a crash.
    @Test func aValueOfTheWrongTypeIsCorruptedNotACrash() async throws {
        let url = folder.file("typed.sqlite")
        try await recordSome(url, count: 1)
        try RawSQLite.execute("UPDATE interactions SET recorded_at = 'yesterday', ordinal = 0", in: url)
        let cassette = try await Cassette.open(at: url)
        let outcome = await RecordingExecutor(cassette: cassette, mode: .never).outcome(of: request(stdin: "0"))
        #expect(outcome.source == .error)
        guard case .failure(let error as CassetteError) = outcome.result else {
            Issue.record("expected a cassette error, got \(outcome.result)")
            return
        }
        #expect(error.code == .corrupted)
        #expect(error.message.contains("wrong type"))
        #expect(error.path == url.path)
        let report = try await cassette.verify()
        #expect(report.unreadableInteractions.count == 1)
        await cassette.close()
    }
}
