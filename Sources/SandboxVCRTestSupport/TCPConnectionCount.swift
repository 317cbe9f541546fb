import Foundation

/// The TCP connections to a local port that the kernel lists in `/proc/net/tcp` and `/proc/net/tcp6`: open ones,
/// and closed ones for the minute their TIME_WAIT lasts. Counts what clients really opened, whoever they are.
public enum TCPConnectionCount {
    /// Whether this system lists its connections there (Linux).
    public static var isAvailable: Bool { FileManager.default.isReadableFile(atPath: "/proc/net/tcp") }

    /// The client ports of the connections to `port` on this machine, each connection once (seen from its client
    /// end, its server end, or both).
    public static func clientPorts(connectedTo port: Int) -> Set<Int> {
        var clients = Set<Int>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            // Read to the end: the kernel reports a size of 0 for these files.
            guard let handle = FileHandle(forReadingAtPath: table), let data = try? handle.readToEnd() else { continue }
            try? handle.close()
            let text = String(decoding: data, as: UTF8.self)
            for line in text.split(separator: "\n").dropFirst() {
                // sl local_address rem_address st …, addresses as HEXADDRESS:HEXPORT.
                let fields = line.split(separator: " ")
                guard fields.count > 3, let local = Self.port(fields[1]), let remote = Self.port(fields[2]) else {
                    continue
                }
                if remote == port {
                    clients.insert(local)
                } else if local == port, remote != 0 {
                    clients.insert(remote)
                }
            }
        }
        return clients
    }

    /// The connections to a port opened after it was made. A server that listens on a port another one used a moment
    /// ago (port 0 may pick it again) would otherwise count that server's connections, which the kernel lists for the
    /// minute their TIME_WAIT lasts. Make it once the server listens, before any request.
    public struct Opened: Sendable {
        public let port: Int
        private let earlier: Set<Int>

        public init(toPort port: Int) {
            self.port = port
            earlier = TCPConnectionCount.clientPorts(connectedTo: port)
        }

        /// The client ports of the connections to ``port`` that were not listed when this was made.
        public var clientPorts: Set<Int> { TCPConnectionCount.clientPorts(connectedTo: port).subtracting(earlier) }
    }

    private static func port(_ address: Substring) -> Int? {
        guard let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...], radix: 16)
    }
}
