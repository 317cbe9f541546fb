import Foundation
import SandboxVCRTestSupport
import Testing

/// `sandbox-vcr serve --control` as a command: its options, and what it refuses before it listens.
@Suite("sandbox-vcr serve --control (the command)")
struct ServeControlCommandTests {
    @Test func controlChoosesTheCassetteSoCassetteAndRecordAreRefused() async throws {
        let folder = try SandboxVCRTool.makeFolder("serve-control-options")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("x.sqlite").path
        for extra in [["--cassette", cassette], ["--record", "never"], ["--cassette", cassette, "--record", "all"]] {
            let output = try await SandboxVCRTool.run(["serve", "--control", "--port", "0"] + extra)
            #expect(output.status == 64, "\(extra): \(output.stderrText)")
            #expect(output.stderrText.contains("--control chooses the cassette"), "\(output.stderrText)")
            #expect(output.stdoutText.isEmpty, "it must not have started listening")
        }
        #expect(!FileManager.default.fileExists(atPath: cassette))
    }

    @Test func helpDescribesTheControlAPI() async throws {
        let help = try await SandboxVCRTool.run(["serve", "--help"])
        #expect(help.status == 0)
        #expect(help.stdoutText.contains("--control"))
        #expect(help.stdoutText.contains("POST /sandbox-vcr/cassette"))
    }
}
