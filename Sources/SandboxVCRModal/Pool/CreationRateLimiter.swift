/// A token bucket for sandbox creations: at most `ratePerSecond` on average, bursts of at most `burst`.
///
/// A pure state machine (time is passed in), so it is tested without I/O. Each ``reserve(now:)`` books one
/// creation and says how long to wait before starting it; bookings queue up, so waits grow under load.
public struct CreationRateLimiter: Hashable, Sendable {
    /// Creations per second, on average.
    public let ratePerSecond: Double
    /// The most creations that may start at once after a quiet period.
    public let burst: Double
    /// Tokens left after the last booking (negative: bookings are queued).
    public private(set) var tokens: Double
    /// The time of the last booking, in seconds.
    public private(set) var lastUpdate: Double?

    public init(ratePerSecond: Double, burst: Double = 1) {
        self.ratePerSecond = ratePerSecond > 0 ? ratePerSecond : 1
        self.burst = max(1, burst)
        self.tokens = max(1, burst)
    }

    /// Books one creation at time `now` (seconds on any monotonic clock).
    ///
    /// - Returns: the seconds to wait before starting it (0: start now).
    public mutating func reserve(now: Double) -> Double {
        if let lastUpdate {
            tokens = min(burst, tokens + max(0, now - lastUpdate) * ratePerSecond)
        }
        lastUpdate = now
        tokens -= 1
        return tokens >= 0 ? 0 : -tokens / ratePerSecond
    }
}
