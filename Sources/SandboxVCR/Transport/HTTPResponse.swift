package import Foundation

/// One HTTP response: status, header fields, the whole body, and any trailer fields sent after the body.
package struct HTTPResponse: Hashable, Sendable {
    /// The status code of the final response (after any `1xx`).
    package var status: Int
    package var headers: HTTPHeaders
    package var body: Data
    /// Trailer fields sent after the body (HTTP/2 trailers, as gRPC sends `grpc-status`; chunked HTTP/1.1 trailers).
    package var trailers: HTTPHeaders
    /// The version the server answered with.
    package var httpVersion: HTTPVersion

    package init(
        status: Int,
        headers: HTTPHeaders = [:],
        body: Data = Data(),
        trailers: HTTPHeaders = [:],
        httpVersion: HTTPVersion = .http1_1
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.httpVersion = httpVersion
    }

    /// The body as text (invalid UTF-8 replaced).
    package var bodyText: String { String(decoding: body, as: UTF8.self) }
}
