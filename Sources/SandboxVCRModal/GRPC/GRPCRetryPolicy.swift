/// How often and how soon a gRPC call is retried, as Modal's SDKs do.
public struct GRPCRetryPolicy: Hashable, Sendable {
    /// Retries after the first try (so `maxRetries + 1` tries in all).
    public var maxRetries: Int
    /// The wait before the first retry; it doubles after each retry.
    public var initialDelay: Duration
    /// The longest wait between tries.
    public var maxDelay: Duration
    /// The most waits an `RPCRetryPolicy` (throttling) may ask for, on top of `maxRetries`.
    public var maxThrottleRetries: Int
    /// The most times a call that is safe to repeat is sent again, at once and on top of `maxRetries`, because its
    /// answer came whole but without its `grpc-status` (``GRPCStatusError/isStatusMissing``).
    public var maxMissingStatusRetries: Int

    public init(
        maxRetries: Int, initialDelay: Duration, maxDelay: Duration, maxThrottleRetries: Int = 8,
        maxMissingStatusRetries: Int = 5
    ) {
        self.maxRetries = maxRetries
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxThrottleRetries = maxThrottleRetries
        self.maxMissingStatusRetries = maxMissingStatusRetries
    }

    /// Control-plane calls: 3 retries, 100 ms doubling to 1 s.
    public static let controlPlane = GRPCRetryPolicy(
        maxRetries: 3, initialDelay: .milliseconds(100), maxDelay: .seconds(1))
    /// Command-router calls: 10 retries, 10 ms doubling to 1 s.
    public static let router = GRPCRetryPolicy(maxRetries: 10, initialDelay: .milliseconds(10), maxDelay: .seconds(1))
    /// No retries.
    public static let none = GRPCRetryPolicy(
        maxRetries: 0, initialDelay: .zero, maxDelay: .zero, maxThrottleRetries: 0, maxMissingStatusRetries: 0)

    /// The wait before retry number `retry` (0-based).
    public func delay(beforeRetry retry: Int) -> Duration {
        var delay = initialDelay
        for _ in 0..<min(retry, 30) {
            delay = delay * 2
            if delay >= maxDelay { return maxDelay }
        }
        return min(delay, maxDelay)
    }
}
