import Foundation
import SandboxVCRTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The connection counts that tests of connection sharing rely on leave out the connections a previous server on the
/// same port left in TIME_WAIT (a fresh server's port 0 may pick that port again within their minute), which once
/// made "calls share one connection" count four instead of two.
@Suite(.enabled(if: TCPConnectionCount.isAvailable, "needs /proc/net/tcp"))
struct TCPConnectionCountTests {
    @Test func connectionsListedBeforeTheCountStartsAreLeftOut() throws {
        let listener = try LoopbackListener()
        defer { close(listener.socket) }
        // A connection opened and closed at once: the kernel goes on listing it (TIME_WAIT).
        try listener.connectAndClose()
        try #require(TCPConnectionCount.clientPorts(connectedTo: listener.port).count == 1)

        let opened = TCPConnectionCount.Opened(toPort: listener.port)
        #expect(opened.clientPorts.isEmpty)
        try listener.connectAndClose()
        try listener.connectAndClose()
        #expect(opened.clientPorts.count == 2)
        #expect(TCPConnectionCount.clientPorts(connectedTo: listener.port).count == 3)
    }
}

/// A listening TCP socket on 127.0.0.1 and a port the kernel picked.
private struct LoopbackListener {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let socket: Int32
    let port: Int

    init() throws {
        let listening = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listening >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                bind(listening, address, length) == 0 && listen(listening, 8) == 0
                    && getsockname(listening, address, &length) == 0
            }
        }
        guard bound else {
            close(listening)
            throw Failure(description: "bind/listen: errno \(errno)")
        }
        socket = listening
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Connects to the listener, accepts, and closes both ends.
    func connectAndClose() throws {
        let client = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard client >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(client) }
        var address = Self.loopback(port: port)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else { throw Failure(description: "connect: errno \(errno)") }
        let accepted = accept(socket, nil, nil)
        guard accepted >= 0 else { throw Failure(description: "accept: errno \(errno)") }
        close(accepted)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
