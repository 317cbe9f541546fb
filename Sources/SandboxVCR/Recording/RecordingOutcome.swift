internal import Synchronization

/// What a ``RecordingExecutor`` did for one call: replayed it, recorded it, forwarded it live, or missed.
///
/// Bind a ``Sink`` around a call to learn it (`sandbox-vcr serve` does so per request, for its log line and
/// `/stats`); the executor behaves the same with or without one.
///
/// ```swift
/// let sink = RecordingOutcome.Sink()
/// let result = try await RecordingOutcome.Sink.$current.withValue(sink) { try await executor.execute(request) }
/// print(sink.outcome?.kind)  // hit, recorded, live or miss
/// ```
public struct RecordingOutcome: Sendable, Hashable {
    /// Where the answer came from. An open set: compare with the static members.
    public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Replayed from the cassette.
        public static let hit = Kind(rawValue: "hit")
        /// Run by the live executor and written to the cassette (also when the live executor failed and the
        /// failure was recorded).
        public static let recorded = Kind(rawValue: "recorded")
        /// Passed to the live executor without recording (record mode `live`).
        public static let live = Kind(rawValue: "live")
        /// No recording, and nothing recorded: the call threw a ``CassetteError`` `miss` or `exhausted`.
        public static let miss = Kind(rawValue: "miss")
    }

    /// What happened; `nil` while only the key is known (the call is running, or failed before deciding).
    public var kind: Kind?
    /// The request's cassette key (`nil` in record mode `live`, which computes none).
    public var key: SHA256.Digest?
    /// How long the live executor took, when it was called to record.
    public var liveDuration: Duration?

    public init(kind: Kind? = nil, key: SHA256.Digest? = nil, liveDuration: Duration? = nil) {
        self.kind = kind
        self.key = key
        self.liveDuration = liveDuration
    }

    /// The first 12 hex digits of ``key``, for log lines.
    public var keyPrefix: String? { key.map { String($0.hex.prefix(12)) } }

    /// Collects the outcome of the ``RecordingExecutor`` calls made while it is bound (the last one wins).
    public final class Sink: Sendable {
        /// The sink the recording executor reports to; `nil` (the default): nothing is reported.
        @TaskLocal public static var current: Sink?

        private let state = Mutex(RecordingOutcome())

        public init() {}

        /// What was reported so far (`kind == nil` when nothing decided yet).
        public var outcome: RecordingOutcome { state.withLock { $0 } }

        func report(key: SHA256.Digest) {
            state.withLock { $0 = RecordingOutcome(key: key) }
        }

        func report(_ kind: Kind, liveDuration: Duration?) {
            state.withLock { outcome in
                outcome.kind = kind
                outcome.liveDuration = liveDuration
            }
        }
    }

    /// Tells the bound sink, if any, the key of the call being made.
    static func report(key: SHA256.Digest) {
        Sink.current?.report(key: key)
    }

    /// Tells the bound sink, if any, what the call did.
    static func report(_ kind: Kind, liveDuration: Duration? = nil) {
        Sink.current?.report(kind, liveDuration: liveDuration)
    }
}
