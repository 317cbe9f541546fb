import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRModalServer
import SandboxVCRTestSupport
import Testing

/// The Modal port in process, with the Swift client's libcurl connection left open and idle at shutdown.
@Suite struct ModalServerShutdownTests {
    /// `run()`'s result, or `nil` when it had not returned by `deadline`.
    static func result(of running: Task<Void, any Error>, within deadline: Duration) async -> Result<Void, any Error>? {
        await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            group.addTask { await running.result }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test("shutdown ends even though the client's idle connection never answers the GOAWAY's PING")
    func shutdownClosesAnIdleClientConnection() async throws {
        let folder = try makeTemporaryFolder("modal-server-shutdown")
        defer { try? FileManager.default.removeItem(at: folder) }
        let fake = try await FakeModalServer.start()
        let cassette = try await Cassette.open(at: folder.appendingPathComponent("shutdown.sqlite"))
        var configuration = ModalServeConfiguration()
        configuration.mode = .all
        configuration.upstreamURL = fake.url
        let server = try await ModalServer(
            configuration: configuration, cassette: cassette, logger: Logger(label: "modal-server-shutdown"))
        let running = Task { try await server.run() }
        let client = ModalClient(
            configuration: ModalConfiguration(
                tokenID: fake.tokenID, tokenSecret: fake.tokenSecret, serverURL: try await server.listeningURL()))
        let sandbox = try await ModalSandbox.create(client: client, options: ModalSandbox.Options())
        #expect(try await sandbox.runCommand("echo idle").stdoutText == "idle\n")
        try await sandbox.terminate()
        // The client stays alive with its connection in libcurl's cache: nothing reads it until its next call.
        server.beginShutdown()
        let stopped = await Self.result(of: running, within: .seconds(60))
        #expect(stopped != nil, "the Modal port did not stop within 60 s of beginShutdown()")
        if stopped == nil { running.cancel() }
        await server.finish()
        #expect(server.statistics.snapshot["recorded"] == 1)
        await cassette.close()
        await fake.stop()
        withExtendedLifetime(client) {}
    }
}
