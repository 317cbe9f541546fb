import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

@Suite("Fake rules files", .timeLimit(.minutes(1)))
struct FakeRuleSetTests {
    let sum = ExecutionRequest(
        code: "a, b = map(int, input().split())\nprint(a + b)\n", language: .python, stdin: "3 4\n")

    /// Writes `json` to a fresh temporary file.
    func file(_ json: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fake-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent("rules.json")
        try Data(json.utf8).write(to: url)
        return url
    }

    @Test func aFullRulesFileDrivesTheExecutor() async throws {
        let url = try file(
            #"""
            {
              "latencyMs": 0,
              "rules": [
                {"name": "sum", "match": {"language": "python", "codeContains": "a + b", "stdin": "3 4\n"},
                 "result": {"kind": "success", "stdout": "7\n"}},
                {"match": {"codeMatches": "while\\s+True"}, "result": {"kind": "timeLimit"}},
                {"match": {"files": {"data.csv": {"contains": "x,y"}, "flag": {}}},
                 "results": [{"kind": "transportError", "code": "connectionReset"}, {"kind": "success", "stdout": "ok\n"}],
                 "afterLast": "fail"},
                {"match": {"argv": ["make", "test"]}, "result": {"kind": "runtimeError", "exitCode": 2, "stderr": "boom"}},
                {"match": {"argvContains": "--crash"}, "result": {"kind": "killedBySignal", "signal": 11}},
                {"match": {"language": "cpp"}, "result": {"kind": "compileError", "stderr": "expected ';'"}},
                {"match": {"language": "sql"}, "result": {"kind": "sandboxError", "message": "no runner"}},
                {"match": {"stdinContains": "wrong"}, "result": {"kind": "wrongOutput", "stdout": "41\n"}},
                {"match": {"code": "print('raw')"}, "result": {"kind": "sandboxFusion", "response":
                  {"status": "Failed", "message": "", "compile_result": null,
                   "run_result": {"status": "Finished", "execution_time": 0.01, "return_code": -9, "stdout": "x\n", "stderr": ""},
                   "executor_pod_name": null, "files": {}}}}
              ],
              "default": {"kind": "runtimeError", "stderr": "no rule\n"}
            }
            """#)
        let fake = try FakeExecutor(rulesFile: url)
        #expect(fake.rules.count == 9)
        #expect(try await fake.execute(sum).stdoutText == "7\n")
        #expect(
            try await fake.execute(ExecutionRequest(code: "while  True: pass", language: .python)).run?.status
                == .timeLimitExceeded)
        let withFiles = ExecutionRequest(
            code: "x", language: .python, files: ["data.csv": Data("x,y\n".utf8), "flag": Data()])
        let first = await #expect(throws: ExecutionError.self) { try await fake.execute(withFiles) }
        #expect(first?.code == .connectionReset)
        #expect(try await fake.execute(withFiles).stdoutText == "ok\n")
        await #expect(throws: ExecutionError.self) { try await fake.execute(withFiles) }
        #expect(try await fake.execute(ExecutionRequest(argv: ["make", "test"])).run?.exitCode == 2)
        #expect(try await fake.execute(ExecutionRequest(argv: ["./a", "--crash"])).run?.signal == 11)
        #expect(
            try await fake.execute(ExecutionRequest(code: "int", language: .cpp)).compile?.stderrText == "expected ';'")
        #expect(try await fake.execute(ExecutionRequest(code: "select 1", language: .sql)).status == .sandboxError)
        #expect(
            try await fake.execute(ExecutionRequest(code: "y", language: .python, stdin: "wrong")).stdoutText == "41\n")
        let raw = try await fake.execute(ExecutionRequest(code: "print('raw')", language: .python))
        #expect(raw.run?.signal == 9)
        #expect(raw.hints.contains(.killedBySignal(step: .run, signal: 9)))
        #expect(raw.backend == .fake)
        let fallback = try await fake.execute(ExecutionRequest(code: "other", language: .python))
        #expect(fallback.run?.exitCode == 1)
        #expect(fallback.stderrText == "no rule\n")
    }

    @Test func emptyMatchMatchesEverythingAndLatencyIsRead() async throws {
        let clock = ManualClock()
        let ruleSet = try FakeRuleSet.decode(
            Data(#"{"latencyMs": 1500, "rules": [{"result": {"kind": "success", "stdout": "any\n"}}]}"#.utf8))
        let fake = try FakeExecutor(ruleSet: ruleSet, clock: clock)
        #expect(fake.latency == .milliseconds(1500))
        async let result = fake.execute(sum)
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .milliseconds(1500))
        #expect(try await result.stdoutText == "any\n")
    }

    @Test func theRuleSetRoundTripsThroughJSON() throws {
        let ruleSet = FakeRuleSet(
            rules: [
                .init(
                    name: "a", match: .init(language: .python, files: ["f": .init(contains: "x")]),
                    results: [.init(kind: .success, stdout: "1"), .init(kind: .timeLimit)], afterLast: .fail),
                .init(result: .init(kind: .transportError, code: .connectionReset)),
            ],
            default: .init(kind: .sandboxError, message: "m"), latencyMs: 3)
        let data = try JSONEncoder().encode(ruleSet)
        #expect(try FakeRuleSet.decode(data) == ruleSet)
        let json = try #require(String(data: data, encoding: .utf8))
        #expect(json.contains(#""kind":"transportError""#))
        #expect(json.contains(#""afterLast":"fail""#))
    }

    @Test(
        arguments: [
            // (json, rule index, path)
            (#"{"rules": [], "default": {"kind": "Success"}}"#, nil, "default.kind"),
            (#"{"rules": [{"results": [{"kind": "success"}, {"kind": "timeout"}]}]}"#, 0, "rules[0].results[1].kind"),
            (#"{"rules": [{"result": {"kind": "success"}}, {"result": {"kind": ""}}]}"#, 1, "rules[1].result.kind"),
        ] as [(String, Int?, String)])
    func anUnknownKindIsRejectedWithTheKnownKinds(json: String, ruleIndex: Int?, path: String) throws {
        let error = #expect(throws: FakeRulesError.self) {
            try FakeRuleSet.decode(Data(json.utf8), source: "rules.json")
        }
        #expect(error?.code == .invalidRule)
        #expect(error?.file == "rules.json")
        #expect(error?.ruleIndex == ruleIndex)
        #expect(error?.path == path)
        let names = FakeRuleSet.Answer.Kind.allCases.map(\.rawValue).joined(separator: ", ")
        #expect(error?.message.hasSuffix("; use one of " + names) == true, "\(String(describing: error))")
        #expect(names.hasPrefix("success, wrongOutput, runtimeError"))
    }

    @Test func aKindThatIsNotAStringIsInvalidJSON() throws {
        let error = #expect(throws: FakeRulesError.self) {
            try FakeRuleSet.decode(Data(#"{"rules": [{"result": {"kind": 3}}]}"#.utf8))
        }
        #expect(error?.code == .invalidJSON)
        #expect(error?.path == "rules[0].result.kind")
        #expect(error?.message.contains("expected a string") == true)
    }

    @Test func aMissingFileIsUnreadable() throws {
        let url = URL(fileURLWithPath: "/nonexistent/rules-\(UUID().uuidString).json")
        let error = #expect(throws: FakeRulesError.self) { try FakeExecutor(rulesFile: url) }
        #expect(error?.code == .unreadableFile)
        #expect(error?.file == url.path)
        #expect(error?.description.contains(url.path) == true)
    }

    @Test(
        arguments: [
            // (json, code, rule index, path, words in the message)
            (#"{"rules": [ {"#, "invalidJSON", nil, nil, "not valid JSON"),
            (#"[]"#, "invalidJSON", nil, nil, "expected"),
            (#"{"default": {"kind": "success"}}"#, "invalidJSON", nil, "rules", "missing required key \"rules\""),
            (#"{"rules": [], "latency": 5}"#, "invalidJSON", nil, "latency", "unknown key \"latency\""),
            (
                #"{"rules": [{"result": {"kind": "success"}}, {"match": {"codeContain": "x"}, "result": {"kind": "success"}}]}"#,
                "invalidJSON", 1, "rules[1].match.codeContain", "unknown key \"codeContain\""
            ),
            (
                #"{"rules": [{"result": {"kind": "success", "exitCode": "1"}}]}"#, "invalidJSON", 0,
                "rules[0].result.exitCode",
                "expected an integer"
            ),
            (
                #"{"rules": [{"result": {"stdout": "1"}}]}"#, "invalidJSON", 0, "rules[0].result.kind",
                "missing required key"
            ),
            (
                #"{"rules": [{"match": {}, "result": {"kind": "success"}}, {"match": {"language": "python"}}]}"#,
                "invalidRule", 1, "rules[1]", "no answer"
            ),
            (
                #"{"rules": [{"result": {"kind": "sucess"}}]}"#, "invalidRule", 0, "rules[0].result.kind",
                "unknown kind \"sucess\""
            ),
            (#"{"rules": [{"results": []}]}"#, "invalidRule", 0, "rules[0].results", "is empty"),
            (
                #"{"rules": [{"result": {"kind": "success"}, "results": [{"kind": "success"}]}]}"#, "invalidRule", 0,
                "rules[0]",
                "both"
            ),
            (
                #"{"rules": [{"result": {"kind": "success"}, "afterLast": "loop"}]}"#, "invalidRule", 0,
                "rules[0].afterLast",
                "unknown afterLast \"loop\""
            ),
            (
                #"{"rules": [{"match": {"codeMatches": "(x"}, "result": {"kind": "success"}}]}"#, "invalidRule", 0,
                "rules[0].match.codeMatches", "does not compile"
            ),
            (
                #"{"rules": [{"result": {"kind": "success", "exitCode": 3}}]}"#, "invalidRule", 0, "rules[0].result",
                "\"exitCode\" does not apply to kind \"success\""
            ),
            (
                #"{"rules": [{"results": [{"kind": "success"}, {"kind": "timeLimit", "signal": 9}]}]}"#, "invalidRule",
                0,
                "rules[0].results[1]", "\"signal\" does not apply"
            ),
            (
                #"{"rules": [{"result": {"kind": "sandboxFusion"}}]}"#, "invalidRule", 0, "rules[0].result",
                "needs \"response\""
            ),
            (
                #"{"rules": [{"match": {"files": {"a": {"equals": "1", "contains": "2"}}}, "result": {"kind": "success"}}]}"#,
                "invalidRule", 0, "rules[0].match.files.a", "both"
            ),
            (
                #"{"rules": [{"result": {"kind": "success"}, "latencyMs": -1}]}"#, "invalidRule", 0,
                "rules[0].latencyMs", ">= 0"
            ),
        ] as [(String, String, Int?, String?, String)])
    func badFilesGiveLocatedTypedErrors(json: String, code: String, ruleIndex: Int?, path: String?, words: String)
        throws
    {
        let url = try file(json)
        let error = #expect(throws: FakeRulesError.self) { try FakeExecutor(rulesFile: url) }
        #expect(error?.code.rawValue == code)
        #expect(error?.ruleIndex == ruleIndex)
        #expect(error?.path == path)
        #expect(error?.file == url.path)
        #expect(error?.message.contains(words) == true, "\(String(describing: error))")
        if let ruleIndex { #expect(error?.description.contains("rule #\(ruleIndex)") == true) }
    }
}
