import Foundation

extension GradeReport {
    /// The report as an aligned text table (problem, candidate, language, intent, tests passed, reward, note),
    /// a summary line, and the text of every execution error (a cassette miss shows up there).
    ///
    /// ```
    /// PROBLEM  CANDIDATE   LANGUAGE  INTENT        TESTS  REWARD  NOTE
    /// sum-two  py-correct  python    correct       3/3    1.0
    /// sum-two  py-wrong    python    wrong_answer  0/3    0.0     test 0: wrongOutput
    /// ```
    public func renderTable() -> String {
        var rows: [[String]] = [["PROBLEM", "CANDIDATE", "LANGUAGE", "INTENT", "TESTS", "REWARD", "NOTE"]]
        for (problem, candidate) in allCandidates {
            var note = candidate.tests.first(where: { !$0.passed }).map { "test \($0.index): \($0.verdict)" } ?? ""
            if !candidate.meetsExpectation {
                note =
                    "UNEXPECTED (expected \(candidate.intent?.expectedReward ?? 0, format: 1))"
                    + (note.isEmpty ? "" : "; " + note)
            }
            rows.append([
                problem.id, candidate.id, candidate.language.rawValue, candidate.intent?.rawValue ?? "-",
                "\(candidate.testsPassed)/\(candidate.testsTotal)", "\(candidate.reward, format: 1)", note,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        var lines = rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column])
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        let candidates = allCandidates.count
        let errors = executionErrors
        var summary =
            "\(problems.count) problem(s), \(candidates) candidate(s), \(testCount) test run(s), "
            + "\(allCandidates.count(where: { $0.candidate.reward == 1 })) candidate(s) rewarded"
        if !errors.isEmpty { summary += ", \(errors.count) execution error(s)" }
        summary +=
            ". Expectations met: " + (expectationsMet ? "yes" : "NO (\(unmetExpectations.joined(separator: ", ")))")
        lines.append("")
        lines.append(summary)
        if !errors.isEmpty {
            lines.append("")
            lines.append("Execution errors (no result):")
            // The first error in full (a cassette miss carries a long diagnostic); the rest on one line each.
            for (number, (problem, candidate, test)) in errors.enumerated() {
                let text = test.error ?? ""
                let shown =
                    number == 0
                    ? text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n    ")
                    : String(text.prefix { $0 != "\n" })
                lines.append("  \(problem)/\(candidate) test \(test.index): \(shown)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        count >= length ? self : self + String(repeating: " ", count: length - count)
    }

    fileprivate func trimmingTrailingSpaces() -> String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}

extension DefaultStringInterpolation {
    /// A number with a fixed count of decimals: `"\(1.0, format: 1)"` is `1.0`.
    fileprivate mutating func appendInterpolation(_ value: Double, format decimals: Int) {
        appendLiteral(String(format: "%.\(decimals)f", value))
    }
}
