import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

/// What a user's files look like after recording and replaying: one complete `.sqlite`, unchanged by replays.
@Suite struct CassetteLifecycleTests {
    let folder = TemporaryFolder()
    let request = ExecutionRequest(code: "print(3 + 4)", language: .python)

    private func fakeLive() -> FakeExecutor {
        let fake = FakeExecutor()
        fake.on(.codeContains("3 + 4"), answer: .success(stdout: "7\n"))
        return fake
    }

    private func siblings(of url: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path).sorted()
    }

    @Test func withCassetteLeavesOneCompleteFile() async throws {
        let url = folder.file("grader.sqlite")
        let live = fakeLive()
        let stdout = try await Cassette.withCassette(at: url) { cassette in
            try await RecordingExecutor(cassette: cassette, mode: .missing, live: live).execute(request).stdoutText
        }
        #expect(stdout == "7\n")
        #expect(try siblings(of: url) == ["grader.sqlite"])
        // The `.sqlite` alone, copied elsewhere (what a commit holds), replays the recording.
        let copy = folder.file("copy/grader.sqlite")
        try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: url, to: copy)
        let replayed = try await Cassette.withCassette(at: copy, readOnly: true) { cassette in
            try await RecordingExecutor(cassette: cassette, mode: .never).execute(request).stdoutText
        }
        #expect(replayed == "7\n")
        #expect(live.requestCount == 1)
    }

    @Test func withCassetteClosesWhenTheBodyThrows() async throws {
        let url = folder.file("thrown.sqlite")
        let live = fakeLive()
        await #expect(throws: CancellationError.self) {
            try await Cassette.withCassette(at: url) { cassette in
                _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: live).execute(request)
                throw CancellationError()
            }
        }
        #expect(try siblings(of: url) == ["thrown.sqlite"])
        let count = try await Cassette.withCassette(at: url, readOnly: true) { try await $0.count() }
        #expect(count == 1)
    }

    @Test(arguments: [RecordMode.never, .missing])
    func replaysLeaveTheFileUnchanged(mode: RecordMode) async throws {
        let url = folder.file("replay-\(mode).sqlite")
        let live = fakeLive()
        try await Cassette.withCassette(at: url) { cassette in
            _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: live).execute(request)
        }
        let before = try Data(contentsOf: url)
        let outputs = try await Cassette.withCassette(at: url) { cassette in
            let executor = RecordingExecutor(cassette: cassette, mode: mode, live: live)
            var outputs: [String] = []
            // In `missing` mode a repeat beyond the recorded ones is recorded; in `never` the last one repeats.
            for _ in 0..<(mode == .never ? 3 : 1) { outputs.append(try await executor.execute(request).stdoutText) }
            return outputs
        }
        #expect(outputs.allSatisfy { $0 == "7\n" } && !outputs.isEmpty)
        #expect(try Data(contentsOf: url) == before)
        #expect(try siblings(of: url) == [url.lastPathComponent])
        #expect(live.requestCount == 1)
    }

    @Test func recordingsReachTheMainFileSoonWithoutAFlush() async throws {
        // Kept open, never flushed: within about a second the WAL is checkpointed, so a copy of the `.sqlite`
        // alone (what a crash or a damaged -wal would leave) holds the recording.
        let url = folder.file("open.sqlite")
        let cassette = try await Cassette.open(at: url)
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: fakeLive()).execute(request)
        let copy = folder.file("main-file-only.sqlite")
        let deadline = ContinuousClock.now + .seconds(20)
        var count = 0
        while count == 0, ContinuousClock.now < deadline {
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(at: url, to: copy)
            count = (try? await Cassette.withCassette(at: copy, readOnly: true) { try await $0.count() }) ?? 0
            if count == 0 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(count == 1)
        await cassette.close()
    }

    @Test func pruneNeverReplayedNeedsStamps() async throws {
        let url = folder.file("prune.sqlite")
        let live = fakeLive()
        live.on(.codeContains("unused"), answer: .success(stdout: "u\n"))
        let cassette = try await Cassette.open(at: url)
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        _ = try await recorder.execute(request)
        _ = try await recorder.execute(ExecutionRequest(code: "print('unused')", language: .python))
        // No stamped run yet: "never replayed" would mean everything, so it is refused.
        let error = try await #require(throws: CassetteError.self) { try await cassette.prune(neverReplayed: true) }
        #expect(error.code == .notTracked)
        #expect(error.message.contains("SANDBOX_VCR_STAMP_REPLAYS=1"))
        #expect(try await cassette.count() == 2)
        // A stamped run that uses one recording: the other goes.
        let stamped = RecordingExecutor(cassette: cassette, mode: .never, configuration: .init(stampsReplays: true))
        _ = try await stamped.execute(request)
        try await cassette.flush()
        #expect(try await cassette.prune(neverReplayed: true) == 1)
        #expect(try await cassette.interactions().map(\.request.code) == [request.code])
        await cassette.close()
    }
}
