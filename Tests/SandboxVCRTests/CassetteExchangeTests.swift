import Foundation
import SandboxVCR
import Testing

@Suite struct CassetteExchangeTests {
    let folder = TemporaryFolder()
    let samples = packageRoot().appendingPathComponent("Fixtures/sandboxfusion/samples")
    let exchanges = packageRoot().appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl")

    @Test func importsSandboxFusionSamples() async throws {
        let cassette = try await Cassette.open(at: folder.file("samples.sqlite"))
        let report = try await cassette.importExchanges(from: [samples])
        // 4xx answers whose body reads as a run_code request become recorded errors (unknown language, js alias,
        // no content type); malformed bodies and other endpoints are skipped.
        #expect(report.errors >= 2)
        #expect(report.results >= 30)
        #expect(report.skipped.contains { $0.contains("00-ping.json") })
        #expect(report.skipped.contains { $0.contains("13-malformed-json.json") })
        #expect(try await cassette.count() == report.imported)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        let hello = try await replay.execute(ExecutionRequest(code: "print(\"hello world\")", language: .python))
        #expect(hello.stdoutText == "hello world\n")
        #expect(hello.backend == .sandboxFusion)
        let error = try await #require(throws: ExecutionError.self) {
            try await replay.execute(ExecutionRequest(code: "print(1)", language: "cobol"))
        }
        #expect(error.code == .httpStatus)
        #expect(error.httpStatus == 422)
        #expect(error.validationIssues.first?.location == ["body", "language"])
        let stored = try #require(
            try await cassette.interactions().first { $0.request.code == "print(\"hello world\")" })
        #expect(stored.duration != nil)
    }

    @Test func importsGradingDemoExchanges() async throws {
        let cassette = try await Cassette.open(at: folder.file("demo.sqlite"))
        let report = try await cassette.importExchanges(from: [exchanges])
        let lines = try String(contentsOf: exchanges, encoding: .utf8).split(separator: "\n").count
        #expect(report.imported + report.skipped.count == lines)
        #expect(report.imported == lines)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        let result = try await replay.execute(
            ExecutionRequest(
                code: "a, b = map(int, input().split())\nprint(a + b)\n", language: .python, stdin: "3 4\n",
                runTimeout: .seconds(2)))
        #expect(result.stdoutText == "7\n")
    }

    @Test func exportImportRoundTripIsLossless() async throws {
        let original = try await Cassette.open(at: folder.file("one.sqlite"))
        _ = try await original.importExchanges(from: [samples, exchanges])
        // Add interactions with binary bytes, sessions and a command.
        let binary = Data([0, 255, 254, 10, 13])
        let executor = RecordingExecutor(
            cassette: original, mode: .missing,
            live: SandboxExecutorStub { request, _ in
                ExecutionResult(
                    status: .failed,
                    compile: CommandOutcome(status: .finished, exitCode: 0, wallTime: 0.25),
                    run: CommandOutcome(
                        status: .timeLimitExceeded, signal: 9, stdout: binary, stderr: Data("é✓\n".utf8),
                        wallTime: 1.0 / 3.0, cpuTime: 0.1),
                    files: ["out.bin": binary], message: "m", backend: .modal, executorName: "pod",
                    hints: [
                        .killedBySignal(step: .run, signal: 9),
                        .outputPossiblyTruncated(step: .run, stream: .stdout, limit: 219_264),
                    ])
            })
        _ = try await executor.session(id: "sess").execute(
            ExecutionRequest(argv: ["sh", "-c", "cat"], workdir: "/w", files: ["in.bin": binary], stdin: "x"))
        let first = try await original.exportJSONLines()
        let copy = try await Cassette.open(at: folder.file("two.sqlite"))
        let imported = try await copy.importJSONLines(first)
        #expect(imported == (try await original.count()))
        let second = try await copy.exportJSONLines()
        #expect(first == second)
        let a = try await original.interactions(limit: 10_000)
        let b = try await copy.interactions(limit: 10_000)
        #expect(a.map(\.outcomeHash) == b.map(\.outcomeHash))
        #expect(a.map(\.outcome) == b.map(\.outcome))
        #expect(a.map(\.request) == b.map(\.request))
        // Lines are sorted by key, then ordinal.
        let keys = String(decoding: first, as: UTF8.self).split(separator: "\n").map { line in
            String(line.split(separator: "\"key\":\"")[1].prefix(64))
        }
        #expect(keys == keys.sorted())
    }

    @Test func showIsStableAndReadable() async throws {
        let cassette = try await Cassette.open(at: folder.file("show.sqlite"))
        _ = try await cassette.importExchanges(from: [exchanges])
        let first = try await cassette.showText()
        _ = try await RecordingExecutor(cassette: cassette, mode: .never).execute(
            ExecutionRequest(
                code: "a, b = map(int, input().split())\nprint(a + b)\n", language: .python, stdin: "3 4\n",
                runTimeout: .seconds(2)))
        await cassette.close()
        let reopened = try await Cassette.open(at: folder.file("show.sqlite"))
        let second = try await reopened.showText()
        #expect(first == second)
        #expect(first.contains("request: python"))
        #expect(first.contains("    | print(a + b)"))
        #expect(first.contains("result: Success from sandboxfusion"))
    }

    @Test func statsMergePruneVerify() async throws {
        let a = try await Cassette.open(at: folder.file("a.sqlite"))
        let harness = Data(String(repeating: "# harness line\n", count: 1000).utf8)
        let recorder = RecordingExecutor(cassette: a, mode: .missing, live: SandboxExecutorStub())
        for index in 0..<20 { _ = try await recorder.execute(request(stdin: "\(index)", files: ["h.py": harness])) }
        let stats = try await a.statistics()
        #expect(stats.interactions == 20)
        #expect(stats.dedupeRatio > 10)
        #expect(stats.backends == ["fake": 20])
        #expect(stats.neverReplayed == 20)
        #expect(stats.fileSize > 0)
        #expect(stats.oldest != nil && stats.oldest! <= stats.newest!)

        let b = try await Cassette.open(at: folder.file("b.sqlite"))
        let other = RecordingExecutor(cassette: b, mode: .missing, live: SandboxExecutorStub())
        for index in 15..<30 { _ = try await other.execute(request(stdin: "\(index)", files: ["h.py": harness])) }
        let merged = try await Cassette.open(at: folder.file("merged.sqlite"))
        let report = try await merged.merge([a, b])
        #expect(report.added == 30)
        #expect(report.skipped == 5)
        #expect(try await merged.count() == 30)

        // Replay 10, then prune the never-replayed rest.
        let replay = RecordingExecutor(
            cassette: merged, mode: .never, configuration: .init(stampsReplays: true))
        for index in 0..<10 { _ = try await replay.execute(request(stdin: "\(index)", files: ["h.py": harness])) }
        await merged.close()
        let reopened = try await Cassette.open(at: folder.file("merged.sqlite"))
        #expect(try await reopened.statistics().neverReplayed == 20)
        #expect(try await reopened.prune(neverReplayed: true) == 20)
        #expect(try await reopened.count() == 10)
        #expect(try await reopened.verify().isOK)
        let replayAgain = RecordingExecutor(cassette: reopened, mode: .never)
        #expect(try await replayAgain.execute(request(stdin: "3", files: ["h.py": harness])).stdoutText == "3")
        #expect(try await reopened.prune(unusedSince: Date(timeIntervalSinceNow: 3600)) == 10)
        #expect(try await reopened.statistics().blobCount == 0)
    }

    @Test func verifyFindsADamagedBlob() async throws {
        let url = folder.file("damaged.sqlite")
        let cassette = try await Cassette.open(at: url)
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
            .execute(request(String(repeating: "y", count: 1000)))
        await cassette.close()
        try RawSQLite.execute("UPDATE blobs SET bytes = zeroblob(size) WHERE size = 1000", in: url)
        let reopened = try await Cassette.open(at: url)
        let report = try await reopened.verify()
        #expect(report.integrity == ["ok"])
        #expect(report.damagedBlobs.count == 1)
        #expect(!report.isOK)
    }
}
