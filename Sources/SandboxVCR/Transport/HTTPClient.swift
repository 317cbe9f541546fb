import Foundation
package import Logging
import Synchronization

/// An async HTTP client over libcurl: one curl multi handle driven by one dedicated thread, keep-alive
/// connections reused from the multi handle's cache, per-request deadlines, cancellation that aborts the
/// transfer, HTTP/1.1 and HTTP/2 (over TLS, or h2c with prior knowledge), trailers, and an optional limit on
/// how many requests run at once (the others wait in FIFO order).
///
/// ```swift
/// let client = HTTPClient(configuration: .init(maxConcurrentRequests: 8))
/// let response = try await client.execute(
///     HTTPRequest(method: "POST", url: "http://127.0.0.1:8080/run_code", body: body),
///     deadline: .now + .seconds(30))
/// ```
///
/// The client shuts its thread down when released (or on ``shutdown()``); requests still running then fail
/// with ``ExecutionError/Code/cancelled``.
package final class HTTPClient: Sendable {
    /// How a client behaves. Every field has a documented default.
    package struct Configuration: Sendable {
        /// At most this many requests run at once; the others wait in FIFO order. `nil`: no limit.
        package var maxConcurrentRequests: Int?
        /// The HTTP version for requests that do not ask for one.
        package var httpVersion: HTTPVersion
        /// How long connecting may take (TCP and TLS). Default 10 s.
        package var connectTimeout: Duration
        /// At most this many connections to one host at once (`nil`: no limit; HTTP/2 multiplexes on one).
        package var maxConnectionsPerHost: Int?
        /// How many idle connections the cache keeps for reuse. Default 256.
        package var maxCachedConnections: Int
        /// The `User-Agent` header.
        package var userAgent: String

        package init(
            maxConcurrentRequests: Int? = nil,
            httpVersion: HTTPVersion = .http1_1,
            connectTimeout: Duration = .seconds(10),
            maxConnectionsPerHost: Int? = nil,
            maxCachedConnections: Int = 256,
            userAgent: String = "sandbox-vcr"
        ) {
            self.maxConcurrentRequests = maxConcurrentRequests
            self.httpVersion = httpVersion
            self.connectTimeout = connectTimeout
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxCachedConnections = maxCachedConnections
            self.userAgent = userAgent
        }
    }

    package let configuration: Configuration
    private let logger: Logger
    private let loop: CurlMultiLoop
    private let limiter: ConcurrencyLimiter?
    private let nextID = Atomic<UInt64>(0)

    /// Starts a client and its curl thread.
    ///
    /// - Parameters:
    ///   - configuration: limits, HTTP version and timeouts.
    ///   - logger: where to log each request at `trace` level; no-op by default.
    package init(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "sandbox-vcr.http", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.configuration = configuration
        self.logger = logger
        self.loop = CurlMultiLoop(
            options: .init(
                connectTimeoutMilliseconds: configuration.connectTimeout.milliseconds(clampedTo: 1...Int.max),
                maxConnectionsPerHost: configuration.maxConnectionsPerHost,
                maxCachedConnections: configuration.maxCachedConnections,
                userAgent: configuration.userAgent))
        self.limiter = configuration.maxConcurrentRequests.map { ConcurrencyLimiter(limit: max(1, $0)) }
    }

    deinit { loop.shutdown() }

    /// Whether this process's libcurl (before 8.1) can drop the trailers of an HTTP/2 stream multiplexed beside
    /// others on one connection (the body arrives whole). Such a client gives HTTP/2 requests a 1 MiB receive buffer,
    /// which makes it rare; ``HTTPRequest/usesOwnConnection`` avoids it.
    package static var losesTrailersOfMultiplexedStreams: Bool { CurlGlobal.losesTrailersOfMultiplexedStreams }

    /// The version of this process's libcurl, e.g. `7.88.1`.
    package static var libcurlVersion: String { CurlGlobal.version }

    /// Stops the curl thread. Requests still running fail with ``ExecutionError/Code/cancelled``; later ones too.
    package func shutdown() { loop.shutdown() }

    /// Sends a request and returns the whole response, whatever its status.
    ///
    /// - Parameters:
    ///   - request: what to send.
    ///   - deadline: when to give up, waiting for a free slot included. `nil`: no limit beyond the connect timeout.
    /// - Returns: the response (any status: a `404` is a response, not an error).
    /// - Throws: ``ExecutionError`` with code ``ExecutionError/Code/connectionRefused``,
    ///   ``ExecutionError/Code/timedOut``, ``ExecutionError/Code/connectionReset``,
    ///   ``ExecutionError/Code/transport`` or ``ExecutionError/Code/cancelled`` (the task was cancelled: the
    ///   transfer was aborted).
    package func execute(_ request: HTTPRequest, deadline: ContinuousClock.Instant? = nil) async throws
        -> HTTPResponse
    {
        guard let limiter else { return try await transfer(request, deadline: deadline) }
        try await limiter.acquire(deadline: deadline)
        defer { limiter.release() }
        return try await transfer(request, deadline: deadline)
    }

    /// Sends a request that may take `timeout` once it has a free slot (waiting for the slot does not count).
    ///
    /// - Parameters:
    ///   - request: what to send.
    ///   - timeout: how long the transfer itself may take, from when it starts.
    /// - Returns: the response, whatever its status.
    /// - Throws: ``ExecutionError`` as ``execute(_:deadline:)`` does.
    package func execute(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
        guard let limiter else { return try await transfer(request, deadline: .now + timeout) }
        try await limiter.acquire()
        defer { limiter.release() }
        return try await transfer(request, deadline: .now + timeout)
    }

    private func transfer(_ request: HTTPRequest, deadline: ContinuousClock.Instant?) async throws -> HTTPResponse {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let version = request.httpVersion ?? configuration.httpVersion
        logger.trace(
            "HTTP request", metadata: ["method": "\(request.method)", "url": "\(Self.redactedURL(request.url))"])
        let response = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let start = CurlMultiLoop.Start(
                    id: id, request: request, httpVersion: version, deadline: deadline, continuation: continuation)
                if let refusal = loop.submitStartUnlessCancelled(start) {
                    continuation.resume(throwing: refusal)
                }
            }
        } onCancel: {
            loop.submit(.cancel(id))
        }
        logger.trace(
            "HTTP response",
            metadata: [
                "status": "\(response.status)", "bytes": "\(response.body.count)",
                "url": "\(Self.redactedURL(request.url))",
            ])
        return response
    }

    /// The URL with any user name and password removed, for messages and logs.
    package static func redactedURL(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<schemeEnd.upperBound]) + String(rest[rest.index(after: at)...])
    }
}
