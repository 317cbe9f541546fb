/// The outcome of grading problems: per problem, per candidate, per test. `Codable` (for `--json`) and
/// renderable as a table with ``renderTable()``.
public struct GradeReport: Codable, Hashable, Sendable {
    /// How one test ended, from the grader's point of view. An open set: compare with the static members.
    public struct Verdict: OpenStringValue {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Status success and the expected output: the only passing verdict.
        public static let passed = Verdict(rawValue: "passed")
        /// Status success, other output.
        public static let wrongOutput = Verdict(rawValue: "wrongOutput")
        /// The run exited with a non-zero code.
        public static let runtimeError = Verdict(rawValue: "runtimeError")
        /// Compilation failed or timed out; nothing ran.
        public static let compileError = Verdict(rawValue: "compileError")
        /// The run hit its time limit.
        public static let timeLimit = Verdict(rawValue: "timeLimit")
        /// The run was killed by a signal.
        public static let killedBySignal = Verdict(rawValue: "killedBySignal")
        /// The sandbox itself failed (status `SandboxError`).
        public static let sandboxError = Verdict(rawValue: "sandboxError")
        /// Status `Failed` for another reason.
        public static let failed = Verdict(rawValue: "failed")
        /// No result: the executor threw (transport error, cassette miss...). See ``Test/error``.
        public static let executionError = Verdict(rawValue: "executionError")
    }

    /// One test of one candidate.
    public struct Test: Codable, Hashable, Sendable {
        /// The test's 0-based index in the problem.
        public var index: Int
        public var passed: Bool
        public var verdict: Verdict
        /// The result's status (`Success`, `Failed`, `SandboxError`), when there was a result.
        public var status: String?
        /// The run's exit code, when it exited.
        public var exitCode: Int?
        /// The signal that killed the run, when one did.
        public var signal: Int?
        /// The error's kind when the executor threw, e.g. `ExecutionError.connectionRefused`.
        public var errorCode: String?
        /// The error's text when the executor threw.
        public var error: String?
        /// The expected output (for the HTML report's diff).
        public var expected: String?
        /// What the run printed, when there was a result.
        public var stdout: String?
        public var stderr: String?
        /// The run's wall time as the sandbox measured it (the compile's when it did not run; recorded, so a replay
        /// reports the recorded time).
        public var seconds: Double?

        public init(
            index: Int, passed: Bool, verdict: Verdict, status: String? = nil, exitCode: Int? = nil,
            signal: Int? = nil, errorCode: String? = nil, error: String? = nil, expected: String? = nil,
            stdout: String? = nil, stderr: String? = nil, seconds: Double? = nil
        ) {
            self.index = index
            self.passed = passed
            self.verdict = verdict
            self.status = status
            self.exitCode = exitCode
            self.signal = signal
            self.errorCode = errorCode
            self.error = error
            self.expected = expected
            self.stdout = stdout
            self.stderr = stderr
            self.seconds = seconds
        }
    }

    /// One candidate: its tests and reward.
    public struct Candidate: Codable, Hashable, Sendable {
        public var id: String
        public var language: Language
        public var intent: GradingProblem.Intent?
        public var tests: [Test]

        public init(id: String, language: Language, intent: GradingProblem.Intent?, tests: [Test]) {
            self.id = id
            self.language = language
            self.intent = intent
            self.tests = tests
        }

        public var testsPassed: Int { tests.count(where: \.passed) }
        public var testsTotal: Int { tests.count }
        /// 1.0 when every test passed (and there is at least one), else 0.0.
        public var reward: Double { !tests.isEmpty && testsPassed == testsTotal ? 1 : 0 }
        /// Whether the reward is what the intent expects (`true` when there is no intent).
        public var meetsExpectation: Bool { intent.map { $0.expectedReward == reward } ?? true }

        private enum CodingKeys: String, CodingKey {
            case id, language, intent, tests, testsPassed, testsTotal, reward, meetsExpectation
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                id: try container.decode(String.self, forKey: .id),
                language: try container.decode(Language.self, forKey: .language),
                intent: try container.decodeIfPresent(GradingProblem.Intent.self, forKey: .intent),
                tests: try container.decode([Test].self, forKey: .tests))
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(language, forKey: .language)
            try container.encodeIfPresent(intent, forKey: .intent)
            try container.encode(tests, forKey: .tests)
            try container.encode(testsPassed, forKey: .testsPassed)
            try container.encode(testsTotal, forKey: .testsTotal)
            try container.encode(reward, forKey: .reward)
            try container.encode(meetsExpectation, forKey: .meetsExpectation)
        }
    }

    /// One problem: its candidates, in the problem's order.
    public struct Problem: Codable, Hashable, Sendable {
        public var id: String
        public var title: String
        public var candidates: [Candidate]

        public init(id: String, title: String, candidates: [Candidate]) {
            self.id = id
            self.title = title
            self.candidates = candidates
        }
    }

    /// The problems, in the order they were given.
    public var problems: [Problem]

    public init(problems: [Problem]) { self.problems = problems }

    /// Every candidate of every problem, with its problem.
    public var allCandidates: [(problem: Problem, candidate: Candidate)] {
        problems.flatMap { problem in problem.candidates.map { (problem, $0) } }
    }

    /// Whether every candidate with an intent got the reward it expects: 1.0 for `correct`, 0.0 for the rest.
    public var expectationsMet: Bool { allCandidates.allSatisfy { $0.candidate.meetsExpectation } }

    /// The candidates whose reward is not what their intent expects, as `problem/candidate` names.
    public var unmetExpectations: [String] {
        allCandidates.filter { !$0.candidate.meetsExpectation }.map { "\($0.problem.id)/\($0.candidate.id)" }
    }

    /// How many tests were run.
    public var testCount: Int { allCandidates.reduce(0) { $0 + $1.candidate.testsTotal } }

    /// The tests whose execution threw (no result: transport failure, cassette miss...), with where they are.
    public var executionErrors: [(problem: String, candidate: String, test: Test)] {
        allCandidates.flatMap { entry in
            entry.candidate.tests.filter { $0.verdict == .executionError }.map {
                (entry.problem.id, entry.candidate.id, $0)
            }
        }
    }

    private enum CodingKeys: String, CodingKey {
        case problems, expectationsMet, unmetExpectations, testCount, executionErrorCount
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(problems: try container.decode([Problem].self, forKey: .problems))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(problems, forKey: .problems)
        try container.encode(expectationsMet, forKey: .expectationsMet)
        try container.encode(unmetExpectations, forKey: .unmetExpectations)
        try container.encode(testCount, forKey: .testCount)
        try container.encode(executionErrors.count, forKey: .executionErrorCount)
    }
}
