import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// Runs the built `sandbox-vcr grade` end to end: the committed offline demo, cassette misses, bad problems,
/// the fake backend, and recording from a loopback server that answers like the recorded exchanges.
@Suite struct GradeCommandTests {
    let folder: URL
    static let root = SandboxVCRTool.root
    static let problems = root.appendingPathComponent("Fixtures/grading-demo/problems.jsonl")
    static let exchanges = root.appendingPathComponent("Fixtures/grading-demo/exchanges.jsonl")
    static let cassette = root.appendingPathComponent("Fixtures/grading-demo/cassette.sqlite")

    init() throws {
        folder = try SandboxVCRTool.makeFolder("grade-cli")
    }

    /// The demo problems' lines, and each candidate's intent by `problem/candidate`.
    static func demoProblems() throws -> (lines: [String], intents: [String: String]) {
        let lines = try String(contentsOf: problems, encoding: .utf8).split(separator: "\n").map(String.init)
        var intents: [String: String] = [:]
        for line in lines {
            let problem = try SandboxVCRTool.object(line)
            for candidate in problem["candidates"] as? [[String: Any]] ?? [] {
                intents["\(problem["id"] as? String ?? "")/\(candidate["id"] as? String ?? "")"] =
                    candidate["intent"] as? String
            }
        }
        return (lines, intents)
    }

    /// Rewards by `problem/candidate` from `grade --json` output.
    static func rewards(_ json: [String: Any]) -> [String: Double] {
        var rewards: [String: Double] = [:]
        for problem in json["problems"] as? [[String: Any]] ?? [] {
            for candidate in problem["candidates"] as? [[String: Any]] ?? [] {
                rewards["\(problem["id"] as? String ?? "")/\(candidate["id"] as? String ?? "")"] =
                    candidate["reward"] as? Double
            }
        }
        return rewards
    }

    // MARK: The committed demo

    @Test func defaultDemoGradesOfflineAndLeavesTheCassetteUnchanged() async throws {
        let before = try Data(contentsOf: Self.cassette)
        let graded = try await SandboxVCRTool.run(["grade"], currentDirectory: Self.root)
        #expect(graded.status == 0, "\(graded.stderrText)")
        let (lines, _) = try Self.demoProblems()
        #expect(lines.count == 12)
        for line in lines {
            let id = try #require(try SandboxVCRTool.object(line)["id"] as? String)
            #expect(graded.stdoutText.contains(id + " "), "the table lists \(id)")
        }
        #expect(graded.stdoutText.contains("Expectations met: yes"))
        #expect(!graded.stdoutText.contains("execution error"))
        #expect(try Data(contentsOf: Self.cassette) == before, "never mode must not write the committed cassette")
        for suffix in ["-wal", "-shm", "-journal"] {
            #expect(!FileManager.default.fileExists(atPath: Self.cassette.path + suffix), "nothing left beside it")
        }
    }

    @Test func committedCassetteMatchesTheExchangesInRollbackJournalMode() async throws {
        let fresh = folder.appendingPathComponent("fresh.sqlite").path
        let imported = try await SandboxVCRTool.run(["cassette", "import", fresh, Self.exchanges.path])
        #expect(imported.status == 0, "\(imported.stderrText)")
        func export(_ path: String) async throws -> String {
            let output = try await SandboxVCRTool.run(["cassette", "export", path])
            #expect(output.status == 0, "\(output.stderrText)")
            return output.stdoutText.replacing(/"recorded_at":[^,]+,/, with: "")
        }
        let committed = try await export(Self.cassette.path)
        #expect(committed.split(separator: "\n").count == 96)
        #expect(committed == (try await export(fresh)), "run Tools/make-demo-cassette after changing the exchanges")
        // Byte 18 of a SQLite header is 1 for a rollback journal, 2 for WAL: a read-only open of a WAL file
        // creates -wal and -shm files beside it.
        let header = try FileHandle(forReadingFrom: Self.cassette).read(upToCount: 20) ?? Data()
        #expect(
            header.count == 20 && header[18] == 1, "Tools/make-demo-cassette leaves the file in journal mode DELETE")
    }

    @Test func demoAsJSONRewardsMatchIntents() async throws {
        let graded = try await SandboxVCRTool.run(["grade", "--json"], currentDirectory: Self.root)
        #expect(graded.status == 0, "\(graded.stderrText)")
        let json = try SandboxVCRTool.object(graded.stdoutText)
        #expect(json["expectationsMet"] as? Bool == true)
        #expect(json["executionErrorCount"] as? Int == 0)
        #expect(json["testCount"] as? Int == 96)
        let rewards = Self.rewards(json)
        let (_, intents) = try Self.demoProblems()
        #expect(rewards.count == intents.count)
        #expect(intents.values.contains("correct") && intents.values.contains { $0 != "correct" })
        for (name, intent) in intents {
            #expect(rewards[name] == (intent == "correct" ? 1.0 : 0.0), "\(name) (\(intent))")
        }
    }

    @Test func emptyCassetteInNeverModeReportsMisses() async throws {
        let empty = folder.appendingPathComponent("empty.sqlite")
        await (try Cassette.open(at: empty)).close()
        let graded = try await SandboxVCRTool.run(
            ["grade", "--cassette", empty.path, "--record", "never", "--problems", Self.problems.path])
        #expect(graded.status == 1)
        #expect(graded.stdoutText.contains("96 execution error(s)"))
        #expect(graded.stdoutText.contains("Execution errors (no result):"))
        #expect(graded.stdoutText.contains("No recording matches this request"))
        #expect(graded.stdoutText.contains("Expectations met: NO"))

        let asJSON = try await SandboxVCRTool.run(
            ["grade", "--cassette", empty.path, "--json", "--problems", Self.problems.path])
        #expect(asJSON.status == 1, "without a live backend grade replays only")
        #expect(try SandboxVCRTool.object(asJSON.stdoutText)["executionErrorCount"] as? Int == 96)

        let missing = try await SandboxVCRTool.run(
            [
                "grade", "--cassette", folder.appendingPathComponent("none.sqlite").path, "--problems",
                Self.problems.path,
            ])
        #expect(missing.status == 2)
        #expect(missing.stderrText.hasPrefix("sandbox-vcr grade: cassette io"), "\(missing.stderrText)")
        #expect(missing.stderrText.contains("none.sqlite"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("none.sqlite").path))
    }

    @Test func badProblemsFileNamesTheLine() async throws {
        let (lines, _) = try Self.demoProblems()
        let bad = try SandboxVCRTool.write(lines[0] + "\n{\"id\": \"broken\"\n", to: "bad.jsonl", in: folder)
        let graded = try await SandboxVCRTool.run(["grade", "--problems", bad], currentDirectory: Self.root)
        #expect(graded.status == 64)
        #expect(graded.stderrText.contains("bad.jsonl"), "\(graded.stderrText)")
        #expect(graded.stderrText.contains("line 2"), "\(graded.stderrText)")
        #expect(graded.stdoutText.isEmpty)
        #expect(!graded.stderrText.contains("Usage:"))

        let elsewhere = try await SandboxVCRTool.run(["grade"], currentDirectory: folder)
        #expect(elsewhere.status == 64)
        #expect(elsewhere.stderrText.contains("repository root"), "\(elsewhere.stderrText)")

        let absent = try await SandboxVCRTool.run(
            ["grade", "--problems", folder.appendingPathComponent("absent.jsonl").path])
        #expect(absent.status == 64)
        #expect(absent.stderrText.contains("absent.jsonl"))

        let both = try await SandboxVCRTool.run(["grade", "--no-cassette", "--cassette", "x.sqlite"])
        #expect(both.status == 64)
        let recordWithout = try await SandboxVCRTool.run(["grade", "--no-cassette", "--record", "never"])
        #expect(recordWithout.status == 64)
        #expect(recordWithout.stderrText.contains("--no-cassette excludes"))
    }

    @Test func fakeBackendWithoutCassette() async throws {
        let problems = try SandboxVCRTool.write(
            """
            {"id": "seven", "title": "Print seven", "statement": "Print 7.", "time_limit_s": 1, \
            "tests": [{"input": "", "output": "7\\n"}, {"input": "x\\n", "output": "7\\n"}], \
            "candidates": [{"id": "right", "language": "python", "intent": "correct", "code": "print(7)"}, \
            {"id": "wrong", "language": "python", "intent": "wrong_answer", "code": "print(8)"}]}

            """, to: "seven.jsonl", in: folder)
        let rules = try SandboxVCRTool.write(
            """
            {"rules": [
              {"match": {"code": "print(7)"}, "result": {"kind": "success", "stdout": "7  \\n\\n"}},
              {"match": {"code": "print(8)"}, "result": {"kind": "success", "stdout": "8\\n"}}
            ]}
            """, to: "rules.json", in: folder)

        let graded = try await SandboxVCRTool.run(
            ["grade", "--backend", "fake", "--rules", rules, "--no-cassette", "--problems", problems, "--json"],
            currentDirectory: folder)
        #expect(graded.status == 0, "\(graded.stderrText)")
        let json = try SandboxVCRTool.object(graded.stdoutText)
        #expect(Self.rewards(json) == ["seven/right": 1.0, "seven/wrong": 0.0])
        #expect(json["testCount"] as? Int == 4)

        let table = try await SandboxVCRTool.run(
            ["grade", "--no-cassette", "--rules", rules, "--problems", problems],
            environment: ["SANDBOX_BACKEND": "fake"],
            currentDirectory: folder)
        #expect(table.status == 0, "\(table.stderrText)")
        #expect(table.stdoutText.contains("test 0: wrongOutput"))
        #expect(table.stdoutText.contains("Expectations met: yes"))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("Fixtures").path))
    }

    // MARK: Recording

    /// A handler answering each `/run_code` request with the recorded exchange for the same request.
    static func exchangeHandler() throws -> LoopbackHTTPServer.Handler {
        var answers: [ExecutionRequest: Data] = [:]
        for line in try String(contentsOf: exchanges, encoding: .utf8).split(separator: "\n") {
            let exchange = try JSONValue(data: Data(line.utf8))
            let body = try #require(exchange["request"]?["body"])
            let response = try #require(exchange["response"])
            answers[try request(from: body.encoded())] = response.encoded()
        }
        let table = answers
        return { received in
            guard received.path == "/run_code", let asked = try? request(from: received.body),
                let answer = table[asked]
            else {
                return .respond(.json(status: 404, #"{"detail": "no recorded exchange for this request"}"#))
            }
            return .respond(.json(answer))
        }
    }

    static func request(from body: Data) throws -> ExecutionRequest {
        try SandboxFusionWire.request(from: try JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: body))
    }

    @Test func recordsFromALiveServerThenReplaysWithItStopped() async throws {
        let (lines, _) = try Self.demoProblems()
        let problems = try SandboxVCRTool.write(lines[0] + "\n", to: "one.jsonl", in: folder)
        let cassette = folder.appendingPathComponent("recorded.sqlite").path
        let server = try LoopbackHTTPServer(handler: try Self.exchangeHandler())

        let recorded = try await SandboxVCRTool.run(
            ["grade", "--problems", problems, "--cassette", cassette, "--url", server.baseURL, "--json"])
        #expect(recorded.status == 0, "\(recorded.stderrText)")
        let recordedJSON = try SandboxVCRTool.object(recorded.stdoutText)
        let testCount = try #require(recordedJSON["testCount"] as? Int)
        #expect(testCount == 12)
        #expect(server.statistics.requests == testCount)
        #expect(recordedJSON["expectationsMet"] as? Bool == true)
        server.shutdown()

        let replayed = try await SandboxVCRTool.run(["grade", "--problems", problems, "--cassette", cassette, "--json"])
        #expect(replayed.status == 0, "\(replayed.stderrText)")
        let replayedJSON = try SandboxVCRTool.object(replayed.stdoutText)
        #expect(Self.rewards(replayedJSON) == Self.rewards(recordedJSON))
        #expect(replayedJSON["executionErrorCount"] as? Int == 0)

        let stats = try await SandboxVCRTool.run(["cassette", "stats", "--json", cassette])
        #expect(try SandboxVCRTool.object(stats.stdoutText)["interactions"] as? Int == testCount)
    }
}
