import Foundation
public import SandboxVCR
import SandboxVCRTestSupport

/// An in-process loopback HTTP server that answers every request at once with SandboxFusion's real answer to
/// `print("hello world")`: the client and the recorder are measured without a sandbox behind them.
public final class HelloServer: Sendable {
    /// The real server's answer to `print("hello world")` (sample 01).
    public static let answer = """
        {"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished",\
        "execution_time":0.02745819091796875,"return_code":0,"stdout":"hello world\\n","stderr":""},\
        "executor_pod_name":null,"files":{}}
        """

    private let server: LoopbackHTTPServer

    /// Starts listening on a free loopback port.
    ///
    /// - Parameter delay: how long each answer waits, like a real sandbox running the code (`nil`: at once).
    public init(delay: Duration? = nil) throws {
        let response = LoopbackHTTPServer.Response.json(Data(Self.answer.utf8))
        server = try LoopbackHTTPServer { _ in delay.map { .respondAfter($0, response) } ?? .respond(response) }
    }

    deinit { server.shutdown() }

    /// A live SandboxFusion client of this server, without retries.
    public func makeExecutor(concurrency: Int) -> SandboxFusionExecutor {
        SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(
                endpoints: [server.baseURL], maxConcurrency: concurrency, retryPolicy: .none))
    }
}
