import Foundation
import SandboxVCR
import Testing

@Suite struct RecordingOutcomeTests {
    let folder = TemporaryFolder()

    /// Runs `request` on `executor` with a fresh sink bound; returns what the sink learned.
    func outcome(_ executor: RecordingExecutor, _ request: ExecutionRequest) async -> RecordingOutcome {
        let sink = RecordingOutcome.Sink()
        _ = try? await RecordingOutcome.Sink.$current.withValue(sink) { try await executor.execute(request) }
        return sink.outcome
    }

    @Test func reportsRecordedThenHitWithTheSameKey() async throws {
        let cassette = try await Cassette.open(at: folder.file("c.sqlite"))
        let live = SandboxExecutorStub()
        let recorded = await outcome(
            RecordingExecutor(cassette: cassette, mode: .missing, live: live), request(stdin: "a"))
        #expect(recorded.kind == .recorded)
        #expect(recorded.liveDuration != nil)
        let key = try #require(recorded.key)
        #expect(recorded.keyPrefix == String(key.hex.prefix(12)))

        let replayed = await outcome(RecordingExecutor(cassette: cassette, mode: .never), request(stdin: "a"))
        #expect(replayed.kind == .hit)
        #expect(replayed.key == key)
        #expect(live.callCount == 1)
    }

    @Test func reportsMissAndLive() async throws {
        let cassette = try await Cassette.open(at: folder.file("c.sqlite"))
        let missed = await outcome(RecordingExecutor(cassette: cassette, mode: .never), request(stdin: "b"))
        #expect(missed.kind == .miss)
        #expect(missed.key != nil)
        let noLive = await outcome(RecordingExecutor(cassette: cassette, mode: .missing), request(stdin: "b"))
        #expect(noLive.kind == .miss)
        let passedThrough = await outcome(
            RecordingExecutor(cassette: cassette, mode: .live, live: SandboxExecutorStub()), request(stdin: "b"))
        #expect(passedThrough.kind == .live)
        #expect(passedThrough.key == nil)
        #expect(try await cassette.count() == 0)
    }

    @Test func missAndExhaustedCassetteErrorsAreReplayMisses() async throws {
        let miss = CassetteError(code: .miss, message: "no recording in c.sqlite", path: "c.sqlite")
        #expect(replayMiss(in: miss)?.diagnostics == "no recording in c.sqlite")
        #expect(replayMiss(in: CassetteError(code: .exhausted, message: "m", path: "p")) != nil)
        #expect(replayMiss(in: CassetteError(code: .io, message: "disk full", path: "p")) == nil)
        #expect(replayMiss(in: ExecutionError(code: .timedOut, message: "slow")) == nil)
    }
}
