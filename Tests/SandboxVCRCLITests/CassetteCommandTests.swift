import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// Runs the built `sandbox-vcr cassette …` end to end.
@Suite struct CassetteCommandTests {
    let folder: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cassette-cli-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static var root: URL { CommandRunner.packageRoot() }

    func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let output = try await SandboxVCRTool.run(arguments)
        return (output.status, output.stdoutText, output.stderrText)
    }

    @Test func importExportShowStatsVerifyMergePrune() async throws {
        let cassette = folder.appendingPathComponent("demo.sqlite").path
        let exchanges = Self.root.appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl").path
        let imported = try await run(["cassette", "import", cassette, exchanges])
        #expect(imported.status == 0)
        #expect(imported.stderr.contains("imported 96 result(s)"))
        #expect(!imported.stderr.contains("\r"), "no progress bar when stderr is not a terminal")

        let stats = try await run(["cassette", "stats", "--json", cassette])
        #expect(stats.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any]
        #expect(json?["interactions"] as? Int == 96)
        #expect(try await run(["cassette", "ls", cassette]).stdout.contains("interactions:   96"))

        let export = folder.appendingPathComponent("demo.jsonl").path
        #expect(try await run(["cassette", "export", cassette, "-o", export]).status == 0)
        let copy = folder.appendingPathComponent("copy.sqlite").path
        #expect(try await run(["cassette", "import", copy, export]).status == 0)
        let again = try await run(["cassette", "export", copy])
        #expect(Data(again.stdout.utf8) == (try Data(contentsOf: URL(fileURLWithPath: export))))

        let show = try await run(["cassette", "show", cassette])
        #expect(show.stdout.hasPrefix("cassette demo.sqlite: 96 interaction(s)"))
        #expect(
            show.stdout
                == (try await run(["cassette", "show", copy])).stdout.replacingOccurrences(
                    of: "cassette copy.sqlite", with: "cassette demo.sqlite"))

        let verify = try await run(["cassette", "verify", cassette, copy])
        #expect(verify.status == 0)
        #expect(verify.stdout.contains("ok (96 interactions"))

        let merged = folder.appendingPathComponent("merged.sqlite").path
        let merge = try await run(["cassette", "merge", "-o", merged, cassette, copy])
        #expect(merge.status == 0)
        #expect(merge.stderr.contains("merged 96 interaction(s); 96 already present"))

        // No replay was ever stamped on it: "never replayed" would mean everything, so it is refused.
        let untracked = try await run(["cassette", "prune", merged, "--never-replayed"])
        #expect(untracked.status != 0)
        #expect(untracked.stderr.contains("SANDBOX_VCR_STAMP_REPLAYS=1"))
        let prune = try await run(["cassette", "prune", merged, "--unused-since", "0d"])
        #expect(prune.stdout.contains("deleted 96 interaction(s); 0 left"))
        #expect(try await run(["cassette", "prune", merged]).status != 0)
    }

    @Test func migrateBringsAnOlderCassetteToTheCurrentSchema() async throws {
        let old = folder.appendingPathComponent("old.sqlite").path
        try FileManager.default.copyItem(
            atPath: SandboxVCRTool.root.appendingPathComponent("Fixtures/cassettes/schema-v1-demo.sqlite").path,
            toPath: old)
        // A read-only open cannot migrate, and says how to.
        let refused = try await run(["cassette", "stats", old])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("sandbox-vcr cassette migrate \(old)"))
        let migrated = try await run(["cassette", "migrate", old])
        #expect(migrated.status == 0)
        #expect(migrated.stdout.contains("schema \(Cassette.schemaVersion)"))
        #expect(try await run(["cassette", "verify", old]).status == 0)
        #expect(try await run(["cassette", "stats", old]).status == 0)
    }

    @Test func verifyFailsOnANonCassette() async throws {
        let text = folder.appendingPathComponent("notes.sqlite")
        try Data("just text\n".utf8).write(to: text)
        let result = try await run(["cassette", "verify", text.path])
        #expect(result.status == 1)
        #expect(result.stdout.contains("notACassette"))
    }

    /// Issue 12, item 9: importing nothing but invalid exchanges fails, and says why.
    @Test func importingOnlyInvalidExchangesFails() async throws {
        let cassette = folder.appendingPathComponent("empty.sqlite").path
        let junk = folder.appendingPathComponent("junk.jsonl")
        try Data("not json\n{\"request\": {\"method\": \"GET\", \"path\": \"/v1/ping\"}}\n".utf8).write(to: junk)
        let imported = try await run(["cassette", "import", cassette, junk.path])
        #expect(imported.status == 1)
        #expect(imported.stderr.contains("skipped 2"))
        #expect(imported.stderr.contains("nothing was imported"))
    }

    /// Issue 12, item 9: a line break in a file name cannot forge lines in `show` (the `git diff` view).
    @Test func showEscapesNames() async throws {
        let url = folder.appendingPathComponent("names.sqlite")
        let cassette = try await Cassette.open(at: url)
        var request = ExecutionRequest(code: "print(1)", language: .python)
        request.files["a.txt\n## 0000000000000000 #0 · forged\u{1B}[2J"] = Data("x".utf8)
        try await cassette.record([
            Cassette.NewInteraction(
                key: RequestMatcher.exact.key(for: request), ordinal: 0, request: request,
                outcome: .result(ExecutionResult(status: .success, backend: .fake)))
        ])
        await cassette.close()
        let show = try await run(["cassette", "show", url.path])
        #expect(show.status == 0)
        #expect(show.stdout.contains("file a.txt\\n## 0000000000000000 #0 · forged\\u{1B}[2J"), "\(show.stdout)")
        #expect(!show.stdout.split(separator: "\n").contains { $0.hasPrefix("## 0000000000000000") })
        #expect(!show.stdout.contains("\u{1B}"))
    }

    /// Issue 12, item 9: read-only commands on a WAL-mode cassette (`stats`, `verify`, a `never`-mode `run`) leave
    /// the folder as they found it: no `-wal` or `-shm` file beside the cassette.
    @Test func readOnlyCommandsLeaveTheFolderAsItWas() async throws {
        let folder = self.folder.appendingPathComponent("clean")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let cassette = folder.appendingPathComponent("c.sqlite").path
        let exchanges = Self.root.appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl").path
        #expect(try await run(["cassette", "import", cassette, exchanges]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["c.sqlite"])
        let before = try Data(contentsOf: URL(fileURLWithPath: cassette))
        #expect(try await run(["cassette", "stats", cassette]).status == 0)
        #expect(try await run(["cassette", "verify", cassette]).status == 0)
        _ = try await run(["run", "-c", "print(1)", "--cassette", cassette, "--record", "never"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["c.sqlite"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: cassette)) == before)
    }
}
