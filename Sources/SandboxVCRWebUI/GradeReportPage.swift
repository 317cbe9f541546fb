public import Foundation
public import SandboxVCR

/// `sandbox-vcr grade --html`: the grading report as one self-contained HTML file (inline style and script, no
/// request to anywhere). The report's values travel as JSON in a `<script type="application/json">` block, which
/// never runs; the page's own script builds the matrix, the details and the chart from it with `textContent`, and a
/// Content-Security-Policy lets only that script and style (by their SHA-256) run.
public enum GradeReportPage {
    struct Page: Encodable {
        var generatedAt: String
        var problems: [Problem]
    }

    struct Problem: Encodable {
        var id: String
        var title: String
        var candidates: [Candidate]
    }

    struct Candidate: Encodable {
        var id: String
        var language: String
        var intent: String?
        var reward: Double
        var meetsExpectation: Bool
        var testsPassed: Int
        var testsTotal: Int
        var code: String?
        var tests: [Test]
    }

    struct Test: Encodable {
        var index: Int
        var passed: Bool
        var verdict: String
        var status: String?
        var exitCode: Int?
        var signal: Int?
        var error: String?
        var input: String?
        var expected: String?
        var stdout: String?
        var stderr: String?
        var seconds: Double?
    }

    /// The HTML of the report, with each candidate's code and each test's input from `problems` (matched by id).
    public static func html(_ report: GradeReport, problems: [GradingProblem], generatedAt: Date = Date()) -> String {
        let byID = Dictionary(problems.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let page = Page(
            generatedAt: WebViews.time(generatedAt),
            problems: report.problems.map { problem in
                let source = byID[problem.id]
                return Problem(
                    id: problem.id, title: problem.title,
                    candidates: problem.candidates.map { candidate in
                        let code = source?.candidates.first { $0.id == candidate.id }?.code
                        return Candidate(
                            id: candidate.id, language: candidate.language.rawValue,
                            intent: candidate.intent?.rawValue, reward: candidate.reward,
                            meetsExpectation: candidate.meetsExpectation, testsPassed: candidate.testsPassed,
                            testsTotal: candidate.testsTotal, code: code.map { WebViews.cut(Redactor.scrub($0)) },
                            tests: candidate.tests.map { test in
                                let input = source.flatMap {
                                    $0.tests.indices.contains(test.index) ? $0.tests[test.index] : nil
                                }
                                return Test(
                                    index: test.index, passed: test.passed, verdict: test.verdict.rawValue,
                                    status: test.status, exitCode: test.exitCode, signal: test.signal,
                                    error: test.error.map { WebViews.cut(Redactor.scrub($0)) },
                                    input: input.map { WebViews.cut($0.input) },
                                    expected: (test.expected ?? input?.output).map(WebViews.cut),
                                    stdout: test.stdout.map { WebViews.cut(Redactor.scrub($0)) },
                                    stderr: test.stderr.map { WebViews.cut(Redactor.scrub($0)) }, seconds: test.seconds)
                            })
                    })
            })
        let data = String(decoding: WebViews.json(page), as: UTF8.self)
        let style = WebAssets.css
        let script = WebAssets.reportScript
        let policy =
            "default-src 'none'; script-src '\(hashSource(script))'; style-src '\(hashSource(style))'; "
            + "img-src data:; base-uri 'none'; form-action 'none'"
        return """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="Content-Security-Policy" content="\(policy)">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Grading report</title>
            <style>\(style)</style>
            </head>
            <body>
            <noscript>This report is drawn by its script: open it in a browser with JavaScript on.</noscript>
            <div id="report" class="report"></div>
            <script type="application/json" id="report-data">\(data)</script>
            <script>\(script)</script>
            </body>
            </html>

            """
    }

    /// `sha256-` and the base64 of the SHA-256 of `text`: a CSP source that allows exactly this inline block.
    static func hashSource(_ text: String) -> String {
        "sha256-" + Data(ContentHash.sha256(Array(text.utf8)).bytes).base64EncodedString()
    }
}
