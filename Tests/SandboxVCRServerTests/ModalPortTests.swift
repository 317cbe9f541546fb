import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// `serve --modal-port` driven by Modal's real Python SDK (modal 1.6.4 in Tools/.venv), unchanged: recorded through
/// `serve` with the fake Modal server as the upstream, then replayed with the fake stopped and no credentials.
@Suite(.serialized)
struct ModalPortTests {
    static let root = CommandRunner.packageRoot()
    static let python = root.appendingPathComponent("Tools/.venv/bin/python")

    /// Credentials only the fake knows; they must never reach the cassette, its `-wal` or the log.
    static let plantedTokenID = "ak-plantedTOKENid7f3a9c2e"
    static let plantedSecret = "as-plantedSECRETvalue5c1e8d4b"

    /// Runs a Python client with the SDK pointed at `modalURL`.
    static func runClient(_ script: String, _ arguments: [String], modalURL: String, tokenID: String, secret: String)
        async throws -> CommandRunner.Output
    {
        try await CommandRunner.run(
            python, [script.hasPrefix("/") ? script : root.appendingPathComponent(script).path] + arguments,
            environment: [
                "MODAL_SERVER_URL": modalURL, "MODAL_TOKEN_ID": tokenID, "MODAL_TOKEN_SECRET": secret,
                "MODAL_CONFIG_PATH": "/nonexistent/sandbox-vcr-tests/.modal.toml", "MODAL_ENVIRONMENT": nil,
                "MODAL_PROFILE": nil,
            ],
            currentDirectory: root)
    }

    /// The cassette's bytes with its `-wal`, as they are on disk now.
    static func cassetteBytes(_ cassette: URL) -> Data {
        var bytes = (try? Data(contentsOf: cassette)) ?? Data()
        bytes.append((try? Data(contentsOf: URL(fileURLWithPath: cassette.path + "-wal"))) ?? Data())
        return bytes
    }

    struct RecordAndReplay {
        var recorded: CommandRunner.Output
        var replayed: CommandRunner.Output
        var recordStats: [String: Int]
        var replayStats: [String: Int]
        var cassetteWhileRecording: Data
        var cassetteAfterRecording: Data
        var recordLog: String
        var replayLog: String
        /// The replaying server's dashboard list (`/ui/api/list`) and the detail of its newest row.
        var replayDashboard: JSONValue = .null
        var replayDashboardNewest: JSONValue = .null
    }

    /// Records `script` through `serve --record all` (upstream: a fresh fake Modal), stops both, then replays it from
    /// `serve --record never` with other credentials.
    static func recordAndReplay(
        _ script: String, _ arguments: [String], fakeOptions: FakeModalServer.Options = .init(),
        replayArguments: [String]? = nil, folder: URL
    ) async throws -> RecordAndReplay {
        let cassette = folder.appendingPathComponent("modal.sqlite")
        var options = fakeOptions
        options.tokenID = plantedTokenID
        options.tokenSecret = plantedSecret
        let fake = try await FakeModalServer.start(options)
        let recorder = try await ServeProcess.start([
            "--cassette", cassette.path, "--record", "all", "--modal-port", "0", "--modal-upstream", fake.url,
        ])
        let recorded: CommandRunner.Output
        let recordStats: [String: Int]
        let whileRecording: Data
        do {
            recorded = try await runClient(
                script, arguments, modalURL: try #require(recorder.modalURL), tokenID: plantedTokenID,
                secret: plantedSecret)
            recordStats = try await recorder.modalStats()
            whileRecording = cassetteBytes(cassette)
        } catch {
            recorder.terminate()
            _ = await fake.stop()
            throw error
        }
        #expect(try await recorder.stop() == 0)
        _ = await fake.stop()

        let replayer = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never", "--modal-port", "0"])
        let replayed: CommandRunner.Output
        let replayStats: [String: Int]
        var replayDashboard: JSONValue = .null
        var replayDashboardNewest: JSONValue = .null
        do {
            replayed = try await runClient(
                script, replayArguments ?? arguments, modalURL: try #require(replayer.modalURL),
                tokenID: "ak-anything", secret: "as-anything")
            replayStats = try await replayer.modalStats()
            replayDashboard = try await replayer.getJSON("/ui/api/list?limit=500")
            if case .integer(let id)? = replayDashboard["rows"]?[0]?["id"] {
                replayDashboardNewest = try await replayer.getJSON("/ui/api/item?id=\(id)")
            }
        } catch {
            replayer.terminate()
            throw error
        }
        #expect(try await replayer.stop() == 0)
        return RecordAndReplay(
            recorded: recorded, replayed: replayed, recordStats: recordStats, replayStats: replayStats,
            cassetteWhileRecording: whileRecording, cassetteAfterRecording: cassetteBytes(cassette),
            recordLog: recorder.log.text, replayLog: replayer.log.text, replayDashboard: replayDashboard,
            replayDashboardNewest: replayDashboardNewest)
    }

    static func lines(_ output: CommandRunner.Output) -> [[String: Any]] {
        output.stdoutText.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    static func step(_ name: String, in output: CommandRunner.Output) -> [String: Any]? {
        lines(output).first { $0["step"] as? String == name }
    }

    @Test(arguments: ["v1", "v2"])
    func theSDKFlowReplaysIdenticallyWithNoUpstreamAndNoCredentials(backend: String) async throws {
        let folder = try makeTemporaryFolder("modal-port-flow")
        defer { try? FileManager.default.removeItem(at: folder) }
        let run = try await Self.recordAndReplay(
            "Tools/modal_grader_flow.py", ["--backend", backend], folder: folder)

        #expect(run.recorded.status == 0, "\(run.recorded.stderrText)")
        #expect(run.replayed.status == 0, "\(run.replayed.stderrText)")
        #expect(Self.lines(run.recorded).count >= 20)
        #expect(run.replayed.stdoutText == run.recorded.stdoutText)
        #expect(run.recordStats["recorded"] ?? 0 >= 10)
        #expect(run.replayStats["misses"] == 0)
        #expect(run.replayStats["replayed"] == run.recordStats["recorded"])
        #expect(run.replayStats["forwarded"] == 0)

        // The steps the issue names, as the client saw them on replay.
        let stdin = try #require(Self.step("exec.stdin", in: run.replayed))
        #expect(stdin["stderr"] as? String == "note for grader\n")
        let nonzero = try #require(Self.step("exec.nonzero", in: run.replayed))
        #expect(nonzero["returncode"] as? Int == 3)
        let timeout = try #require(Self.step("exec.timeout", in: run.replayed))
        #expect(timeout["stdout"] as? String == "before-sleep\n")
        #expect(timeout["returncode"] as? Int == -1)
        let terminated = try #require(Self.step("sandbox2.exec.wait", in: run.replayed))
        let error = try #require(terminated["error"] as? [String: Any])
        #expect(error["type"] as? String == "NotFoundError")
        #expect((error["message"] as? String)?.contains("terminated") == true)

        // No secret reached the cassette (with its -wal, while recording and after) or the log.
        for bytes in [run.cassetteWhileRecording, run.cassetteAfterRecording] {
            #expect(!bytes.isEmpty)
            for secret in [Self.plantedTokenID, Self.plantedSecret, "eyJ"] {
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(secret) is in the cassette")
            }
        }
        for secret in [Self.plantedTokenID, Self.plantedSecret] {
            #expect(!run.recordLog.contains(secret))
        }
    }

    @Test func aPoolOf32Running256RequestsReplaysWithZeroMisses() async throws {
        let folder = try makeTemporaryFolder("modal-port-pool")
        defer { try? FileManager.default.removeItem(at: folder) }
        var options = FakeModalServer.Options()
        options.writesStats = false
        let run = try await Self.recordAndReplay(
            "Tools/modal_pool_client.py", ["--requests", "256", "--pool-size", "32", "--creation-rate", "0"],
            fakeOptions: options, folder: folder)
        #expect(run.recorded.status == 0, "\(run.recorded.stderrText.suffix(2000))")
        #expect(run.replayed.status == 0, "\(run.replayed.stderrText.suffix(2000))")
        let results = Self.lines(run.replayed).filter { $0["request"] != nil }
        #expect(results.count == 256)
        #expect(results.allSatisfy { $0["error"] == nil && $0["returncode"] is Int })
        #expect(run.replayed.stdoutText == run.recorded.stdoutText)
        #expect(run.replayStats["misses"] == 0)
        #expect(run.replayStats["replayed"] == run.recordStats["recorded"])
    }

    @Test func aDeviatingExecIsAMissWhoseMessageNamesTheStepTheNearestRecordingAndTheBindings() async throws {
        let folder = try makeTemporaryFolder("modal-port-miss")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = folder.appendingPathComponent("deviate.py")
        try """
        import secrets, sys, modal
        word = sys.argv[1]
        app = modal.App.lookup("sandbox-vcr-miss", create_if_missing=True)
        sb = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
        workdir = "/workspace/" + secrets.token_hex(6)
        p = sb.exec("bash", "-lc", f"mkdir -p {workdir} && echo ready")
        print(p.stdout.read().strip())
        p = sb.exec("bash", "-lc", f"cd {workdir} && echo {word}")
        try:
            print(p.stdout.read().strip(), p.wait())
        except Exception as error:
            print(type(error).__name__)
            print(str(error))
        sb.terminate()
        """.write(to: script, atomically: true, encoding: .utf8)
        let run = try await Self.recordAndReplay(script.path, ["apple"], replayArguments: ["banana"], folder: folder)
        #expect(run.recorded.stdoutText.hasPrefix("ready\napple 0\n"), "\(run.recorded.stderrText)")
        let replayed = run.replayed.stdoutText
        #expect(replayed.hasPrefix("ready\n"), "\(run.replayed.stderrText)")
        #expect(replayed.contains("no recording matches step 2 of Modal sandbox sb-vcr-1"))
        #expect(replayed.contains("Requested: exec \"cd /workspace/"))
        #expect(replayed.contains("Nearest recording: modal/"))
        #expect(replayed.contains("echo apple"))
        #expect(replayed.contains("Bindings: "))
        #expect(replayed.contains("(since step 1)"))
        #expect(replayed.contains("--record missing"))
        #expect(run.replayStats["misses"] == 1)
        #expect(run.replayLog.contains("Modal replay miss"))
        // The dashboard lists both execs under their sandbox; the miss's detail holds the message and the timeline.
        guard case .array(let rows)? = run.replayDashboard["rows"] else {
            Issue.record("no dashboard rows: \(run.replayDashboard)")
            return
        }
        let execs = rows.filter { $0["endpoint"] == .string("modal exec") }
        #expect(execs.map { $0["outcome"] } == [.string("miss"), .string("hit")])
        #expect(execs.allSatisfy { $0["sandbox"] == .string("sb-vcr-1") })
        let newest = run.replayDashboardNewest
        guard case .string(let error)? = newest["error"], case .array(let timeline)? = newest["timeline"] else {
            Issue.record("no miss detail: \(newest)")
            return
        }
        #expect(error.contains("no recording matches step 2 of Modal sandbox sb-vcr-1"))
        #expect(timeline.count == 2)
        #expect(newest["request"]?["argv"]?[2]?.stringValue?.contains("echo banana") == true)
    }

    /// Each candidate's reward and test verdicts from a `grade --json` report.
    static func verdicts(_ report: Data) throws -> [String] {
        let object = try #require(try JSONSerialization.jsonObject(with: report) as? [String: Any])
        var lines: [String] = []
        for problem in object["problems"] as? [[String: Any]] ?? [] {
            for candidate in problem["candidates"] as? [[String: Any]] ?? [] {
                let tests = (candidate["tests"] as? [[String: Any]] ?? []).map { $0["verdict"] as? String ?? "?" }
                lines.append("\(candidate["id"] ?? "?") \(candidate["reward"] ?? "?") \(tests)")
            }
        }
        return lines
    }

    @Test func swiftModalSandboxPoolReplaysTheGradingDemoRecordedThroughServe() async throws {
        let folder = try makeTemporaryFolder("modal-port-grade")
        defer { try? FileManager.default.removeItem(at: folder) }
        let binary = try #require(builtBinary, "build the sandbox-vcr product first")
        let cassette = folder.appendingPathComponent("grade.sqlite")
        func grade(_ modalURL: String, tokenID: String, secret: String) async throws -> CommandRunner.Output {
            try await CommandRunner.run(
                binary, ["grade", "--backend", "modal", "--no-cassette", "--json"],
                environment: [
                    "MODAL_SERVER_URL": modalURL, "MODAL_TOKEN_ID": tokenID, "MODAL_TOKEN_SECRET": secret,
                    "MODAL_CONFIG_PATH": "/nonexistent/sandbox-vcr-tests/.modal.toml",
                    "MODAL_CREATION_RATE_LIMIT": "1000", "SANDBOX_VCR_RECORD": nil, "CI": nil,
                ],
                currentDirectory: Self.root)
        }
        let fake = try await FakeModalServer.start()
        let recorder = try await ServeProcess.start([
            "--cassette", cassette.path, "--record", "all", "--modal-port", "0", "--modal-upstream", fake.url,
        ])
        let recorded = try await grade(
            try #require(recorder.modalURL), tokenID: fake.tokenID, secret: fake.tokenSecret)
        let recorderStats = try await recorder.modalStats()
        #expect(try await recorder.stop() == 0)
        _ = await fake.stop()
        #expect(recorded.status == 0, "\(recorded.stderrText.suffix(2000))")

        let replayer = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never", "--modal-port", "0"])
        let replayed = try await grade(try #require(replayer.modalURL), tokenID: "ak-anything", secret: "as-anything")
        let stats = try await replayer.modalStats()
        #expect(try await replayer.stop() == 0)
        #expect(replayed.status == 0, "\(replayed.stderrText.suffix(2000))")
        let expected = try Self.verdicts(recorded.stdout)
        #expect(expected.count >= 20)
        #expect(expected.contains { $0.contains("timeLimit") })
        #expect(try Self.verdicts(replayed.stdout) == expected)
        #expect(stats["misses"] == 0)
        #expect(stats["replayed"] ?? 0 >= expected.count)
        // Every sandbox creation has a connection of its own and every other call shares one, which no GOAWAY ended:
        // libcurl 7.88 resets each stream it has finished, and SwiftNIO would end a connection at its 200th
        // (RedundantResetFilter drops them).
        for stats in [recorderStats, stats] {
            #expect(stats["calls"] ?? 0 > 800)
            #expect(stats["connections"] ?? .max <= (stats["sandboxes"] ?? 0) + 2, "\(stats)")
        }
    }

    /// Writes a Python client script into `folder`.
    static func script(_ name: String, in folder: URL, _ text: String) throws -> String {
        let file = folder.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test func otherModalRPCsAreUnimplementedWithAMessageThatNamesThem() async throws {
        let folder = try makeTemporaryFolder("modal-port-unimplemented")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("empty.sqlite")
        let client = try Self.script(
            "list.py", in: folder,
            """
            import modal
            app = modal.App.lookup("sandbox-vcr-list", create_if_missing=True)
            try:
                print(list(modal.Sandbox.list(app_id=app.app_id)))
            except Exception as error:
                print(type(error).__name__)
                print(str(error))
            """)
        // An empty cassette, made by a recording server that answered nothing.
        let maker = try await ServeProcess.start(["--cassette", cassette.path, "--record", "missing"])
        #expect(try await maker.stop() == 0)
        let server = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never", "--modal-port", "0"])
        let output = try await Self.runClient(
            client, [], modalURL: try #require(server.modalURL), tokenID: "ak-x", secret: "as-y")
        let stats = try await server.modalStats()
        #expect(try await server.stop() == 0)
        #expect(
            output.stdoutText.contains("sandbox-vcr serve does not implement /modal.client.ModalClient/SandboxList"))
        #expect(output.stdoutText.contains("neither recorded nor replayed"))
        #expect(stats["unimplemented"] ?? 0 >= 1)
    }

    @Test func modeMissingReplaysWhatBindsAndRecordsASandboxWhoseFirstExecIsNew() async throws {
        let folder = try makeTemporaryFolder("modal-port-missing")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("modal.sqlite")
        let client = try Self.script(
            "words.py", in: folder,
            """
            import sys, modal
            app = modal.App.lookup("sandbox-vcr-missing", create_if_missing=True)
            for word in sys.argv[1:]:
                sb = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
                p = sb.exec("bash", "-lc", f"echo {word} | rev")
                print(p.stdout.read().strip(), p.wait())
                sb.terminate()
            """)
        let fake = try await FakeModalServer.start()
        func serve(_ mode: String) async throws -> ServeProcess {
            try await ServeProcess.start([
                "--cassette", cassette.path, "--record", mode, "--modal-port", "0", "--modal-upstream", fake.url,
            ])
        }
        func run(_ server: ServeProcess, _ words: [String]) async throws -> CommandRunner.Output {
            try await Self.runClient(
                client, words, modalURL: try #require(server.modalURL), tokenID: fake.tokenID,
                secret: fake.tokenSecret)
        }
        let first = try await serve("all")
        #expect(try await run(first, ["alpha"]).stdoutText == "ahpla 0\n")
        #expect(try await first.stop() == 0)

        let second = try await serve("missing")
        let mixed = try await run(second, ["alpha", "omega"])
        let stats = try await second.modalStats()
        #expect(try await second.stop() == 0)
        _ = await fake.stop()
        #expect(mixed.stdoutText == "ahpla 0\nagemo 0\n", "\(mixed.stderrText)")
        #expect(stats["replayed"] == 1)
        #expect(stats["recorded"] == 1)
        #expect(stats["misses"] == 0)

        let offline = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never", "--modal-port", "0"])
        let replayed = try await Self.runClient(
            client, ["omega", "alpha"], modalURL: try #require(offline.modalURL), tokenID: "ak-x", secret: "as-y")
        let replayStats = try await offline.modalStats()
        #expect(try await offline.stop() == 0)
        #expect(replayed.stdoutText == "agemo 0\nahpla 0\n")
        #expect(replayStats["misses"] == 0)
    }

    @Test func sigtermWhileRecordingAnswersTheExecInFlightSavesItAndExits() async throws {
        let folder = try makeTemporaryFolder("modal-port-sigterm")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("modal.sqlite")
        // The command runs four seconds; the test signals serve once serve has forwarded the client's wait (its
        // debug log says so). A wait that never reached serve would be retried by the SDK forever.
        let client = try Self.script(
            "long.py", in: folder,
            """
            import modal
            app = modal.App.lookup("sandbox-vcr-sigterm", create_if_missing=True)
            sb = modal.Sandbox.create(app=app, image=modal.Image.debian_slim(), timeout=60)
            p = sb.exec("bash", "-lc", "sleep 4; echo finished")
            print("exit", p.wait(), flush=True)
            """)
        let fake = try await FakeModalServer.start()
        let server = try await ServeProcess.start(
            [
                "--cassette", cassette.path, "--record", "all", "--modal-port", "0", "--modal-upstream", fake.url,
            ], logLevel: "debug")
        let modalURL = try #require(server.modalURL)
        let started = try CommandRunner.start(
            Self.python, [client],
            environment: [
                "MODAL_SERVER_URL": modalURL, "MODAL_TOKEN_ID": fake.tokenID,
                "MODAL_TOKEN_SECRET": fake.tokenSecret,
                "MODAL_CONFIG_PATH": "/nonexistent/sandbox-vcr-tests/.modal.toml",
            ])
        defer { if started.process.isRunning { kill(started.process.processIdentifier, SIGKILL) } }
        let output = OutputCollector(reading: started.stdout)
        let errors = OutputCollector(reading: started.stderr)
        let forwarded = await server.log.wait(for: "Modal exec wait forwarded")
        #expect(forwarded, "\(server.log.text.suffix(4000))\n\(errors.text)")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(
            await output.wait(for: "exit 0\n", timeout: .seconds(60)),
            "client: \(output.text)\n\(errors.text)\nserve: \(server.log.text.suffix(6000))")
        #expect(try await server.waitForExit() == 0)
        let clientExit = await started.exit.waitOrKill(started.process, timeout: .seconds(30))
        #expect(clientExit.status == 0 && !clientExit.killed, "\(errors.text)")
        _ = await fake.stop()
        #expect(server.log.text.contains("Modal exec recorded"))

        // Saved: the exec replays with no upstream.
        let replay = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never", "--modal-port", "0"])
        let replayed = try await Self.runClient(
            client, [], modalURL: try #require(replay.modalURL), tokenID: "ak-x", secret: "as-y")
        #expect(try await replay.stop() == 0)
        #expect(replayed.stdoutText.contains("exit 0"))
    }
}
