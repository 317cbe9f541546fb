import Foundation
import SandboxVCR

/// Reads HTTP/1.1 requests off a blocking socket: head, then a `Content-Length` or chunked body.
struct LoopbackRequestReader {
    struct Parsed {
        var method: String
        var path: String
        var headers: HTTPHeaders
        var body: Data
        var keepAlive: Bool
    }

    let descriptor: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)

    init(descriptor: Int32) {
        self.descriptor = descriptor
        buffer.reserveCapacity(16 << 10)
    }

    /// The next request, or `nil` when the client closed the connection or sent something unreadable.
    mutating func next() -> Parsed? {
        guard let headEnd = readUntilHeadEnd() else { return nil }
        let head = String(decoding: buffer[start..<headEnd], as: UTF8.self)
        start = headEnd + 4
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var headers = HTTPHeaders()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(
                name: String(line[..<colon]),
                value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let version = requestLine.count > 2 ? String(requestLine[2]) : "HTTP/1.0"
        let connection = headers.first(name: "connection")?.lowercased()
        let keepAlive = version == "HTTP/1.1" ? connection != "close" : connection == "keep-alive"
        var body = Data()
        if headers.first(name: "transfer-encoding")?.lowercased().contains("chunked") == true {
            guard let chunked = readChunkedBody() else { return nil }
            body = chunked
        } else if let length = headers.first(name: "content-length").flatMap(Int.init), length > 0 {
            guard fill(upTo: start + length) else { return nil }
            body = Data(buffer[start..<start + length])
            start += length
        }
        compact()
        return Parsed(
            method: String(requestLine[0]), path: String(requestLine[1]), headers: headers, body: body,
            keepAlive: keepAlive)
    }

    private mutating func readUntilHeadEnd() -> Int? {
        var searchFrom = start
        while true {
            if buffer.count - searchFrom >= 4 {
                var index = searchFrom
                while index + 3 < buffer.count {
                    if buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13
                        && buffer[index + 3] == 10
                    {
                        return index
                    }
                    index += 1
                }
                searchFrom = max(start, buffer.count - 3)
            }
            guard receive() else { return nil }
        }
    }

    private mutating func readLine() -> String? {
        while true {
            if let index = buffer[start...].firstIndex(of: 10), index > start, buffer[index - 1] == 13 {
                let line = String(decoding: buffer[start..<index - 1], as: UTF8.self)
                start = index + 1
                return line
            }
            guard receive() else { return nil }
        }
    }

    private mutating func readChunkedBody() -> Data? {
        var body = Data()
        while true {
            guard let sizeLine = readLine(),
                let size = Int(sizeLine.split(separator: ";").first.map(String.init) ?? "", radix: 16)
            else { return nil }
            if size == 0 {
                while let trailer = readLine(), !trailer.isEmpty {}
                return body
            }
            guard fill(upTo: start + size + 2) else { return nil }
            body.append(contentsOf: buffer[start..<start + size])
            start += size + 2
        }
    }

    private mutating func fill(upTo end: Int) -> Bool {
        while buffer.count < end {
            guard receive() else { return false }
        }
        return true
    }

    /// Reads more bytes; `false` at end of stream or on error.
    private mutating func receive() -> Bool {
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 64 << 10 {
            buffer.removeFirst(start)
            start = 0
        }
    }
}
