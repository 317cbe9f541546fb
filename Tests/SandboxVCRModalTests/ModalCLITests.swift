import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@Suite("Modal: the CLI's --backend modal", .serialized)
struct ModalCLITests {
    private func tool() throws -> URL {
        try #require(
            CommandRunner.builtProduct(named: "sandbox-vcr"), "build sandbox-vcr first (swift build --build-tests)")
    }

    @Test("sandbox-vcr run --backend modal runs code on the fake server; SANDBOX_BACKEND=modal too")
    func runOnModal() async throws {
        let tool = try tool()
        try await withFakeModalServer { server in
            let environment: [String: String?] = [
                "MODAL_SERVER_URL": server.url, "MODAL_TOKEN_ID": server.tokenID,
                "MODAL_TOKEN_SECRET": server.tokenSecret, "MODAL_CONFIG_PATH": "/nonexistent/modal.toml",
                "SANDBOX_BACKEND": nil, "SANDBOX_VCR_RECORD": nil,
            ]
            let flag = try await CommandRunner.run(
                tool,
                ["run", "--backend", "modal", "--language", "python", "-c", "print(input() * 2)", "--stdin", "ab"],
                environment: environment)
            #expect(flag.status == 0, "\(flag.stderrText)")
            #expect(flag.stdoutText.contains("abab"))
            #expect(!flag.stderrText.contains(server.tokenSecret))

            var withVariable = environment
            withVariable["SANDBOX_BACKEND"] = "modal"
            let variable = try await CommandRunner.run(
                tool, ["run", "--json", "--language", "bash", "-c", "echo from-env"], environment: withVariable)
            #expect(variable.status == 0, "\(variable.stderrText)")
            #expect(variable.stdoutText.contains("from-env"))
            let stats = try server.stats()
            #expect(stats.sandboxesCreated >= 2)
            #expect(stats.sandboxesAlive == 0)
        }
    }

    @Test("--backend modal without credentials says how to provide them")
    func missingCredentials() async throws {
        let tool = try tool()
        let output = try await CommandRunner.run(
            tool, ["run", "--backend", "modal", "-c", "print(1)"],
            environment: [
                "MODAL_TOKEN_ID": nil, "MODAL_TOKEN_SECRET": nil, "MODAL_CONFIG_PATH": "/nonexistent/modal.toml",
                "MODAL_PROFILE": nil, "SANDBOX_VCR_RECORD": nil,
            ])
        #expect(output.status != 0)
        #expect(output.stderrText.contains("MODAL_TOKEN_ID"))
    }
}
