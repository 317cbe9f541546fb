import Foundation
import SandboxVCR
import Testing

@Suite struct RecordingExecutorTests {
    let folder = TemporaryFolder()

    func open(_ name: String = "c.sqlite") async throws -> Cassette {
        try await Cassette.open(at: folder.file(name))
    }

    @Test func missingRecordsThenReplays() async throws {
        let cassette = try await open()
        let live = SandboxExecutorStub()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        let first = try await recorder.execute(request(stdin: "a"))
        #expect(first.stdoutText == "a")
        #expect(live.callCount == 1)
        // A new executor (a new test run) replays without calling live.
        let replayer = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        let again = try await replayer.execute(request(stdin: "a"))
        #expect(again == first)
        #expect(live.callCount == 1)
        #expect(try await cassette.count() == 1)
    }

    @Test func neverReplaysWithoutLiveAndMissesOtherwise() async throws {
        let cassette = try await open()
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
            .execute(request(stdin: "x"))
        let replayer = RecordingExecutor(cassette: cassette, mode: .never)
        #expect(try await replayer.execute(request(stdin: "x")).stdoutText == "x")
        let error = try await #require(throws: CassetteError.self) {
            try await replayer.execute(request(stdin: "y"))
        }
        #expect(error.code == .miss)
    }

    @Test func allReplacesEarlierRecordings() async throws {
        let cassette = try await open()
        let first = SandboxExecutorStub { request, _ in
            ExecutionResult(
                status: .success, run: CommandOutcome(status: .finished, stdout: Data("old".utf8)), backend: .fake)
        }
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: first).execute(request())
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: first).execute(request())
        let second = SandboxExecutorStub { request, _ in
            ExecutionResult(
                status: .success, run: CommandOutcome(status: .finished, stdout: Data("new".utf8)), backend: .fake)
        }
        let all = RecordingExecutor(cassette: cassette, mode: .all, live: second)
        #expect(try await all.execute(request()).stdoutText == "new")
        #expect(try await all.execute(request()).stdoutText == "new")
        #expect(second.callCount == 2)
        #expect(try await cassette.count() == 2)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        #expect(try await replay.execute(request()).stdoutText == "new")
    }

    @Test func liveRecordsNothing() async throws {
        let cassette = try await open()
        let live = SandboxExecutorStub()
        let executor = RecordingExecutor(cassette: cassette, mode: .live, live: live)
        _ = try await executor.execute(request())
        _ = try await executor.execute(request())
        #expect(live.callCount == 2)
        #expect(try await cassette.count() == 0)
    }

    @Test func liveModeWithoutLiveExecutorIsAConfigurationError() async throws {
        let executor = RecordingExecutor(cassette: try await open(), mode: .all)
        let error = try await #require(throws: ExecutionError.self) { try await executor.execute(request()) }
        #expect(error.code == .configuration)
    }

    @Test func repeatsReplayInOrderThenRepeatLast() async throws {
        let cassette = try await open()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        for _ in 0..<3 { _ = try await recorder.execute(request()) }
        #expect(try await cassette.count() == 3)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        var seen: [String] = []
        for _ in 0..<5 { seen.append(try await replay.execute(request()).stderrText) }
        #expect(seen == ["call 1", "call 2", "call 3", "call 3", "call 3"])
    }

    @Test func exhaustionPolicyFail() async throws {
        let cassette = try await open()
        _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
            .execute(request())
        let replay = RecordingExecutor(
            cassette: cassette, mode: .never, configuration: .init(exhaustion: .fail))
        _ = try await replay.execute(request())
        let error = try await #require(throws: CassetteError.self) { try await replay.execute(request()) }
        #expect(error.code == .exhausted)
        #expect(error.message.contains("2 times"))
    }

    @Test func recordedFailuresReplayAsTheSameError() async throws {
        let cassette = try await open()
        let failing = SandboxExecutorStub { _, _ in
            throw ExecutionError(
                code: .httpStatus, message: "bad", httpStatus: 422,
                validationIssues: [.init(type: "missing", location: ["body", "code"], message: "Field required")])
        }
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: failing)
        let recorded = try await #require(throws: ExecutionError.self) { try await recorder.execute(request()) }
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        let replayed = try await #require(throws: ExecutionError.self) { try await replay.execute(request()) }
        #expect(replayed == recorded)
        let notRecording = RecordingExecutor(
            cassette: try await open("other.sqlite"), mode: .missing, live: failing,
            configuration: .init(recordsFailures: false))
        _ = try? await notRecording.execute(request())
        #expect(try await notRecording.cassette.count() == 0)
    }

    @Test func matchersIgnoreConfiguredParts() async throws {
        let base = ExecutionRequest(
            code: "print(1)\r\n", language: .python, files: ["seed.txt": Data("1".utf8), "a.py": Data("x".utf8)],
            stdin: "in", runTimeout: .seconds(5))
        var changed = base
        changed.program = .source(language: .python, code: "print(1)  \n\n")
        changed.files["seed.txt"] = Data("2".utf8)
        changed.stdin = Data("other".utf8)
        changed.runTimeout = .seconds(7)
        #expect(RequestMatcher.exact.key(for: base) != RequestMatcher.exact.key(for: changed))
        let loose = RequestMatcher(
            ignoresLimits: true, ignoredFiles: ["seed.txt"], ignoresStdin: true, normalizesLineEndings: true,
            trimsTrailingWhitespace: true)
        #expect(loose.key(for: base) == loose.key(for: changed))
        // A file that is not ignored still counts.
        var otherFile = changed
        otherFile.files["a.py"] = Data("y".utf8)
        #expect(loose.key(for: base) != loose.key(for: otherFile))
        // A custom normalizer.
        let custom = RequestMatcher(normalizer: { request in
            var request = request
            request.program = .source(language: .python, code: request.code!.replacingOccurrences(of: "2", with: "1"))
            return request
        })
        #expect(custom.key(for: request("print(2)")) == custom.key(for: request("print(1)")))
    }

    @Test func keyIgnoresMapOrderAndSpelledOutDefaults() {
        let a = ExecutionRequest(
            code: "x", language: .python, files: ["a": Data("1".utf8), "b": Data("2".utf8)], fetchFiles: ["p", "q"])
        var b = ExecutionRequest(
            program: .source(language: .python, code: "x"), runTimeout: .seconds(10), compileTimeout: .seconds(10))
        b.files = ["b": Data("2".utf8), "a": Data("1".utf8)]
        b.fetchFiles = ["q", "p"]
        #expect(RequestMatcher.exact.key(for: a) == RequestMatcher.exact.key(for: b))
    }

    @Test func missDiagnosticsShowNearestRequestAndDiff() async throws {
        let cassette = try await open()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        _ = try await recorder.execute(
            request(
                "a = 1\nb = 2\nprint(a + b)\n", stdin: "1 2", files: ["data.txt": Data("old".utf8)],
                timeout: .seconds(2)))
        _ = try await recorder.execute(ExecutionRequest(code: "echo hi", language: .bash))
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        let error = try await #require(throws: CassetteError.self) {
            try await replay.execute(
                request(
                    "a = 1\nb = 3\nprint(a + b)\n", stdin: "1 3", files: ["data.txt": Data("new".utf8)],
                    timeout: .seconds(5))
            )
        }
        #expect(error.code == .miss)
        let message = error.message
        #expect(message.contains(cassette.url.path))
        #expect(message.contains("record mode `never`"))
        #expect(message.contains("-b = 2"))
        #expect(message.contains("+b = 3"))
        #expect(message.contains("file data.txt differs"))
        #expect(message.contains("run timeout: recorded 2s, requested 5s"))
        #expect(message.contains("stdin: recorded \"1 2\", requested \"1 3\""))
        #expect(message.contains("SANDBOX_VCR_RECORD=missing"))
        #expect(!message.contains("echo hi"))
    }

    /// A miss of a 9 MB, 200,000-line request: the diagnostics stay small (they go into an answer and a log).
    @Test func missDiagnosticsOfAHugeRequestAreBounded() async throws {
        let cassette = try await open()
        let lines = (0..<200_000).map { "print(\($0))  # a line of a generated harness" }
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        _ = try await recorder.execute(request(lines.joined(separator: "\n")))
        var changed = lines
        changed[123_456] = "print('changed')"
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        let error = try await #require(throws: CassetteError.self) {
            try await replay.execute(request(changed.joined(separator: "\n")))
        }
        #expect(error.code == .miss)
        #expect(error.message.utf8.count < 20 * 1024)
        #expect(error.message.contains("+print('changed')"))
        #expect(error.message.contains("SANDBOX_VCR_RECORD=missing"))
    }

    @Test func plantedSecretsNeverReachTheFile() async throws {
        let url = folder.file("secret.sqlite")
        let cassette = try await Cassette.open(at: url)
        let secrets = [
            "ak-abcdEFGH12345678", "as-zyxwVUTS98765432", "AKIAABCDEFGHIJKLMNOP", "hunter2secretvalue",
            "eyJhbGciOiJIUzI1NiJ9tokenvalue",
        ]
        let live = SandboxExecutorStub { request, _ in
            ExecutionResult(
                status: .success,
                run: CommandOutcome(
                    status: .finished, stdout: Data("token ak-abcdEFGH12345678 AKIAABCDEFGHIJKLMNOP\n".utf8),
                    stderr: Data("DB_PASSWORD=hunter2secretvalue".utf8)),
                message: "Bearer eyJhbGciOiJIUzI1NiJ9tokenvalue", backend: .fake)
        }
        let executor = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        let planted = ExecutionRequest(
            code: "MODAL_TOKEN_SECRET = 'as-zyxwVUTS98765432'\nprint('ak-abcdEFGH12345678')\n",
            language: .python,
            files: ["env": Data("export API_KEY=\"hunter2secretvalue\"\n".utf8)],
            stdin: "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9tokenvalue")
        let live1 = try await executor.execute(planted)
        #expect(live1.stdoutText.contains("ak-abcdEFGH12345678"))  // the caller still sees the live answer
        // Replay still matches (the key comes from the request as made) and returns the redacted result.
        let replayed = try await RecordingExecutor(cassette: cassette, mode: .never).execute(planted)
        #expect(replayed.stdoutText.contains(Redactor.placeholder))
        let export = String(decoding: try await cassette.exportJSONLines(), as: UTF8.self)
        #expect(export.contains("API_KEY=\\\"<redacted>") || export.contains("API_KEY=\"<redacted>"))
        var bytes = try Data(contentsOf: url)
        bytes += (try? Data(contentsOf: URL(fileURLWithPath: url.path + "-wal"))) ?? Data()
        for secret in secrets {
            #expect(bytes.range(of: Data(secret.utf8)) == nil, "secret \(secret) found in the cassette file")
            #expect(!export.contains(secret))
        }
        await cassette.close()
        let closed = try Data(contentsOf: url)
        for secret in secrets { #expect(closed.range(of: Data(secret.utf8)) == nil) }
    }

    @Test func scrubberLeavesOrdinaryCodeAlone() {
        let code = "sorted(xs, key=lambda x: -x)\nmonkey = 3\n"
        #expect(Redactor.scrub(code) == code)
        #expect(Redactor.scrub("GITHUB_TOKEN=ghp_abc123") == "GITHUB_TOKEN=<redacted>")
    }

    @Test func userRedactionHooksRun() async throws {
        let cassette = try await open()
        let redactor = Redactor(
            request: { request in
                var request = request
                request.files["private.txt"] = Data("gone".utf8)
                return request
            },
            result: { result in
                var result = result
                result.executorName = "pod-x"
                return result
            })
        let executor = RecordingExecutor(
            cassette: cassette, mode: .missing, live: SandboxExecutorStub(),
            configuration: .init(redactor: redactor))
        _ = try await executor.execute(request(files: ["private.txt": Data("customer data".utf8)]))
        let stored = try #require(try await cassette.interactions().first)
        #expect(stored.request.files["private.txt"] == Data("gone".utf8))
        guard case .result(let result) = stored.outcome else {
            Issue.record("expected a result")
            return
        }
        #expect(result.executorName == "pod-x")
    }

    @Test func expiredRecordingsAreRerecordedInMissingMode() async throws {
        let cassette = try await open()
        let key = RequestMatcher.exact.key(for: request())
        let old = ExecutionResult(
            status: .success, run: CommandOutcome(status: .finished, stdout: Data("old".utf8)), backend: .fake)
        try await cassette.record([
            .init(
                key: key, ordinal: 0, request: request(), outcome: .result(old),
                recordedAt: Date(timeIntervalSinceNow: -10 * 86_400))
        ])
        let live = SandboxExecutorStub()
        let fresh = RecordingExecutor(
            cassette: cassette, mode: .missing, live: live, configuration: .init(maxAge: .seconds(86_400)))
        #expect(try await fresh.execute(request(stdin: "")).stdoutText == "")
        #expect(live.callCount == 1)
        #expect(try await cassette.count() == 1)
        // Without expiry the (now fresh) recording replays; in never mode stale entries still replay.
        let never = RecordingExecutor(cassette: cassette, mode: .never, configuration: .init(maxAge: .microseconds(1)))
        #expect(try await never.execute(request()).stderrText == "call 1")
    }

    @Test func fiveHundredTwelveConcurrentTasks() async throws {
        let cassette = try await open()
        let live = SandboxExecutorStub()
        let executor = RecordingExecutor(cassette: cassette, mode: .missing, live: live)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<512 {
                group.addTask {
                    let result = try await executor.execute(request(stdin: "\(index % 256)"))
                    #expect(result.stdoutText == "\(index % 256)")
                }
            }
            try await group.waitForAll()
        }
        #expect(try await cassette.count() == 512)
        #expect(live.callCount == 512)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<512 {
                group.addTask { _ = try await replay.execute(request(stdin: "\(index % 256)")) }
            }
            try await group.waitForAll()
        }
        #expect(try await replay.unusedRecordings().isEmpty)
    }

    @Test func sessionsChainKeys() async throws {
        let cassette = try await open()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        let session = recorder.session(id: "s1")
        _ = try await session.execute(request(stdin: "a"))
        _ = try await session.execute(request(stdin: "b"))
        let rows = try await cassette.interactions()
        #expect(Set(rows.compactMap(\.step)) == [0, 1])
        #expect(rows.allSatisfy { $0.session == "s1" })
        // Replaying step "b" first in a new session misses: its key depends on step "a".
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        await #expect(throws: CassetteError.self) { try await replay.session().execute(request(stdin: "b")) }
        let ordered = replay.session()
        #expect(try await ordered.execute(request(stdin: "a")).stdoutText == "a")
        #expect(try await ordered.execute(request(stdin: "b")).stdoutText == "b")
    }

    @Test func unusedRecordingsAreReported() async throws {
        let cassette = try await open()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        _ = try await recorder.execute(request(stdin: "1"))
        _ = try await recorder.execute(request(stdin: "2"))
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        _ = try await replay.execute(request(stdin: "1"))
        let unused = try await replay.unusedRecordings()
        #expect(unused.map(\.request.stdinText) == ["2"])
    }

    @Test func modeResolutionOrder() async throws {
        #expect(try RecordMode.resolve(.all, environment: ["SANDBOX_VCR_RECORD": "never"]) == .all)
        #expect(try RecordMode.resolve(nil, environment: ["SANDBOX_VCR_RECORD": "never"]) == .never)
        #expect(try RecordMode.resolve(nil, environment: [:]) == .missing)
        #expect(try RecordMode.resolve(nil, environment: ["CI": "true"]) == .never)
        #expect(try RecordMode.resolve(nil, environment: ["CI": "1", "SANDBOX_VCR_RECORD": "all"]) == .all)
        let (fromTrait, explicit) = try await withRecordMode(.live) {
            (
                try RecordMode.resolve(nil, environment: ["SANDBOX_VCR_RECORD": "never"]),
                try RecordMode.resolve(.never, environment: [:])
            )
        }
        #expect(fromTrait == .live)
        #expect(explicit == .never)
        #expect(RecordMode("MISSING") == .missing)
        #expect(RecordMode("sometimes") == nil)
        #expect(RecordMode(rawValue: "MISSING") == nil, "raw values are exact")
        let error = try #require(throws: ExecutionError.self) {
            try RecordMode.resolve(nil, environment: ["SANDBOX_VCR_RECORD": "sometimes", "CI": "1"])
        }
        #expect(error.code == .configuration)
        #expect(error.message.contains("\"sometimes\" is not a record mode"))
    }

    @Test func flushMakesRecordingsVisibleToOtherConnections() async throws {
        let writer = try await open("shared.sqlite")
        let reader = try await open("shared.sqlite")
        let executor = RecordingExecutor(cassette: writer, mode: .missing, live: SandboxExecutorStub())
        for index in 0..<20 { _ = try await executor.execute(request(stdin: "\(index)")) }
        try await writer.flush()
        #expect(try await reader.count() == 20)
        let replay = RecordingExecutor(cassette: reader, mode: .never)
        #expect(try await replay.execute(request(stdin: "7")).stdoutText == "7")
    }

    @Test func missingModeWithoutLiveExecutorIsAMissThatSaysSo() async throws {
        let executor = RecordingExecutor(cassette: try await open(), mode: .missing)
        let error = try await #require(throws: CassetteError.self) { try await executor.execute(request()) }
        #expect(error.code == .miss)
        #expect(error.message.contains("no live executor"))
    }

    /// A long replay (issue 12: memory grew by ~110 bytes per request) keeps what the executor tracks as small as the
    /// cassette: a request repeated past its recordings (`repeatLast`) and distinct misses add nothing.
    @Test func aLongReplayTracksNoMoreThanTheCassette() async throws {
        let cassette = try await open()
        let recorder = RecordingExecutor(cassette: cassette, mode: .missing, live: SandboxExecutorStub())
        _ = try await recorder.execute(request(stdin: "a"))
        _ = try await recorder.execute(request(stdin: "a"))
        _ = try await recorder.execute(request(stdin: "b"))
        // Mode `never` repeats the last recording of "a"; mode `missing` without a live executor replays each
        // recording once (a third "a" would miss).
        for mode in [RecordMode.never, .missing] {
            let replayer = RecordingExecutor(cassette: cassette, mode: mode)
            for round in 0..<2_000 {
                if mode == .never || round < 2 {
                    #expect(try await replayer.execute(request(stdin: "a")).stdoutText == "a")
                }
                await #expect(throws: CassetteError.self) {
                    try await replayer.execute(request(stdin: "miss \(round)"))
                }
            }
            #expect(try await replayer.execute(request(stdin: "b")).stdoutText == "b")
            let tracked = replayer.trackedCounts
            #expect(tracked.keys == 2, "mode \(mode)")
            #expect(tracked.used == 3, "mode \(mode)")
            // The usage report still names every recording replayed.
            #expect(try await replayer.recordingUsage().used.count == 3)
        }
    }
}
