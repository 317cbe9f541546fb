#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// An HTTP/1.1 answer read off a socket.
public struct RawHTTPResponse: Sendable {
    public var status: Int
    /// Header names lower-cased, in arrival order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first value of a header (name compared case-insensitively).
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name.lowercased() }?.value
    }

    /// The body as text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Why a raw HTTP exchange failed.
public struct RawHTTPError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// A blocking HTTP/1.1 client connection to a loopback port, sending exactly the bytes it is given: for testing a
/// server's handling of odd requests (no content type, malformed bodies, chunked uploads) and for load tests.
///
/// Blocking: use it from a dedicated thread (``RawHTTP/exchange(port:request:)`` does), never from Swift's
/// cooperative pool for long. Not thread-safe; one connection per thread.
public final class RawHTTPConnection {
    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var bufferStart = 0

    /// Connects to `127.0.0.1:port`.
    public init(port: Int) throws(RawHTTPError) {
        #if canImport(Glibc)
            let socketType = Int32(SOCK_STREAM.rawValue)
        #else
            let socketType = SOCK_STREAM
        #endif
        let descriptor = socket(AF_INET, socketType, 0)
        guard descriptor >= 0 else { throw RawHTTPError(description: "socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw RawHTTPError(description: "connect to 127.0.0.1:\(port) failed: errno \(code)")
        }
        var noDelay: Int32 = 1
        setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8]) throws(RawHTTPError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw RawHTTPError(description: "send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Reads one whole answer (`Content-Length` or chunked body).
    public func readResponse() throws(RawHTTPError) -> RawHTTPResponse {
        let head = try readUntilBlankLine()
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw RawHTTPError(description: "not an HTTP status line: \(lines.first ?? "")")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            headers.append((name, String(value)))
        }
        var response = RawHTTPResponse(status: status, headers: headers, body: [])
        if response.header("transfer-encoding")?.lowercased() == "chunked" {
            while true {
                let sizeLine = try readLine()
                guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else {
                    throw RawHTTPError(description: "bad chunk size line \(sizeLine)")
                }
                if size == 0 {
                    _ = try readLine()
                    break
                }
                response.body += try readBytes(size)
                _ = try readLine()
            }
        } else if let length = response.header("content-length").flatMap(Int.init) {
            response.body = try readBytes(length)
        }
        return response
    }

    /// Makes every later read fail after `seconds` without data (`SO_RCVTIMEO`), so a test cannot hang on a server
    /// that never answers.
    public func setReadTimeout(seconds: Double) {
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Waits up to `seconds` for something to read (bytes, or the end of the stream); `true` if there is.
    public func waitForInput(seconds: Double) -> Bool {
        if bufferStart < buffer.count { return true }
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, Int32(seconds * 1000)) > 0
    }

    /// Reads until the server closes the connection (an end of stream or a reset); returns what it sent first.
    /// Throws if a read times out (see ``setReadTimeout(seconds:)``).
    public func readUntilClosed() throws(RawHTTPError) -> [UInt8] {
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                continue
            }
            if count == 0 || errno == ECONNRESET {
                defer { (buffer, bufferStart) = ([], 0) }
                return Array(buffer[bufferStart...])
            }
            throw RawHTTPError(description: "the connection is still open: recv failed with errno \(errno)")
        }
    }

    /// Sends a request and reads its answer.
    public func exchange(_ request: [UInt8]) throws(RawHTTPError) -> RawHTTPResponse {
        try write(request)
        return try readResponse()
    }

    private func fill() throws(RawHTTPError) {
        if bufferStart > 0 {
            buffer.removeFirst(bufferStart)
            bufferStart = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else {
            throw RawHTTPError(
                description: count == 0 ? "the server closed the connection" : "recv failed: errno \(errno)")
        }
        buffer.append(contentsOf: chunk[0..<count])
    }

    private func readUntilBlankLine() throws(RawHTTPError) -> String {
        while true {
            if let end = find([13, 10, 13, 10]) {
                let text = String(decoding: buffer[bufferStart..<end], as: UTF8.self)
                bufferStart = end + 4
                return text
            }
            try fill()
        }
    }

    private func readLine() throws(RawHTTPError) -> String {
        while true {
            if let end = find([13, 10]) {
                let text = String(decoding: buffer[bufferStart..<end], as: UTF8.self)
                bufferStart = end + 2
                return text
            }
            try fill()
        }
    }

    private func readBytes(_ count: Int) throws(RawHTTPError) -> [UInt8] {
        while buffer.count - bufferStart < count { try fill() }
        let bytes = Array(buffer[bufferStart..<(bufferStart + count)])
        bufferStart += count
        return bytes
    }

    private func find(_ pattern: [UInt8]) -> Int? {
        guard buffer.count - bufferStart >= pattern.count else { return nil }
        var index = bufferStart
        while index + pattern.count <= buffer.count {
            if buffer[index] == pattern[0], Array(buffer[index..<(index + pattern.count)]) == pattern { return index }
            index += 1
        }
        return nil
    }
}
