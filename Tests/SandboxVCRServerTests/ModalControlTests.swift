import Foundation
import SandboxVCRTestSupport
import Testing

/// `serve --control --modal-port`: the Modal port follows the control API's cassette, so each test records and
/// replays Modal sandboxes in a cassette of its own while the SDK keeps one server URL for the process.
@Suite(.serialized)
struct ModalControlTests {
    static let client = "Tools/modal_per_test_client.py"

    struct Run {
        var output: CommandRunner.Output
        var steps: [String: [String: Any]]
        var reports: [String: [String: Any]]
    }

    /// Runs the per-test client against a `serve --control --modal-port` started with `arguments`.
    static func run(mode: String, cassettes: [URL], arguments: [String] = [], variant: Int = 0) async throws -> Run {
        let serve = try await ServeProcess.start(["--control", "--port", "0", "--modal-port", "0"] + arguments)
        let output: CommandRunner.Output
        do {
            output = try await ModalPortTests.runClient(
                client,
                ["--control", "http://127.0.0.1:\(serve.port)", "--mode", mode, "--variant", "\(variant)"]
                    + cassettes.map(\.path),
                modalURL: try #require(serve.modalURL), tokenID: ModalPortTests.plantedTokenID,
                secret: ModalPortTests.plantedSecret)
        } catch {
            serve.terminate()
            throw error
        }
        #expect(try await serve.stop() == 0, "\(serve.log.text)")
        var steps: [String: [String: Any]] = [:]
        var reports: [String: [String: Any]] = [:]
        for line in ModalPortTests.lines(output) {
            if let step = line["step"] as? String { steps[step] = line }
            if let test = line["report"] as? String { reports[test] = line["modal"] as? [String: Any] ?? [:] }
        }
        return Run(output: output, steps: steps, reports: reports)
    }

    @Test func eachTestRecordsAndReplaysItsOwnCassette() async throws {
        let folder = try makeTemporaryFolder("modal-control")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassettes = [
            folder.appendingPathComponent("tests/test_a.sqlite"), folder.appendingPathComponent("tests/test_b.sqlite"),
        ]
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("tests"), withIntermediateDirectories: true)
        var options = FakeModalServer.Options()
        options.tokenID = ModalPortTests.plantedTokenID
        options.tokenSecret = ModalPortTests.plantedSecret
        let fake = try await FakeModalServer.start(options)
        let recording: Run
        do {
            recording = try await Self.run(
                mode: "all", cassettes: cassettes, arguments: ["--modal-upstream", fake.url])
        } catch {
            _ = await fake.stop()
            throw error
        }
        _ = await fake.stop()
        #expect(recording.output.status == 0, "\(recording.output.stderrText)")
        #expect(recording.steps["a.echo"]?["stdout"] as? String == "alpha\n")
        #expect(recording.steps["b.math"]?["stdout"] as? String == "42\n")
        // Each test's execs went into its own cassette, the warm sandbox's into the test that first used it.
        #expect(recording.reports["test_a"]?["recorded"] as? Int == 2)
        #expect(recording.reports["test_b"]?["recorded"] as? Int == 2)
        for cassette in cassettes {
            #expect(FileManager.default.fileExists(atPath: cassette.path))
            let bytes = ModalPortTests.cassetteBytes(cassette)
            #expect(bytes.range(of: Data(ModalPortTests.plantedSecret.utf8)) == nil)
            #expect(bytes.range(of: Data(ModalPortTests.plantedTokenID.utf8)) == nil)
        }
        #expect(ModalPortTests.cassetteBytes(cassettes[0]).range(of: Data("alpha".utf8)) != nil)
        #expect(ModalPortTests.cassetteBytes(cassettes[0]).range(of: Data("6 * 7".utf8)) == nil)
        #expect(ModalPortTests.cassetteBytes(cassettes[1]).range(of: Data("6 * 7".utf8)) != nil)

        // Replayed with no upstream and other credentials: the same answers, each from its test's cassette.
        let before = cassettes.map { try? Data(contentsOf: $0) }
        let replay = try await Self.run(mode: "never", cassettes: cassettes)
        #expect(replay.output.status == 0, "\(replay.output.stderrText)")
        let recordedSteps = ModalPortTests.lines(recording.output).filter { $0["step"] != nil }
        let replayedSteps = ModalPortTests.lines(replay.output).filter { $0["step"] != nil }
        #expect(replayedSteps.count == 4)
        #expect(
            replayedSteps.map { NSDictionary(dictionary: $0) } == recordedSteps.map { NSDictionary(dictionary: $0) })
        for test in ["test_a", "test_b"] {
            #expect(replay.reports[test]?["replayed"] as? Int == 2)
            #expect(replay.reports[test]?["misses"] as? Int == 0)
            #expect(replay.reports[test]?["forwarded"] as? Int == 0)
        }
        // A replay leaves the committed cassettes as they were.
        #expect(cassettes.map { try? Data(contentsOf: $0) } == before)
        for cassette in cassettes {
            #expect(!FileManager.default.fileExists(atPath: cassette.path + "-wal"))
        }

        // A changed command of test B misses there, with the diagnostics in test B's report only.
        let changed = try await Self.run(mode: "never", cassettes: cassettes, variant: 7)
        #expect(changed.reports["test_a"]?["misses"] as? Int == 0)
        let report = try #require(changed.reports["test_b"])
        #expect(report["misses"] as? Int == 1)
        let diagnostics = try #require(report["miss_diagnostics"] as? [String])
        #expect(diagnostics.first?.contains("no recording matches step 1") == true)
        #expect(diagnostics.first?.contains(cassettes[1].path) == true)
        #expect(diagnostics.first?.contains("echo beta-7") == true)
        let missed = try #require(changed.steps["b.echo"]?["error"] as? [String: Any])
        #expect((missed["message"] as? String)?.contains("no recording matches") == true)
    }

    @Test func aTestWithoutACassetteMissesAndSaysWhy() async throws {
        let folder = try makeTemporaryFolder("modal-control-none")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassettes = [folder.appendingPathComponent("a.sqlite"), folder.appendingPathComponent("b.sqlite")]
        let run = try await Self.run(mode: "never", cassettes: cassettes)
        #expect(run.output.status == 0, "\(run.output.stderrText)")
        // Each exec of test A misses (its sandbox stays unbound).
        let report = try #require(run.reports["test_a"])
        #expect(report["misses"] as? Int == 2)
        #expect(report["replayed"] as? Int == 0)
        let diagnostics = try #require(report["miss_diagnostics"] as? [String])
        #expect(diagnostics.first?.contains("no cassette at \(cassettes[0].path)") == true)
        #expect(diagnostics.first?.contains("--sandbox-record-mode=missing") == true)
        // Nothing created a cassette.
        #expect(!FileManager.default.fileExists(atPath: cassettes[0].path))
        #expect(!FileManager.default.fileExists(atPath: cassettes[1].path))
    }

    @Test func recordingWithoutAnUpstreamIsRefused() async throws {
        let folder = try makeTemporaryFolder("modal-control-refused")
        defer { try? FileManager.default.removeItem(at: folder) }
        let serve = try await ServeProcess.start(["--control", "--port", "0", "--modal-port", "0"])
        defer { serve.terminate() }
        let answer = try await RawHTTP.exchange(
            port: serve.port,
            request: RawHTTP.postJSON(
                path: "/sandbox-vcr/cassette", body: #"{"path": "\#(folder.path)/x.sqlite", "mode": "all"}"#))
        #expect(answer.status == 409)
        #expect(answer.bodyText.contains("noLiveBackend"))
    }
}
