internal import Foundation
internal import HTTPTypes
internal import Hummingbird
internal import HummingbirdCore
internal import NIOCore
internal import SandboxVCRWebUI

/// What the dashboard and the cassette browser share: the page, its assets, JSON answers and query parameters.
enum WebRoutes {
    /// The most rows one list request returns.
    static let maximumPageSize = 500

    /// The page, its script or its style sheet for `path`, or `nil` for another path.
    static func asset(_ path: String, mode: WebAssets.Mode) -> Response? {
        switch path {
        case "/", "/index.html": text(WebAssets.shell(mode), type: "text/html; charset=utf-8")
        case "/ui/app.js": text(WebAssets.appScript, type: "text/javascript; charset=utf-8")
        case "/ui/app.css": text(WebAssets.css, type: "text/css; charset=utf-8")
        default: nil
        }
    }

    static func text(_ text: String, type: String) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(text)
        return Response(status: .ok, headers: headers(type: type), body: ResponseBody(byteBuffer: buffer))
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: headers(type: "application/json"),
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: WebViews.json(value))))
    }

    static func notFound(_ message: String) -> Response {
        json(["detail": message], status: .notFound)
    }

    /// Every answer of the pages: no caching, no sniffing, and the page's Content-Security-Policy.
    static func headers(type: String) -> HTTPFields {
        [
            .contentType: type, .cacheControl: "no-store",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("Content-Security-Policy")!: WebAssets.contentSecurityPolicy,
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
    }

    /// A list request's paging and filters.
    struct ListQuery {
        var offset = 0
        var limit = 100
        var outcome: String?
        var text: TextQuery?
        /// The search text as typed.
        var textSource = ""
        var sort = "time-asc"

        /// The first page of everything, oldest first.
        init() {}

        init(_ uri: URI) {
            let parameters = uri.queryParameters
            offset = parameters["offset"].flatMap { Int($0) }.map { max(0, $0) } ?? 0
            limit = parameters["limit"].flatMap { Int($0) }.map { min(max(1, $0), maximumPageSize) } ?? 100
            outcome = parameters["outcome"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
            textSource = parameters["q"].map(String.init) ?? ""
            text = TextQuery(textSource)
            sort = parameters["sort"].map(String.init) ?? "time-asc"
        }
    }

    /// The `id` parameter of an item request.
    static func id(_ uri: URI) -> Int64? { uri.queryParameters["id"].flatMap { Int64($0) } }
}
