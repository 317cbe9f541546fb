import Foundation
import Synchronization
import Testing

@testable import SandboxVCR

/// Background writes held for a group commit: order, lookups, failures.
@Suite struct CassetteGroupCommitTests {
    let folder = TemporaryFolder()

    struct InjectedFailure: Error {}

    func interaction(_ stdin: String) -> Cassette.NewInteraction {
        let request = ExecutionRequest(code: "print(input())", language: .python, stdin: stdin)
        return Cassette.NewInteraction(
            key: RequestMatcher.exact.key(for: request), ordinal: 0, request: request,
            outcome: .result(
                ExecutionResult(
                    status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data(stdin.utf8)),
                    backend: .fake)))
    }

    @Test func oneFailingBackgroundWriteKeepsTheOthers() async throws {
        let cassette = try await Cassette.open(at: folder.file("a.sqlite"))
        try await cassette.recordInBackground([interaction("1")])
        try await cassette.worker.submit(keys: []) { connection in
            try connection.execute("INSERT INTO meta(key, value) VALUES ('partial', 'x')")
            throw InjectedFailure()
        }
        try await cassette.recordInBackground([interaction("2")])
        await #expect(throws: InjectedFailure.self) { try await cassette.flush() }
        #expect(try await cassette.count() == 2)
        let partial = try await cassette.perform { try $0.scalarText("SELECT value FROM meta WHERE key = 'partial'") }
        #expect(partial == nil, "the failed write is undone in whole")
        try await cassette.flush()
        await cassette.close()
    }

    @Test func lookupSeesAHeldWriteOfItsKeyAndReadsSeeAll() async throws {
        let cassette = try await Cassette.open(at: folder.file("b.sqlite"))
        let first = interaction("1")
        try await cassette.recordInBackground([first, interaction("2")])
        let found = try await cassette.recording(key: first.key, ordinal: 0, orLast: false)
        #expect(found?.outcome == first.outcome)
        let other = interaction("3")
        #expect(try await cassette.recording(key: other.key, ordinal: 0, orLast: false) == nil)
        try await cassette.recordInBackground([other])
        #expect(try await cassette.count() == 3)
        await cassette.close()
        let reopened = try await Cassette.open(at: folder.file("b.sqlite"))
        #expect(try await reopened.count() == 3, "closing commits held writes")
        await reopened.close()
    }

    /// Lookups arriving back to back share one read transaction; a commit by another connection must still become
    /// visible to them (the shared snapshot is renewed at least every `ReadSnapshot.maxAge`, 5 ms).
    @Test func aStreamOfLookupsSeesAnotherConnectionsCommit() async throws {
        let url = folder.file("shared.sqlite")
        // The reader's thread polls for the next job for up to a minute instead of 250 µs, so it never goes idle
        // between lookups (going idle also ends the snapshot): only the snapshot's age can let it see the commit.
        let reader = try await Cassette.open(at: url, readOnly: false, create: true, pollWindow: .seconds(60))
        let writer = try await Cassette.open(at: url)
        let present = interaction("present")
        try await writer.record([present])
        let late = interaction("late")
        let missesSeen = Atomic(0)
        let streamEnded = Atomic(false)

        let stream = Task { () -> Bool in
            defer { streamEnded.store(true, ordering: .releasing) }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                _ = try await reader.recording(key: present.key, ordinal: 0, orLast: false)
                if try await reader.recording(key: late.key, ordinal: 0, orLast: false) != nil { return true }
                missesSeen.add(1, ordering: .relaxed)
            }
            return false
        }
        // Write only once the stream runs (its snapshot predates the write).
        while missesSeen.load(ordering: .relaxed) < 100, !streamEnded.load(ordering: .acquiring) {
            await Task.yield()
        }
        try await writer.record([late])
        let missesBeforeWrite = missesSeen.load(ordering: .relaxed)
        let found = try await stream.value
        #expect(found, "the lookup stream never saw the other connection's commit")
        #expect(missesBeforeWrite >= 100)
        await reader.close()
        await writer.close()
    }

    /// In a cassette opened empty, mode `missing` records new requests without asking the SQLite thread whether
    /// they were recorded (``KnownKeys``), and still replays what it recorded.
    @Test func missingModeRecordsNewRequestsOfAFreshCassetteWithoutLookups() async throws {
        let cassette = try await Cassette.open(at: folder.file("fresh.sqlite"))
        #expect(cassette.knownKeys.isComplete)
        let live = SandboxExecutorStub()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        for index in 0..<50 { _ = try await recorder.execute(request(stdin: "\(index)")) }
        #expect(live.callCount == 50)
        #expect(cassette.lookupCount.load(ordering: .relaxed) < 50, "most new requests skipped the lookup")
        let replay = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        for index in 0..<50 { #expect(try await replay.execute(request(stdin: "\(index)")).stdoutText == "\(index)") }
        #expect(live.callCount == 50, "every request of the second executor was a hit")
        #expect(try await cassette.count() == 50)
        await cassette.close()
    }

    /// Another connection's commit turns the shortcut off: its recording is replayed, not recorded again.
    @Test func anotherConnectionsCommitTurnsTheShortcutOff() async throws {
        let url = folder.file("two.sqlite")
        let first = try await Cassette.open(at: url)
        let second = try await Cassette.open(at: url)
        #expect(first.knownKeys.isComplete && second.knownKeys.isComplete)
        let secondLive = SandboxExecutorStub()
        _ = try await RecordingExecutor(cassette: second, mode: .missing, live: secondLive)
            .execute(request(stdin: "shared"))
        try await second.flush()
        // A check of `data_version` is trusted for `KnownKeys.freshness`; once that passed, the first cassette asks
        // its SQLite thread, which sees the other connection's commit.
        while first.knownKeys.isUsable { await Task.yield() }
        let firstLive = SandboxExecutorStub()
        let result = try await RecordingExecutor(cassette: first, mode: .missing, live: firstLive)
            .execute(request(stdin: "shared"))
        #expect(result.stdoutText == "shared")
        #expect(firstLive.callCount == 0, "the other connection's recording was replayed")
        #expect(!first.knownKeys.isComplete, "the filter is off for good")
        #expect(try await first.count() == 1)
        await first.close()
        await second.close()
    }

    /// A cassette that already holds recordings when opened never uses the shortcut.
    @Test func aCassetteWithRecordingsLooksEveryRequestUp() async throws {
        let url = folder.file("full.sqlite")
        let cassette = try await Cassette.open(at: url)
        try await cassette.record([interaction("1")])
        await cassette.close()
        let reopened = try await Cassette.open(at: url)
        #expect(!reopened.knownKeys.isComplete)
        let live = SandboxExecutorStub()
        _ = try await RecordingExecutor(cassette: reopened, mode: .missing, live: live).execute(request(stdin: "2"))
        #expect(reopened.lookupCount.load(ordering: .relaxed) == 1)
        await reopened.close()
    }
}
