import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

/// The Python venv with the official `sandbox-fusion` client, made by `Tools/setup`.
let pythonWithClient: URL? = {
    let python = repositoryRoot.appendingPathComponent("Tools/.venv/bin/python")
    let package = repositoryRoot.appendingPathComponent("Tools/.venv/lib")
    guard FileManager.default.isExecutableFile(atPath: python.path),
        let versions = try? FileManager.default.contentsOfDirectory(atPath: package.path),
        versions.contains(where: {
            FileManager.default.fileExists(
                atPath: package.appendingPathComponent("\($0)/site-packages/sandbox_fusion").path)
        })
    else { return nil }
    return python
}()

/// Answers from the grading-demo exchanges, keyed by the decoded request (stands in for a cassette).
struct ExchangesExecutor: SandboxExecutor {
    let answers: [ExecutionRequest: ExecutionResult]

    init(file: URL) throws {
        var answers: [ExecutionRequest: ExecutionResult] = [:]
        let text = try String(contentsOf: file, encoding: .utf8)
        for line in text.split(separator: "\n") where !line.isEmpty {
            let exchange = try parseJSON(String(line))
            let body = try JSONDecoder().decode(
                SandboxFusionWire.RunCodeBody.self, from: Data((exchange["request"]?["body"] ?? .null).pythonJSONBytes))
            let response = try JSONDecoder().decode(
                SandboxFusionWire.RunCodeResponse.self, from: Data((exchange["response"] ?? .null).pythonJSONBytes))
            answers[try SandboxFusionWire.request(from: body)] = try SandboxFusionWire.result(from: response)
        }
        self.answers = answers
    }

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        guard let result = answers[request] else {
            throw TestReplayMiss(diagnostics: "no recorded exchange for \(request.summary)")
        }
        return result
    }
}

@Suite("The official sandbox-fusion Python client against serve")
struct OfficialPythonClientTests {
    @Test(.enabled(if: pythonWithClient != nil, "run Tools/setup to install the Python client into Tools/.venv"))
    func gradingDemoReplaysThroughThePythonClient() async throws {
        let python = try #require(pythonWithClient)
        let exchanges = repositoryRoot.appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl")
        let executor = try ExchangesExecutor(file: exchanges)
        #expect(executor.answers.count == 96)
        let (status, output, misses) = try await withServer(executor: executor) { server in
            let process = Process()
            process.executableURL = python
            process.arguments = [
                repositoryRoot.appendingPathComponent("Tools/serve_python_test.py").path,
                "--endpoint", "http://127.0.0.1:\(server.port)", "--exchanges", exchanges.path,
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let (status, output) = try await RawHTTP.onThread { () -> (Int32, String) in
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return (process.terminationStatus, String(decoding: data, as: UTF8.self))
            }
            return (status, output, server.server.statistics.snapshot.misses)
        }
        #expect(status == 0, "\(output)")
        #expect(output.contains("96/96 exchanges matched"), "\(output)")
        #expect(misses == 0)
    }
}
