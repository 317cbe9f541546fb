import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

@Suite("sandbox-vcr serve as a built binary", .enabled(if: builtBinary != nil, "build the sandbox-vcr product first"))
struct ServeCommandEndToEndTests {
    /// Writes fake rules answering stdin `ok` with stdout `ok` (and anything else with stdout `other`).
    static func writeRules(in folder: URL) throws -> String {
        let rules = folder.appendingPathComponent("rules.json")
        try Data(
            #"""
            {"rules": [{"match": {"stdin": "ok"}, "result": {"kind": "success", "stdout": "ok"}}],
             "default": {"kind": "success", "stdout": "other"}}
            """#.utf8
        ).write(to: rules)
        return rules.path
    }

    static let okBody = #"{"code": "x", "language": "python", "stdin": "ok"}"#

    @Test func fakeBackendAnswersThenStopsOnSIGTERM() async throws {
        let folder = try makeTemporaryFolder("serve-e2e")
        defer { try? FileManager.default.removeItem(at: folder) }
        let readyFile = folder.appendingPathComponent("ready").path

        let serve = try await ServeProcess.start(
            ["--backend", "fake", "--rules", try Self.writeRules(in: folder), "--ready-file", readyFile],
            logLevel: "warning")
        defer { serve.terminate() }
        #expect(try String(contentsOfFile: readyFile, encoding: .utf8) == "\(serve.baseURL)\n")

        let response = try await serve.postJSON("/run_code", Self.okBody)
        #expect(response.status == 200)
        #expect(try parseJSON(response.body)["run_result"]?["stdout"] == "ok")
        #expect(try await serve.stats()["fake"] == 1)

        #expect(try await serve.stop() == 0)
        #expect(serve.process.terminationReason == .exit)
    }

    @Test func urlAndTheHiddenAliasesUpstreamAndFakeAnswerAlike() async throws {
        let folder = try makeTemporaryFolder("serve-aliases")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = try Self.writeRules(in: folder)

        let fake = try await ServeProcess.start(["--fake", rules], logLevel: "warning")
        defer { fake.terminate() }
        let byURL = try await ServeProcess.start(["--url", fake.baseURL], logLevel: "warning")
        defer { byURL.terminate() }
        let byUpstream = try await ServeProcess.start(["--upstream", "\(fake.baseURL)/run_code"], logLevel: "warning")
        defer { byUpstream.terminate() }
        for proxy in [byURL, byUpstream] {
            let response = try await proxy.postJSON("/run_code", Self.okBody)
            #expect(response.status == 200, "\(response.bodyText)")
            #expect(try parseJSON(response.body)["run_result"]?["stdout"] == "ok")
            #expect(try await proxy.stats()["live"] == 1)
            #expect(try await proxy.stop() == 0)
        }
        #expect(try await fake.stats()["fake"] == 2)
        #expect(try await fake.stop() == 0)

        let both = try await runSandboxVCR(["serve", "--fake", rules, "--rules", rules, "--port", "0"])
        #expect(both.status == 64)
        #expect(both.errors.contains("give the rules once"), "\(both.errors)")
    }

    @Test func unknownChoicesAreArgumentErrors() async throws {
        let mode = try await runSandboxVCR(["serve", "--cassette", "none.sqlite", "--record", "sometimes"])
        #expect(mode.status == 64)
        #expect(mode.errors.contains("'sometimes'"), "\(mode.errors)")
        #expect(mode.errors.contains("'never', 'missing', 'all' or 'live'"), "\(mode.errors)")

        let backend = try await runSandboxVCR(["serve", "--backend", "echo"])
        #expect(backend.status == 64)
        #expect(backend.errors.contains("'sandboxfusion', 'modal' or 'fake'"), "\(backend.errors)")

        let echo = try await runSandboxVCR(["serve", "--echo"])
        #expect(echo.status == 64, "no hidden test backend in the shipped binary")
    }

    @Test func remoteBindIsRefusedWithoutTheFlag() async throws {
        let refused = try await runSandboxVCR([
            "serve", "--url", "http://127.0.0.1:1", "--host", "0.0.0.0", "--port", "0",
        ])
        #expect(refused.status != 0)
        #expect(refused.errors.contains("--allow-remote"))
    }
}
