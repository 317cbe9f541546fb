import Synchronization

/// What the Modal port did since it started, as `GET /stats` reports it under `modal`.
public final class ModalServeStatistics: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    /// The counts now: `calls`, `sandboxes`, `replayed`, `recorded`, `forwarded`, `misses`, `unimplemented`, and the
    /// HTTP/2 `connections` accepted and `ignoredResets` (a client's resets of finished streams, see the ModalServer
    /// article).
    public var snapshot: [String: Int] {
        counts.withLock { counts in
            var all = counts
            for key in [
                "calls", "sandboxes", "replayed", "recorded", "forwarded", "misses", "unimplemented", "connections",
                "ignoredResets",
            ] {
                all[key] = all[key] ?? 0
            }
            return all
        }
    }

    private func add(_ key: String) { counts.withLock { $0[key, default: 0] += 1 } }

    func countCall() { add("calls") }
    func countSandbox() { add("sandboxes") }
    func countReplayed() { add("replayed") }
    func countRecorded() { add("recorded") }
    func countForwarded() { add("forwarded") }
    func countMiss() { add("misses") }
    func countUnimplemented() { add("unimplemented") }
    func countConnection() { add("connections") }
    func countIgnoredReset() { add("ignoredResets") }
}
