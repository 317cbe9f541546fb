internal import Foundation

/// Helpers to build raw HTTP/1.1 requests and run them on a thread of their own.
public enum RawHTTP {
    /// The bytes of a request. `Host` and `Content-Length` (when there is a body) are added; nothing else is, so
    /// a request without a `Content-Type` has none.
    public static func request(
        method: String, path: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        keepAlive: Bool = false
    ) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        if !keepAlive { head += "Connection: close\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    /// A JSON POST.
    public static func postJSON(path: String, body: String) -> [UInt8] {
        request(method: "POST", path: path, headers: [("Content-Type", "application/json")], body: Array(body.utf8))
    }

    /// Connects, sends `request`, reads the answer, all on a new thread (blocking socket calls stay off Swift's
    /// cooperative pool).
    public static func exchange(port: Int, request: [UInt8]) async throws -> RawHTTPResponse {
        try await onThread {
            let connection = try RawHTTPConnection(port: port)
            return try connection.exchange(request)
        }
    }

    /// Runs blocking work on a new thread and returns its result.
    public static func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try work() })
            }
            thread.start()
        }
    }
}
