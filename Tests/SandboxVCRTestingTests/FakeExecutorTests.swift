import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

@Suite("FakeExecutor rules, scripts and request log")
struct FakeExecutorTests {
    let sum = ExecutionRequest(
        code: "a, b = map(int, input().split())\nprint(a + b)\n", language: .python, stdin: "3 4\n")

    @Test func firstMatchingRuleAnswersInOrder() async throws {
        let fake = FakeExecutor()
        fake.on(.language(.cpp), answer: .compileError(stderr: "error"))
        fake.on(.codeContains("a + b"), answer: .success(stdout: "7\n"))
        fake.on(.language(.python), answer: .success(stdout: "never\n"))
        let result = try await fake.execute(sum)
        #expect(result.stdoutText == "7\n")
        #expect(result.status == .success)
        #expect(result.backend == .fake)
        let cpp = try await fake.execute(ExecutionRequest(code: "int main() {}", language: .cpp))
        #expect(cpp.status == .failed)
        #expect(cpp.compile?.stderrText == "error")
        #expect(cpp.run == nil)
    }

    @Test func matchersOnEveryField() throws {
        let request = ExecutionRequest(
            code: "import sys\nprint(sys.stdin.read())", language: .python,
            files: ["data.txt": Data("x,y\n1,2\n".utf8)], stdin: "hello world\n")
        let command = ExecutionRequest(argv: ["pytest", "-q", "tests/"], stdin: "")
        #expect(FakeMatcher.any.matches(request))
        #expect(FakeMatcher.language(.python).matches(request))
        #expect(!FakeMatcher.language(.cpp).matches(request))
        #expect(!FakeMatcher.language(.python).matches(command))
        #expect(FakeMatcher.codeEquals("import sys\nprint(sys.stdin.read())").matches(request))
        #expect(!FakeMatcher.codeEquals("import sys").matches(request))
        #expect(FakeMatcher.codeContains("stdin.read").matches(request))
        #expect(try FakeMatcher.codeMatches(#"print\(sys\.\w+"#).matches(request))
        #expect(try !FakeMatcher.codeMatches("^print").matches(request))
        #expect(try FakeMatcher.codeMatches("(?m)^print").matches(request))
        #expect(FakeMatcher.stdinEquals("hello world\n").matches(request))
        #expect(!FakeMatcher.stdinEquals("hello world").matches(request))
        #expect(FakeMatcher.stdinContains("world").matches(request))
        #expect(FakeMatcher.file("data.txt").matches(request))
        #expect(!FakeMatcher.file("other.txt").matches(request))
        #expect(FakeMatcher.file("data.txt", equals: "x,y\n1,2\n").matches(request))
        #expect(FakeMatcher.file("data.txt", contains: "1,2").matches(request))
        #expect(!FakeMatcher.file("data.txt", contains: "3,4").matches(request))
        #expect(FakeMatcher.argvEquals(["pytest", "-q", "tests/"]).matches(command))
        #expect(!FakeMatcher.argvEquals(["pytest"]).matches(command))
        #expect(FakeMatcher.argvContains("-q").matches(command))
        #expect(!FakeMatcher.argvContains("-q").matches(request))
        #expect(FakeMatcher.request(request).matches(request))
        #expect(!FakeMatcher.request(request).matches(command))
        let both = FakeMatcher.language(.python) && .stdinContains("hello")
        #expect(both.matches(request))
        #expect(!(both && .codeContains("nope")).matches(request))
        #expect(both.description == #"language == python && stdin contains "hello""#)
        let custom = FakeMatcher("two files") { $0.files.count == 2 }
        #expect(!custom.matches(request))
        // Only `.any` itself is dropped from a combination, not a matcher that happens to share its name.
        let impostor = FakeMatcher("any request") { _ in false }
        #expect(!(FakeMatcher.any && impostor).matches(request))
        #expect(!(impostor && .any).matches(request))
    }

    @Test func badRegexIsATypedError() {
        let error = #expect(throws: FakeRulesError.self) { try FakeMatcher.codeMatches("(unclosed") }
        #expect(error?.code == .invalidRule)
        #expect(error?.message.contains("(unclosed") == true)
    }

    @Test func closureRuleSeesTheRequest() async throws {
        let fake = FakeExecutor()
        fake.on(.language(.python)) { request in
            let numbers = request.stdinText.split(separator: " ").compactMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return ExecutionResult(
                status: .success,
                run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data("\(numbers.reduce(0, +))\n".utf8)),
                backend: .fake)
        }
        #expect(try await fake.execute(sum).stdoutText == "7\n")
        let other = ExecutionRequest(code: "x", language: .python, stdin: "10 -3\n")
        #expect(try await fake.execute(other).stdoutText == "7\n")
        #expect(
            try await fake.execute(ExecutionRequest(code: "x", language: .python, stdin: "1 1\n")).stdoutText == "2\n")
    }

    @Test func closureErrorsPropagate() async throws {
        struct Boom: Error {}
        let fake = FakeExecutor(default: .respond(label: "boom") { _ in throw Boom() })
        await #expect(throws: Boom.self) { try await fake.execute(sum) }
    }

    @Test func scriptGivesTheNthAnswerThenRepeatsTheLast() async throws {
        let fake = FakeExecutor()
        fake.script([.transportError(.connectionReset), .success(stdout: "1\n"), .success(stdout: "2\n")])
        let first = await #expect(throws: ExecutionError.self) { try await fake.execute(sum) }
        #expect(first?.code == .connectionReset)
        #expect(try await fake.execute(sum).stdoutText == "1\n")
        #expect(try await fake.execute(sum).stdoutText == "2\n")
        #expect(try await fake.execute(sum).stdoutText == "2\n")
        #expect(try await fake.execute(sum).stdoutText == "2\n")
        #expect(fake.requestCount == 5)
    }

    @Test func scriptThatFailsAfterTheLast() async throws {
        let fake = FakeExecutor()
        fake.on(.codeContains("a + b"), answers: [.success(stdout: "7\n")], afterLast: .fail)
        #expect(try await fake.execute(sum).stdoutText == "7\n")
        let error = await #expect(throws: ExecutionError.self) { try await fake.execute(sum) }
        #expect(error?.code == .unmatchedRequest)
        #expect(error?.message.contains("has given all 1 of its answers") == true)
        #expect(error?.message.contains("request #2") == true)
        #expect(error?.message.contains("call 2") == true)
    }

    @Test func scriptThatFallsThroughToLaterRulesAndTheDefault() async throws {
        let fake = FakeExecutor(default: .runtimeError(exitCode: 3))
        fake.on(.codeContains("a + b"), answers: [.success(stdout: "first\n")], afterLast: .fallThrough)
        fake.on(.stdinEquals("3 4\n"), answers: [.success(stdout: "second\n")], afterLast: .fallThrough)
        #expect(try await fake.execute(sum).stdoutText == "first\n")
        #expect(try await fake.execute(sum).stdoutText == "second\n")
        let third = try await fake.execute(sum)
        #expect(third.run?.exitCode == 3)
        #expect(third.status == .failed)
    }

    @Test func scriptsCountPerRuleAndResetRestartsThem() async throws {
        let fake = FakeExecutor()
        fake.on(.language(.python), answers: [.success(stdout: "p1\n"), .success(stdout: "p2\n")])
        fake.on(.language(.bash), answers: [.success(stdout: "b1\n"), .success(stdout: "b2\n")])
        let bash = ExecutionRequest(code: "echo", language: .bash)
        #expect(try await fake.execute(sum).stdoutText == "p1\n")
        #expect(try await fake.execute(bash).stdoutText == "b1\n")
        #expect(try await fake.execute(sum).stdoutText == "p2\n")
        fake.reset()
        #expect(fake.requestCount == 0)
        #expect(try await fake.execute(bash).stdoutText == "b1\n")
        #expect(fake.rules.count == 2)
    }

    @Test func requestLogRecordsEveryRequestInOrderMatchedOrNot() async throws {
        let fake = FakeExecutor()
        fake.on(.language(.python), answer: .success())
        let bash = ExecutionRequest(code: "echo hi", language: .bash)
        _ = try await fake.execute(sum)
        _ = try? await fake.execute(bash)
        _ = try await fake.execute(sum)
        #expect(fake.requests == [sum, bash, sum])
        #expect(fake.requestCount == 3)
        #expect(fake.requests(matching: .language(.bash)) == [bash])
        fake.isRecordingRequests = false
        _ = try await fake.execute(sum)
        #expect(fake.requestCount == 4)
        #expect(fake.requests.count == 3)
        fake.reset()
        #expect(fake.requestCount == 0 && fake.requests.isEmpty)
    }

    @Test func concurrentCallsAreAllRecordedAndScriptsHandOutEachAnswerOnce() async throws {
        let fake = FakeExecutor()
        fake.script((0..<200).map { .success(stdout: "\($0)\n") }, afterLast: .fail)
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<200 { group.addTask { try await fake.execute(sum).stdoutText } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(outputs.count == 200)
        #expect(fake.requestCount == 200)
        await #expect(throws: ExecutionError.self) { try await fake.execute(sum) }
    }

    @Test func unmatchedRequestFailsLoudlyNamingTheRequestAndListingTheRules() async throws {
        let fake = FakeExecutor()
        fake.on(.language(.cpp), answer: .success(stdout: "cpp\n"))
        fake.add(FakeRule(.codeContains("a - b"), answer: .wrongOutput(stdout: "-1\n"), name: "minus"))
        _ = try? await fake.execute(ExecutionRequest(code: "int main(){}", language: .cpp))
        let error = await #expect(throws: ExecutionError.self) { try await fake.execute(sum) }
        let message = try #require(error?.message)
        #expect(error?.code == .unmatchedRequest)
        #expect(message.contains("no rule for request #2"))
        #expect(message.contains(sum.summary))
        #expect(message.contains(#"code: "a, b = map(int, input().split())\nprint(a + b)\n""#))
        #expect(message.contains(#"stdin: "3 4\n""#))
        #expect(message.contains(#"#0 language == cpp -> Success(stdout: "cpp\n")"#))
        #expect(message.contains(#"#1 "minus": code contains "a - b" -> Success(stdout: "-1\n")"#))
        #expect(message.contains("set a default outcome"))
    }

    @Test func unmatchedWithNoRulesSaysSo() async throws {
        let fake = FakeExecutor()
        let error = await #expect(throws: ExecutionError.self) {
            try await fake.execute(ExecutionRequest(argv: ["ls", "-l"]))
        }
        #expect(error?.message.contains(#"argv: ["ls", "-l"]"#) == true)
        #expect(error?.message.contains("It has no rules at all.") == true)
    }

    @Test func defaultOutcomeAnswersWhatNoRuleMatches() async throws {
        let fake = FakeExecutor()
        fake.defaultOutcome = .sandboxError(message: "no runner")
        let result = try await fake.execute(sum)
        #expect(result.status == .sandboxError)
        #expect(result.message == "no runner")
        fake.defaultOutcome = nil
        await #expect(throws: ExecutionError.self) { try await fake.execute(sum) }
    }
}

@Suite("FakeOutcome ready-made results")
struct FakeOutcomeTests {
    let request = ExecutionRequest(code: "print(1)", language: .python, runTimeout: .seconds(2))

    func answer(_ outcome: FakeOutcome) async throws -> ExecutionResult {
        try await FakeExecutor(default: outcome).execute(request)
    }

    @Test func success() async throws {
        let result = try await answer(.success(stdout: "1\n", stderr: "warn"))
        #expect(result.status == .success)
        #expect(
            result.run
                == CommandOutcome(status: .finished, exitCode: 0, stdout: Data("1\n".utf8), stderr: Data("warn".utf8)))
        #expect(result.backend == .fake)
        #expect(try await answer(.wrongOutput(stdout: "2\n")) == (try await answer(.success(stdout: "2\n"))))
    }

    @Test func runtimeError() async throws {
        let result = try await answer(.runtimeError(exitCode: 3, stderr: "Traceback"))
        #expect(result.status == .failed)
        #expect(result.run?.exitCode == 3)
        #expect(result.stderrText == "Traceback")
        #expect(result.status == ExecutionResult.derivedStatus(compile: result.compile, run: result.run))
    }

    @Test func compileError() async throws {
        let result = try await answer(.compileError(stderr: "expected ';'"))
        #expect(result.status == .failed)
        #expect(result.compile?.exitCode == 1)
        #expect(result.compile?.status == .finished)
        #expect(result.run == nil)
    }

    @Test func timeLimitTakesTheRequestsRunTimeout() async throws {
        let result = try await answer(.timeLimit)
        #expect(result.status == .failed)
        #expect(result.run?.status == .timeLimitExceeded)
        #expect(result.run?.exitCode == nil)
        #expect(result.run?.wallTime == 2)
        #expect(try await answer(.timeLimit(stdout: "partial")).stdoutText == "partial")
    }

    @Test func killedBySignal() async throws {
        let result = try await answer(.killedBySignal(11))
        #expect(result.status == .failed)
        #expect(result.run?.signal == 11)
        #expect(result.run?.exitCode == nil)
        #expect(result.hints == [.killedBySignal(step: .run, signal: 11)])
        // The wire form is SandboxFusion's negative return code.
        #expect(SandboxFusionWire.response(from: result).run_result?.return_code == -11)
    }

    @Test func sandboxError() async throws {
        let result = try await answer(.sandboxError(message: "exception on running code select 1;: 'sql' None"))
        #expect(result.status == .sandboxError)
        #expect(result.run == nil && result.compile == nil)
        #expect(result.message.contains("'sql'"))
    }

    @Test func transportErrorThrows() async throws {
        let error = await #expect(throws: ExecutionError.self) { try await answer(.transportError()) }
        #expect(error?.code == .connectionRefused)
        #expect(error?.isRetryable == true)
        let timedOut = await #expect(throws: ExecutionError.self) {
            try await answer(.transportError(.timedOut, message: "slow"))
        }
        #expect(timedOut?.code == .timedOut)
        #expect(timedOut?.message == "slow")
    }

    @Test func descriptionsNameTheOutcome() {
        #expect(FakeOutcome.success(stdout: "7\n").description == #"Success(stdout: "7\n")"#)
        #expect(FakeOutcome.runtimeError(exitCode: 2).description == "runtimeError(exit 2)")
        #expect(FakeOutcome.compileError().description == "compileError(exit 1)")
        #expect(FakeOutcome.timeLimit.description == "timeLimit")
        #expect(FakeOutcome.killedBySignal().description == "killedBySignal(9)")
        #expect(FakeOutcome.sandboxError(message: "x").description == #"sandboxError("x")"#)
        #expect(FakeOutcome.transportError().description == "throw connectionRefused")
        #expect(FakeOutcome.respond(label: "echo") { _ in throw CancellationError() }.description == "echo")
    }
}
