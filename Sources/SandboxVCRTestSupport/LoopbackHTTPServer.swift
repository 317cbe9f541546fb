public import Foundation
package import SandboxVCR
import Synchronization

/// A real HTTP/1.1 server on 127.0.0.1 (port chosen by the system) for tests and benchmarks.
///
/// One thread accepts, one thread serves each connection (keep-alive, `Content-Length` and chunked request
/// bodies). A programmable handler decides what each request gets: an answer, an answer after a delay or when a
/// ``LoopbackGate`` opens, a dropped connection, raw bytes (garbage), or a body cut short. The server counts requests and
/// the most requests it held at once.
///
/// ```swift
/// let server = try LoopbackHTTPServer { request in .respond(.json(status: 200, "\"pong\"")) }
/// defer { server.shutdown() }
/// let url = server.baseURL + "/v1/ping"
/// ```
public final class LoopbackHTTPServer: Sendable {
    /// A request as the server read it.
    public struct ReceivedRequest: Sendable, Hashable {
        public var method: String
        /// The request target, e.g. `/run_code` (query included).
        public var path: String
        package var headers: HTTPHeaders
        public var body: Data
        /// 1 for the first request on its connection, 2 for the next one (keep-alive), and so on.
        public var indexOnConnection: Int
        /// 1 for the first request the server received, and so on.
        public var sequenceNumber: Int
    }

    /// An answer to send.
    public struct Response: Sendable, Hashable {
        public var status: Int
        package var headers: HTTPHeaders
        public var body: Data

        package init(status: Int, headers: HTTPHeaders = [:], body: Data = Data()) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// A JSON answer.
        public static func json(status: Int = 200, _ body: Data) -> Response {
            Response(status: status, headers: ["Content-Type": "application/json"], body: body)
        }

        /// A JSON answer from text.
        public static func json(status: Int = 200, _ text: String) -> Response {
            json(status: status, Data(text.utf8))
        }

        /// A SandboxFusion `/run_code` answer of a program that finished with exit code 0 and printed `stdout`.
        public static func sandboxFusionSuccess(stdout: String) -> Response {
            let quoted = String(decoding: (try? JSONEncoder().encode(stdout)) ?? Data("\"\"".utf8), as: UTF8.self)
            return json(
                #"{"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished","#
                    + #""execution_time":0.01,"return_code":0,"stdout":\#(quoted),"stderr":""},"#
                    + #""executor_pod_name":null,"files":{}}"#)
        }
    }

    /// What the server does with a request.
    public enum Action: Sendable {
        /// Answer now.
        case respond(Response)
        /// Answer after a delay (a client that hangs up meanwhile is noticed).
        case respondAfter(Duration, Response)
        /// Answer once the gate opens (a client that hangs up meanwhile is noticed).
        case respondWhenOpen(LoopbackGate, Response)
        /// Close the connection without answering.
        case dropConnection
        /// Send these bytes as they are, then close: garbage, or a hand-made answer (chunked, with trailers).
        case sendRaw(Data)
        /// Send the head with the full `Content-Length` but only `sentBytes` of the body, then close.
        case cutBodyShort(Response, sentBytes: Int)
    }

    public typealias Handler = @Sendable (ReceivedRequest) -> Action

    /// Counters, for assertions and benchmarks.
    public struct Statistics: Sendable, Hashable {
        /// Requests read in whole.
        public var requests = 0
        /// Requests read and not yet answered (or dropped) now.
        public var inFlight = 0
        /// The most requests in flight at once.
        public var maxInFlight = 0
        /// Connections accepted.
        public var connections = 0
        /// Connections the client closed while the server held its request (delay or gate).
        public var clientClosesWhileHeld = 0
        /// Connections closed, by either side.
        public var closedConnections = 0
    }

    private struct State {
        var handler: Handler
        var statistics = Statistics()
        var waiters: [(predicate: @Sendable (Statistics) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
        var connectionDescriptors: Set<Int32> = []
        var isStopped = false
    }

    /// The port the server listens on (on 127.0.0.1).
    public let port: Int
    private let listenDescriptor: Int32
    private let stopGate = LoopbackGate()
    private let state: Mutex<State>

    /// Starts listening on 127.0.0.1 on a free port.
    ///
    /// - Parameter handler: decides what each request gets; it runs on the connection's thread.
    /// - Throws: a `POSIXError` when the socket cannot be set up.
    public init(handler: @escaping Handler) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var yes: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(descriptor, 1024) == 0 else {
            let code = errno
            close(descriptor)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        self.listenDescriptor = descriptor
        self.state = Mutex(State(handler: handler))
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "loopback-http.accept"
        thread.start()
    }

    deinit {
        shutdown()
        close(listenDescriptor)
    }

    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The counters now.
    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Replaces the handler for requests read from now on.
    public func setHandler(_ handler: @escaping Handler) {
        state.withLock { $0.handler = handler }
    }

    /// Sets the counters back to zero (``Statistics/inFlight`` is kept).
    public func resetStatistics() {
        state.withLock { state in
            state.statistics = Statistics(inFlight: state.statistics.inFlight, maxInFlight: state.statistics.inFlight)
        }
    }

    /// Returns once the counters satisfy `predicate` (checked now and after every change).
    public func wait(until predicate: @escaping @Sendable (Statistics) -> Bool) async {
        await withCheckedContinuation { continuation in
            let satisfied = state.withLock { state in
                if predicate(state.statistics) { return true }
                state.waiters.append((predicate, continuation))
                return false
            }
            if satisfied { continuation.resume() }
        }
    }

    /// Stops accepting, closes every connection and releases held responses. Idempotent.
    public func shutdown() {
        let descriptors: Set<Int32>? = state.withLock { state in
            guard !state.isStopped else { return nil }
            state.isStopped = true
            return state.connectionDescriptors
        }
        guard let descriptors else { return }
        stopGate.open()
        Glibc.shutdown(listenDescriptor, Int32(SHUT_RDWR))
        for descriptor in descriptors { Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    // MARK: Threads

    private func acceptLoop() {
        while true {
            let connection = accept(listenDescriptor, nil, nil)
            if connection < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            let accepted = state.withLock { state in
                guard !state.isStopped else { return false }
                state.connectionDescriptors.insert(connection)
                state.statistics.connections += 1
                return true
            }
            guard accepted else {
                close(connection)
                return
            }
            var yes: Int32 = 1
            setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
            let thread = Thread { [self] in serve(connection) }
            thread.name = "loopback-http.connection"
            thread.stackSize = 256 << 10
            thread.start()
        }
    }

    private func serve(_ descriptor: Int32) {
        var reader = LoopbackRequestReader(descriptor: descriptor)
        var index = 0
        defer {
            close(descriptor)
            update { state in
                state.connectionDescriptors.remove(descriptor)
                state.statistics.closedConnections += 1
            }
        }
        while let parsed = reader.next() {
            index += 1
            let (handler, sequence) = update { state -> (Handler, Int) in
                state.statistics.requests += 1
                state.statistics.inFlight += 1
                state.statistics.maxInFlight = max(state.statistics.maxInFlight, state.statistics.inFlight)
                return (state.handler, state.statistics.requests)
            }
            let request = ReceivedRequest(
                method: parsed.method, path: parsed.path, headers: parsed.headers, body: parsed.body,
                indexOnConnection: index, sequenceNumber: sequence)
            let keepAlive = parsed.keepAlive
            switch handler(request) {
            case .respond(let response):
                finishRequest()
                guard send(descriptor, Self.encode(response, keepAlive: keepAlive)), keepAlive else { return }
            case .respondAfter(let delay, let response):
                guard hold(descriptor, gate: nil, delay: delay) else { return }
                finishRequest()
                guard send(descriptor, Self.encode(response, keepAlive: keepAlive)), keepAlive else { return }
            case .respondWhenOpen(let gate, let response):
                guard hold(descriptor, gate: gate, delay: nil) else { return }
                finishRequest()
                guard send(descriptor, Self.encode(response, keepAlive: keepAlive)), keepAlive else { return }
            case .dropConnection:
                finishRequest()
                return
            case .sendRaw(let bytes):
                finishRequest()
                _ = send(descriptor, bytes)
                return
            case .cutBodyShort(let response, let sentBytes):
                finishRequest()
                let whole = Self.encode(response, keepAlive: false)
                let cut = whole.count - response.body.count + max(0, min(sentBytes, response.body.count - 1))
                _ = send(descriptor, whole.prefix(cut))
                return
            }
        }
    }

    /// Waits for the gate, the delay or the server's stop; returns `false` when the client hung up meanwhile.
    private func hold(_ descriptor: Int32, gate: LoopbackGate?, delay: Duration?) -> Bool {
        let end = delay.map { ContinuousClock.now + $0 }
        var watchesSocket = true
        while true {
            var descriptors = [
                pollfd(fd: stopGate.readDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: gate?.readDescriptor ?? -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: watchesSocket ? descriptor : -1, events: Int16(POLLIN), revents: 0),
            ]
            var timeout: Int32 = -1
            if let end {
                let left = ContinuousClock.now.duration(to: end)
                if left <= .zero { return true }
                timeout = left.milliseconds(clampedTo: 1...Int32.max)
            }
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            if ready < 0 && errno == EINTR { continue }
            if descriptors[0].revents != 0 || descriptors[1].revents != 0 { return true }
            if descriptors[2].revents != 0 {
                var byte: UInt8 = 0
                let peeked = recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
                if peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EINTR) {
                    update { state in
                        state.statistics.clientClosesWhileHeld += 1
                        state.statistics.inFlight -= 1
                    }
                    return false
                }
                // A pipelined next request: stop watching the socket, keep holding.
                if peeked > 0 { watchesSocket = false }
            }
        }
    }

    private func finishRequest() {
        update { $0.statistics.inFlight -= 1 }
    }

    /// Mutates the state, then resumes every waiter whose predicate now holds.
    private func update<T>(_ body: (inout State) -> T) -> T {
        var ready: [CheckedContinuation<Void, Never>] = []
        let value = state.withLock { state in
            let value = body(&state)
            if !state.waiters.isEmpty {
                let statistics = state.statistics
                state.waiters.removeAll { waiter in
                    guard waiter.predicate(statistics) else { return false }
                    ready.append(waiter.continuation)
                    return true
                }
            }
            return value
        }
        for continuation in ready { continuation.resume() }
        return value
    }

    private func send(_ descriptor: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += sent
            }
            return true
        }
    }

    static func encode(_ response: Response, keepAlive: Bool) -> Data {
        var head = "HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
        var hasLength = false
        for field in response.headers {
            if field.name.lowercased() == "content-length" { hasLength = true }
            head += "\(field.name): \(field.value)\r\n"
        }
        if !hasLength { head += "Content-Length: \(response.body.count)\r\n" }
        if !keepAlive { head += "Connection: close\r\n" }
        head += "\r\n"
        var data = Data(capacity: head.utf8.count + response.body.count)
        data.append(contentsOf: head.utf8)
        data.append(response.body)
        return data
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 422: "Unprocessable Entity"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }
}
