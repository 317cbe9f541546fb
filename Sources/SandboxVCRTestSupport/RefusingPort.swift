import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A port on 127.0.0.1 that refuses every connection until ``close()``: a socket bound to it that never listens.
///
/// Holding the port bound keeps other tests' servers off it. A port merely found free and released could be
/// taken by a server another test starts meanwhile, which then answers what was meant to be refused.
public final class RefusingPort: Sendable {
    /// The refusing port.
    public let port: Int
    private let descriptor: Mutex<Int32?>

    /// Binds a socket to a free port on 127.0.0.1.
    public init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw Self.error("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else {
            let error = Self.error("bind")
            Glibc.close(socket)
            throw error
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        descriptor = Mutex(socket)
    }

    /// Releases the port (also done when this value is freed).
    public func close() {
        if let socket = descriptor.withLock({ $0.take() }) { Glibc.close(socket) }
    }

    deinit { close() }

    /// Why no port could be bound.
    public struct SocketError: Error, CustomStringConvertible {
        public var description: String
    }

    private static func error(_ call: String) -> SocketError {
        SocketError(description: "\(call) failed for a refusing port: \(String(cString: strerror(errno)))")
    }
}
