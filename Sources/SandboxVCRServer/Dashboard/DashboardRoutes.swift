internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import NIOCore
internal import SandboxVCR
internal import SandboxVCRWebUI

/// `serve`'s live dashboard: `GET /` (the page), `/ui/app.js`, `/ui/app.css`, and its JSON:
///
/// - `GET /ui/api/summary`: the title and the counters of `/stats`;
/// - `GET /ui/api/list?offset=&limit=&outcome=&q=`: the requests newest first, filtered by outcome and by text
///   (code, stdin, output, key, endpoint), one page;
/// - `GET /ui/api/item?id=`: one request's detail (request, result, miss diagnostics and nearest recordings, the
///   timeline of its Modal sandbox);
/// - `GET /ui/api/events`: server-sent events, an `update` (newest id and counters) at most every 250 ms while
///   requests come in, and a comment every 15 s to keep the connection.
///
/// Nothing is computed for the dashboard while nobody looks but the journal entry of each request.
enum DashboardRoutes {
    static func isDashboardPath(_ path: String) -> Bool {
        path == "/" || path == "/index.html" || path == "/favicon.ico" || path.hasPrefix("/ui/")
    }

    static func answer(to request: Request, server: SandboxFusionServer, journal: RequestJournal) -> Response {
        guard request.method == .get || request.method == .head else {
            var response = WebRoutes.json(["detail": "Method Not Allowed"], status: .methodNotAllowed)
            response.headers[.allow] = "GET"
            return response
        }
        let path = request.uri.path
        if let asset = WebRoutes.asset(path, mode: .live) { return asset }
        if path == "/favicon.ico" { return Response(status: .noContent) }
        switch path {
        case "/ui/api/summary":
            return WebRoutes.json(Summary(title: "sandbox-vcr serve", counters: counters(server.statistics.snapshot)))
        case "/ui/api/list":
            return WebRoutes.json(list(WebRoutes.ListQuery(request.uri), journal: journal))
        case "/ui/api/item":
            guard let id = WebRoutes.id(request.uri), let entry = journal.entry(id: Int(id)) else {
                return WebRoutes.notFound("no such request in the dashboard's history")
            }
            return WebRoutes.json(JournalViews.detail(entry, journal: journal))
        case "/ui/api/events":
            return events(server: server, journal: journal)
        default:
            return WebRoutes.notFound("no dashboard resource \(path)")
        }
    }

    struct Summary: Encodable {
        var title: String
        var counters: [[String]]
    }

    struct Update: Encodable {
        var lastID: Int
        var counters: [[String]]
    }

    /// The counters of `/stats`, in order.
    static func counters(_ snapshot: ServeStatistics.Snapshot) -> [[String]] {
        var counters: [[String]] = [
            ["requests", "\(snapshot.requests)"], ["hits", "\(snapshot.hits)"], ["misses", "\(snapshot.misses)"],
            ["recorded", "\(snapshot.recorded)"], ["live", "\(snapshot.live)"], ["fake", "\(snapshot.fake)"],
            ["errors", "\(snapshot.errors)"], ["rejected", "\(snapshot.rejected)"],
        ]
        for (name, value) in (snapshot.modal ?? [:]).sorted(by: { $0.key < $1.key }) {
            counters.append(["modal \(name)", "\(value)"])
        }
        return counters
    }

    static func list(_ query: WebRoutes.ListQuery, journal: RequestJournal) -> WebViews.Page {
        let outcome = query.outcome
        let search: ((RequestJournal.Entry) -> Bool)? = query.text.map { text in
            { entry in JournalViews.matches(entry, text) }
        }
        let (total, entries) = journal.page(
            offset: query.offset, limit: query.limit, where: { outcome == nil || $0.outcome == outcome },
            search: search)
        return WebViews.Page(total: total, offset: query.offset, rows: entries.map(JournalViews.row))
    }

    /// The event stream: an `update` when the newest request changed (checked every 250 ms), a comment every 15 s,
    /// until the client goes or the server shuts down.
    static func events(server: SandboxFusionServer, journal: RequestJournal) -> Response {
        var headers = WebRoutes.headers(type: "text/event-stream")
        headers[HTTPField.Name("X-Accel-Buffering")!] = "no"
        let body = ResponseBody { writer in
            var lastSent = -1
            var quiet = 0
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            while !server.isClosingDashboard {
                let lastID = journal.lastID
                if lastID != lastSent {
                    lastSent = lastID
                    quiet = 0
                    let update = Update(lastID: lastID, counters: counters(server.statistics.snapshot))
                    var buffer = ByteBuffer(string: "event: update\ndata: ")
                    buffer.writeBytes(WebViews.json(update))
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                } else {
                    quiet += 1
                    if quiet >= 60 {
                        quiet = 0
                        try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    }
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }
}
