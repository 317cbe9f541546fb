import Foundation
import SandboxVCRTestSupport
import Testing

/// The Swift launcher of Tools/fake_modal_server.py starts it, reads its counters and stops it.
@Suite struct FakeModalServerTests {
    @Test func startsOnLoopbackAndStopsCleanly() async throws {
        let server = try await FakeModalServer.start(
            .init(faults: [.unavailableOnce], tokenID: "ak-x", tokenSecret: "as-y"))
        #expect(server.url.hasPrefix("http://127.0.0.1:"))
        #expect(Int(server.url.split(separator: ":").last ?? "") ?? 0 > 0)
        #expect(server.tokenID == "ak-x")
        let stats = try server.stats()
        #expect(stats.sandboxesCreated == 0)
        #expect(stats.sandboxesAlive == 0)
        #expect(stats.calls.isEmpty)
        #expect(stats.calls(to: "SandboxCreateV2") == 0)
        #expect(await server.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: server.statsFile.path))
    }

    @Test func reportsWhyItDidNotStart() async throws {
        let error = await #expect(throws: FakeModalServer.Failure.self) {
            try await FakeModalServer.start(.init(faults: [.throttle], faultRPCs: ["NoSuchMethod"]))
        }
        #expect(error?.description.contains("NoSuchMethod") == true)
    }

    @Test func scopedServerIsStoppedAfterTheBody() async throws {
        let url = try await withFakeModalServer { server in server.url }
        #expect(url.hasPrefix("http://127.0.0.1:"))
    }
}
