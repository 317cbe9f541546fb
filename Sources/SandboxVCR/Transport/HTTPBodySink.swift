package import Foundation

/// Receives a response body piece by piece as it arrives, instead of the response holding it whole.
///
/// Give one to ``HTTPRequest/bodySink`` to stream or cap a large answer (e.g. a gRPC output stream): the response's
/// ``HTTPResponse/body`` then stays empty. The handler runs on the client's transfer thread: keep it short and never
/// block in it. Sinks compare by identity.
package final class HTTPBodySink: Sendable, Hashable {
    private let handler: @Sendable (Data) -> Void

    /// - Parameter handler: called with each piece of the body, in order.
    package init(_ handler: @escaping @Sendable (Data) -> Void) {
        self.handler = handler
    }

    func receive(_ data: Data) { handler(data) }

    package static func == (lhs: HTTPBodySink, rhs: HTTPBodySink) -> Bool { lhs === rhs }
    package func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}
