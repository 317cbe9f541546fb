import Foundation
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTestSupport
import Testing

@Suite("Modal: recorded sandbox sessions", .serialized)
struct ModalSessionTests {
    /// The agent under test: three dependent steps.
    private func agent(_ session: ModalSession, secondCommand: String = "cat notes.txt; echo two >> notes.txt")
        async throws -> [String]
    {
        try await session.writeFile("/workspace/agent/notes.txt", content: Data("one\n".utf8))
        let second = try await session.runCommand(secondCommand, workdir: "/workspace/agent")
        let third = try await session.readFile("/workspace/agent/notes.txt")
        let failing = try await session.runCommand("echo bad 1>&2; exit 7")
        return [second.stdoutText, String(decoding: third, as: UTF8.self), failing.stderrText, "\(failing.exitStatus)"]
    }

    @Test("a session is recorded, replayed exactly with no server, and a deviation names its step")
    func recordAndReplay() async throws {
        let folder = try temporaryFolder("modal-session")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("session.sqlite")
        let logs = CapturedLogs()

        let (live, secret) = try await withFakeModalServer { server in
            let cassette = try await Cassette.open(at: url)
            let session = try ModalSession(
                cassette: cassette, mode: .all, configuration: modalConfiguration(for: server), logger: logs.logger())
            let outputs = try await agent(session)
            try await session.terminate()
            #expect(session.stepCount == 4)
            try await cassette.flush()
            await cassette.close()
            let stats = try server.stats()
            #expect(stats.sandboxesCreated == 1)
            #expect(stats.sandboxesAlive == 0)
            return (outputs, server.tokenSecret)
        }
        #expect(live == ["one\n", "one\ntwo\n", "bad\n", "7"])
        #expect(!logs.all.joined().contains(secret))
        for suffix in ["", "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: url.path + suffix) else { continue }
            #expect(bytes.range(of: Data(secret.utf8)) == nil)
        }

        // Replay: no server, no credentials.
        let cassette = try await Cassette.open(at: url, readOnly: true, create: false)
        let replay = try ModalSession(cassette: cassette, mode: .never, configuration: nil)
        #expect(try await agent(replay) == live)

        // A deviation at step 2 is a miss that names the step.
        let deviating = try ModalSession(cassette: cassette, mode: .never, configuration: nil)
        let miss = await #expect(throws: CassetteError.self) {
            try await agent(deviating, secondCommand: "cat notes.txt")
        }
        #expect(miss?.code == .miss)
        #expect(miss?.message.contains("step 2") == true)
        #expect(miss?.message.contains("cat notes.txt") == true)
        await cassette.close()
    }

    @Test("a step that found the sandbox terminated replays as the same sandboxTerminated error")
    func recordedTermination() async throws {
        let folder = try temporaryFolder("modal-session-terminated")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("session.sqlite")
        let recorded = try await withFakeModalServer(
            .init(faults: [.terminateMidCommand], extraArguments: ["--terminate-after", "0.3"])
        ) { server in
            let cassette = try await Cassette.open(at: url)
            let session = try ModalSession(
                cassette: cassette, mode: .all, configuration: modalConfiguration(for: server))
            let first = try await session.runCommand("echo quick")
            #expect(first.stdoutText == "quick\n")
            let error = await #expect(throws: ExecutionError.self) { try await session.runCommand("sleep 10") }
            try await cassette.flush()
            await cassette.close()
            return error
        }
        #expect(recorded?.code == .sandboxTerminated)

        let cassette = try await Cassette.open(at: url, readOnly: true, create: false)
        let replay = try ModalSession(cassette: cassette, mode: .never, configuration: nil)
        #expect(try await replay.runCommand("echo quick").stdoutText == "quick\n")
        let replayed = await #expect(throws: ExecutionError.self) { try await replay.runCommand("sleep 10") }
        #expect(replayed == recorded)
        await cassette.close()
    }

    @Test("a live session needs credentials")
    func needsConfiguration() async throws {
        let folder = try temporaryFolder("modal-session-config")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await Cassette.open(at: folder.appendingPathComponent("c.sqlite"))
        let error = #expect(throws: ExecutionError.self) {
            try ModalSession(cassette: cassette, mode: .all, configuration: nil)
        }
        #expect(error?.code == .configuration)
        await cassette.close()
    }
}
