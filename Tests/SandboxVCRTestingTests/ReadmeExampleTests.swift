import Foundation
import SandboxVCRTesting
import Testing

// The README's example (Tools/README-fake-snippet.md), kept compiling and passing.

/// Your grading code depends on `any SandboxExecutor` only.
func passes(_ code: String, stdin: String, expected: String, on executor: any SandboxExecutor) async throws -> Bool {
    let result = try await executor.execute(ExecutionRequest(code: code, language: .python, stdin: stdin))
    return result.isSuccess && Grader.outputsMatch(expected: expected, actual: result.stdoutText)
}

@Suite("README example", .timeLimit(.minutes(1)))
struct ReadmeExampleTests {
    @Test func gradingLogic() async throws {
        let fake = FakeExecutor()
        fake.on(.codeContains("a + b"), answer: .success(stdout: "7  \n\n"))  // trailing white space is ignored
        fake.on(.codeContains("a - b"), answer: .wrongOutput(stdout: "-1\n"))
        fake.on(.codeContains("raise"), answer: .runtimeError(exitCode: 1, stderr: "Traceback ..."))
        fake.on(.codeContains("while True"), answer: .timeLimit)
        fake.on(.language(.cpp), answer: .compileError(stderr: "error: expected ';'"))
        // A script: the nth matching call gets the nth answer (then the last repeats, or `afterLast: .fail`).
        fake.on(.codeContains("flaky"), answers: [.transportError(.connectionReset), .success(stdout: "7\n")])

        #expect(try await passes("print(a + b)", stdin: "3 4\n", expected: "7\n", on: fake))
        #expect(try await !passes("print(a - b)", stdin: "3 4\n", expected: "7\n", on: fake))
        #expect(fake.requestCount == 2)
        #expect(fake.requests.first?.stdinText == "3 4\n")
    }

    @Test func manualClock() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(stdout: "hi\n"), latency: .seconds(5), clock: clock)
        async let result = fake.execute(ExecutionRequest(code: "print('hi')", language: .python))
        await clock.waitForSleepers(count: 1)  // the call is now suspended
        clock.advance(by: .seconds(5))  // ...and now it answers
        #expect(try await result.stdoutText == "hi\n")
    }

    @Test func rulesFileExampleParses() throws {
        let json = """
            {
              "latencyMs": 0,
              "rules": [
                {"name": "sum", "match": {"language": "python", "codeContains": "a + b", "stdin": "3 4\\n"},
                 "result": {"kind": "success", "stdout": "7\\n"}},
                {"match": {"codeMatches": "while\\\\s+True"}, "result": {"kind": "timeLimit"}},
                {"match": {"files": {"data.csv": {"contains": "x,y"}}},
                 "results": [{"kind": "transportError", "code": "connectionReset"}, {"kind": "success", "stdout": "ok\\n"}],
                 "afterLast": "repeatLast", "latencyMs": 20}
              ],
              "default": {"kind": "runtimeError", "exitCode": 1, "stderr": "no rule matched\\n"}
            }
            """
        let fake = try FakeExecutor(ruleSet: FakeRuleSet.decode(Data(json.utf8)))
        #expect(fake.rules.count == 3)
        #expect(fake.rules[2].latency == .milliseconds(20))
        #expect(fake.defaultOutcome != nil)
    }
}
