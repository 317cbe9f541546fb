import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRModal

/// Modal under faults (issue 12 items 13-16): a server that never ends a command, signals during a run, a sandbox
/// that dies mid-request, an `https` router URL from a loopback server whose router speaks cleartext.
@Suite("Modal: under faults", .serialized)
struct ModalFaultTests {
    @Test("a command the server never ends times out on the client: a timed-out result, its sandbox terminated")
    func clientSideTimeout() async throws {
        try await withFakeModalServer(.init(faults: [.ignoreExecTimeouts])) { server in
            let sandbox = try await ModalSandbox.create(configuration: modalConfiguration(for: server))
            let clock = ContinuousClock()
            let start = clock.now
            // 30 s: time for the fake server (Python) to start the command and send its first line on a loaded machine.
            // 5 s and then 10 s were seen too short while the whole suite ran on 2 cores (the pool tests beside it
            // spawn hundreds of login shells; this test's own steps then took 7 times as long as alone).
            let result = try await sandbox.runCommand("echo started; sleep 100", timeout: .seconds(30))
            let elapsed = clock.now - start
            #expect(result.timedOut)
            #expect(result.signal == 9)
            #expect(result.exitCode == nil)
            #expect(result.stdoutText == "started\n")
            #expect(elapsed >= .seconds(30))
            // Below the command's 100 s, so the client ended it; loose enough for a loaded CI machine.
            #expect(elapsed < .seconds(30) + ModalSandbox.clientTimeoutGrace + .seconds(40), "took \(elapsed)")
            let stats = try server.stats()
            #expect(stats.sandboxesAlive == 0)
            #expect(stats.sandboxesTerminated == 1)
            let after = await #expect(throws: ExecutionError.self) { try await sandbox.runCommand("true") }
            #expect(after?.code == .sandboxTerminated)
        }
    }

    @Test("three infinite loops through the pool end as time limits, each in one sandbox (timeouts are not retried)")
    func infiniteLoopsThroughThePool() async throws {
        try await withFakeModalServer(.init(faults: [.ignoreExecTimeouts])) { server in
            let pool = ModalSandboxPool(configuration: modalConfiguration(for: server), keepsWarm: false)
            let clock = ContinuousClock()
            let start = clock.now
            let results = try await withThrowingTaskGroup(of: ExecutionResult.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        try await pool.execute(
                            ExecutionRequest(code: "while true; do :; done", language: .bash, runTimeout: .seconds(1)))
                    }
                }
                return try await group.reduce(into: [ExecutionResult]()) { $0.append($1) }
            }
            let elapsed = clock.now - start
            await pool.terminate()
            #expect(results.count == 3)
            #expect(results.allSatisfy { $0.run?.status == .timeLimitExceeded && $0.status == .failed })
            #expect(elapsed < .seconds(1) + ModalSandbox.clientTimeoutGrace + .seconds(40), "took \(elapsed)")
            let stats = try server.stats()
            #expect(stats.sandboxesCreated == 3)
            #expect(stats.sandboxesAlive == 0)
        }
    }

    @Test("a sandbox that dies mid-request: the pool runs the request again in a fresh sandbox")
    func poolRetriesADeadSandbox() async throws {
        try await withFakeModalServer(
            .init(faults: [.terminateMidCommandOnce], extraArguments: ["--terminate-after", "0.3"])
        ) { server in
            let pool = ModalSandboxPool(configuration: modalConfiguration(for: server), keepsWarm: false)
            let result = try await pool.execute(
                ExecutionRequest(code: "sleep 1; echo survived", language: .bash, runTimeout: .seconds(30)))
            await pool.terminate()
            #expect(result.status == .success)
            #expect(result.stdoutText == "survived\n")
            let stats = try server.stats()
            #expect(stats.faultsInjected == 1)
            #expect(stats.sandboxesCreated == 2)
            #expect(stats.sandboxesAlive == 0)
        }
    }

    @Test("the retry is bounded: sandboxes that always die give sandboxTerminated after one retry")
    func poolRetryIsBounded() async throws {
        try await withFakeModalServer(
            .init(faults: [.terminateMidCommand], extraArguments: ["--terminate-after", "0.3"])
        ) { server in
            let pool = ModalSandboxPool(configuration: modalConfiguration(for: server), keepsWarm: false)
            let error = await #expect(throws: ExecutionError.self) {
                try await pool.execute(ExecutionRequest(code: "sleep 5", language: .bash, runTimeout: .seconds(30)))
            }
            await pool.terminate()
            #expect(error?.code == .sandboxTerminated)
            let stats = try server.stats()
            #expect(stats.sandboxesCreated == 1 + pool.sandboxRetries)
            #expect(stats.faultsInjected == 1 + pool.sandboxRetries)
            #expect(stats.sandboxesAlive == 0)
        }
    }

    @Test("an https router URL from a loopback API server is dialled in cleartext")
    func httpsRouterOnLoopback() async throws {
        try await withFakeModalServer(.init(extraArguments: ["--router-scheme", "https"])) { server in
            let sandbox = try await ModalSandbox.create(configuration: modalConfiguration(for: server))
            let result = try await sandbox.runCommand("echo cleartext", stdin: Data("x".utf8))
            #expect(result.stdoutText == "cleartext\n")
            try await sandbox.terminate()
            #expect(try server.stats().sandboxesAlive == 0)
        }
    }

    @Test("router URLs: cleartext only for https from a loopback API server (localhost, 127.0.0.0/8, ::1)")
    func routerURLs() {
        let router = "https://127.0.0.1:9000"
        for server in [
            "http://127.0.0.1:8000", "http://localhost:8000", "https://LOCALHOST", "http://127.1.2.3:1",
            "http://[::1]:8000", "http://[0:0:0:0:0:0:0:1]:8000",
        ] {
            #expect(ModalClient.routerURL(router, serverURL: server) == "http://127.0.0.1:9000", "\(server)")
        }
        for server in [
            "https://api.modal.com", "http://128.0.0.1:8000", "http://localhost.example.com", "http://127.0.0.1.nip.io",
            "http://[::2]:8000", "http://10.0.0.1", "not a url",
        ] {
            #expect(ModalClient.routerURL(router, serverURL: server) == router, "\(server)")
        }
        #expect(
            ModalClient.routerURL("https://r.modal.host:443", serverURL: "https://api.modal.com")
                == "https://r.modal.host:443")
        #expect(ModalClient.routerURL("http://127.0.0.1:9", serverURL: "http://127.0.0.1:8") == "http://127.0.0.1:9")
    }
}

/// `sandbox-vcr run --backend modal` as a child process against the fake server.
@Suite("Modal: the CLI under faults", .serialized)
struct ModalCLIFaultTests {
    private func tool() throws -> URL {
        try #require(
            CommandRunner.builtProduct(named: "sandbox-vcr"), "build sandbox-vcr first (swift build --build-tests)")
    }

    private func environment(_ server: FakeModalServer) -> [String: String?] {
        [
            "MODAL_SERVER_URL": server.url, "MODAL_TOKEN_ID": server.tokenID, "MODAL_TOKEN_SECRET": server.tokenSecret,
            "MODAL_CONFIG_PATH": "/nonexistent/modal.toml", "SANDBOX_BACKEND": nil, "SANDBOX_VCR_RECORD": nil,
            "CI": nil,
        ]
    }

    @Test("run --timeout 2 of a 100 s sleep on a server that ignores timeouts ends in seconds as a time limit")
    func runTimesOutOnTheClient() async throws {
        let tool = try tool()
        try await withFakeModalServer(.init(faults: [.ignoreExecTimeouts])) { server in
            let clock = ContinuousClock()
            let start = clock.now
            let output = try await CommandRunner.run(
                tool, ["run", "--backend", "modal", "--language", "bash", "-c", "sleep 100", "--timeout", "2"],
                environment: environment(server))
            let elapsed = clock.now - start
            #expect(output.status == 1, "\(output.stderrText)")
            #expect(output.stdoutText.contains("TimeLimitExceeded"), "\(output.stdoutText)")
            #expect(elapsed < .seconds(2) + ModalSandbox.clientTimeoutGrace + .seconds(40), "took \(elapsed)")
            #expect(try server.stats().sandboxesAlive == 0)
        }
    }

    /// A problems file: one problem with one test and three candidates that loop forever.
    private func loopingProblems(timeLimit: Int) throws -> URL {
        let folder = try temporaryFolder("modal-grade-loops")
        let candidates = (1...3).map { index in
            #"{"id": "loop-\#(index)", "language": "bash", "intent": "time_limit", "code": "while true; do :; done"}"#
        }
        let line =
            #"{"id": "loops", "title": "Loops", "statement": "", "time_limit_s": \#(timeLimit), "#
            + #""tests": [{"input": "", "output": "x\n"}], "candidates": [\#(candidates.joined(separator: ", "))]}"#
        let file = folder.appendingPathComponent("problems.jsonl")
        try Data((line + "\n").utf8).write(to: file)
        return file
    }

    @Test("grade of three infinite loops on a server that ignores timeouts ends in seconds with time limits")
    func gradeTimesOutOnTheClient() async throws {
        let tool = try tool()
        let problems = try loopingProblems(timeLimit: 1)
        defer { try? FileManager.default.removeItem(at: problems.deletingLastPathComponent()) }
        try await withFakeModalServer(.init(faults: [.ignoreExecTimeouts])) { server in
            let clock = ContinuousClock()
            let start = clock.now
            let output = try await CommandRunner.run(
                tool, ["grade", "--backend", "modal", "--no-cassette", "--problems", problems.path, "--json"],
                environment: environment(server))
            let elapsed = clock.now - start
            #expect(output.status == 0, "\(output.stderrText)")
            let report = try JSONDecoder().decode(GradeReport.self, from: output.stdout)
            let verdicts = report.allCandidates.flatMap { $0.candidate.tests.map(\.verdict) }
            #expect(verdicts == [.timeLimit, .timeLimit, .timeLimit], "\(output.stdoutText)")
            #expect(elapsed < .seconds(1) + ModalSandbox.clientTimeoutGrace + .seconds(40), "took \(elapsed)")
            #expect(try server.stats().sandboxesAlive == 0)
        }
    }

    @Test("SIGINT during grade: its three sandboxes are terminated, it says so and exits with 130")
    func signalDuringGrade() async throws {
        let tool = try tool()
        let problems = try loopingProblems(timeLimit: 300)
        defer { try? FileManager.default.removeItem(at: problems.deletingLastPathComponent()) }
        try await withFakeModalServer { server in
            let started = try CommandRunner.start(
                tool, ["grade", "--backend", "modal", "--no-cassette", "--problems", problems.path],
                environment: environment(server))
            defer { if started.process.isRunning { started.process.terminate() } }
            _ = OutputCollector(reading: started.stdout)
            let errors = OutputCollector(reading: started.stderr)
            // Wait (a condition, not a time) until the three programs run: three files written, three runs started.
            let waitLimit = ContinuousClock.now + .seconds(60)
            while started.process.isRunning, ContinuousClock.now < waitLimit {
                let stats = try server.stats()
                if stats.sandboxesAlive == 3, stats.execsStarted >= 6 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            guard started.process.isRunning else {
                _ = await errors.waitForEnd()
                Issue.record("grade ended before the signal: \(errors.text)")
                return
            }
            let clock = ContinuousClock()
            let signalled = clock.now
            kill(started.process.processIdentifier, SIGINT)
            let status = await started.exit.waitOrKill(started.process, timeout: .seconds(60)).status
            let elapsed = clock.now - signalled
            _ = await errors.waitForEnd()
            let stderr = errors.text
            #expect(status == 130, "\(stderr)")
            #expect(elapsed < .seconds(10), "took \(elapsed)")
            #expect(stderr.contains("interrupted by SIGINT: terminated 3 Modal sandboxes"), "\(stderr)")
            let stats = try server.stats()
            #expect(stats.sandboxesAlive == 0)
            #expect(stats.sandboxesCreated == 3)
        }
    }

    @Test("SIGINT and SIGTERM during run: its sandbox is terminated, it says so and exits with 128 + the signal")
    func signalsTerminateTheSandbox() async throws {
        let tool = try tool()
        for (signal, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            try await withFakeModalServer { server in
                let arguments = ["run", "--backend", "modal", "--language", "bash", "-c", "echo started; sleep 100"]
                let started = try CommandRunner.start(
                    tool, arguments + ["--timeout", "300"], environment: environment(server))
                defer { if started.process.isRunning { started.process.terminate() } }
                _ = OutputCollector(reading: started.stdout)
                let errors = OutputCollector(reading: started.stderr)
                // Wait (a condition, not a time) until the program runs: a live sandbox, the file and the run started.
                let waitLimit = ContinuousClock.now + .seconds(60)
                while started.process.isRunning, ContinuousClock.now < waitLimit {
                    let stats = try server.stats()
                    if stats.sandboxesAlive == 1, stats.execsStarted >= 2 { break }
                    try await Task.sleep(for: .milliseconds(20))
                }
                guard started.process.isRunning else {
                    _ = await errors.waitForEnd()
                    Issue.record("run ended before the signal: \(errors.text)")
                    return
                }
                let clock = ContinuousClock()
                let signalled = clock.now
                kill(started.process.processIdentifier, signal)
                let status = await started.exit.waitOrKill(started.process, timeout: .seconds(60)).status
                let elapsed = clock.now - signalled
                _ = await errors.waitForEnd()
                let stderr = errors.text
                #expect(status == 128 + signal, "\(stderr)")
                // Within the CLI's grace period for terminating sandboxes (10 s; SandboxInterruption.grace).
                #expect(elapsed < .seconds(10), "\(name) took \(elapsed)")
                #expect(stderr.contains("interrupted by \(name): terminated 1 Modal sandbox"), "\(stderr)")
                #expect(!stderr.contains(server.tokenSecret))
                let stats = try server.stats()
                #expect(stats.sandboxesAlive == 0)
                #expect(stats.sandboxesCreated == 1)
            }
        }
    }
}
