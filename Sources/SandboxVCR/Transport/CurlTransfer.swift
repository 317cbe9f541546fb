internal import CCurl
import Foundation

/// One transfer in flight: its easy handle, request body, response under construction and waiting caller.
/// Used on the loop thread only.
final class CurlTransfer {
    let id: UInt64
    /// What started it: the request, its version and deadline, and its caller (also ``continuation``).
    let start: CurlMultiLoop.Start
    let easy: UnsafeMutableRawPointer
    let url: String
    let body: Data
    /// Receives the response body instead of ``responseBody`` when set.
    let bodySink: HTTPBodySink?
    var readOffset = 0
    var continuation: CheckedContinuation<HTTPResponse, any Error>?
    var headerList: UnsafeMutablePointer<curl_slist>?
    /// The `CURLOPT_CONNECT_TO` entry of a request on a connection of its own.
    var connectToList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer: UnsafeMutablePointer<CChar>

    var status = 0
    var headers = HTTPHeaders()
    var trailers = HTTPHeaders()
    var responseBody = Data()
    var isHeaderBlockComplete = false

    /// Its part in sharing h2c connections on a libcurl before 8.0 (``PriorKnowledgeConnections``), if it has one.
    var priorKnowledgeRole: PriorKnowledgeConnections.Role?
    /// Whether libcurl has sent the request, as far as a read or header callback shows.
    var hasSentRequest = false
    /// Whether libcurl tried to open a connection for it and the open-socket callback refused.
    var wasRefusedAConnection = false

    init(start: CurlMultiLoop.Start, easy: UnsafeMutableRawPointer) {
        self.id = start.id
        self.start = start
        self.easy = easy
        self.url = start.request.url
        self.body = start.request.body
        self.bodySink = start.request.bodySink
        self.continuation = start.continuation
        let size = Int(ccurl_error_size())
        self.errorBuffer = .allocate(capacity: size)
        errorBuffer.initialize(repeating: 0, count: size)
    }

    deinit {
        errorBuffer.deallocate()
        if let headerList { curl_slist_free_all(headerList) }
        if let connectToList { curl_slist_free_all(connectToList) }
    }

    var errorDetail: String { String(cString: errorBuffer) }

    /// Handles one header line as libcurl delivers it (status lines, fields, the blank line, trailers).
    func receiveHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        hasSentRequest = true
        var end = bytes.count
        while end > 0 && (bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D) { end -= 1 }
        let line = Substring(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            // A new header block (after a 1xx, or the first): start over.
            headers = HTTPHeaders()
            isHeaderBlockComplete = false
            return
        }
        if line.isEmpty {
            isHeaderBlockComplete = true
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon])
        let value = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        if isHeaderBlockComplete {
            trailers.add(name: name, value: value)
        } else {
            headers.add(name: name, value: value)
            if name.lowercased() == "content-length", let length = Int(value), length > 0 {
                responseBody.reserveCapacity(min(length, 256 << 20))
            }
        }
    }

    /// Copies the next request body bytes into libcurl's buffer.
    func readBody(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        hasSentRequest = true
        let count = min(capacity, body.count - readOffset)
        guard count > 0 else { return 0 }
        body.withUnsafeBytes { raw in
            UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + readOffset, byteCount: count)
        }
        readOffset += count
        return count
    }
}
