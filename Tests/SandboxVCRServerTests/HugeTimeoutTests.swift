import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

@testable import SandboxVCRServer

/// Issue 12: a huge `run_timeout` passes validation as on SandboxFusion, then is clamped to a year on its way
/// upstream instead of trapping (it used to overflow in `CurlTransferTable` or `Duration.components`).
@Suite struct HugeTimeoutTests {
    @Test(arguments: ["1e16", "1e300", "9.3e18", "31536000.5"])
    func hugeRunTimeoutIsClampedOnItsWayUpstream(runTimeout: String) async throws {
        let received = Mutex<[Data]>([])
        let upstream = try LoopbackHTTPServer { request in
            received.withLock { $0.append(request.body) }
            return .respond(.sandboxFusionSuccess(stdout: "7\n"))
        }
        defer { upstream.shutdown() }
        let executor = SandboxFusionExecutor(configuration: .init(url: upstream.baseURL))
        let response = try await withServer(executor: executor) { server in
            try await server.postJSON(
                "/run_code", #"{"code":"print(7)","language":"python","run_timeout":\#(runTimeout)}"#)
        }
        #expect(response.status == 200, "\(response.bodyText)")
        let answer = try parseJSON(response.body)
        #expect(answer["status"] == "Success", "\(response.bodyText)")
        let bodies = received.withLock { $0 }
        let body = try #require(bodies.first)
        let sent = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(sent["run_timeout"] as? Double == 31_536_000, "one year: \(String(decoding: body, as: UTF8.self))")
    }

    /// The validator still accepts what SandboxFusion accepts, and answers the rest as pydantic does.
    @Test func validationIsUnchanged() async throws {
        let (huge, text) = try await withServer(executor: makeEchoExecutor()) { server in
            (
                try await server.postJSON("/run_code", #"{"code":"print(7)","language":"python","run_timeout":1e300}"#),
                try await server.postJSON("/run_code", #"{"code":"print(7)","language":"python","run_timeout":"x"}"#)
            )
        }
        #expect(huge.status == 200)
        #expect(text.status == 422)
        #expect(text.bodyText.contains("float_parsing"), "\(text.bodyText)")
    }
}
