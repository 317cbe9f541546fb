internal import CCurl
import Foundation

/// The loop thread's transfers by id and by easy handle, plus a pool of idle easy handles to reuse.
/// Used on the loop thread only.
final class TransferTable {
    private let multi: UnsafeMutableRawPointer
    private let options: CurlMultiLoop.Options
    private var byID: [UInt64: CurlTransfer] = [:]
    private var byHandle: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private let priorKnowledge = PriorKnowledgeConnections()

    init(multi: UnsafeMutableRawPointer, options: CurlMultiLoop.Options) {
        self.multi = multi
        self.options = options
    }

    deinit {
        for handle in idleHandles { curl_easy_cleanup(handle) }
    }

    func start(_ start: CurlMultiLoop.Start) {
        guard start.httpVersion == .http2PriorKnowledge, CurlGlobal.reusesPriorKnowledgeConnectionsWrongly,
            !start.request.usesOwnConnection
        else {
            launch(start, priorKnowledgeRole: nil)
            return
        }
        // No role: it waits for the origin's opener.
        guard !Self.deadlinePassed(start), let role = priorKnowledge.admit(start) else { return }
        if !launch(start, priorKnowledgeRole: role), role == .opener {
            for waiting in priorKnowledge.openerEndedUnsent(id: start.id, url: start.request.url) {
                self.start(waiting)
            }
        }
    }

    /// Adds the transfer to the multi handle; returns whether it did (if not, its caller has its error).
    @discardableResult
    private func launch(_ start: CurlMultiLoop.Start, priorKnowledgeRole: PriorKnowledgeConnections.Role?) -> Bool {
        var timeoutMilliseconds: Int?
        if let deadline = start.deadline {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else {
                start.continuation.resume(
                    throwing: CurlError(
                        CURLE_OPERATION_TIMEDOUT, detail: "the deadline passed before the request started"
                    )
                    .executionError(url: start.request.url))
                return false
            }
            timeoutMilliseconds = remaining.milliseconds(clampedTo: 1...Int.max)
        }
        guard let easy = handle(for: start.httpVersion) else {
            start.continuation.resume(
                throwing: CurlError(CURLE_OUT_OF_MEMORY, detail: "curl_easy_init failed")
                    .executionError(url: start.request.url))
            return false
        }
        let transfer = CurlTransfer(start: start, easy: easy)
        transfer.priorKnowledgeRole = priorKnowledgeRole
        if let failure = configure(
            transfer, request: start.request, version: start.httpVersion,
            timeoutMilliseconds: timeoutMilliseconds)
        {
            finish(transfer, error: failure, added: false)
            return false
        }
        let added = curl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else {
            let text = String(cString: curl_multi_strerror(added))
            finish(transfer, error: CurlError(CURLE_FAILED_INIT, detail: text), added: false)
            return false
        }
        byID[transfer.id] = transfer
        byHandle[easy] = transfer
        return true
    }

    /// An easy handle for a request: an idle one when it can take the request's options, else a new one.
    ///
    /// libcurl 7.88 refuses `CURLOPT_BUFFERSIZE` on a handle that still holds the receive buffer of its last
    /// transfer, which it keeps when that transfer ended on a connection still used by others (a multiplexed one);
    /// `curl_easy_reset` keeps it too. Such a handle is not given an HTTP/2 request that needs the larger buffer.
    private func handle(for version: HTTPVersion) -> UnsafeMutableRawPointer? {
        guard let idle = idleHandles.popLast() else { return curl_easy_init() }
        guard Self.needsLargeReceiveBuffer(version),
            ccurl_easy_setopt_long(idle, CURLOPT_BUFFERSIZE, Self.http2ReceiveBufferBytes) != CURLE_OK
        else { return idle }
        curl_easy_cleanup(idle)
        return curl_easy_init()
    }

    /// Whether a request of this version gets a receive buffer of ``http2ReceiveBufferBytes``.
    private static func needsLargeReceiveBuffer(_ version: HTTPVersion) -> Bool {
        (version == .http2 || version == .http2PriorKnowledge) && CurlGlobal.losesTrailersOfMultiplexedStreams
    }

    func cancel(id: UInt64) {
        if let waiting = priorKnowledge.removeWaiting(id: id) {
            waiting.continuation.resume(
                throwing: ExecutionError(
                    code: .cancelled, message: "the task was cancelled before the request started",
                    url: HTTPClient.redactedURL(waiting.request.url)))
            return
        }
        guard let transfer = byID[id] else { return }
        remove(transfer)
        curl_multi_remove_handle(multi, transfer.easy)
        recycle(transfer.easy)
        transfer.continuation?.resume(
            throwing: ExecutionError(
                code: .cancelled, message: "the task was cancelled; the request was aborted",
                url: HTTPClient.redactedURL(transfer.url)))
        transfer.continuation = nil
        openerEnded(transfer, succeeded: false)
    }

    /// An origin's opener ended before ``afterPerform()`` saw it send its request: if it did send it, its connection
    /// may serve the requests waiting for it; if not, the first of them becomes the next opener.
    private func openerEnded(_ transfer: CurlTransfer, succeeded: Bool) {
        guard transfer.priorKnowledgeRole == .opener else { return }
        let released =
            succeeded || transfer.hasSentRequest
            ? priorKnowledge.openerSentItsRequest(id: transfer.id, url: transfer.url)
            : priorKnowledge.openerEndedUnsent(id: transfer.id, url: transfer.url)
        for waiting in released { start(waiting) }
    }

    /// After `curl_multi_perform`: answers finished transfers, starts again the riders that found no connection,
    /// releases the requests that waited for an opener that has now sent its request, and fails waiting requests
    /// whose deadline passed.
    func afterPerform() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard ccurl_msg_is_done(message) != 0, let easy = message.pointee.easy_handle,
                let transfer = byHandle[easy]
            else { continue }
            let result = ccurl_msg_result(message)
            if result != CURLE_OK, transfer.wasRefusedAConnection, transfer.continuation != nil {
                startAgainRefusedRider(transfer)
                continue
            }
            finish(
                transfer, error: result == CURLE_OK ? nil : CurlError(result, detail: transfer.errorDetail),
                added: true)
        }
        for id in priorKnowledge.openersInFlight {
            guard let opener = byID[id], opener.hasSentRequest else { continue }
            for waiting in priorKnowledge.openerSentItsRequest(id: id, url: opener.url) { start(waiting) }
        }
        for expired in priorKnowledge.expireWaiting(now: .now) { _ = Self.deadlinePassed(expired) }
    }

    /// A rider refused a new connection: no connection to its origin could take it. It never sent a byte, so it
    /// starts again from the beginning, as the origin's next opener or waiting for it.
    private func startAgainRefusedRider(_ transfer: CurlTransfer) {
        remove(transfer)
        curl_multi_remove_handle(multi, transfer.easy)
        recycle(transfer.easy)
        transfer.continuation = nil
        priorKnowledge.riderFoundNoConnection(transfer.url)
        start(transfer.start)
    }

    /// Fails `start` with a timeout when its deadline passed; returns whether it did.
    private static func deadlinePassed(_ start: CurlMultiLoop.Start) -> Bool {
        guard let deadline = start.deadline, deadline <= .now else { return false }
        start.continuation.resume(
            throwing: CurlError(CURLE_OPERATION_TIMEDOUT, detail: "the deadline passed before the request started")
                .executionError(url: start.request.url))
        return true
    }

    func failAll() {
        for waiting in priorKnowledge.expireWaiting(now: nil) {
            waiting.continuation.resume(
                throwing: ExecutionError(
                    code: .cancelled, message: "the HTTP client was shut down before the request started",
                    url: HTTPClient.redactedURL(waiting.request.url)))
        }
        for transfer in Array(byID.values) {
            remove(transfer)
            curl_multi_remove_handle(multi, transfer.easy)
            curl_easy_cleanup(transfer.easy)
            transfer.continuation?.resume(
                throwing: ExecutionError(
                    code: .cancelled, message: "the HTTP client was shut down while the request ran",
                    url: HTTPClient.redactedURL(transfer.url)))
            transfer.continuation = nil
        }
    }

    private func remove(_ transfer: CurlTransfer) {
        byID[transfer.id] = nil
        byHandle[transfer.easy] = nil
    }

    /// Keeps an easy handle for reuse, unless the pool is full or the handle still holds its last receive buffer
    /// (up to ``http2ReceiveBufferBytes``, kept after a multiplexed transfer; see ``handle(for:)``): an HTTP/2
    /// request could not use it, and the pool would hold a buffer per handle for as long as it lasts.
    private func recycle(_ easy: UnsafeMutableRawPointer) {
        curl_easy_reset(easy)
        guard idleHandles.count < 512,
            ccurl_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, Self.defaultReceiveBufferBytes) == CURLE_OK
        else {
            curl_easy_cleanup(easy)
            return
        }
        idleHandles.append(easy)
    }

    /// libcurl's default receive buffer (`CURL_MAX_WRITE_SIZE`).
    static let defaultReceiveBufferBytes = 16 * 1024

    private func finish(_ transfer: CurlTransfer, error: CurlError?, added: Bool) {
        remove(transfer)
        if added { curl_multi_remove_handle(multi, transfer.easy) }
        openerEnded(transfer, succeeded: error == nil)
        guard let continuation = transfer.continuation else {
            recycle(transfer.easy)
            return
        }
        transfer.continuation = nil
        if let error {
            recycle(transfer.easy)
            continuation.resume(throwing: error.executionError(url: transfer.url))
            return
        }
        var status = 0
        _ = ccurl_easy_getinfo_long(transfer.easy, CURLINFO_RESPONSE_CODE, &status)
        var version = 0
        _ = ccurl_easy_getinfo_long(transfer.easy, CURLINFO_HTTP_VERSION, &version)
        recycle(transfer.easy)
        let response = HTTPResponse(
            status: status, headers: transfer.headers, body: transfer.responseBody, trailers: transfer.trailers,
            httpVersion: version == CURL_HTTP_VERSION_2_0 ? .http2 : .http1_1)
        continuation.resume(returning: response)
    }

    /// The receive buffer of each HTTP/2 request on a libcurl that loses the trailers of multiplexed streams: 1 MiB
    /// (libcurl allocates it when the request starts and frees it when it ends; the default is 16 KB).
    static let http2ReceiveBufferBytes = 1 << 20

    /// A `CURLOPT_CONNECT_TO` entry that leads a URL to its own host and port (`::HOST:PORT`), or `nil` when the URL
    /// has no host. See https://curl.se/libcurl/c/CURLOPT_CONNECT_TO.html.
    static func connectToEntry(for url: String) -> String? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        // The origin is a slice of `url`: its indices are the URL's.
        var authority = PriorKnowledgeConnections.origin(of: url)[schemeEnd.upperBound...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        let host: Substring
        var port: Substring = ""
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[...close]
            let rest = authority[authority.index(after: close)...]
            if rest.hasPrefix(":") { port = rest.dropFirst() }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            port = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        if port.isEmpty { port = scheme == "https" ? "443" : "80" }
        return "::\(host):\(port)"
    }

    /// Sets the easy handle's options for one request; returns the first failure.
    private func configure(
        _ transfer: CurlTransfer, request: HTTPRequest, version: HTTPVersion, timeoutMilliseconds: Int?
    ) -> CurlError? {
        let easy = transfer.easy
        let userData = Unmanaged.passUnretained(transfer).toOpaque()
        var codes: [CURLcode] = []
        codes.append(ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url))
        codes.append(ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        codes.append(ccurl_easy_setopt_error_buffer(easy, transfer.errorBuffer))
        codes.append(ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, options.connectTimeoutMilliseconds))
        if let timeoutMilliseconds {
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, timeoutMilliseconds))
        }
        codes.append(ccurl_easy_setopt_string(easy, CURLOPT_USERAGENT, options.userAgent))
        if Self.needsLargeReceiveBuffer(version) {
            // A stream whose data overflows its receive buffer pauses the connection, and a stream that ends during
            // the pause loses its trailers (CurlGlobal.losesTrailersOfMultiplexedStreams): a larger buffer makes
            // that rare (none in 320 answers of 200 KB at 64 at once, against 202 with the default 16 KB).
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, Self.http2ReceiveBufferBytes))
        }
        if request.usesOwnConnection {
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1))
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_FORBID_REUSE, 1))
            // FORBID_REUSE acts only once the request is done: until then another request could multiplex on the
            // new connection. A connect-to entry (to the URL's own host and port) sets it apart: libcurl only
            // shares a connection between requests that agree on whether they have one.
            if let entry = Self.connectToEntry(for: request.url) {
                transfer.connectToList = curl_slist_append(nil, entry)
                codes.append(ccurl_easy_setopt_slist(easy, CURLOPT_CONNECT_TO, transfer.connectToList))
            }
        }
        switch version {
        case .http2:
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, ccurl_http_version_2_tls()))
            // Wait for a connection being set up rather than open another: requests then multiplex on it.
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1))
        case .http2PriorKnowledge:
            // On a libcurl before 8.0 only the origin's opener asks for prior knowledge, on a fresh connection;
            // riders ask for plain HTTP/2 on a connection that already speaks it (see PriorKnowledgeConnections).
            switch transfer.priorKnowledgeRole {
            case .opener:
                codes.append(
                    ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, ccurl_http_version_2_prior_knowledge()))
                codes.append(ccurl_easy_setopt_long(easy, CURLOPT_FRESH_CONNECT, 1))
            case .rider:
                codes.append(ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, ccurl_http_version_2_0()))
                codes.append(ccurl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1))
                codes.append(ccurl_easy_setopt_pointer(easy, CURLOPT_OPENSOCKETDATA, userData))
                codes.append(
                    ccurl_easy_setopt_opensocket_callback(easy) { userData, _, _ in
                        if let userData {
                            Unmanaged<CurlTransfer>.fromOpaque(userData).takeUnretainedValue()
                                .wasRefusedAConnection = true
                        }
                        return ccurl_socket_bad()
                    })
            case nil:
                codes.append(
                    ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, ccurl_http_version_2_prior_knowledge()))
                codes.append(ccurl_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1))
            }
        default:
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, ccurl_http_version_1_1()))
        }

        let method = request.method.uppercased()
        if method == "GET" && request.body.isEmpty {
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1))
        } else if method == "HEAD" {
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1))
        } else {
            codes.append(ccurl_easy_setopt_long(easy, CURLOPT_POST, 1))
            codes.append(ccurl_easy_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            codes.append(ccurl_easy_setopt_pointer(easy, CURLOPT_READDATA, userData))
            codes.append(
                ccurl_easy_setopt_io_callback(easy, CURLOPT_READFUNCTION) { buffer, size, count, userData in
                    guard let buffer, let userData else { return ccurl_read_func_abort() }
                    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData).takeUnretainedValue()
                    return transfer.readBody(into: buffer, capacity: size * count)
                })
            codes.append(ccurl_easy_setopt_pointer(easy, CURLOPT_SEEKDATA, userData))
            codes.append(
                ccurl_easy_setopt_seek_callback(easy) { userData, offset, origin in
                    guard let userData, origin == SEEK_SET else { return ccurl_seekfunc_cantseek() }
                    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData).takeUnretainedValue()
                    guard offset >= 0, offset <= transfer.body.count else { return ccurl_seekfunc_cantseek() }
                    transfer.readOffset = Int(offset)
                    return ccurl_seekfunc_ok()
                })
            if method != "POST" {
                codes.append(ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method))
            }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        var hasContentType = false
        for field in request.headers {
            if field.name.lowercased() == "content-type" { hasContentType = true }
            list = curl_slist_append(list, "\(field.name): \(field.value)")
        }
        // No `Expect: 100-continue` round trip; no form content type guessed for a POST body.
        list = curl_slist_append(list, "Expect:")
        if !hasContentType && method != "GET" && method != "HEAD" {
            list = curl_slist_append(list, "Content-Type:")
        }
        transfer.headerList = list
        codes.append(ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list))

        codes.append(ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, userData))
        codes.append(
            ccurl_easy_setopt_io_callback(easy, CURLOPT_WRITEFUNCTION) { data, size, count, userData in
                guard let userData else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData).takeUnretainedValue()
                let length = size * count
                if let data, length > 0 {
                    if let sink = transfer.bodySink {
                        sink.receive(Data(bytes: data, count: length))
                    } else {
                        transfer.responseBody.append(
                            UnsafeRawPointer(data).assumingMemoryBound(to: UInt8.self),
                            count: length)
                    }
                }
                return length
            })
        codes.append(ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, userData))
        codes.append(
            ccurl_easy_setopt_io_callback(easy, CURLOPT_HEADERFUNCTION) { data, size, count, userData in
                guard let userData else { return 0 }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData).takeUnretainedValue()
                let length = size * count
                if let data {
                    transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
                }
                return length
            })
        if let failure = codes.first(where: { $0 != CURLE_OK }) {
            return CurlError(failure, detail: "setting up the transfer failed")
        }
        return nil
    }
}
