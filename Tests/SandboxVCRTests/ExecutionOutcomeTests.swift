import Foundation
import SandboxVCR
import SandboxVCRTesting
import Synchronization
import Testing

/// ``SandboxExecutor/outcome(of:)``: where each answer came from, as a value.
@Suite struct ExecutionOutcomeTests {
    let folder = TemporaryFolder()

    @Test func reportsRecordedThenHitWithTheSameKey() async throws {
        let cassette = try await Cassette.open(at: folder.file("c.sqlite"))
        let live = SandboxExecutorStub()
        let recorded = await RecordingExecutor(cassette: cassette, mode: .missing, live: live)
            .outcome(of: request(stdin: "a"))
        #expect(recorded.source == .recorded)
        #expect(recorded.liveDuration != nil)
        #expect(try recorded.result.get().stdoutText == "a")
        let key = try #require(recorded.key)
        #expect(recorded.keyPrefix == String(key.hex.prefix(12)))

        let replayed = await RecordingExecutor(cassette: cassette, mode: .never).outcome(of: request(stdin: "a"))
        #expect(replayed.source == .hit)
        #expect(replayed.key == key)
        #expect(try replayed.result.get() == recorded.result.get())
        #expect(live.callCount == 1)
        await cassette.close()
    }

    @Test func reportsMissAndLive() async throws {
        let cassette = try await Cassette.open(at: folder.file("c.sqlite"))
        let missed = await RecordingExecutor(cassette: cassette, mode: .never).outcome(of: request(stdin: "b"))
        #expect(missed.source == .miss)
        #expect(missed.key != nil)
        #expect(missed.missDiagnostics?.contains("c.sqlite") == true)
        let noLive = await RecordingExecutor(cassette: cassette, mode: .missing).outcome(of: request(stdin: "b"))
        #expect(noLive.source == .miss)
        #expect(noLive.missDiagnostics?.contains("no live executor was given") == true)
        let passedThrough = await RecordingExecutor(cassette: cassette, mode: .live, live: SandboxExecutorStub())
            .outcome(of: request(stdin: "b"))
        #expect(passedThrough.source == .live)
        #expect(passedThrough.key == nil)
        #expect(passedThrough.missDiagnostics == nil)
        #expect(try await cassette.count() == 0)
        await cassette.close()
    }

    @Test func aFailedWriteIsTheCallsError() async throws {
        let url = folder.file("w.sqlite")
        let cassette = try await Cassette.open(at: url)
        // The table the recording goes into is gone: the write fails, and the call that made it says so.
        try RawSQLite.execute("DROP TABLE interactions", in: url)
        let outcome = await RecordingExecutor(cassette: cassette, mode: .all, live: SandboxExecutorStub())
            .outcome(of: request(stdin: "c"))
        #expect(outcome.source == .error)
        let error = try #require(outcome.result.failure as? CassetteError)
        #expect(error.message.contains("interactions"), "\(error)")
        await cassette.close()
    }

    @Test func plainExecutorsReportLiveFakeMissAndError() async throws {
        let fake = FakeExecutor().on(.stdinEquals("known"), answer: .success(stdout: "ok"))
        #expect(await fake.outcome(of: request(stdin: "known")).source == .fake)
        let unmatched = await fake.outcome(of: request(stdin: "other"))
        #expect(unmatched.source == .miss)
        #expect(unmatched.missDiagnostics != nil)
        #expect(await SandboxExecutorStub().outcome(of: request(stdin: "x")).source == .fake, "its results say `fake`")
        struct Failing: SandboxExecutor {
            func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
                throw ExecutionError(code: .timedOut, message: "slow")
            }
        }
        let failed = await Failing().outcome(of: request(stdin: "x"))
        #expect(failed.source == .error)
        #expect(failed.missDiagnostics == nil)
    }
}

extension Result {
    /// The error of a failure.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// A request's one-line summary goes to logs and error messages: its preview is scrubbed before it is cut.
@Suite struct RequestSummaryTests {
    @Test func secretsInThePreviewAreScrubbed() {
        let source = ExecutionRequest(
            code: "# MODAL_TOKEN_SECRET=as-abc123secretvalue and a long tail to be cut off\nprint(1)",
            language: .python)
        #expect(!source.summary.contains("abc123"), "\(source.summary)")
        #expect(source.summary.contains("MODAL_TOKEN_SECRET"))
        let command = ExecutionRequest(argv: ["curl", "-H", "Authorization: Bearer sk-live-1234567890abcdef"])
        #expect(!command.summary.contains("1234567890abcdef"), "\(command.summary)")
    }
}

/// Issue 14, item 3: the live executor is made lazily, only when a call needs it, from a factory that may throw.
@Suite struct LazyLiveExecutorTests {
    let folder = TemporaryFolder()

    struct BadConfiguration: Error, CustomStringConvertible {
        var description: String { "SANDBOX_URL has no scheme" }
    }

    @Test func hitsNeverMakeItAndAFailingFactoryFailsOnlyTheCallsThatNeedIt() async throws {
        let cassette = try await Cassette.open(at: folder.file("lazy.sqlite"))
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
            .execute(request(stdin: "recorded"))
        let attempts = Mutex(0)
        let executor = RecordingExecutor(
            cassette: cassette, mode: .missing,
            makeLive: {
                attempts.withLock { $0 += 1 }
                throw BadConfiguration()
            })
        let hit = await executor.outcome(of: request(stdin: "recorded"))
        #expect(hit.source == .hit)
        #expect(attempts.withLock { $0 } == 0, "a hit needs no live executor")
        #expect(executor.live == nil)

        for _ in 0..<2 {
            let miss = await executor.outcome(of: request(stdin: "new"))
            #expect(miss.source == .error)
            let error = try #require(miss.result.failure as? ExecutionError)
            #expect(error.code == .configuration)
            #expect(error.message.contains("SANDBOX_URL has no scheme"))
        }
        #expect(attempts.withLock { $0 } == 1, "the factory runs once; its failure is remembered")
        await cassette.close()
    }

    @Test func aFactoryThatWorksIsCalledOnceOnTheFirstMiss() async throws {
        let cassette = try await Cassette.open(at: folder.file("made.sqlite"))
        let attempts = Mutex(0)
        let live = SandboxExecutorStub()
        let executor = RecordingExecutor(
            cassette: cassette, mode: .missing,
            makeLive: {
                attempts.withLock { $0 += 1 }
                return live
            })
        #expect(try await executor.execute(request(stdin: "a")).stdoutText == "a")
        #expect(try await executor.execute(request(stdin: "b")).stdoutText == "b")
        #expect(attempts.withLock { $0 } == 1)
        #expect(executor.live != nil)
        #expect(live.callCount == 2)
        await cassette.close()
    }
}

/// Issue 14, item 7: a miss names the cassette once, and its diff shows the recorded line (`-`) before the
/// requested one (`+`), as `diff -u` does.
@Suite struct MissMessageTests {
    let folder = TemporaryFolder()

    @Test func recordedLinesComeFirstAndThePathOnce() async throws {
        let url = folder.file("miss.sqlite")
        let cassette = try await Cassette.open(at: url)
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
            .execute(request("x = 1\nprint(x)\n"))
        let miss = await RecordingExecutor(cassette: cassette, mode: .never).outcome(of: request("x = 2\nprint(x)\n"))
        let error = try #require(miss.result.failure as? CassetteError)
        let lines = error.message.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let removed = try #require(lines.firstIndex(of: "-x = 1"), "\(error.message)")
        let added = try #require(lines.firstIndex(of: "+x = 2"), "\(error.message)")
        #expect(removed < added)
        #expect(error.description.components(separatedBy: url.path).count == 2, "\(error.description)")
        await cassette.close()
    }
}
