import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

/// One recorded exchange of Fixtures/grading-demo/exchanges.jsonl.
struct RecordedExchange: Sendable {
    /// The request body as sent (Python JSON text).
    var body: String
    var request: ExecutionRequest
    /// The recorded answer, decoded.
    var result: ExecutionResult
}

let gradingDemoExchangesFile = repositoryRoot.appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl")

/// The grading-demo exchanges, in file order.
func gradingDemoExchanges() throws -> [RecordedExchange] {
    let text = try String(contentsOf: gradingDemoExchangesFile, encoding: .utf8)
    return try text.split(separator: "\n").filter { !$0.isEmpty }.map { line in
        let exchange = try parseJSON(String(line))
        let body = (exchange["request"]?["body"] ?? .null).pythonJSONBytes
        let wireBody = try JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: Data(body))
        let response = try JSONDecoder().decode(
            SandboxFusionWire.RunCodeResponse.self, from: Data((exchange["response"] ?? .null).pythonJSONBytes))
        return RecordedExchange(
            body: String(decoding: body, as: UTF8.self), request: try SandboxFusionWire.request(from: wireBody),
            result: try SandboxFusionWire.result(from: response))
    }
}

/// Imports the grading-demo exchanges into a new cassette file in `folder`.
func importGradingDemoCassette(into folder: URL) async throws -> URL {
    let url = folder.appendingPathComponent("grading-demo.sqlite")
    let cassette = try await Cassette.open(at: url)
    let report = try await cassette.importExchanges(from: [gradingDemoExchangesFile])
    try await cassette.flush()
    await cassette.close()
    #expect(report.results == 96)
    return url
}

/// Decodes a `/run_code` answer.
func decodeRunCodeAnswer(_ response: RawHTTPResponse) throws -> ExecutionResult {
    try SandboxFusionWire.result(
        from: JSONDecoder().decode(SandboxFusionWire.RunCodeResponse.self, from: Data(response.body)))
}

/// The parts of a result a client compares (statuses, exit codes, output, message).
func comparable(_ result: ExecutionResult) -> String {
    func step(_ outcome: CommandOutcome?) -> String {
        guard let outcome else { return "-" }
        return
            "\(outcome.status)/\(outcome.exitCode.map(String.init) ?? "nil")/\(outcome.stdoutText)/\(outcome.stderrText)"
    }
    return "\(result.status) | \(result.message) | compile \(step(result.compile)) | run \(step(result.run))"
}

@Suite(
    "sandbox-vcr serve over a cassette, as a built binary", .enabled(if: builtBinary != nil, "build sandbox-vcr first"))
struct ServeCassetteEndToEndTests {
    @Test func replaysTheGradingDemoCassetteOverRawHTTP() async throws {
        let folder = try makeTemporaryFolder("serve-replay")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await importGradingDemoCassette(into: folder)
        let exchanges = try gradingDemoExchanges()

        let serve = try await ServeProcess.start(["--cassette", cassette.path, "--record", "never"])
        defer { serve.terminate() }
        for (index, exchange) in exchanges.enumerated() {
            let response = try await serve.postJSON("/run_code", exchange.body)
            #expect(response.status == 200, "exchange \(index): \(response.bodyText)")
            let answer = try decodeRunCodeAnswer(response)
            #expect(comparable(answer) == comparable(exchange.result), "exchange \(index)")
            #expect(answer.run?.wallTime == exchange.result.run?.wallTime, "exchange \(index)")
        }
        let stats = try await serve.stats()
        #expect(stats["hits"] == exchanges.count)
        #expect(stats["misses"] == 0)
        #expect(stats["recorded"] == 0)
        #expect(try await serve.stop() == 0)
        // The request log line names the outcome and the key prefix.
        #expect(serve.log.text.contains("outcome=hit"), "\(serve.log.text.prefix(2000))")
        #expect(serve.log.text.contains("key="))
        // One line per request, in swift-log's stream format: local time, level, label, sorted metadata, source.
        let requestLines = serve.log.text.split(separator: "\n").filter { $0.contains(" path=/run_code ") }
        #expect(requestLines.count == exchanges.count)
        let format =
            #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info sandbox-vcr\.serve: duration_ms=[0-9.]+ key=[0-9a-f]+ method=POST outcome=hit path=/run_code request=.+ status=200 \[SandboxVCRServer\] request$/#
        for line in requestLines { #expect(line.wholeMatch(of: format) != nil, "\(line)") }
    }

    @Test func replaysTheGradingDemoCassetteThroughTheProjectsClient() async throws {
        let folder = try makeTemporaryFolder("serve-client")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await importGradingDemoCassette(into: folder)
        let exchanges = try gradingDemoExchanges()

        let serve = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never"], logLevel: "warning")
        defer { serve.terminate() }
        let client = SandboxFusionExecutor(
            configuration: try SandboxFusionConfiguration.fromEnvironment(["SANDBOX_URL": "\(serve.baseURL)/run_code"]))
        for (index, exchange) in exchanges.enumerated() {
            let answer = try await client.execute(exchange.request)
            #expect(comparable(answer) == comparable(exchange.result), "exchange \(index)")
        }
        #expect(try await serve.stats()["hits"] == exchanges.count)
        #expect(try await serve.stop() == 0)
    }

    @Test func aMissInNeverModeIsASandboxErrorNamingTheCassetteAndTheMode() async throws {
        let folder = try makeTemporaryFolder("serve-miss")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await importGradingDemoCassette(into: folder)

        let serve = try await ServeProcess.start(["--cassette", cassette.path, "--record", "never"])
        defer { serve.terminate() }
        // The first grading-demo program with an input it was never run on.
        let response = try await serve.postJSON(
            "/run_code",
            #"{"code": "a, b = map(int, input().split())\nprint(a + b)\n", "language": "python", "stdin": "5 6\n", "run_timeout": 2}"#
        )
        #expect(response.status == 200)
        let answer = try parseJSON(response.body)
        #expect(answer["status"] == "SandboxError")
        let message = try #require(answer["message"]?.stringValue)
        #expect(message.contains(cassette.path), "\(message)")
        #expect(message.contains("never"), "\(message)")
        let stats = try await serve.stats()
        #expect(stats["misses"] == 1)
        #expect(stats["hits"] == 0)
        #expect(try await serve.stop() == 0)
        #expect(serve.log.text.contains("replay miss"))
        #expect(serve.log.text.contains("outcome=miss"))
    }

    @Test func recordsThroughAFakeUpstreamThenReplaysWithTheUpstreamStopped() async throws {
        let folder = try makeTemporaryFolder("serve-record")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = folder.appendingPathComponent("rules.json")
        try Data(
            #"""
            {"rules": [
              {"match": {"stdin": "1\n"}, "result": {"kind": "success", "stdout": "one\n"}},
              {"match": {"codeContains": "syntax"}, "result": {"kind": "compileError", "stderr": "bad syntax\n"}},
              {"match": {"stdin": "loop\n"}, "result": {"kind": "timeLimit", "stdout": "partial"}}
            ],
             "default": {"kind": "runtimeError", "exitCode": 3, "stderr": "no rule\n"}}
            """#.utf8
        ).write(to: rules)
        let cassette = folder.appendingPathComponent("recorded.sqlite")
        let bodies = [
            #"{"code": "print(input())", "language": "python", "stdin": "1\n"}"#,
            #"{"code": "int main( { syntax", "language": "cpp"}"#,
            #"{"code": "while True: pass", "language": "python", "stdin": "loop\n"}"#,
            #"{"code": "raise SystemExit(3)", "language": "python"}"#,
            #"{"code": "print(input())", "language": "python", "stdin": "1\n"}"#,
        ]

        let upstream = try await ServeProcess.start(["--fake", rules.path], logLevel: "warning")
        defer { upstream.terminate() }
        let recorder = try await ServeProcess.start([
            "--cassette", cassette.path, "--record", "missing", "--upstream", upstream.baseURL,
        ])
        defer { recorder.terminate() }
        var recorded: [String] = []
        for body in bodies {
            let response = try await recorder.postJSON("/run_code", body)
            #expect(response.status == 200, "\(response.bodyText)")
            recorded.append(comparable(try decodeRunCodeAnswer(response)))
        }
        #expect(recorded[0].contains("one\n"))
        #expect(recorded[1].contains("bad syntax"))
        #expect(recorded[3].contains("no rule"))
        let recordingStats = try await recorder.stats()
        #expect(recordingStats["recorded"] == bodies.count)
        #expect(recordingStats["hits"] == 0)
        #expect(try await upstream.stats()["fake"] == bodies.count)
        #expect(try await recorder.stop() == 0)
        #expect(recorder.log.text.contains("outcome=recorded"))
        #expect(try await upstream.stop() == 0)

        let replayer = try await ServeProcess.start(["--cassette", cassette.path, "--record", "never"])
        defer { replayer.terminate() }
        for (index, body) in bodies.enumerated() {
            let response = try await replayer.postJSON("/run_code", body)
            #expect(response.status == 200)
            #expect(comparable(try decodeRunCodeAnswer(response)) == recorded[index], "request \(index)")
        }
        let replayStats = try await replayer.stats()
        #expect(replayStats["hits"] == bodies.count)
        #expect(replayStats["misses"] == 0)
        #expect(replayStats["recorded"] == 0)
        #expect(try await replayer.stop() == 0)
    }

    @Test func gracefulShutdownAnswersAndRecordsEveryRequestInFlight() async throws {
        let folder = try makeTemporaryFolder("serve-shutdown")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("inflight.sqlite")
        let gate = LoopbackGate()
        // An upstream that echoes stdin, holding every answer until the gate opens.
        let upstream = try LoopbackHTTPServer { request in
            let object = (try? JSONSerialization.jsonObject(with: request.body)) as? [String: Any]
            let stdin = object?["stdin"] as? String ?? ""
            let answer: [String: Any] = [
                "status": "Success", "message": "", "compile_result": NSNull(),
                "run_result": [
                    "status": "Finished", "execution_time": 0.01, "return_code": 0, "stdout": stdin, "stderr": "",
                ],
                "executor_pod_name": NSNull(), "files": [String: String](),
            ]
            let data = (try? JSONSerialization.data(withJSONObject: answer)) ?? Data()
            return .respondWhenOpen(gate, .json(data))
        }
        defer { upstream.shutdown() }

        // A grace far longer than the test needs: a loaded machine must not turn the answers into 503s (the grace's
        // end is ServeShutdownTests' subject).
        let serve = try await ServeProcess.start(
            [
                "--cassette", cassette.path, "--record", "missing", "--upstream", upstream.baseURL, "--shutdown-grace",
                "120",
            ], logLevel: "debug")
        defer { serve.terminate() }
        let count = 6
        let answers = Task {
            try await withThrowingTaskGroup(of: (Int, RawHTTPResponse).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let body = #"{"code": "print(input())", "language": "python", "stdin": "request \#(index)"}"#
                        return (index, try await serve.postJSON("/run_code", body))
                    }
                }
                var answers: [Int: RawHTTPResponse] = [:]
                for try await (index, response) in group { answers[index] = response }
                return answers
            }
        }
        await upstream.wait { $0.inFlight == count }
        kill(serve.process.processIdentifier, SIGTERM)
        #expect(await serve.log.wait(for: "Signal caught"), "\(serve.log.text.suffix(2000))")
        gate.open()

        let responses = try await answers.value
        #expect(responses.count == count)
        for index in 0..<count {
            let response = try #require(responses[index])
            #expect(response.status == 200, "\(response.bodyText)")
            #expect(try decodeRunCodeAnswer(response).stdoutText == "request \(index)")
        }
        #expect(try await serve.waitForExit() == 0)
        #expect(serve.process.terminationReason == .exit)

        let reopened = try await Cassette.open(at: cassette, readOnly: true, create: false)
        #expect(try await reopened.count() == count)
        await reopened.close()
    }

    @Test func proxiesToAnUpstreamWithoutACassette() async throws {
        let folder = try makeTemporaryFolder("serve-proxy")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = folder.appendingPathComponent("rules.json")
        try Data(#"{"rules": [], "default": {"kind": "success", "stdout": "from the fake\n"}}"#.utf8).write(to: rules)
        let upstream = try await ServeProcess.start(["--fake", rules.path], logLevel: "warning")
        defer { upstream.terminate() }
        let proxy = try await ServeProcess.start(["--upstream", "\(upstream.baseURL)/run_code"])
        defer { proxy.terminate() }
        for _ in 0..<2 {
            let response = try await proxy.postJSON("/run_code", #"{"code": "print(1)", "language": "python"}"#)
            #expect(response.status == 200)
            #expect(try decodeRunCodeAnswer(response).stdoutText == "from the fake\n")
        }
        let stats = try await proxy.stats()
        #expect(stats["live"] == 2)
        #expect(stats["recorded"] == 0)
        #expect(try await proxy.stop() == 0)
        #expect(proxy.log.text.contains("outcome=live"))
        #expect(proxy.log.text.contains("upstream_ms="))
        #expect(try await upstream.stop() == 0)
    }

    @Test func missingModeWithoutALiveExecutorReplaysHitsAndAnswersMisses() async throws {
        let folder = try makeTemporaryFolder("serve-missing-nolive")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await importGradingDemoCassette(into: folder)
        let exchange = try #require(try gradingDemoExchanges().first)

        let serve = try await ServeProcess.start(["--cassette", cassette.path, "--record", "missing"])
        defer { serve.terminate() }
        let hit = try await serve.postJSON("/run_code", exchange.body)
        #expect(comparable(try decodeRunCodeAnswer(hit)) == comparable(exchange.result))
        let miss = try await serve.postJSON("/run_code", #"{"code": "print(2)", "language": "python"}"#)
        #expect(miss.status == 200)
        let answer = try parseJSON(miss.body)
        #expect(answer["status"] == "SandboxError")
        #expect(answer["message"]?.stringValue?.contains("no live executor") == true, "\(miss.bodyText)")
        let stats = try await serve.stats()
        #expect(stats["hits"] == 1)
        #expect(stats["misses"] == 1)
        #expect(try await serve.stop() == 0)
        // Nothing was recorded.
        let reopened = try await Cassette.open(at: cassette, readOnly: true, create: false)
        #expect(try await reopened.count() == 96)
        await reopened.close()
    }

    @Test func impossibleCombinationsAreRefusedWithAReason() async throws {
        let folder = try makeTemporaryFolder("serve-options")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("none.sqlite").path

        let noSource = try await runSandboxVCR(["serve", "--port", "0"])
        #expect(noSource.status != 0)
        #expect(noSource.errors.contains("--cassette"), "\(noSource.errors)")

        let allWithoutLive = try await runSandboxVCR([
            "serve", "--cassette", cassette, "--record", "all", "--port", "0",
        ])
        #expect(allWithoutLive.status != 0)
        #expect(allWithoutLive.errors.contains("--upstream"), "\(allWithoutLive.errors)")

        let both = try await runSandboxVCR([
            "serve", "--upstream", "http://127.0.0.1:1", "--fake", "rules.json", "--port", "0",
        ])
        #expect(both.status != 0)
        #expect(both.errors.contains("--fake"), "\(both.errors)")

        let recordWithoutCassette = try await runSandboxVCR([
            "serve", "--upstream", "http://127.0.0.1:1", "--record", "missing", "--port", "0",
        ])
        #expect(recordWithoutCassette.status != 0)
        #expect(recordWithoutCassette.errors.contains("--cassette"), "\(recordWithoutCassette.errors)")

        let missingCassette = try await runSandboxVCR([
            "serve", "--cassette", cassette, "--record", "never", "--port", "0",
        ])
        #expect(missingCassette.status != 0)
        #expect(missingCassette.errors.contains(cassette), "\(missingCassette.errors)")
        #expect(!FileManager.default.fileExists(atPath: cassette))
    }
}
