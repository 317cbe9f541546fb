import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

/// Redacting output can change what a grader sees offline, so a recording says which fields were redacted.
@Suite struct RedactionHintTests {
    let folder = TemporaryFolder()

    @Test func aReplayOfRedactedOutputSaysSo() async throws {
        let url = folder.file("redacted.sqlite")
        let live = FakeExecutor(default: .success(stdout: "MODAL_TOKEN_SECRET=as-abc123secret\n"))
        let request = ExecutionRequest(code: "import os; print(os.environ)", language: .python)
        let recorded = try await Cassette.withCassette(at: url) { cassette in
            try await RecordingExecutor(cassette: cassette, mode: .missing, live: live).execute(request)
        }
        // The live answer is returned as it was; only what is stored is redacted.
        #expect(recorded.stdoutText == "MODAL_TOKEN_SECRET=as-abc123secret\n")
        let replayed = try await Cassette.withCassette(at: url, readOnly: true) { cassette in
            try await RecordingExecutor(cassette: cassette, mode: .never).execute(request)
        }
        #expect(!replayed.stdoutText.contains("abc123secret"))
        #expect(replayed.hints.contains(.redacted(field: "run.stdout")))
        #expect(replayed.hints.map(\.description).contains { $0.contains("run.stdout was redacted") })
        // The export keeps the hint.
        let exported = try await Cassette.withCassette(at: url, readOnly: true) { try await $0.exportJSONLines() }
        let text = String(decoding: exported, as: UTF8.self)
        #expect(text.contains("\"redacted\"") && text.contains("run.stdout"))
    }

    @Test func cleanOutputHasNoRedactionHint() async throws {
        let url = folder.file("clean.sqlite")
        let live = FakeExecutor(default: .success(stdout: "7\n"))
        let request = ExecutionRequest(code: "print(3 + 4)", language: .python)
        try await Cassette.withCassette(at: url) { cassette in
            _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: live).execute(request)
        }
        let replayed = try await Cassette.withCassette(at: url, readOnly: true) { cassette in
            try await RecordingExecutor(cassette: cassette, mode: .never).execute(request)
        }
        #expect(replayed.hints.isEmpty)
    }
}
