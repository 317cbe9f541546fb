import Foundation
import SandboxVCRTestSupport
import Testing

/// SIGTERM while an upstream is silent: the grace period bounds the exit, and the call in flight is answered with
/// an error rather than dropped (issue 12 item 11). The upstream holds its answer behind a gate that never opens.
@Suite(.serialized) struct ServeShutdownTests {
    /// A run timeout far above the bounds below, so that only the grace period can end the call in time.
    static let body = #"{"code": "print(1)", "language": "python", "run_timeout": 60}"#

    /// A silent upstream, `serve` in front of it with `grace`, and one request in flight through it.
    private func inFlight(grace: String) async throws -> (
        upstream: LoopbackHTTPServer, serve: ServeProcess, answer: Task<RawHTTPResponse, any Error>
    ) {
        let gate = LoopbackGate()
        let upstream = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, .sandboxFusionSuccess(stdout: "late")) }
        let serve = try await ServeProcess.start(
            ["--url", "http://127.0.0.1:\(upstream.port)", "--shutdown-grace", grace], logLevel: "notice")
        let port = serve.port
        let answer = Task {
            try await RawHTTP.exchange(port: port, request: RawHTTP.postJSON(path: "/run_code", body: Self.body))
        }
        await upstream.wait { $0.inFlight == 1 }
        return (upstream, serve, answer)
    }

    @Test func theGracePeriodEndsACallTheUpstreamNeverAnswers() async throws {
        let (upstream, serve, answer) = try await inFlight(grace: "1")
        defer {
            serve.terminate()
            upstream.shutdown()
        }
        let start = ContinuousClock.now
        kill(serve.process.processIdentifier, SIGTERM)
        let response = try await answer.value
        #expect(response.status == 503)
        #expect(response.bodyText.contains("shutdown grace period"))
        #expect(try await serve.waitForExit() == 0)
        // Not the client's 60 s run timeout: the 1 s grace (and process exit; loose enough for a loaded machine).
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func aSecondSignalEndsItAtOnce() async throws {
        let (upstream, serve, answer) = try await inFlight(grace: "600")
        defer {
            serve.terminate()
            upstream.shutdown()
        }
        kill(serve.process.processIdentifier, SIGTERM)
        #expect(await serve.log.wait(for: "shutting down;"))
        kill(serve.process.processIdentifier, SIGTERM)
        let response = try await answer.value
        #expect(response.status == 503)
        #expect(try await serve.waitForExit() == 0)
        #expect(serve.log.text.contains("second signal"))
    }

    @Test func anOutOfRangeGraceIsRefused() async throws {
        for grace in ["-1", "1e300", "nan"] {
            let run = try await runSandboxVCR(["serve", "--backend", "fake", "--shutdown-grace", grace, "--port", "0"])
            #expect(run.status != 0)
            #expect(run.errors.contains("grace"), "\(run.errors)")
        }
    }
}
