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

/// Whether the environment says this is CI (`CI` set, not `false` or `0`): there the venv must exist.
let isContinuousIntegration: Bool = {
    guard let value = ProcessInfo.processInfo.environment["CI"], !value.isEmpty else { return false }
    return value.lowercased() != "false" && value != "0"
}()

@Suite("The official sandbox-fusion Python client against serve")
struct OfficialPythonClientTests {
    /// Replays the grading-demo cassette through the built `serve` binary (`--record never`) with the official
    /// client; every answer must have the recorded status and output. Skipped without the venv, except on CI
    /// (`Tools/test` runs `Tools/setup` first), where a missing venv fails.
    @Test(
        .enabled(if: builtBinary != nil, "build the sandbox-vcr product first"),
        .enabled(
            if: pythonWithClient != nil || isContinuousIntegration,
            "run Tools/setup to install the Python client into Tools/.venv"))
    func gradingDemoReplaysThroughThePythonClient() async throws {
        let python = try #require(
            pythonWithClient, "Tools/.venv has no sandbox-fusion client; run Tools/setup (CI must have it)")
        let folder = try makeTemporaryFolder("serve-python")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await importGradingDemoCassette(into: folder)
        let serve = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never"], logLevel: "warning")
        defer { serve.terminate() }

        let run = try await CommandRunner.run(
            python,
            [
                repositoryRoot.appendingPathComponent("Tools/serve_python_test.py").path,
                "--endpoint", serve.baseURL, "--exchanges", gradingDemoExchangesFile.path,
            ])
        let (status, output) = (run.status, run.stdoutText + run.stderrText)
        #expect(status == 0, "\(output)")
        #expect(output.contains("96/96 exchanges matched"), "\(output)")
        let stats = try await serve.stats()
        #expect(stats["hits"] == 96)
        #expect(stats["misses"] == 0)
        #expect(try await serve.stop() == 0)
    }
}
