import Foundation
import Testing

@testable import SandboxVCR

/// Keys come from their own versioned encoding (``RequestKeyEncoding``): the cassettes recorded so far keep
/// replaying, whatever becomes of the storage format.
@Suite struct RequestKeyTests {
    let folder = TemporaryFolder()

    /// Every committed cassette (schema 1 and schema 2) opens, and each of its recordings is found again by the key
    /// of its own request and replays its own outcome.
    @Test(arguments: ["Fixtures/grading-demo/cassette.sqlite", "Fixtures/cassettes/schema-v1-demo.sqlite"])
    func committedCassettesReplayUnderTheirKeys(path: String) async throws {
        let copy = folder.file("copy.sqlite")
        try FileManager.default.copyItem(at: packageRoot().appendingPathComponent(path), to: copy)
        let cassette = try await Cassette.open(at: copy)
        let interactions = try await cassette.interactions(limit: 10_000)
        #expect(interactions.count == 96)
        let replay = RecordingExecutor(cassette: cassette, mode: .never)
        for interaction in interactions where interaction.ordinal == 0 {
            #expect(RequestMatcher.exact.key(for: interaction.request) == interaction.key)
            let outcome = await replay.outcome(of: interaction.request)
            #expect(outcome.source == .hit)
            switch (outcome.result, interaction.outcome) {
            case (.success(let result), .result(let recorded)): #expect(result == recorded)
            case (.failure(let error as ExecutionError), .failure(let recorded)): #expect(error == recorded)
            default: Issue.record("interaction \(interaction.id) replayed as \(outcome.result)")
            }
        }
        await cassette.close()
    }

    /// Version 1's bytes are frozen: the key of a fixed request is a fixed digest.
    @Test func versionOneBytesAreFrozen() {
        var request = ExecutionRequest(code: "print(input())", language: .python, stdin: "7")
        request.files["data.txt"] = Data(repeating: 0x61, count: 300)
        let bytes = RequestKeyEncoding.bytes(of: request, digests: nil)
        #expect(bytes.first == 1, "the version comes first")
        #expect(bytes.count < 150, "a part of 300 bytes is hashed, not written out")
        #expect(
            RequestMatcher.exact.key(for: request).hex
                == "259d53cfd4d9843141d7bb8ad02848ee0ca0d3ab92023883c3f3025862452c2f")
    }
}
