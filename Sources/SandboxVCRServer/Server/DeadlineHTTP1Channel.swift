internal import HummingbirdCore
internal import Logging
internal import NIOCore

/// Hummingbird's HTTP/1 child channel with ``ConnectionDeadlineHandler`` in front of it, so slow clients are timed
/// out (Hummingbird's own `idleTimeout` counts from the last decoded part, so it neither sees a head arriving a
/// byte at a time nor bounds a body).
struct DeadlineHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionDeadlineState.Limits

    /// The server's builder for `Application(server:)`.
    static func builder(limits: ConnectionDeadlineState.Limits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in DeadlineHTTP1Channel(responder: responder, limits: limits) }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // Hummingbird calls this on the channel's event loop, as its own setup assumes.
        do {
            let deadlines = ConnectionDeadlineHandler(limits: limits, logger: logger)
            try channel.pipeline.syncOperations.addHandler(deadlines, position: .first)
            let observer = NIOLoopBound(HTTPExchangeObserver(deadlines: deadlines), eventLoop: channel.eventLoop)
            var configuration = HTTP1Channel.Configuration()
            configuration.additionalChannelHandlers = { [observer] in [observer.value] }
            return HTTP1Channel(responder: responder, configuration: configuration).setup(
                channel: channel, logger: logger)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await HTTP1Channel(responder: responder).handle(value: value, logger: logger)
    }
}
