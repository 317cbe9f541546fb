import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

/// Stands in for a live backend: answers `hello <stdin>`.
let greetingExecutor = FakeExecutor(
    default: .respond(label: "hello <stdin>") { request in
        ExecutionResult(
            status: .success,
            run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data("hello \(request.stdinText)".utf8)),
            backend: .fake)
    })

let traitFolder = FileManager.default.temporaryDirectory.appendingPathComponent("trait-tests-\(UUID().uuidString)")

@Suite struct CassetteTraitTests {
    /// Replays the committed cassette `__Cassettes__/CassetteTraitTests/greeting.sqlite` with no live executor.
    @Test(.cassette("greeting", record: .never))
    func replaysCommittedCassette() async throws {
        let result = try await testExecutor.execute(ExecutionRequest(code: "greet()", language: .python, stdin: "vcr"))
        #expect(result.stdoutText == "hello vcr")
        #expect(try testExecutor.mode == .never)
        #expect(RecordMode.current == .never)

    }

    @Test(.cassette("recorded", record: .missing, live: greetingExecutor, directory: traitFolder))
    func recordsIntoTheConventionalFolder() async throws {
        let executor = try testExecutor
        let result = try await executor.execute(ExecutionRequest(code: "greet()", language: .python, stdin: "a"))
        #expect(result.stdoutText == "hello a")
        let expected = traitFolder.appendingPathComponent("__Cassettes__/CassetteTraitTests/recorded.sqlite")
        #expect(executor.cassette.url.path == expected.path)
        #expect(FileManager.default.fileExists(atPath: expected.path))
        #expect(try await executor.cassette.count() == 1)
    }

    @Test func noTraitMeansNoExecutor() {
        #expect(throws: CassetteError.self) { _ = try testExecutor }
    }

    @Test(arguments: ["../../etc/x", "a/b", "..", ".hidden", "", "a\\b", "x\u{1}y"])
    func unsafeNamesAreRejected(name: String) throws {
        let error = try #require(throws: CassetteError.self) {
            try CassetteLocation.url(name: name, filePath: "/repo/Tests/FooTests.swift")
        }
        #expect(error.code == .invalidName)
    }

    @Test func conventionalPath() throws {
        let url = try CassetteLocation.url(name: "sum-two", filePath: "/repo/Tests/X/GraderTests.swift")
        #expect(url.path == "/repo/Tests/X/__Cassettes__/GraderTests/sum-two.sqlite")
    }
}
