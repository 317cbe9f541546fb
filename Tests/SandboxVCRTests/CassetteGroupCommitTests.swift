import Foundation
import Testing

@testable import SandboxVCR

/// The group-commit state machine on its own: no I/O, no clock.
@Suite struct GroupCommitStateTests {
    @Test func aLoneWriteCommitsAtOnce() {
        var machine = GroupCommit<Int>()
        guard case .commit(let batch) = machine.submit(1) else { Issue.record("no commit"); return }
        #expect(batch == [1])
        guard case .none = machine.commitFinished() else { Issue.record("a commit with nothing queued"); return }
        #expect(!machine.isBusy)
    }

    @Test func writesArrivingDuringACommitShareTheNextOne() {
        var machine = GroupCommit<Int>()
        _ = machine.submit(0)
        for write in 1...5 {
            guard case .none = machine.submit(write) else { Issue.record("started a second commit"); return }
        }
        guard case .commit(let next) = machine.commitFinished() else { Issue.record("queued writes left"); return }
        #expect(next == [1, 2, 3, 4, 5], "in arrival order, all in one transaction")
        guard case .none = machine.commitFinished() else { Issue.record("a commit with nothing queued"); return }
    }

    @Test func aTransactionHoldsAtMostTheBatchLimit() {
        var machine = GroupCommit<Int>()
        _ = machine.submit(-1)
        let count = GroupCommit<Int>.batchLimit + 10
        for write in 0..<count { _ = machine.submit(write) }
        guard case .commit(let first) = machine.commitFinished() else { Issue.record("no commit"); return }
        #expect(first == Array(0..<GroupCommit<Int>.batchLimit))
        guard case .commit(let rest) = machine.commitFinished() else { Issue.record("no second commit"); return }
        #expect(rest == Array(GroupCommit<Int>.batchLimit..<count))
    }

    @Test func closingRunsWhatWasQueuedAndRefusesWhatComesAfter() {
        var machine = GroupCommit<String>()
        _ = machine.submit("a")
        _ = machine.submit("b")
        guard case .none = machine.submit("close", closes: true) else { Issue.record("close jumped the queue"); return }
        guard case .reject(let late) = machine.submit("late") else { Issue.record("accepted after close"); return }
        #expect(late == "late")
        guard case .commit(let batch) = machine.commitFinished() else { Issue.record("queue dropped"); return }
        #expect(batch == ["b", "close"])
    }

    @Test func closingAnIdleWriterCommitsAtOnce() {
        var machine = GroupCommit<String>()
        guard case .commit(let batch) = machine.submit("close", closes: true) else { Issue.record("no commit"); return }
        #expect(batch == ["close"])
        guard case .reject = machine.submit("late") else { Issue.record("accepted after close"); return }
    }
}

/// The writer on a real file: commits before answering, failures kept to their own write, other connections.
@Suite struct CassetteWriterTests {
    let folder = TemporaryFolder()

    func interaction(_ stdin: String, ordinal: Int = 0) -> Cassette.NewInteraction {
        let request = ExecutionRequest(code: "print(input())", language: .python, stdin: stdin)
        return Cassette.NewInteraction(
            key: RequestMatcher.exact.key(for: request), ordinal: ordinal, request: request,
            outcome: .result(
                ExecutionResult(
                    status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data(stdin.utf8)),
                    backend: .fake)))
    }

    /// A recording returns once it is committed: another connection sees it at once, and a SIGKILL after the answer
    /// could not lose it.
    @Test func aRecordingIsCommittedBeforeItReturns() async throws {
        let url = folder.file("a.sqlite")
        let cassette = try await Cassette.open(at: url)
        for index in 0..<20 {
            try await cassette.record([interaction("\(index)")])
            #expect(try RawSQLite.text("SELECT count(*) FROM interactions", in: url) == "\(index + 1)")
        }
        await cassette.close()
    }

    /// Concurrent recordings share transactions; when one of them fails, the others are still committed and only its
    /// caller gets the error.
    @Test func oneFailingWriteAmongConcurrentOnesFailsAlone() async throws {
        let url = folder.file("b.sqlite")
        let cassette = try await Cassette.open(at: url)
        try RawSQLite.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON interactions WHEN NEW.ordinal = 7 "
                + "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            in: url)
        let results = await withTaskGroup(of: (Int, (any Error)?).self) { group in
            for index in 0..<40 {
                group.addTask {
                    do {
                        try await cassette.record([self.interaction("\(index)", ordinal: index % 10)])
                        return (index, nil)
                    } catch {
                        return (index, error)
                    }
                }
            }
            var results: [Int: (any Error)?] = [:]
            for await (index, error) in group { results[index] = error }
            return results
        }
        let failed = results.filter { $0.value != nil }.map(\.key).sorted()
        #expect(failed == [7, 17, 27, 37])
        let error = try #require(results[7] ?? nil) as? CassetteError
        #expect(error?.message.contains("injected failure") == true)
        #expect(try await cassette.count() == 36)
        await cassette.close()
    }

    /// Lookups through the pool's readers see what another connection (another process, or another cassette object)
    /// committed, at once.
    @Test func lookupsSeeAnotherConnectionsCommit() async throws {
        let url = folder.file("shared.sqlite")
        let reader = try await Cassette.open(at: url)
        let writer = try await Cassette.open(at: url)
        let late = interaction("late")
        #expect(try reader.recording(key: late.key, ordinal: 0, orLast: false) == nil)
        try await writer.record([late])
        let found = try reader.recording(key: late.key, ordinal: 0, orLast: false)
        #expect(found?.outcome == late.outcome)
        await reader.close()
        await writer.close()
    }

    /// Closing commits the replay stamps, checkpoints the WAL into the file and removes the WAL and its index.
    @Test func closingLeavesOnlyTheFile() async throws {
        let url = folder.file("closed.sqlite")
        let cassette = try await Cassette.open(at: url)
        try await cassette.record([interaction("1")])
        let id = try #require(try await cassette.index().first?.id)
        cassette.markReplayed(id)
        await cassette.close()
        #expect(!FileManager.default.fileExists(atPath: url.path + "-wal"))
        #expect(!FileManager.default.fileExists(atPath: url.path + "-shm"))
        #expect(
            try RawSQLite.text("SELECT count(*) FROM interactions WHERE last_replayed_at IS NOT NULL", in: url) == "1")
        await #expect(throws: CassetteError.self) { try await cassette.record([self.interaction("2")]) }
    }

    /// `flush()` copies the WAL into the main file: a copy of the `.sqlite` alone holds every recording.
    @Test func flushLeavesTheMainFileComplete() async throws {
        let url = folder.file("flushed.sqlite")
        let cassette = try await Cassette.open(at: url)
        for index in 0..<10 { try await cassette.record([interaction("\(index)")]) }
        try await cassette.flush()
        let copy = folder.file("copy.sqlite")
        try FileManager.default.copyItem(at: url, to: copy)
        #expect(try RawSQLite.text("SELECT count(*) FROM interactions", in: copy) == "10")
        await cassette.close()
    }
}
