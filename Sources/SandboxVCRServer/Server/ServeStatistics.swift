internal import SandboxVCR
internal import Synchronization

/// Request counts since the server started, as `GET /stats` reports them.
public final class ServeStatistics: Sendable {
    /// A copy of the counts at one moment.
    public struct Snapshot: Sendable, Hashable {
        /// Every HTTP request, whatever its answer.
        public var requests = 0
        public var hits = 0
        public var misses = 0
        public var recorded = 0
        public var live = 0
        public var fake = 0
        /// Executor failures other than misses.
        public var errors = 0
        /// Requests refused before reaching the executor (422, 413, 404, 405, ...).
        public var rejected = 0
        /// Requests per `METHOD /path` (unknown paths counted under `other`).
        public var byEndpoint: [String: Int] = [:]
        /// The Modal port's counts (`serve --modal-port`), when it runs.
        public var modal: [String: Int]?

        /// The `GET /stats` answer, keys in a fixed order.
        var json: JSONValue {
            .object(
                [
                    ("requests", .integer(String(requests))), ("hits", .integer(String(hits))),
                    ("misses", .integer(String(misses))), ("recorded", .integer(String(recorded))),
                    ("live", .integer(String(live))), ("fake", .integer(String(fake))),
                    ("errors", .integer(String(errors))), ("rejected", .integer(String(rejected))),
                    (
                        "by_endpoint",
                        .object(byEndpoint.sorted { $0.key < $1.key }.map { ($0.key, .integer(String($0.value))) })
                    ),
                ]
                    + (modal.map {
                        [("modal", .object($0.sorted { $0.key < $1.key }.map { ($0.key, .integer(String($0.value))) }))]
                    } ?? []))
        }
    }

    private let counts = Mutex(Snapshot())
    private let modalCounts = Mutex<(@Sendable () -> [String: Int])?>(nil)

    public init() {}

    /// The counts now.
    public var snapshot: Snapshot {
        var snapshot = counts.withLock { $0 }
        snapshot.modal = modalCounts.withLock { $0 }?()
        return snapshot
    }

    /// Adds the Modal port's counts to every snapshot (and `GET /stats`).
    public func reportModal(_ counts: @escaping @Sendable () -> [String: Int]) {
        modalCounts.withLock { $0 = counts }
    }

    func recordRequest(endpoint: String) {
        counts.withLock {
            $0.requests += 1
            $0.byEndpoint[endpoint, default: 0] += 1
        }
    }

    func recordRejected() { counts.withLock { $0.rejected += 1 } }

    func record(_ source: ExecutionOutcome.Source) {
        counts.withLock { counts in
            switch source {
            case .hit: counts.hits += 1
            case .miss: counts.misses += 1
            case .recorded: counts.recorded += 1
            case .live: counts.live += 1
            case .fake: counts.fake += 1
            case .error: counts.errors += 1
            }
        }
    }
}
