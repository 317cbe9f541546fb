import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@Suite("SandboxFusion: tinker-style run, run_jupyter and ping over loopback", .timeLimit(.minutes(1)))
struct SandboxFusionRunTests {
    @Test func runReturnsSuccessAndTheResponse() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let (success, response) = await SandboxFusionTestFixtures.executor(server).run(
            code: "print(\"hello world\")", timeout: .seconds(10.9))
        #expect(success)
        #expect(response.status == "Success")
        #expect(response.stdout == "hello world\n")
        #expect(response.error == nil)
    }

    @Test func runSendsTheTinkerBody() async throws {
        let captured = try LoopbackHTTPServer { request in
            // Echo the request body back inside `message` so the test can read what was sent.
            let echoed = JSONValue.makeObject([
                "status": .string("Failed"), "message": .string(String(decoding: request.body, as: UTF8.self)),
            ])
            return .respond(.json(status: 200, echoed.encoded()))
        }
        defer { captured.shutdown() }
        let (success, response) = await SandboxFusionTestFixtures.executor(captured).run(
            code: "x", files: ["a.txt": "héllo"], timeout: .seconds(7.8), language: "bash")
        #expect(!success)
        let sent = try JSONValue(data: Data((response.message ?? "").utf8))
        #expect(
            sent
                == .makeObject([  // decoded objects have sorted keys
                    "code": .string("x"),
                    "files": .makeObject(["a.txt": .string(Data("héllo".utf8).base64EncodedString())]),
                    "language": .string("bash"), "run_timeout": 7,
                ]))
    }

    @Test func aSandboxErrorCarriesTheMessageAsError() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let (success, response) = await SandboxFusionTestFixtures.executor(server).run(
            code: "select 1;", language: "sql")
        #expect(!success)
        #expect(response.status == "SandboxError")
        #expect(response.error?.contains("'sql'") == true)
        #expect(response.error == response.message)
    }

    @Test func aNon200AnswerBecomesAnHTTPError() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let (success, response) = await SandboxFusionTestFixtures.executor(server).run(
            code: "print(1)", language: "cobol")
        #expect(!success)
        #expect(response.error?.hasPrefix("HTTP 422: ") == true)
        #expect(response.error?.contains("literal_error") == true)
        #expect(response.status == nil)
    }

    @Test func aTransportFailureIsReportedNotThrown() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let port = refusing.port
        let executor = SandboxFusionExecutor(
            configuration: .init(endpoints: ["http://127.0.0.1:\(port)"], retryPolicy: .none))
        let (success, response) = await executor.run(code: "print(1)")
        #expect(!success)
        #expect(response.error?.contains("connectionRefused") == true)
    }

    @Test func theResponseEncodesWithThePythonKeys() throws {
        let response = SandboxFusionRunResponse(
            status: "Success", runResult: .init(status: "Finished", return_code: 0, stdout: "1\n"))
        let json = try JSONValue(data: JSONEncoder().encode(response))
        #expect(json["run_result"]?["stdout"] == .string("1\n"))
        #expect(json["status"] == .string("Success"))
    }

    @Test func runJupyterDecodesCellsDisplayAndErrors() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let response = try await SandboxFusionTestFixtures.executor(server).runJupyter(
            SandboxFusionJupyterRequest(cells: [
                "a = 123", "a", "print(a)", "import sys; sys.stderr.write(\"stderr message\")",
                "raise RuntimeError(\"error message\")",
            ]))
        #expect(response.status == .success)
        #expect(response.cells.count == 5)
        #expect(response.cells[1].display.first?["text/plain"] == .string("123"))
        #expect(response.cells[2].stdout == "123\n")
        #expect(response.cells[3].stderr == "stderr message")
        #expect(response.cells[4].error.first?.ename == "RuntimeError")
        #expect(response.driver?.status == "Finished")
    }

    @Test func runJupyterSendsAndFetchesFiles() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let response = try await SandboxFusionTestFixtures.executor(server).runJupyter(
            SandboxFusionJupyterRequest(
                cells: ["open(\"o.txt\",\"w\").write(\"hi\")", "print(open(\"in.txt\").read())"],
                files: ["in.txt": Data("from file".utf8)], fetchFiles: ["o.txt"]))
        #expect(response.files["o.txt"] == Data("hi".utf8))
        #expect(response.cells[1].stdout == "from file\n")
    }

    @Test func pingExpectsPong() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        try await SandboxFusionTestFixtures.executor(server).ping()
        #expect(server.statistics.requests == 1)

        let wrong = try LoopbackHTTPServer { _ in .respond(.json("\"ping\"")) }
        defer { wrong.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server, wrong).ping()
        }
        #expect(error?.code == .undecodableResponse)
    }
}
