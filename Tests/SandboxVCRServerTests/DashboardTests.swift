import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import SandboxVCRTesting
import Testing

@testable import SandboxVCRServer
@testable import SandboxVCRWebUI

/// The dashboard's history (``RequestJournal``), its HTTP answers, the cassette browser's lists and the grading
/// report's page; the pages themselves run in a real browser in Tools/browser-tests.
@Suite struct DashboardTests {
    static func entry(code: String, stdout: String = "ok\n", outcome: String = "hit") -> RequestJournal.Entry {
        let request = ExecutionRequest(code: code, language: .python)
        let result = ExecutionResult(
            status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data(stdout.utf8)),
            backend: .sandboxFusion)
        return RequestJournal.Entry(
            endpoint: "POST /run_code", outcome: outcome, duration: .milliseconds(1),
            detail: RequestJournal.Detail(request: request, result: result))
    }

    @Test func journalKeepsTheNewestRequestsAndDropsOldDetailsFirst() {
        let one = Self.entry(code: String(repeating: "x", count: 1000)).detail!
        let journal = RequestJournal(capacity: 5, detailBudget: 2 * (one.bytesForTests) + 10)
        for index in 1...8 {
            journal.record(Self.entry(code: String(repeating: "x", count: 999) + "\(index % 10)"))
        }
        #expect(journal.lastID == 8)
        #expect(journal.entry(id: 3) == nil)
        let page = journal.page(offset: 0, limit: 10, where: { _ in true })
        #expect(page.total == 5)
        #expect(page.entries.map(\.id) == [8, 7, 6, 5, 4])
        #expect(page.entries.map { $0.detail != nil } == [true, true, false, false, false])
        #expect(page.entries.map(\.detailDropped) == [false, false, true, true, true])
        // A limit by count as well as by bytes.
        let counted = RequestJournal(capacity: 10, detailLimit: 3)
        for index in 1...6 { counted.record(Self.entry(code: "print(\(index))")) }
        let kept = counted.page(offset: 0, limit: 10, where: { _ in true }).entries
        #expect(kept.map { $0.detail != nil } == [true, true, true, false, false, false])
        let second = journal.page(offset: 2, limit: 2, where: { _ in true })
        #expect(second.total == 5 && second.entries.map(\.id) == [6, 5])
    }

    @Test func searchFindsCodeAndOutputButNeverASecret() throws {
        let journal = RequestJournal()
        journal.record(Self.entry(code: "print('hello world')"))
        journal.record(Self.entry(code: "# MODAL_TOKEN_SECRET=as-abc123secret\nprint(1)", stdout: "the answer 42\n"))
        func found(_ text: String) -> [Int] {
            let query = try! #require(TextQuery(text))
            return journal.page(offset: 0, limit: 10, where: { _ in true }, search: { JournalViews.matches($0, query) })
                .entries.map(\.id)
        }
        #expect(found("HELLO") == [1])
        #expect(found("answer 42") == [2])
        #expect(found("abc123secret").isEmpty)
        #expect(TextQuery("   ") == nil)
        let detail = JournalViews.detail(try #require(journal.entry(id: 2)), journal: journal)
        let code = try #require(detail.request?.code)
        #expect(!code.contains("abc123secret") && code.contains(Redactor.placeholder))
        let json = String(decoding: WebViews.json(detail), as: UTF8.self)
        #expect(!json.contains("abc123secret"))
    }

    @Test func pageJSONCannotCloseAScriptElement() {
        let json = String(decoding: WebViews.json(["code": "</script><script>alert(1)</script>&"]), as: UTF8.self)
        #expect(!json.contains("<") && !json.contains(">") && !json.contains("&"))
        #expect(json.contains(#"\u003c\/script\u003e"#) || json.contains(#"\u003c/script\u003e"#))
    }

    @Test func dashboardServesItsPageWithAPolicyAndListsTheRequests() async throws {
        let journal = RequestJournal()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(executor: makeEchoExecutor(), configuration: configuration, dashboard: journal)
        try await withRunning(server) { running in
            let page = try await running.exchange(RawHTTP.request(method: "GET", path: "/"))
            #expect(page.status == 200)
            let policy = try #require(page.header("Content-Security-Policy"))
            #expect(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"))
            #expect(page.bodyText.contains(#"<script src="/ui/app.js"></script>"#))
            #expect(page.bodyText.components(separatedBy: "<script").count == 2)
            let script = try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/app.js"))
            #expect(script.header("Content-Type")?.hasPrefix("text/javascript") == true)
            #expect(!script.bodyText.contains("innerHTML"))

            for stdin in ["one", "two"] {
                let answer = try await running.postJSON(
                    "/run_code", #"{"code": "print(input())", "language": "python", "stdin": "\#(stdin)"}"#)
                #expect(answer.status == 200)
            }
            _ = try await running.postJSON("/run_code", #"{"code": 1}"#)
            let list = try parseJSON(
                try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/api/list?limit=2")).body)
            #expect(list["total"] == .integer("3"))
            #expect(list["rows"]?[0]?["outcome"] == .string("rejected"))
            #expect(list["rows"]?[1]?["outcome"] == .string("live"))
            let found = try parseJSON(
                try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/api/list?outcome=live&q=two"))
                    .body)
            #expect(found["total"] == .integer("1"))
            let item = try parseJSON(
                try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/api/item?id=2")).body)
            #expect(item["request"]?["stdin"] == .string("two"))
            #expect(item["result"]?["stdout"] == .string("two"))
            let missing = try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/api/item?id=99"))
            #expect(missing.status == 404)
            let post = try await running.exchange(RawHTTP.request(method: "POST", path: "/ui/api/list", body: []))
            #expect(post.status == 405)
            // The dashboard's own requests are not counted as the server's: 3 `/run_code` and this `/stats`.
            let stats = try parseJSON(
                try await running.exchange(RawHTTP.request(method: "GET", path: "/stats")).body)
            #expect(stats["requests"] == .integer("4"))
        }
    }

    @Test func aMissShowsTheNearestRecordingsFieldByField() async throws {
        let folder = try makeTemporaryFolder("dashboard-miss")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = try await Cassette.open(at: try await importGradingDemoCassette(into: folder))
        let journal = RequestJournal()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(
            executor: RecordingExecutor(cassette: cassette, mode: .never), configuration: configuration,
            dashboard: journal)
        try await withRunning(server) { running in
            let answer = try await running.postJSON(
                "/run_code",
                #"{"code": "a, b = map(int, input().split())\nprint(a + b)\n", "language": "python", "stdin": "3 5\n", "run_timeout": 2}"#
            )
            #expect(answer.status == 200 && answer.bodyText.contains("No recording matches"))
            let item = try parseJSON(
                try await running.exchange(RawHTTP.request(method: "GET", path: "/ui/api/item?id=1")).body)
            #expect(item["facts"]?[2]?[1] == .string("miss"))
            guard case .array(let nearest) = item["nearest"] else {
                Issue.record("no nearest recordings: \(item)")
                return
            }
            #expect(nearest.count == 3)
            guard case .array(let fields) = nearest[0]["fields"] else { return }
            let differing = fields.filter { $0["same"] == .bool(false) }.compactMap { $0["name"] }
            #expect(differing == [.string("stdin")])
            let stdin = fields.first { $0["name"] == .string("stdin") }
            #expect(stdin?["recorded"] == .string("3 4\n") && stdin?["requested"] == .string("3 5\n"))
        }
        await cassette.close()
    }

    @Test func theEventStreamAnnouncesAndEndsAtShutdown() async throws {
        let journal = RequestJournal()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(executor: makeEchoExecutor(), configuration: configuration, dashboard: journal)
        let (ready, continuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task {
            try await server.run(onReady: { address in
                continuation.yield(address.port)
                continuation.finish()
            })
        }
        var iterator = ready.makeAsyncIterator()
        let port = try #require(await iterator.next())
        _ = try await RawHTTP.exchange(
            port: port,
            request: RawHTTP.postJSON(path: "/run_code", body: #"{"code": "print(1)", "language": "python"}"#))
        // The stream stays open until the shutdown, which ends it: reading to the end returns.
        let (started, startedContinuation) = AsyncStream.makeStream(of: Bool.self)
        let reader = Task {
            try await RawHTTP.onThread {
                let connection = try RawHTTPConnection(port: port)
                try connection.write(RawHTTP.request(method: "GET", path: "/ui/api/events"))
                startedContinuation.yield(connection.waitForInput(seconds: 30))
                startedContinuation.finish()
                return try connection.readUntilClosed()
            }
        }
        var startedIterator = started.makeAsyncIterator()
        #expect(await startedIterator.next() == true)
        await server.triggerGracefulShutdown()
        let stream = String(decoding: try await reader.value, as: UTF8.self)
        try await running.value
        #expect(stream.contains("text/event-stream"))
        #expect(stream.contains("event: update\ndata: {"))
        #expect(stream.contains(#""lastID":1"#))
    }

    @Test func theCassetteBrowserSortsFiltersAndSearches() async throws {
        let folder = try makeTemporaryFolder("dashboard-browse")
        defer { try? FileManager.default.removeItem(at: folder) }
        let browser = try await CassetteBrowser.open(try await importGradingDemoCassette(into: folder))
        var query = WebRoutes.ListQuery()
        query.limit = 500
        let all = try await browser.list(query)
        #expect(all.total == 96 && all.rows.map(\.id) == all.rows.map(\.id).sorted())
        query.sort = "size-desc"
        let bySize = try await browser.list(query).rows.compactMap(\.size)
        #expect(bySize == bySize.sorted(by: >))
        query.outcome = "never-replayed"
        #expect(try await browser.list(query).total == 96)
        query.outcome = nil
        query.text = TextQuery("sorted(")
        query.textSource = "sorted("
        let found = try await browser.list(query)
        #expect(found.total > 0 && found.total < 96)
        let detail = try #require(try await browser.detail(id: found.rows[0].id))
        #expect(detail.request?.code?.contains("sorted(") == true)
        #expect(try await browser.detail(id: 100_000) == nil)
        await browser.cassette.close()
    }

    @Test func theGradingReportAllowsOnlyItsOwnScriptAndStyle() throws {
        let payload = "</script><script>window.__xss=1</script><img src=x onerror=alert(1)>"
        let report = GradeReport(problems: [
            GradeReport.Problem(
                id: "p", title: payload,
                candidates: [
                    GradeReport.Candidate(
                        id: "c", language: .python, intent: .correct,
                        tests: [
                            GradeReport.Test(
                                index: 0, passed: false, verdict: .wrongOutput, status: "Success", exitCode: 0,
                                expected: "1\n", stdout: payload, stderr: "", seconds: 0.5)
                        ])
                ])
        ])
        let html = GradeReportPage.html(report, problems: [])
        #expect(html.components(separatedBy: "<script").count == 3)  // the JSON block and the script
        #expect(html.components(separatedBy: "</script>").count == 3)
        #expect(!html.contains("<img"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        let script = try #require(
            html.components(separatedBy: "<script>").last?.components(separatedBy: "</script>").first)
        let style = try #require(
            html.components(separatedBy: "<style>").last?.components(separatedBy: "</style>").first)
        #expect(html.contains("script-src '\(GradeReportPage.hashSource(script))'"))
        #expect(html.contains("style-src '\(GradeReportPage.hashSource(style))'"))
        #expect(!html.contains("unsafe-inline"))
    }
}

extension RequestJournal.Detail {
    var bytesForTests: Int { bytes }
}
