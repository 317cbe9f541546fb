import Foundation
import SandboxVCRTestSupport
import Testing

/// The options every executing command shares (`--backend`, `--url`, `--rules`, `--cassette`, `--record`), run
/// through the built `sandbox-vcr`.
@Suite struct ExecutorOptionsTests {
    static let commands = ["run", "grade", "serve"]

    @Test(arguments: commands)
    func unknownRecordModeIsAnArgumentError(command: String) async throws {
        let output = try await SandboxVCRTool.run([command, "--cassette", "none.sqlite", "--record", "sometimes"])
        #expect(output.status == 64)
        #expect(
            output.stderrText.contains(
                "The value 'sometimes' is invalid for '--record <mode>'. Please provide one of 'never', 'missing', "
                    + "'all' or 'live'."),
            "\(output.stderrText)")
    }

    @Test(arguments: commands)
    func unknownBackendIsAnArgumentError(command: String) async throws {
        let output = try await SandboxVCRTool.run([command, "--backend", "nowhere"])
        #expect(output.status == 64)
        #expect(
            output.stderrText.contains(
                "The value 'nowhere' is invalid for '--backend <backend>'. Please provide one of 'sandboxfusion', "
                    + "'modal' or 'fake'."),
            "\(output.stderrText)")
    }

    @Test(arguments: commands)
    func helpListsTheSharedOptionsAndNoHiddenAlias(command: String) async throws {
        let help = try await SandboxVCRTool.run([command, "--help"])
        #expect(help.status == 0)
        for option in ["--backend <backend>", "--url <url>", "--rules <file>", "--cassette <file>", "--record <mode>"] {
            #expect(help.stdoutText.contains(option), "\(command) --help lists \(option)")
        }
        for alias in ["--upstream", "--fake", "--echo"] {
            #expect(!help.stdoutText.contains(alias), "\(command) --help hides \(alias)")
        }
    }

    @Test func contradictoryOptionsAreRefused() async throws {
        let urlWithFake = try await SandboxVCRTool.run(
            ["run", "-c", "1", "--backend", "fake", "--rules", "rules.json", "--url", "http://127.0.0.1:1"])
        #expect(urlWithFake.status == 64)
        #expect(urlWithFake.stderrText.contains("--url"), "\(urlWithFake.stderrText)")

        let rulesWithModal = try await SandboxVCRTool.run(
            ["grade", "--backend", "modal", "--rules", "rules.json"])
        #expect(rulesWithModal.status == 64)
        #expect(rulesWithModal.stderrText.contains("--rules is for --backend fake"), "\(rulesWithModal.stderrText)")

        let badVariable = try await SandboxVCRTool.run(
            ["run", "-c", "1"], environment: ["SANDBOX_BACKEND": "nowhere"])
        #expect(badVariable.status == 64)
        #expect(badVariable.stderrText.contains("SANDBOX_BACKEND"), "\(badVariable.stderrText)")
    }

    @Test func rulesAloneChooseTheFakeBackendAndRecordIntoACassette() async throws {
        let folder = try SandboxVCRTool.makeFolder("executor-options")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = try SandboxVCRTool.write(
            #"{"rules": [], "default": {"kind": "success", "stdout": "from the rules\n"}}"#, to: "rules.json",
            in: folder)
        let cassette = folder.appendingPathComponent("fake.sqlite").path

        let recorded = try await SandboxVCRTool.run(["run", "-c", "print(1)", "--rules", rules, "--cassette", cassette])
        #expect(recorded.status == 0, "\(recorded.stderrText)")
        #expect(recorded.stdoutText.contains("from the rules"))
        #expect(recorded.stdoutText.contains("backend: fake"))

        let replayed = try await SandboxVCRTool.run([
            "run", "-c", "print(1)", "--cassette", cassette, "--record", "never",
        ])
        #expect(replayed.status == 0, "\(replayed.stderrText)")
        #expect(replayed.stdoutText == recorded.stdoutText)
    }
}
