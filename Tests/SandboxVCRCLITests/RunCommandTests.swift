import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

/// Runs the built `sandbox-vcr` (root command and `run`) end to end against a loopback SandboxFusion server that
/// answers with the real samples, a fake backend, and a cassette.
@Suite struct RunCommandTests {
    let folder: URL
    let samples: SandboxFusionSamples

    init() throws {
        folder = try SandboxVCRTool.makeFolder("run-cli")
        samples = try SandboxFusionSamples.fromRepository()
    }

    /// A loopback server answering like the real SandboxFusion server did.
    func startServer() throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer(handler: samples.handler())
    }

    /// The code of a `/run_code` sample.
    func code(of name: String) throws -> String {
        let request = try #require(samples[name]?.executionRequest, "sample \(name)")
        return try #require(request.code)
    }

    // MARK: Root command

    @Test func helpAndVersion() async throws {
        let help = try await SandboxVCRTool.run(["--help"])
        #expect(help.status == 0)
        for word in ["run", "grade", "cassette", "USAGE"] { #expect(help.stdoutText.contains(word)) }

        let version = try await SandboxVCRTool.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == SandboxVCRVersion.current)

        let runHelp = try await SandboxVCRTool.run(["run", "--help"])
        #expect(runHelp.status == 0)
        #expect(runHelp.stdoutText.contains("--stdin"))
    }

    // MARK: SandboxFusion over loopback

    @Test func inlineCodeThroughURLOptionAndEnvironment() async throws {
        let server = try startServer()
        defer { server.shutdown() }
        let hello = try code(of: "01")

        let byOption = try await SandboxVCRTool.run(["run", "-c", hello, "--url", server.baseURL])
        #expect(byOption.status == 0, "\(byOption.stderrText)")
        #expect(byOption.stdoutText.contains("status: Success"))
        #expect(byOption.stdoutText.contains("hello world"))

        let byEnvironment = try await SandboxVCRTool.run(
            ["run", "--language", "python", "-c", hello], environment: ["SANDBOX_URL": server.baseURL + "/run_code"])
        #expect(byEnvironment.status == 0, "\(byEnvironment.stderrText)")
        #expect(byEnvironment.stdoutText.contains("hello world"))
        #expect(server.statistics.requests == 2)
    }

    @Test func sourceFileStdinAndSandboxFiles() async throws {
        let server = try startServer()
        defer { server.shutdown() }

        let script = try SandboxVCRTool.write(try code(of: "01"), to: "hello.py", in: folder)
        let fromFile = try await SandboxVCRTool.run(["run", script, "--url", server.baseURL])
        #expect(fromFile.status == 0, "\(fromFile.stderrText)")
        #expect(fromFile.stdoutText.contains("hello world"))

        let shell = try SandboxVCRTool.write(try code(of: "08"), to: "hello.sh", in: folder)
        let inferred = try await SandboxVCRTool.run(["run", shell, "--url", server.baseURL])
        #expect(inferred.status == 0, "the .sh extension means bash: \(inferred.stderrText)")
        #expect(inferred.stdoutText.contains("hello from bash"))
        #expect(inferred.stdoutText.contains("--- run stderr ---\nto-stderr"))

        let stdinCode = try code(of: "03")
        let inline = try await SandboxVCRTool.run(
            ["run", "-c", stdinCode, "--stdin", "1 2 3\n4 5\n", "--url", server.baseURL])
        #expect(inline.status == 0, "\(inline.stderrText)")
        #expect(inline.stdoutText.contains("15"))
        let input = try SandboxVCRTool.write("1 2 3\n4 5\n", to: "input.txt", in: folder)
        let fromPath = try await SandboxVCRTool.run(
            ["run", "-c", stdinCode, "--stdin", "@" + input, "--url", server.baseURL])
        #expect(fromPath.status == 0, "\(fromPath.stderrText)")
        #expect(fromPath.stdoutText == inline.stdoutText)

        let data = try SandboxVCRTool.write("line one\nline two\n", to: "input-data.txt", in: folder)
        let withFile = try await SandboxVCRTool.run(
            ["run", "-c", try code(of: "02"), "--file", "data/input.txt=" + data, "--url", server.baseURL])
        #expect(withFile.status == 0, "\(withFile.stderrText)")
        #expect(withFile.stdoutText.contains("LINE ONE\nLINE TWO"))
    }

    @Test func timeoutAndJSON() async throws {
        let server = try startServer()
        defer { server.shutdown() }

        let timedOut = try await SandboxVCRTool.run(
            ["run", "-c", try code(of: "06"), "--timeout", "1", "--json", "--url", server.baseURL])
        #expect(timedOut.status == 1, "\(timedOut.stderrText)")
        let json = try SandboxVCRTool.object(timedOut.stdoutText)
        #expect(json["status"] as? String == "Failed")
        let run = try #require(json["run"] as? [String: Any])
        #expect(run["status"] as? String == "TimeLimitExceeded")
        #expect(run["stdout"] as? String == "start\n")

        let hello = try await SandboxVCRTool.run(["run", "-c", try code(of: "01"), "--json", "--url", server.baseURL])
        #expect(hello.status == 0)
        let result = try SandboxVCRTool.object(hello.stdoutText)
        #expect(result["status"] as? String == "Success")
        #expect(result["backend"] as? String == "sandboxfusion")
        #expect((result["run"] as? [String: Any])?["stdout"] as? String == "hello world\n")
        #expect((result["run"] as? [String: Any])?["exitCode"] as? Int == 0)
    }

    @Test func exitStatuses() async throws {
        let server = try startServer()
        defer { server.shutdown() }

        let failed = try await SandboxVCRTool.run(["run", "-c", try code(of: "05"), "--url", server.baseURL])
        #expect(failed.status == 1)
        #expect(failed.stdoutText.contains("exit code 3"))
        #expect(failed.stdoutText.contains("out"))
        #expect(failed.stdoutText.contains("err"))

        let sandboxError = try await SandboxVCRTool.run(
            ["run", "-c", try code(of: "41"), "--language", "sql", "--url", server.baseURL])
        #expect(sandboxError.status == 2)
        #expect(sandboxError.stdoutText.contains("SandboxError"))
        #expect(sandboxError.stdoutText.contains("exception on running code"))

        let unknownLanguage = try await SandboxVCRTool.run(
            ["run", "-c", "print(1)", "--language", "cobol", "--url", server.baseURL])
        #expect(unknownLanguage.status == 3)
        #expect(unknownLanguage.stderrText.contains("422"))
        #expect(unknownLanguage.stderrText.contains("Input should be 'python'"))

        let unknownAsJSON = try await SandboxVCRTool.run(
            ["run", "-c", "print(1)", "--language", "cobol", "--json", "--url", server.baseURL])
        #expect(unknownAsJSON.status == 3)
        let error = try SandboxVCRTool.object(unknownAsJSON.stdoutText)
        #expect(error["code"] as? String == "httpStatus")
        #expect(error["httpStatus"] as? Int == 422)
    }

    @Test func connectionRefused() async throws {
        let server = try startServer()
        let url = server.baseURL
        server.shutdown()

        let refused = try await SandboxVCRTool.run(["run", "-c", "print(1)", "--url", url])
        #expect(refused.status == 3)
        #expect(refused.stderrText.contains("connectionRefused"), "\(refused.stderrText)")
        #expect(refused.stderrText.contains("127.0.0.1"), "the message names the server: \(refused.stderrText)")
        #expect(refused.stdoutText.isEmpty)
    }

    /// Issue 12: a huge `--timeout` is clamped to a year on its way to the server, never a trap.
    @Test(arguments: ["1e16", "1e300", "inf"])
    func hugeTimeoutIsClamped(timeout: String) async throws {
        let dead = try startServer()
        let deadURL = dead.baseURL
        dead.shutdown()
        let refused = try await SandboxVCRTool.run(["run", "--timeout", timeout, "-c", "print(1)", "--url", deadURL])
        #expect(refused.status == 3, "\(refused.stderrText)")
        #expect(refused.stderrText.contains("connectionRefused"), "\(refused.stderrText)")

        let received = Mutex<[Data]>([])
        let server = try LoopbackHTTPServer { request in
            received.withLock { $0.append(request.body) }
            return .respond(.sandboxFusionSuccess(stdout: "1\n"))
        }
        defer { server.shutdown() }
        let answered = try await SandboxVCRTool.run(
            ["run", "--timeout", timeout, "-c", "print(1)", "--url", server.baseURL])
        #expect(answered.status == 0, "\(answered.stderrText)")
        #expect(answered.stdoutText.contains("status: Success"), "\(answered.stdoutText)")
        let body = try #require(received.withLock { $0.first })
        let sent = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(sent["run_timeout"] as? Double == 31_536_000, "\(String(decoding: body, as: UTF8.self))")
    }

    @Test func nanTimeoutIsAUsageError() async throws {
        let nan = try await SandboxVCRTool.run(["run", "--timeout", "nan", "-c", "print(1)"])
        #expect(nan.status == 64)
        #expect(nan.stderrText.contains("--timeout must be positive"), "\(nan.stderrText)")
    }

    @Test func usageErrors() async throws {
        let neither = try await SandboxVCRTool.run(["run"])
        #expect(neither.status == 64)
        #expect(neither.stderrText.contains("-c CODE"))

        let missingFile = try await SandboxVCRTool.run(["run", folder.appendingPathComponent("none.py").path])
        #expect(missingFile.status == 64)
        #expect(missingFile.stderrText.hasPrefix("sandbox-vcr run: cannot read the source file"))
        #expect(missingFile.stderrText.contains("none.py"))
        #expect(!missingFile.stderrText.contains("Usage:"), "no misleading root usage line")

        let missingData = try await SandboxVCRTool.run(
            ["run", "-c", "1", "--file", "a.txt=" + folder.appendingPathComponent("absent.txt").path])
        #expect(missingData.status == 64)
        #expect(missingData.stderrText.contains("--file a.txt"))

        let badFile = try await SandboxVCRTool.run(["run", "-c", "1", "--file", "no-equals-sign"])
        #expect(badFile.status == 64)
        #expect(badFile.stderrText.contains("NAME=PATH"))

        let badMode = try await SandboxVCRTool.run(["run", "-c", "1", "--record", "sometimes"])
        #expect(badMode.status == 64)
        #expect(badMode.stderrText.contains("'never', 'missing', 'all' or 'live'"), "\(badMode.stderrText)")

        let recordWithoutCassette = try await SandboxVCRTool.run(["run", "-c", "1", "--record", "never"])
        #expect(recordWithoutCassette.status == 64)
        #expect(recordWithoutCassette.stderrText.contains("--record needs --cassette"))

        let badBackend = try await SandboxVCRTool.run(["run", "-c", "1", "--backend", "nowhere"])
        #expect(badBackend.status == 64)
        #expect(badBackend.stderrText.contains("'sandboxfusion', 'modal' or 'fake'"), "\(badBackend.stderrText)")
    }

    // MARK: Fake backend

    @Test func fakeBackendFromRulesFile() async throws {
        let rules = try SandboxVCRTool.write(
            """
            {"rules": [
              {"match": {"codeContains": "hello"}, "result": {"kind": "success", "stdout": "hello from the fake\\n"}},
              {"match": {"language": "bash"}, "result": {"kind": "runtimeError", "exitCode": 7, "stderr": "boom\\n"}}
            ]}
            """, to: "rules.json", in: folder)

        let byOption = try await SandboxVCRTool.run(["run", "--backend", "fake", "--rules", rules, "-c", "hello"])
        #expect(byOption.status == 0, "\(byOption.stderrText)")
        #expect(byOption.stdoutText.contains("hello from the fake"))
        #expect(byOption.stdoutText.contains("backend: fake"))

        let byEnvironment = try await SandboxVCRTool.run(
            ["run", "--rules", rules, "--language", "bash", "-c", "exit 7"], environment: ["SANDBOX_BACKEND": "fake"])
        #expect(byEnvironment.status == 1, "\(byEnvironment.stderrText)")
        #expect(byEnvironment.stdoutText.contains("exit code 7"))
        #expect(byEnvironment.stdoutText.contains("boom"))

        let unmatched = try await SandboxVCRTool.run(["run", "--backend", "fake", "--rules", rules, "-c", "print(2)"])
        #expect(unmatched.status == 3)
        #expect(unmatched.stderrText.contains("print(2)") || unmatched.stderrText.contains("python"))

        let cassette = folder.appendingPathComponent("fake.sqlite").path
        let unmatchedRecording = try await SandboxVCRTool.run(
            [
                "run", "--backend", "fake", "--rules", rules, "-c", "print(2)", "--cassette", cassette, "--record",
                "missing",
            ])
        #expect(unmatchedRecording.status == 3)
        let stats = try await SandboxVCRTool.run(["cassette", "stats", "--json", cassette])
        #expect(
            try SandboxVCRTool.object(stats.stdoutText)["interactions"] as? Int == 0,
            "a missing fake rule is not recorded")

        let noRules = try await SandboxVCRTool.run(["run", "-c", "1"], environment: ["SANDBOX_BACKEND": "fake"])
        #expect(noRules.status == 64)
        #expect(noRules.stderrText.contains("--rules"))

        let badRules = try SandboxVCRTool.write("{\"rulez\": []}", to: "bad-rules.json", in: folder)
        let invalid = try await SandboxVCRTool.run(["run", "--backend", "fake", "--rules", badRules, "-c", "1"])
        #expect(invalid.status == 3, "a bad rules file leaves no result")
        #expect(invalid.stderrText.hasPrefix("sandbox-vcr run: "))
        #expect(invalid.stderrText.contains("rulez"))
        #expect(invalid.stderrText.contains("bad-rules.json"), "\(invalid.stderrText)")
    }

    // MARK: Cassette

    @Test func recordThenReplayWithTheServerStopped() async throws {
        let cassette = folder.appendingPathComponent("run.sqlite").path
        let server = try startServer()
        let hello = try code(of: "01")

        let recorded = try await SandboxVCRTool.run(
            ["run", "-c", hello, "--cassette", cassette, "--record", "missing", "--url", server.baseURL])
        #expect(recorded.status == 0, "\(recorded.stderrText)")
        #expect(recorded.stdoutText.contains("hello world"))
        #expect(server.statistics.requests == 1)
        server.shutdown()

        let replayed = try await SandboxVCRTool.run(["run", "-c", hello, "--cassette", cassette, "--record", "never"])
        #expect(replayed.status == 0, "\(replayed.stderrText)")
        #expect(replayed.stdoutText == recorded.stdoutText)

        let replayedWithDeadURL = try await SandboxVCRTool.run(
            ["run", "-c", hello, "--cassette", cassette, "--record", "missing", "--url", server.baseURL])
        #expect(replayedWithDeadURL.status == 0, "a hit in missing mode never calls the server")
        #expect(replayedWithDeadURL.stdoutText == recorded.stdoutText)

        let miss = try await SandboxVCRTool.run(
            ["run", "-c", "print(\"hello there\")", "--cassette", cassette, "--record", "never"])
        #expect(miss.status == 3)
        #expect(miss.stdoutText.isEmpty)
        #expect(miss.stderrText.contains("No recording matches this request in cassette"))
        #expect(miss.stderrText.contains("record mode `never`"))
        #expect(miss.stderrText.contains("Nearest recorded request"))
        #expect(miss.stderrText.contains("hello world"), "the code diff shows the recorded code")
        #expect(miss.stderrText.contains("--record missing"))

        let missAsJSON = try await SandboxVCRTool.run(
            ["run", "-c", "print(\"hello there\")", "--cassette", cassette, "--record", "never", "--json"])
        #expect(missAsJSON.status == 3)
        let missError = try SandboxVCRTool.object(missAsJSON.stdoutText)
        #expect(missError["code"] as? String == "miss")
        #expect((missError["error"] as? String)?.contains("Nearest recorded request") == true)

        let missingCassette = try await SandboxVCRTool.run(
            ["run", "-c", hello, "--cassette", folder.appendingPathComponent("none.sqlite").path, "--record", "never"])
        #expect(missingCassette.status == 3)
        #expect(missingCassette.stderrText.contains("none.sqlite"))
        #expect(!missingCassette.stderrText.contains("Usage:"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("none.sqlite").path))
    }

    @Test func connectionFailuresAreNotRecordedButRequestErrorsAre() async throws {
        let cassette = folder.appendingPathComponent("failures.sqlite").path
        let stopped = try startServer()
        let deadURL = stopped.baseURL
        stopped.shutdown()

        let refused = try await SandboxVCRTool.run(
            ["run", "-c", try code(of: "01"), "--cassette", cassette, "--record", "missing", "--url", deadURL])
        #expect(refused.status == 3)
        #expect(refused.stderrText.contains("connectionRefused"))
        let stats = try await SandboxVCRTool.run(["cassette", "stats", "--json", cassette])
        #expect(try SandboxVCRTool.object(stats.stdoutText)["interactions"] as? Int == 0)

        let server = try startServer()
        defer { server.shutdown() }
        let recorded = try await SandboxVCRTool.run(
            ["run", "-c", try code(of: "01"), "--cassette", cassette, "--record", "missing", "--url", server.baseURL])
        #expect(recorded.status == 0, "the refusal was not replayed: \(recorded.stderrText)")
        #expect(recorded.stdoutText.contains("hello world"))

        let rejected = try await SandboxVCRTool.run(
            [
                "run", "-c", "print(1)", "--language", "cobol", "--cassette", cassette, "--record", "missing", "--url",
                server.baseURL,
            ])
        #expect(rejected.status == 3)
        #expect(server.statistics.requests == 2)
        let replayed = try await SandboxVCRTool.run(
            ["run", "-c", "print(1)", "--language", "cobol", "--cassette", cassette, "--record", "never"])
        #expect(replayed.status == 3)
        #expect(replayed.stderrText == rejected.stderrText, "a 422 is about the request: it replays")
        #expect(replayed.stderrText.contains("Input should be 'python'"))
    }
}
