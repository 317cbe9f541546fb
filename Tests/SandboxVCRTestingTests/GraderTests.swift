import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

@Suite("Grading rule and Grader through the fake", .timeLimit(.minutes(1)))
struct GraderTests {
    @Test(arguments: [
        // (expected, actual, matches)
        ("7\n", "7\n", true),
        ("7\n", "7", true),  // a missing final newline is a trailing empty line
        ("7\n", "7   \n", true),  // trailing spaces
        ("7\n", "7\t \n", true),  // trailing tabs
        ("7\n", "7\n\n\n", true),  // trailing empty lines
        ("7\n", "7\n   \n\t\n", true),  // trailing lines of white space only
        ("a\nb\n", "a  \nb\t\n\n", true),
        ("7\n8\n", "7\r\n8\r\n", true),  // CRLF: \r is trailing white space
        ("7\r\n", "7\n", true),
        ("7 \u{00A0}\n", "7", true),  // Unicode white space (NBSP) at the end
        ("", "\n\n", true),  // nothing expected, only newlines printed
        ("", "", true),
        ("7\n", "  7\n", false),  // leading spaces matter
        ("7\n", "\n7\n", false),  // leading empty lines matter
        ("1\n2\n", "1\n\n2\n", false),  // empty lines inside matter
        ("a b\n", "a  b\n", false),  // white space inside a line matters
        ("ab\n", "a\rb\n", false),  // a \r inside a line matters
        ("7\n", "", false),
        ("7\n", "77\n", false),
        ("YES\n", "yes\n", false),  // case matters
    ])
    func outputsMatch(expected: String, actual: String, matches: Bool) {
        #expect(Grader.outputsMatch(expected: expected, actual: actual) == matches)
        #expect(Grader.outputsMatch(expected: actual, actual: expected) == matches)
    }

    @Test func normalizedOutputIsTheListOfStrippedLines() {
        #expect(Grader.normalizedOutput("a \r\n b\t\n\n \n") == ["a", " b"])
        #expect(Grader.normalizedOutput("\n\n") == [])
    }

    static let problem = GradingProblem(
        id: "sum-two", title: "Sum", timeLimit: .seconds(2),
        tests: [.init(input: "3 4\n", output: "7\n"), .init(input: "-10 25\n", output: "15\n")],
        candidates: [
            .init(id: "correct", language: .python, intent: .correct, code: "correct"),
            .init(id: "trailing-space", language: .python, intent: .correct, code: "trailing"),
            .init(id: "wrong", language: .python, intent: .wrongAnswer, code: "wrong"),
            .init(id: "half", language: .python, intent: .wrongAnswer, code: "half"),
            .init(id: "crash", language: .python, intent: .runtimeError, code: "crash"),
            .init(id: "no-compile", language: .cpp, intent: .compileError, code: "no-compile"),
            .init(id: "slow", language: .python, intent: .timeLimit, code: "slow"),
            .init(id: "segv", language: .cpp, intent: .runtimeError, code: "segv"),
            .init(id: "sandbox", language: .sql, code: "sandbox"),
            .init(id: "offline", language: .python, code: "offline"),
        ])

    /// A fake that answers each candidate (keyed by its code) with one outcome kind.
    static func makeFake() -> FakeExecutor {
        let fake = FakeExecutor()
        fake.on(.codeEquals("correct") && .stdinEquals("3 4\n"), answer: .success(stdout: "7\n"))
        fake.on(.codeEquals("correct") && .stdinEquals("-10 25\n"), answer: .success(stdout: "15\n"))
        fake.on(.codeEquals("trailing") && .stdinEquals("3 4\n"), answer: .success(stdout: "7  \r\n\n"))
        fake.on(.codeEquals("trailing") && .stdinEquals("-10 25\n"), answer: .success(stdout: "15"))
        fake.on(.codeEquals("wrong"), answer: .wrongOutput(stdout: "-1\n"))
        fake.on(.codeEquals("half") && .stdinEquals("3 4\n"), answer: .success(stdout: "7\n"))
        fake.on(.codeEquals("half"), answer: .wrongOutput(stdout: " 15\n"))
        fake.on(.codeEquals("crash"), answer: .runtimeError(exitCode: 1, stdout: "7\n", stderr: "Traceback"))
        fake.on(.codeEquals("no-compile"), answer: .compileError(stderr: "error: expected ';'"))
        fake.on(.codeEquals("slow"), answer: .timeLimit(stdout: "7\n"))
        fake.on(.codeEquals("segv"), answer: .killedBySignal(11, stdout: "7\n"))
        fake.on(.codeEquals("sandbox"), answer: .sandboxError(message: "exception on running code: 'sql' None"))
        fake.on(.codeEquals("offline"), answer: .transportError(.connectionRefused, message: "nothing listens"))
        return fake
    }

    @Test func everyOutcomeKindGetsItsVerdictAndReward() async throws {
        let fake = Self.makeFake()
        let report = await Grader(executor: fake, maxConcurrency: 3).grade([Self.problem])
        let candidates = try #require(report.problems.first?.candidates)
        #expect(candidates.map(\.id) == Self.problem.candidates.map(\.id))
        func verdicts(_ id: String) -> [GradeReport.Verdict] { candidates.first { $0.id == id }!.tests.map(\.verdict) }
        func reward(_ id: String) -> Double { candidates.first { $0.id == id }!.reward }
        #expect(verdicts("correct") == [.passed, .passed])
        #expect(verdicts("trailing-space") == [.passed, .passed])
        #expect(verdicts("wrong") == [.wrongOutput, .wrongOutput])
        #expect(verdicts("half") == [.passed, .wrongOutput])
        #expect(verdicts("crash") == [.runtimeError, .runtimeError])
        #expect(verdicts("no-compile") == [.compileError, .compileError])
        #expect(verdicts("slow") == [.timeLimit, .timeLimit])
        #expect(verdicts("segv") == [.killedBySignal, .killedBySignal])
        #expect(verdicts("sandbox") == [.sandboxError, .sandboxError])
        #expect(verdicts("offline") == [.executionError, .executionError])
        #expect(reward("correct") == 1)
        #expect(reward("trailing-space") == 1)
        for id in ["wrong", "half", "crash", "no-compile", "slow", "segv", "sandbox", "offline"] {
            #expect(reward(id) == 0, "\(id)")
        }
        let half = try #require(candidates.first { $0.id == "half" })
        #expect(half.testsPassed == 1 && half.testsTotal == 2)
        let crash = try #require(candidates.first { $0.id == "crash" })
        #expect(crash.tests[0].exitCode == 1)
        #expect(crash.tests[0].status == "Failed")
        #expect(candidates.first { $0.id == "segv" }?.tests[0].signal == 11)
        #expect(candidates.first { $0.id == "sandbox" }?.tests[0].status == "SandboxError")
        let offline = try #require(candidates.first { $0.id == "offline" }?.tests[1])
        #expect(!offline.passed)
        #expect(offline.errorCode == "ExecutionError.connectionRefused")
        #expect(offline.error == "connectionRefused: nothing listens")
        #expect(offline.index == 1)
        #expect(report.executionErrors.count == 2)
        #expect(report.expectationsMet)
        #expect(report.testCount == 20)
        #expect(fake.requestCount == 20)
    }

    @Test func theRequestIsExactlyCodeLanguageStdinAndRunTimeout() async throws {
        let fake = FakeExecutor(default: .success(stdout: "7\n"))
        let problem = GradingProblem(
            id: "p", timeLimit: .seconds(2.5), tests: [.init(input: "3 4\n", output: "7\n")],
            candidates: [.init(id: "c", language: .cpp, intent: .correct, code: "int main() {}")])
        _ = await Grader(executor: fake).grade(problem)
        let request = try #require(fake.requests.first)
        #expect(
            request
                == ExecutionRequest(code: "int main() {}", language: .cpp, stdin: "3 4\n", runTimeout: .seconds(2.5)))
        #expect(request.compileTimeout == .seconds(10))
        #expect(request.memoryLimitMB == nil)
        #expect(request.files.isEmpty && request.fetchFiles.isEmpty)
        #expect(Grader.request(for: problem.candidates[0], test: problem.tests[0], in: problem) == request)
    }

    @Test func concurrencyIsBoundedAndTheOrderIsStable() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(clock: clock)
        // Later tests answer sooner, so executions finish in reverse order.
        let problem = GradingProblem(
            id: "p", timeLimit: .seconds(1),
            tests: (0..<9).map { .init(input: "\($0)\n", output: "\($0)\n") },
            candidates: [.init(id: "echo", language: .bash, intent: .correct, code: "cat")])
        for index in 0..<9 {
            fake.on(.stdinEquals("\(index)\n"), answer: .success(stdout: "\(index)\n"), latency: .seconds(9 - index))
        }
        let grading = Task { await Grader(executor: fake, maxConcurrency: 3).grade([problem]) }
        var started = 0
        while started < 9 {
            await clock.waitForSleepers(count: 3)
            // The grader never has more than 3 executions in flight: exactly 3 asleep, none waiting to start.
            #expect(clock.sleeperCount == 3)
            #expect(fake.requestCount == started + 3)
            started += 3
            clock.advance(by: .seconds(9))
        }
        let report = await grading.value
        let tests = try #require(report.problems.first?.candidates.first?.tests)
        #expect(tests.map(\.index) == Array(0..<9))
        #expect(tests.allSatisfy { $0.passed })
        // The three executions of a wave start concurrently, so only the waves' order is fixed, not the order within one.
        let inputs: [String] = fake.requests.map(\.stdinText)
        for wave in 0..<3 {
            let first = wave * 3
            let expected: Set<String> = Set((first..<first + 3).map { "\($0)\n" })
            #expect(Set(inputs[first..<first + 3]) == expected)
        }
    }

    @Test func aCassetteMissIsVisibleInTheReport() async throws {
        let fake = FakeExecutor(
            default: .respond { _ in
                throw CassetteError(
                    code: .miss, message: "no recording for python code (mode never)", path: "demo.sqlite")
            })
        let problem = GradingProblem(
            id: "p", timeLimit: .seconds(1), tests: [.init(input: "", output: "1\n")],
            candidates: [.init(id: "c", language: .python, intent: .correct, code: "print(1)")])
        let report = await Grader(executor: fake).grade([problem])
        let test = try #require(report.problems.first?.candidates.first?.tests.first)
        #expect(test.verdict == .executionError)
        #expect(test.errorCode == "CassetteError.miss")
        #expect(!report.expectationsMet)
        #expect(report.unmetExpectations == ["p/c"])
        let table = report.renderTable()
        #expect(table.contains("1 execution error(s)"))
        #expect(
            table.contains("Execution errors (no result):\n  p/c test 0: cassette miss (demo.sqlite): no recording"))
        #expect(table.contains("UNEXPECTED (expected 1.0); test 0: executionError"))
        #expect(table.contains("Expectations met: NO (p/c)"))
    }

    /// Errors that carry a code are named `Type.code` without reflection: those of the package (a fake rules
    /// error, which the grader used to find by `Mirror`), and any error that conforms to `CodedError`.
    @Test func errorCodesComeFromCodedErrors() {
        struct QuotaError: CodedError {
            var code: String
        }
        struct PlainError: Error {
            var code = "not reported: PlainError is not a CodedError"
        }
        let rulesError = FakeRulesError(code: .invalidRule, message: "unknown kind", file: "rules.json")
        let cases: [(any Error, String)] = [
            (rulesError, "FakeRulesError.invalidRule"),
            (ExecutionError(code: .timedOut, message: "slow"), "ExecutionError.timedOut"),
            (GradingError(code: .invalidProblem, message: "bad line"), "GradingError.invalidProblem"),
            (QuotaError(code: "dailyLimit"), "QuotaError.dailyLimit"),
            (PlainError(), "PlainError"),
            (CancellationError(), "CancellationError"),
        ]
        for (error, code) in cases {
            let test = Grader.testReport(index: 3, error: error)
            #expect(test.errorCode == code)
            #expect(test.verdict == .executionError)
            #expect(test.index == 3)
        }
    }

    @Test func theTableHasAlignedColumnsAndASummary() async throws {
        let report = await Grader(executor: Self.makeFake()).grade([Self.problem])
        let table = report.renderTable()
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0].hasPrefix("PROBLEM  CANDIDATE       LANGUAGE  INTENT         TESTS  REWARD  NOTE"))
        #expect(lines[1] == "sum-two  correct         python    correct        2/2    1.0")
        #expect(lines[4] == "sum-two  half            python    wrong_answer   1/2    0.0     test 1: wrongOutput")
        #expect(lines[9] == "sum-two  sandbox         sql       -              0/2    0.0     test 0: sandboxError")
        let column = { (line: String, word: String) in
            line.range(of: word).map { line.distance(from: line.startIndex, to: $0.lowerBound) }
        }
        #expect(column(lines[0], "TESTS") == column(lines[1], "2/2"))
        #expect(
            table.contains(
                "1 problem(s), 10 candidate(s), 20 test run(s), 2 candidate(s) rewarded, 2 execution error(s). Expectations met: yes"
            ))
        #expect(table.contains("sum-two/offline test 1: connectionRefused: nothing listens"))
    }

    @Test func theReportEncodesToJSONAndBack() async throws {
        let report = await Grader(executor: Self.makeFake()).grade([Self.problem])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(report)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["expectationsMet"] as? Bool == true)
        #expect(json["testCount"] as? Int == 20)
        #expect(json["executionErrorCount"] as? Int == 2)
        let text = String(decoding: data, as: UTF8.self)
        #expect(
            text.contains(
                #""id":"half","intent":"wrong_answer","language":"python","meetsExpectation":true,"reward":0"#))
        #expect(text.contains(#""testsPassed":1,"testsTotal":2"#))
        #expect(try JSONDecoder().decode(GradeReport.self, from: data) == report)
    }
}

@Suite("Problems JSONL loading")
struct GradingProblemTests {
    let valid =
        #"{"id": "a", "title": "A", "statement": "s", "time_limit_s": 2, "tests": [{"input": "1\n", "output": "1\n"}], "candidates": [{"id": "c", "language": "python", "intent": "correct", "code": "print(1)"}]}"#

    @Test func linesDecodeAndBlankLinesAreSkipped() throws {
        let second = valid.replacingOccurrences(of: #""id": "a""#, with: #""id": "b""#)
            .replacingOccurrences(of: #", "intent": "correct""#, with: "")
        let problems = try GradingProblem.decodeJSONLines(Data("\(valid)\n\n  \n\(second)\n".utf8))
        #expect(problems.map(\.id) == ["a", "b"])
        #expect(problems[0].timeLimit == .seconds(2))
        #expect(problems[0].candidates[0].intent == .correct)
        #expect(problems[1].candidates[0].intent == nil)
        #expect(problems[0].tests == [.init(input: "1\n", output: "1\n")])
    }

    @Test(arguments: [
        ("{\"id\": \"a\"\n", 1, "not valid JSON"),
        (
            "VALID\n{\"id\": \"b\", \"time_limit_s\": 2, \"tests\": [], \"candidates\": [{\"id\": \"c\"}]}", 2,
            "missing key \"candidates[0].language\""
        ),
        ("VALID\n\nVALID", 3, "problem id \"a\" is already used on line 1"),
        (
            "{\"id\": \"b\", \"time_limit_s\": \"2\", \"tests\": [], \"candidates\": []}", 1,
            "time_limit_s: expected Double"
        ),
    ])
    func badLinesAreReportedWithTheirNumber(text: String, line: Int, words: String) throws {
        let data = Data(text.replacingOccurrences(of: "VALID", with: valid).utf8)
        let error = #expect(throws: GradingError.self) { try GradingProblem.decodeJSONLines(data, source: "p.jsonl") }
        #expect(error?.code == .invalidProblem)
        #expect(error?.line == line)
        #expect(error?.message.contains(words) == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("invalidProblem: p.jsonl, line \(line): ") == true)
    }

    @Test func problemsEncodeWithTheFileKeysAndRoundTrip() throws {
        let url = repositoryRoot().appendingPathComponent("Fixtures/grading-demo/problems.jsonl")
        let problems = try GradingProblem.load(contentsOf: url)
        #expect(problems.count == 12)
        #expect(problems.allSatisfy { $0.timeLimit == .seconds(2) && !$0.title.isEmpty && !$0.statement.isEmpty })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let lines = try problems.map { String(decoding: try encoder.encode($0), as: UTF8.self) }
        #expect(lines[0].contains(#""time_limit_s":2"#))
        #expect(lines[0].contains(#""intent":"correct""#))
        let again = try GradingProblem.decodeJSONLines(Data(lines.joined(separator: "\n").utf8))
        #expect(again == problems)
    }

    @Test func aMissingFileIsUnreadable() {
        let url = URL(fileURLWithPath: "/nonexistent/problems-\(UUID().uuidString).jsonl")
        let error = #expect(throws: GradingError.self) { try GradingProblem.load(contentsOf: url) }
        #expect(error?.code == .unreadableFile)
        #expect(error?.file == url.path)
    }
}
