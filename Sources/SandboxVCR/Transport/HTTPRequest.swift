package import Foundation

/// One HTTP request: method, absolute URL, header fields and a body held in memory.
package struct HTTPRequest: Hashable, Sendable {
    /// The method, e.g. `GET`, `POST`.
    package var method: String
    /// The absolute URL (`http://127.0.0.1:8080/run_code`). Credentials in it are never logged or reported.
    package var url: String
    package var headers: HTTPHeaders
    /// The body; sent when non-empty or when the method is not `GET`/`HEAD`.
    package var body: Data
    /// The HTTP version to ask for, or `nil` for the client's ``HTTPClient/Configuration/httpVersion``.
    package var httpVersion: HTTPVersion?
    /// Where the response body goes as it arrives, or `nil` to collect it into ``HTTPResponse/body``.
    package var bodySink: HTTPBodySink?
    /// Whether the request goes on a new connection of its own, which no other request shares and which closes after
    /// the answer. For an HTTP/2 request whose trailers must not be lost and which must not be sent twice, on a
    /// libcurl that drops the trailers of multiplexed streams (``HTTPClient/losesTrailersOfMultiplexedStreams``).
    package var usesOwnConnection: Bool

    package init(
        method: String = "GET",
        url: String,
        headers: HTTPHeaders = [:],
        body: Data = Data(),
        httpVersion: HTTPVersion? = nil,
        bodySink: HTTPBodySink? = nil,
        usesOwnConnection: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.httpVersion = httpVersion
        self.bodySink = bodySink
        self.usesOwnConnection = usesOwnConnection
    }
}
