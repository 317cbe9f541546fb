/// Grades candidate solutions of stdin/stdout problems through any ``SandboxExecutor``: live, replayed from a
/// cassette, or fake.
///
/// The rule (as in `Fixtures/grading-demo/README.md`): a test passes when the result's status is `Success` and its
/// stdout equals the expected output after removing trailing white space from each line and trailing empty lines
/// (see ``outputsMatch(expected:actual:)``). A candidate's reward is 1.0 when every test passes, else 0.0.
///
/// ```swift
/// let problems = try GradingProblem.load(contentsOf: problemsURL)
/// let report = await Grader(executor: executor, maxConcurrency: 8).grade(problems)
/// print(report.renderTable())
/// ```
public struct Grader: Sendable {
    /// Runs the requests.
    public var executor: any SandboxExecutor
    /// The most executions in flight at once (at least 1).
    public var maxConcurrency: Int

    /// A grader running through `executor`, with at most `maxConcurrency` executions at once.
    public init(executor: any SandboxExecutor, maxConcurrency: Int = 4) {
        self.executor = executor
        self.maxConcurrency = max(1, maxConcurrency)
    }

    // MARK: The rule

    /// The request for one (candidate, test): code, language, stdin = the test's input, run timeout = the
    /// problem's time limit; every other field takes its default (compile timeout 10 s, no memory limit, no
    /// files), exactly as the grading demo's recordings were made.
    public static func request(
        for candidate: GradingProblem.Candidate, test: GradingProblem.Test, in problem: GradingProblem
    ) -> ExecutionRequest {
        ExecutionRequest(
            code: candidate.code, language: candidate.language, stdin: test.input,
            runTimeout: problem.timeLimit)
    }

    /// Whether `actual` stdout matches `expected` after ``normalizedOutput(_:)`` of both.
    ///
    /// Trailing white space on a line and trailing empty lines do not matter; leading white space, white space
    /// inside a line, and empty lines before other text do. `\r` is white space, so CRLF output matches LF
    /// output (as Python's `str.rstrip()` per line treats it); a `\r` inside a line still matters.
    public static func outputsMatch(expected: String, actual: String) -> Bool {
        normalizedOutput(expected) == normalizedOutput(actual)
    }

    /// `text` split into lines at `\n`, each line stripped of trailing white space (Unicode `White_Space`: space,
    /// tab, `\r`, vertical tab, form feed, NBSP...), trailing empty lines dropped.
    public static func normalizedOutput(_ text: String) -> [String] {
        // Work on scalars: Swift's `Character` holds "\r\n" as one grapheme, so splitting Characters at "\n"
        // would miss CRLF line ends.
        var lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            var scalars = Substring.UnicodeScalarView(line)
            while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
            return String(scalars)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines
    }

    /// The verdict for one result against the expected output.
    public static func verdict(for result: ExecutionResult, expected: String) -> GradeReport.Verdict {
        if result.status == .success {
            return outputsMatch(expected: expected, actual: result.stdoutText) ? .passed : .wrongOutput
        }
        if result.status == .sandboxError { return .sandboxError }
        if let compile = result.compile,
            compile.status != .finished || (compile.exitCode ?? 0) != 0
                || compile.signal != nil
        {
            return .compileError
        }
        guard let run = result.run else { return .failed }
        if run.status == .timeLimitExceeded { return .timeLimit }
        if run.status == .error { return .sandboxError }
        if run.signal != nil { return .killedBySignal }
        if let code = run.exitCode, code != 0 { return .runtimeError }
        return .failed
    }

    /// The report entry for one test from its result.
    public static func testReport(index: Int, result: ExecutionResult, expected: String) -> GradeReport.Test {
        let verdict = verdict(for: result, expected: expected)
        return GradeReport.Test(
            index: index, passed: verdict == .passed, verdict: verdict, status: result.status.rawValue,
            exitCode: result.run?.exitCode, signal: result.run?.signal, expected: expected,
            stdout: result.run.map(\.stdoutText), stderr: result.run.map(\.stderrText),
            seconds: result.run?.wallTime ?? result.compile?.wallTime)
    }

    /// The report entry for one test whose execution threw: failed, with the error's kind and text.
    public static func testReport(index: Int, error: any Error) -> GradeReport.Test {
        GradeReport.Test(
            index: index, passed: false, verdict: .executionError, errorCode: errorCode(of: error),
            error: String(describing: error))
    }

    /// `Type.code` for a ``CodedError`` (``ExecutionError``, ``CassetteError``...), else the type's name.
    static func errorCode(of error: any Error) -> String {
        let type = String(describing: Swift.type(of: error))
        if let error = error as? any CodedError { return "\(type).\(error.code)" }
        return type
    }

    // MARK: Grading

    /// Grades every candidate of every problem on every test, at most ``maxConcurrency`` executions at once.
    ///
    /// Never throws: an execution that throws is a failed test carrying the error (see
    /// ``GradeReport/executionErrors``). The report keeps the input order whatever order executions finish in.
    public func grade(_ problems: [GradingProblem]) async -> GradeReport {
        struct Job {
            var problem: Int
            var candidate: Int
            var test: Int
            var request: ExecutionRequest
            var expected: String
        }
        var jobs: [Job] = []
        for (p, problem) in problems.enumerated() {
            for (c, candidate) in problem.candidates.enumerated() {
                for (t, test) in problem.tests.enumerated() {
                    jobs.append(
                        Job(
                            problem: p, candidate: c, test: t,
                            request: Self.request(for: candidate, test: test, in: problem), expected: test.output))
                }
            }
        }
        var outcomes = [GradeReport.Test?](repeating: nil, count: jobs.count)
        let executor = self.executor
        await withTaskGroup(of: (Int, GradeReport.Test).self) { group in
            var next = 0
            func startNext() {
                guard next < jobs.count else { return }
                let index = next
                let job = jobs[index]
                next += 1
                group.addTask {
                    do {
                        let result = try await executor.execute(job.request)
                        return (index, Self.testReport(index: job.test, result: result, expected: job.expected))
                    } catch {
                        return (index, Self.testReport(index: job.test, error: error))
                    }
                }
            }
            for _ in 0..<min(maxConcurrency, jobs.count) { startNext() }
            for await (index, outcome) in group {
                outcomes[index] = outcome
                startNext()
            }
        }
        var cursor = 0
        return GradeReport(
            problems: problems.map { problem in
                GradeReport.Problem(
                    id: problem.id, title: problem.title,
                    candidates: problem.candidates.map { candidate in
                        let tests = problem.tests.indices.map { _ in
                            defer { cursor += 1 }
                            return outcomes[cursor]!
                        }
                        return GradeReport.Candidate(
                            id: candidate.id, language: candidate.language, intent: candidate.intent, tests: tests)
                    })
            })
    }

    /// Grades one problem.
    public func grade(_ problem: GradingProblem) async -> GradeReport.Problem {
        await grade([problem]).problems[0]
    }
}
