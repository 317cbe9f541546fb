import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// What a user of the `SandboxVCR` product writes to reach SandboxFusion: public API only.
///
/// The transport (`HTTPClient`, `HTTPRequest`, `HTTPResponse`, `HTTPHeaders`, `HTTPVersion`, `HTTPBodySink`) is
/// `package`, so its names never collide with async-http-client's, swift-http-types' or NIO's in a user's file.
/// Nothing below may name one of them: the executor is built from its public configuration, and a logger is not
/// needed (the default one is a no-op).
@Suite("Transport: the public API needs no transport type", .timeLimit(.minutes(1)))
struct TransportPublicAPITests {
    @Test("SandboxFusionExecutor(configuration:) from fromEnvironment runs a request over loopback")
    func executorFromPublicConfiguration() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.sandboxFusionSuccess(stdout: "hello world\n")) }
        defer { server.shutdown() }
        var configuration = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_URL": server.baseURL + "/run_code", "SANDBOX_MAX_CONCURRENCY": "2",
        ])
        configuration.retryPolicy = .none
        configuration.connectTimeout = .seconds(5)
        let executor: any SandboxExecutor = SandboxFusionExecutor(configuration: configuration)
        let result = try await executor.execute(ExecutionRequest(code: "print(\"hello world\")", language: .python))
        #expect(result.isSuccess)
        #expect(result.stdout == Data("hello world\n".utf8))
    }

    @Test("connection failures surface as ExecutionError with a public code")
    func transportErrorsArePublic() async throws {
        let executor = SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(url: "http://127.0.0.1:9/run_code", maxConcurrency: 1))
        var configuration = executor.configuration
        configuration.retryPolicy = .none
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionExecutor(configuration: configuration).execute(
                ExecutionRequest(code: "print(1)", language: .python))
        }
        #expect(error?.code == .connectionRefused)
    }
}
