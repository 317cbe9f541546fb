/// Which HTTP version a request asks for. An open set: compare with the static members.
public struct HTTPVersion: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// HTTP/1.1 only (the SandboxFusion server speaks nothing else).
    public static let http1_1 = HTTPVersion(rawValue: "HTTP/1.1")
    /// HTTP/2 negotiated by ALPN over TLS (`https`), HTTP/1.1 over plain `http`.
    public static let http2 = HTTPVersion(rawValue: "HTTP/2")
    /// HTTP/2 without negotiation, also over plain `http` (h2c with prior knowledge, as gRPC servers speak).
    public static let http2PriorKnowledge = HTTPVersion(rawValue: "HTTP/2 prior knowledge")
}
