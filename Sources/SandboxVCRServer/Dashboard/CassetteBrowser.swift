public import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import HummingbirdCore
internal import Logging
internal import NIOCore
public import SandboxVCR
internal import SandboxVCRWebUI
internal import ServiceLifecycle
internal import Synchronization
internal import UnixSignals

/// `sandbox-vcr cassette browse`: a cassette's interactions in the browser, read-only, on a loopback port.
///
/// Serves the same page as `serve`'s dashboard in cassette mode: every interaction, sorted by time or size,
/// filtered (never replayed, replayed, recorded failures, in a session), searched (code, argv, stdin, stdout; the
/// first search of a text reads the whole cassette, later pages of it are kept), with the cassette's figures
/// (dedupe, never replayed, sessions) and each session's steps in order.
public final class CassetteBrowser: Sendable {
    /// What the list shows of one interaction, read once when the browser opens.
    struct Row: Sendable {
        var id: Int64
        var recordedAt: Date
        var size: Int
        var language: String?
        var summary: String
        var outcome: String
        var session: String?
        var step: Int?
        var neverReplayed: Bool
        var redacted: Bool
    }

    public let cassette: Cassette
    let rows: [Row]
    let rowIndex: [Int64: Int]
    let figures: Cassette.Statistics
    let sessionCount: Int
    /// Search results by text (row indexes in id order), the newest few.
    private let searches = Mutex<[(query: String, rows: [Int])]>([])

    private init(cassette: Cassette, rows: [Row], figures: Cassette.Statistics) {
        self.cassette = cassette
        self.rows = rows
        self.rowIndex = Dictionary(uniqueKeysWithValues: rows.enumerated().map { ($1.id, $0) })
        self.figures = figures
        self.sessionCount = Set(rows.compactMap(\.session)).count
    }

    /// Opens the cassette read-only and reads every interaction's row.
    ///
    /// - Throws: ``CassetteError`` when the file is missing, not a cassette or damaged.
    public static func open(_ url: URL) async throws -> CassetteBrowser {
        let cassette = try await Cassette.open(at: url, readOnly: true, create: false)
        var rows: [Row] = []
        try await cassette.forEachInteraction { interaction in
            rows.append(row(interaction))
        }
        rows.sort { $0.id < $1.id }
        return CassetteBrowser(cassette: cassette, rows: rows, figures: try await cassette.statistics())
    }

    static func row(_ interaction: Cassette.Interaction) -> Row {
        var size = interaction.request.byteSize
        var outcome = "error"
        var redacted = false
        if case .result(let result) = interaction.outcome {
            size += result.stdout.count + result.stderr.count
            outcome = result.status.rawValue
            redacted = result.hints.contains { if case .redacted = $0 { true } else { false } }
        }
        var language: String?
        if case .source(let value, _) = interaction.request.program { language = value.rawValue }
        return Row(
            id: interaction.id, recordedAt: interaction.recordedAt, size: size, language: language,
            summary: interaction.request.summary, outcome: outcome, session: interaction.session,
            step: interaction.step, neverReplayed: interaction.lastReplayedAt == nil, redacted: redacted)
    }

    /// Serves the page on `host:port` (0 picks a free port) until SIGINT or SIGTERM.
    ///
    /// - Parameter onReady: called once listening, with the page's URL.
    public func run(
        host: String = "127.0.0.1", port: Int = 0, handlesSignals: Bool = true,
        onReady: @escaping @Sendable (String) async -> Void
    ) async throws {
        var configuration = ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil)
        configuration.reuseAddress = true
        let logger = Logger(label: "sandbox-vcr.browse", factory: { _ in SwiftLogNoOpLogHandler() })
        let application = Application(
            responder: BrowserResponder(browser: self), configuration: configuration,
            onServerRunning: { channel in
                let shown = host.contains(":") ? "[\(host)]" : host
                await onReady("http://\(shown):\(channel.localAddress?.port ?? port)/")
            }, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [application], gracefulShutdownSignals: handlesSignals ? [.sigterm, .sigint] : [],
                logger: logger))
        try await group.run()
    }

    // MARK: Answers

    struct Summary: Encodable {
        var title: String
        var counters: [[String]]
    }

    var summary: Summary {
        let name = cassette.url.lastPathComponent
        let bytes = ByteCountText.describing
        return Summary(
            title: "cassette \(name)",
            counters: [
                ["interactions", "\(rows.count)"], ["never replayed", "\(figures.neverReplayed)"],
                ["sessions", "\(sessionCount)"], ["dedupe ratio", String(format: "%.2f", figures.dedupeRatio)],
                ["stored", bytes(figures.storedBytes)], ["logical", bytes(figures.logicalBytes)],
                ["file", bytes(figures.fileSize)],
            ])
    }

    func list(_ query: WebRoutes.ListQuery) async throws -> WebViews.Page {
        var indexes: [Int]
        if let text = query.text {
            indexes = try await search(text, raw: query.textSource)
        } else {
            indexes = Array(rows.indices)
        }
        if let outcome = query.outcome {
            indexes = indexes.filter { index in
                let row = rows[index]
                switch outcome {
                case "never-replayed": return row.neverReplayed
                case "replayed": return !row.neverReplayed
                case "error": return row.outcome != "Success"
                case "session": return row.session != nil
                default: return true
                }
            }
        }
        switch query.sort {
        case "time-desc": indexes.reverse()
        case "size-desc": indexes.sort { rows[$0].size > rows[$1].size || (rows[$0].size == rows[$1].size && $0 < $1) }
        case "size-asc": indexes.sort { rows[$0].size < rows[$1].size || (rows[$0].size == rows[$1].size && $0 < $1) }
        default: break
        }
        let page = indexes.dropFirst(query.offset).prefix(query.limit).map { view(rows[$0]) }
        return WebViews.Page(total: indexes.count, offset: query.offset, rows: Array(page))
    }

    func view(_ row: Row) -> WebViews.Row {
        WebViews.Row(
            id: row.id, time: WebViews.time(row.recordedAt), outcome: row.outcome, language: row.language,
            summary: row.summary, session: row.session, step: row.step, size: row.size,
            neverReplayed: row.neverReplayed, redacted: row.redacted ? true : nil)
    }

    /// The rows whose code, argv, stdin, file names or stdout contain the text: one pass over the cassette, kept.
    func search(_ text: TextQuery, raw: String) async throws -> [Int] {
        if let kept = searches.withLock({ $0.first { $0.query == raw }?.rows }) { return kept }
        var found: [Int] = []
        try await cassette.forEachInteraction { interaction in
            var hit = text.matches(interaction.request)
            if !hit, case .result(let result) = interaction.outcome { hit = text.matches(result.stdout) }
            if hit, let index = rowIndex[interaction.id] { found.append(index) }
        }
        found.sort()
        searches.withLock { searches in
            searches.insert((raw, found), at: 0)
            if searches.count > 8 { searches.removeLast() }
        }
        return found
    }

    func detail(id: Int64) async throws -> WebViews.Detail? {
        guard let interaction = try await cassette.interactions(ids: [id]).first else { return nil }
        var facts: [[String]] = [
            ["id", "\(interaction.id)"], ["recorded", WebViews.time(interaction.recordedAt)],
            ["key", interaction.key.hex], ["repetition", "\(interaction.ordinal)"], ["backend", interaction.backend],
            [
                "last replayed",
                interaction.lastReplayedAt.map(WebViews.time) ?? "never replayed",
            ],
        ]
        if let version = interaction.backendVersion { facts.append(["backend version", version]) }
        if let duration = interaction.duration { facts.append(["live duration", String(format: "%.3f s", duration)]) }
        if let session = interaction.session { facts.append(["session", "\(session), step \(interaction.step ?? 0)"]) }
        var result: WebViews.Result?
        var error: String?
        switch interaction.outcome {
        case .result(let value): result = WebViews.result(value)
        case .failure(let failure): error = WebViews.cut(failure.message)
        }
        var timeline: [WebViews.Row] = []
        if let session = interaction.session {
            timeline = rows.filter { $0.session == session }.sorted { ($0.step ?? 0, $0.id) < ($1.step ?? 0, $1.id) }
                .prefix(1_000).map(view)
        }
        return WebViews.Detail(
            id: interaction.id, title: "#\(interaction.id) \(interaction.request.summary)", facts: facts,
            request: WebViews.request(interaction.request), result: result, error: error, nearest: [],
            timeline: timeline, timelineTitle: interaction.session.map { "Session \($0)" }, detailDropped: false)
    }
}

/// Routes the browser's requests (GET only).
private struct BrowserResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let browser: CassetteBrowser

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .get || request.method == .head else {
            var response = WebRoutes.json(
                ["detail": "Method Not Allowed: the browser is read-only"], status: .methodNotAllowed)
            response.headers[.allow] = "GET"
            return response
        }
        let path = request.uri.path
        if let asset = WebRoutes.asset(path, mode: .cassette) { return asset }
        if path == "/favicon.ico" { return Response(status: .noContent) }
        do {
            switch path {
            case "/ui/api/summary":
                return WebRoutes.json(browser.summary)
            case "/ui/api/list":
                return WebRoutes.json(try await browser.list(WebRoutes.ListQuery(request.uri)))
            case "/ui/api/item":
                guard let id = WebRoutes.id(request.uri), let detail = try await browser.detail(id: id) else {
                    return WebRoutes.notFound("no such interaction in this cassette")
                }
                return WebRoutes.json(detail)
            default:
                return WebRoutes.notFound("no such page: \(path)")
            }
        } catch {
            return WebRoutes.json(["detail": "reading the cassette failed: \(error)"], status: .internalServerError)
        }
    }
}
