import Foundation

/// How a ``SandboxFusionExecutor`` reaches its servers: endpoints, concurrency, timeouts and retries.
///
/// Build one in code, or from the environment with ``fromEnvironment(_:)`` (the one place that reads
/// `SANDBOX_URL`, `SANDBOX_FUSION_ENDPOINT` and `SANDBOX_MAX_CONCURRENCY`).
public struct SandboxFusionConfiguration: Sendable, Hashable {
    /// When to try a request again, and how long to wait in between.
    public struct RetryPolicy: Sendable, Hashable {
        /// Attempts in all, the first included (1: never retry). Default 3.
        public var maxAttempts: Int
        /// The wait before the second attempt; it doubles for each later one. Default 0.5 s.
        public var baseDelay: Duration
        /// The longest wait between two attempts. Default 8 s.
        public var maxDelay: Duration
        /// The share of each wait drawn at random (0: exact waits, 0.2: ±20 %). Default 0.2.
        public var jitter: Double
        /// Whether a request that ran out of time is tried again. Default `false`: a slow program stays slow.
        public var retriesTimeouts: Bool

        public init(
            maxAttempts: Int = 3,
            baseDelay: Duration = .milliseconds(500),
            maxDelay: Duration = .seconds(8),
            jitter: Double = 0.2,
            retriesTimeouts: Bool = false
        ) {
            self.maxAttempts = max(1, maxAttempts)
            self.baseDelay = baseDelay
            self.maxDelay = maxDelay
            self.jitter = min(max(jitter, 0), 1)
            self.retriesTimeouts = retriesTimeouts
        }

        /// Never retry.
        public static let none = RetryPolicy(maxAttempts: 1)

        /// Whether an attempt that failed with `error` may be tried again: connection failures (refused,
        /// reset) and HTTP 502, 503 and 504, never any other status (a 4xx stays a 4xx).
        public func shouldRetry(_ error: ExecutionError) -> Bool {
            switch error.code {
            case .connectionRefused, .connectionReset: true
            case .timedOut: retriesTimeouts
            case .httpStatus: [502, 503, 504].contains(error.httpStatus ?? 0)
            default: false
            }
        }

        /// The wait after failed attempt number `attempt` (1-based), jitter applied with `random` in 0..<1.
        public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
            let exponent = min(max(attempt - 1, 0), 30)
            var delay = baseDelay * (1 << exponent)
            if delay > maxDelay { delay = maxDelay }
            let factor = 1 + jitter * (2 * random - 1)
            return delay * factor
        }
    }

    /// The default `/run_code` URL, as the tinker-cookbook client has it.
    public static let defaultRunCodeURL = "http://localhost:8080/run_code"

    /// Base URLs of the servers (without `/run_code`), e.g. `http://localhost:8080`. Requests are spread over
    /// them, each to the one with the fewest requests in flight (ties in turn).
    public var endpoints: [String]
    /// At most this many requests in flight at once, over all endpoints. Default 4.
    public var maxConcurrency: Int
    /// How long one attempt may take, from when it gets a free slot to the whole answer (time queued behind
    /// ``maxConcurrency`` does not count). `nil` (the default): the request's compile and run timeouts plus
    /// ``timeoutMargin``.
    public var requestTimeout: Duration?
    /// Added to a request's own timeouts when ``requestTimeout`` is `nil`. Default 30 s.
    public var timeoutMargin: Duration
    public var retryPolicy: RetryPolicy
    /// The HTTP client's connect timeout. Default 10 s.
    public var connectTimeout: Duration

    public init(
        endpoints: [String] = ["http://localhost:8080"],
        maxConcurrency: Int = 4,
        requestTimeout: Duration? = nil,
        timeoutMargin: Duration = .seconds(30),
        retryPolicy: RetryPolicy = RetryPolicy(),
        connectTimeout: Duration = .seconds(10)
    ) {
        self.endpoints = endpoints.map(Self.normalizedBase)
        self.maxConcurrency = max(1, maxConcurrency)
        self.requestTimeout = requestTimeout
        self.timeoutMargin = timeoutMargin
        self.retryPolicy = retryPolicy
        self.connectTimeout = connectTimeout
    }

    /// A configuration for one server given by its base URL (`http://host:8080`) or `/run_code` URL.
    public init(url: String, maxConcurrency: Int = 4) {
        self.init(endpoints: [url], maxConcurrency: maxConcurrency)
    }

    /// How long one attempt of `request` may take.
    func attemptTimeout(for request: ExecutionRequest) -> Duration {
        if let requestTimeout { return requestTimeout }
        return request.compileTimeout.clampedToTimeLimit + request.runTimeout.clampedToTimeLimit + timeoutMargin
    }

    /// A base URL without a trailing `/` or `/run_code`.
    static func normalizedBase(_ url: String) -> String {
        var base = url.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/run_code") { base.removeLast("/run_code".count) }
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }
}
