import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

/// Grades the real demo problems through a fake that answers with the 96 real recorded responses, keyed by the
/// exact request each was recorded for: this proves the grader builds the same requests as the recordings.
@Suite("Grading demo through recorded responses")
struct GradingDemoTests {
    struct Exchange: Decodable {
        struct Request: Decodable { var body: SandboxFusionWire.RunCodeBody }
        struct Annotation: Decodable, Hashable {
            var problem: String
            var candidate: String
            var test_index: Int
        }
        var request: Request
        var http_status: Int
        var response: SandboxFusionWire.RunCodeResponse
        var annotation: Annotation
    }

    static let folder = repositoryRoot().appendingPathComponent("Fixtures/grading-demo")

    static func exchanges() throws -> [Exchange] {
        let data = try Data(contentsOf: folder.appendingPathComponent("exchanges.jsonl"))
        return try data.split(separator: UInt8(ascii: "\n")).map {
            try JSONDecoder().decode(Exchange.self, from: Data($0))
        }
    }

    /// A fake with one rule per exchange, matching its exact request, answering its recorded result once.
    static func makeFake(_ exchanges: [Exchange]) throws -> FakeExecutor {
        let fake = FakeExecutor()
        for exchange in exchanges {
            let request = try SandboxFusionWire.request(from: exchange.request.body)
            let result = try SandboxFusionWire.result(from: exchange.response)
            fake.on(.request(request), answers: [.result(result)], afterLast: .fail)
        }
        return fake
    }

    @Test func everyCorrectCandidateScoresOneAndEveryOtherZero() async throws {
        let problems = try GradingProblem.load(contentsOf: Self.folder.appendingPathComponent("problems.jsonl"))
        let exchanges = try Self.exchanges()
        #expect(problems.count == 12)
        #expect(exchanges.count == 96)
        #expect(exchanges.allSatisfy { $0.http_status == 200 })
        let fake = try Self.makeFake(exchanges)

        let report = await Grader(executor: fake, maxConcurrency: 8).grade(problems)

        #expect(report.executionErrors.isEmpty, "\(report.executionErrors.map { $0.test.error ?? "" })")
        #expect(report.expectationsMet, "\(report.unmetExpectations)")
        #expect(report.testCount == 96)
        #expect(fake.requestCount == 96)
        #expect(Set(fake.requests).count == 96)  // every recording used exactly once
        for (problem, candidate) in report.allCandidates {
            let expected: Double = candidate.intent == .correct ? 1 : 0
            #expect(candidate.reward == expected, "\(problem.id)/\(candidate.id)")
        }
        let correct = report.allCandidates.filter { $0.candidate.intent == .correct }
        #expect(correct.count == report.allCandidates.count(where: { $0.candidate.reward == 1 }))
        // Several wrong candidates pass some tests and fail only the last, harder one.
        let partial = report.allCandidates.filter { $0.candidate.testsPassed > 0 && $0.candidate.reward == 0 }
        #expect(partial.count >= 2)

        // The verdicts follow the recordings' intents.
        func verdicts(_ problem: String, _ candidate: String) -> [GradeReport.Verdict] {
            report.problems.first { $0.id == problem }!.candidates.first { $0.id == candidate }!.tests.map(\.verdict)
        }
        #expect(verdicts("sort-numbers", "cpp-compile-error") == [.compileError, .compileError, .compileError])
        #expect(verdicts("fib-mod", "py-loop").last == .timeLimit)
        #expect(verdicts("palindrome", "py-crash") == [.runtimeError, .runtimeError, .runtimeError])
        #expect(verdicts("sum-two", "py-wrong") == [.wrongOutput, .wrongOutput, .wrongOutput])

        let table = report.renderTable()
        #expect(table.contains("Expectations met: yes"))
        #expect(
            table.contains(
                "12 problem(s), 32 candidate(s), 96 test run(s), 15 candidate(s) rewarded. Expectations met: yes"))
    }

    @Test func aGraderThatBuildsOtherRequestsMissesLoudly() async throws {
        let problems = try GradingProblem.load(contentsOf: Self.folder.appendingPathComponent("problems.jsonl"))
        let fake = try Self.makeFake(try Self.exchanges())
        // The same problems with a different time limit build different requests: none is recorded.
        var changed = problems[0]
        changed.timeLimit = .seconds(5)
        let report = await Grader(executor: fake).grade([changed])
        #expect(report.executionErrors.count == changed.candidates.count * changed.tests.count)
        #expect(report.executionErrors.allSatisfy { $0.test.errorCode == "ExecutionError.unmatchedRequest" })
        #expect(report.executionErrors.first?.test.error?.contains("run timeout 5s") == true)
    }
}
