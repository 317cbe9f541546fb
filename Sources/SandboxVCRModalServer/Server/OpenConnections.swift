import NIOCore
import Synchronization

/// The Modal port's open HTTP/2 connections, so that shutdown can close the ones a client leaves idle.
///
/// After `GOAWAY` grpc-swift waits for the client to answer its `PING` before it closes a connection, and libcurl does
/// not read a connection it has no request on (the Swift client keeps one open between calls): such a connection
/// would keep the server from stopping. ``closeAll()`` ends them once shutdown's last wait is over.
final class OpenConnections: Sendable {
    private let channels = Mutex([ObjectIdentifier: any Channel]())

    /// Notes an accepted connection until it closes.
    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.channels.withLock { $0.removeValue(forKey: id) }
        }
    }

    /// How many are open.
    var count: Int { channels.withLock { $0.count } }

    /// Closes every connection still open; returns how many it closed.
    @discardableResult
    func closeAll() -> Int {
        let open = channels.withLock { Array($0.values) }
        for channel in open { channel.close(promise: nil) }
        return open.count
    }
}
