/// How `sandbox-vcr serve` listens and what it allows.
public struct ServeConfiguration: Sendable, Hashable {
    /// The address to bind. Anything other than a loopback address needs ``allowsRemoteBind``.
    public var host = "127.0.0.1"
    /// The port; 0 picks a free one (reported once listening).
    public var port = 8080
    /// Whether a non-loopback ``host`` is allowed (the server has no authentication: anyone who reaches it can
    /// replay the cassette or, with an upstream, run code).
    public var allowsRemoteBind = false
    /// The most executor calls at once; more wait in arrival order.
    public var maxConcurrency = 64
    /// The largest request body accepted; a bigger one gets 413.
    public var maxBodyBytes = 64 * 1024 * 1024
    /// How long a graceful shutdown waits for in-flight requests before cancelling them (a silent upstream must
    /// not hold the exit); a second SIGTERM or SIGINT cancels them at once.
    public var shutdownGrace: Duration = .seconds(10)
    /// How long a connection may stay open with no request in progress (none being read, none being answered,
    /// and no answer still being sent) before it is closed; `nil` keeps it open. A new connection starts idle.
    public var idleTimeout: Duration? = .seconds(60)
    /// How long a request's head (request line and headers) may take to arrive, from its first byte; then the
    /// connection is answered 408 and closed, however slowly bytes keep coming. `nil`: no limit.
    public var requestHeadTimeout: Duration? = .seconds(10)
    /// How long a request's body may take to arrive, from the end of its head; then the connection is answered 408
    /// and closed. The default takes a 64 MB body at 1 MB/s. `nil`: no limit.
    public var requestBodyTimeout: Duration? = .seconds(60)

    public init() {}

    /// Whether ``host`` is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
    public var isLoopback: Bool { Self.isLoopback(host: host) }

    /// Whether `host` is a loopback address: `localhost`, `::1` or an IPv4 address in 127.0.0.0/8.
    public static func isLoopback(host: String) -> Bool {
        let lowered = host.lowercased()
        if lowered == "localhost" || lowered == "::1" || lowered == "[::1]" { return true }
        let parts = lowered.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Checks the values before the server starts.
    ///
    /// - Throws: ``ServeError`` with code ``ServeError/Code/remoteBindNotAllowed`` for a non-loopback host
    ///   without ``allowsRemoteBind``, or ``ServeError/Code/invalidConfiguration`` for out-of-range numbers.
    public func validate() throws(ServeError) {
        if !isLoopback && !allowsRemoteBind {
            throw ServeError(
                code: .remoteBindNotAllowed,
                message: "refusing to listen on \(host): the server has no authentication, so it binds loopback "
                    + "addresses only; pass --allow-remote to listen on \(host) anyway")
        }
        guard (0...65535).contains(port) else {
            throw ServeError(code: .invalidConfiguration, message: "port \(port) is out of range; use 0...65535")
        }
        guard maxConcurrency >= 1 else {
            throw ServeError(
                code: .invalidConfiguration, message: "max concurrency \(maxConcurrency) must be at least 1")
        }
        guard shutdownGrace >= .zero, shutdownGrace <= .seconds(86_400) else {
            throw ServeError(
                code: .invalidConfiguration, message: "the shutdown grace period must be between 0 and 86400 seconds")
        }
        for (name, timeout) in [
            ("idle timeout", idleTimeout), ("request head timeout", requestHeadTimeout),
            ("request body timeout", requestBodyTimeout),
        ] {
            guard let timeout else { continue }
            guard timeout > .zero, timeout <= .seconds(86_400) else {
                throw ServeError(
                    code: .invalidConfiguration,
                    message: "the \(name) must be more than 0 and at most 86400 seconds "
                        + "(for no limit: nil, or 0 on the command line)")
            }
        }
        guard maxBodyBytes >= 1 else {
            throw ServeError(code: .invalidConfiguration, message: "max body bytes \(maxBodyBytes) must be at least 1")
        }
    }
}

/// Why the server could not start or run.
public struct ServeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure. An open set: compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A non-loopback bind address without the explicit permission.
        public static let remoteBindNotAllowed = Code(rawValue: "remoteBindNotAllowed")
        /// A configuration value out of range.
        public static let invalidConfiguration = Code(rawValue: "invalidConfiguration")
        /// The ready file could not be written.
        public static let readyFile = Code(rawValue: "readyFile")
    }

    public var code: Code
    /// What happened and what to do about it.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
