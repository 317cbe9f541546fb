import Foundation
import Testing

@testable import SandboxVCR

/// Background writes held for a group commit: order, lookups, failures.
@Suite struct CassetteGroupCommitTests {
    let folder = TemporaryFolder()

    struct InjectedFailure: Error {}

    func interaction(_ stdin: String) -> Cassette.NewInteraction {
        let request = ExecutionRequest(code: "print(input())", language: .python, stdin: stdin)
        return Cassette.NewInteraction(
            key: RequestMatcher.exact.key(for: request), ordinal: 0, request: request,
            outcome: .result(
                ExecutionResult(
                    status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data(stdin.utf8)),
                    backend: .fake)))
    }

    @Test func oneFailingBackgroundWriteKeepsTheOthers() async throws {
        let cassette = try await Cassette.open(at: folder.file("a.sqlite"))
        try await cassette.recordInBackground([interaction("1")])
        try await cassette.worker.submit(keys: []) { connection in
            try connection.execute("INSERT INTO meta(key, value) VALUES ('partial', 'x')")
            throw InjectedFailure()
        }
        try await cassette.recordInBackground([interaction("2")])
        await #expect(throws: InjectedFailure.self) { try await cassette.flush() }
        #expect(try await cassette.count() == 2)
        let partial = try await cassette.perform { try $0.scalarText("SELECT value FROM meta WHERE key = 'partial'") }
        #expect(partial == nil, "the failed write is undone in whole")
        try await cassette.flush()
        await cassette.close()
    }

    @Test func lookupSeesAHeldWriteOfItsKeyAndReadsSeeAll() async throws {
        let cassette = try await Cassette.open(at: folder.file("b.sqlite"))
        let first = interaction("1")
        try await cassette.recordInBackground([first, interaction("2")])
        let found = try await cassette.recording(key: first.key, ordinal: 0, orLast: false)
        #expect(found?.outcome == first.outcome)
        let other = interaction("3")
        #expect(try await cassette.recording(key: other.key, ordinal: 0, orLast: false) == nil)
        try await cassette.recordInBackground([other])
        #expect(try await cassette.count() == 3)
        await cassette.close()
        let reopened = try await Cassette.open(at: folder.file("b.sqlite"))
        #expect(try await reopened.count() == 3, "closing commits held writes")
        await reopened.close()
    }
}
