/// Which HTTP version a request asks for. An open set: compare with the static members.
package struct HTTPVersion: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: String
    package init(rawValue: String) { self.rawValue = rawValue }
    package var description: String { rawValue }

    /// HTTP/1.1 only (the SandboxFusion server speaks nothing else).
    package static let http1_1 = HTTPVersion(rawValue: "HTTP/1.1")
    /// HTTP/2 negotiated by ALPN over TLS (`https`), HTTP/1.1 over plain `http`.
    package static let http2 = HTTPVersion(rawValue: "HTTP/2")
    /// HTTP/2 without negotiation, also over plain `http` (h2c with prior knowledge, as gRPC servers speak).
    package static let http2PriorKnowledge = HTTPVersion(rawValue: "HTTP/2 prior knowledge")
}
