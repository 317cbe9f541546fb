import Foundation
import SandboxVCR
import SandboxVCRServer
import SandboxVCRTestSupport

/// Replay throughput of `sandbox-vcr serve` over loopback HTTP with keep-alive: an in-process server over an
/// instant executor, driven by `--connections` client threads (default 64), each a keep-alive connection sending
/// `/run_code` requests in a loop.
///
/// Arguments: `--requests N` (default 200000), `--connections N` (default 64), `--warmup N` (default 20000).
/// Returns `requests_per_second`, `p50_ms`, `p99_ms`, `max_ms`, `rss_after_warmup_mb`, `rss_end_mb`,
/// `rss_growth_mb`, `requests`, `connections`, `errors`.
enum ServeBenchmarks {
    static func run(arguments: [String]) async throws -> [String: Double] {
        func option(_ name: String, _ defaultValue: Int) -> Int {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
                let value = Int(arguments[index + 1])
            else { return defaultValue }
            return value
        }
        let requests = option("--requests", 200_000)
        let connections = option("--connections", 64)
        let warmup = option("--warmup", 20_000)

        var configuration = ServeConfiguration()
        configuration.port = 0
        configuration.maxConcurrency = 64
        let server = SandboxFusionServer(executor: InstantExecutor(), configuration: configuration)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task {
            try await server.run(onReady: {
                readyContinuation.yield($0.port)
                readyContinuation.finish()
            })
        }
        var iterator = ready.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await running.value
            return [:]
        }

        let body = #"{"code": "print('hello')", "language": "python", "stdin": "", "run_timeout": 2}"#
        let request = RawHTTP.request(
            method: "POST", path: "/run_code", headers: [("Content-Type", "application/json")],
            body: Array(body.utf8), keepAlive: true)

        _ = try await load(port: port, request: request, total: warmup, connections: connections)
        let rssAfterWarmup = residentMegabytes()
        let run = try await load(port: port, request: request, total: requests, connections: connections)
        let rssEnd = residentMegabytes()

        await server.triggerGracefulShutdown()
        try await running.value

        return [
            "requests": Double(run.histogram.count),
            "connections": Double(connections),
            "errors": Double(run.errors),
            "requests_per_second": Double(run.histogram.count) / run.seconds,
            "p50_ms": run.histogram.percentile(0.50) * 1000,
            "p99_ms": run.histogram.percentile(0.99) * 1000,
            "max_ms": run.histogram.maximum * 1000,
            "rss_after_warmup_mb": rssAfterWarmup,
            "rss_end_mb": rssEnd,
            "rss_growth_mb": rssEnd - rssAfterWarmup,
        ]
    }

    /// Latencies in logarithmic buckets (16 per doubling, about 4% wide): constant memory however many requests.
    struct LatencyHistogram: Sendable {
        private static let bucketsPerDoubling = 16.0
        private(set) var buckets = [Int](repeating: 0, count: 40 * 16)
        private(set) var count = 0
        private(set) var maximum = 0.0

        mutating func record(nanoseconds: UInt64) {
            let index = Int(log2(Double(max(nanoseconds, 1))) * Self.bucketsPerDoubling)
            buckets[min(index, buckets.count - 1)] += 1
            count += 1
            maximum = max(maximum, Double(nanoseconds) / 1e9)
        }

        mutating func merge(_ other: LatencyHistogram) {
            for index in buckets.indices { buckets[index] += other.buckets[index] }
            count += other.count
            maximum = max(maximum, other.maximum)
        }

        /// The upper edge of the bucket holding the given fraction, in seconds.
        func percentile(_ fraction: Double) -> Double {
            let target = Int((Double(count) * fraction).rounded(.up))
            var seen = 0
            for (index, bucketCount) in buckets.enumerated() {
                seen += bucketCount
                if seen >= target { return pow(2, Double(index + 1) / Self.bucketsPerDoubling) / 1e9 }
            }
            return maximum
        }
    }

    private struct LoadResult: Sendable {
        var histogram: LatencyHistogram
        var seconds: Double
        var errors: Int
    }

    /// `connections` threads, each with one keep-alive connection, share `total` requests.
    private static func load(port: Int, request: [UInt8], total: Int, connections: Int) async throws -> LoadResult {
        let start = Date()
        let perConnection = (0..<connections).map { total / connections + ($0 < total % connections ? 1 : 0) }
        let results = try await withThrowingTaskGroup(of: (LatencyHistogram, Int).self) { group in
            for count in perConnection {
                group.addTask {
                    try await RawHTTP.onThread {
                        var histogram = LatencyHistogram()
                        var errors = 0
                        let connection = try RawHTTPConnection(port: port)
                        for _ in 0..<count {
                            let sent = DispatchTime.now().uptimeNanoseconds
                            let response = try connection.exchange(request)
                            histogram.record(nanoseconds: DispatchTime.now().uptimeNanoseconds - sent)
                            if response.status != 200 { errors += 1 }
                        }
                        return (histogram, errors)
                    }
                }
            }
            return try await group.reduce(into: [(LatencyHistogram, Int)]()) { $0.append($1) }
        }
        var histogram = LatencyHistogram()
        for (part, _) in results { histogram.merge(part) }
        return LoadResult(
            histogram: histogram, seconds: Date().timeIntervalSince(start), errors: results.reduce(0) { $0 + $1.1 })
    }

    /// This process's resident memory in MiB (Linux `/proc/self/statm`), or 0 where unavailable.
    private static func residentMegabytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}

/// Answers at once with a fixed hello-world result (a replay with no cost).
private struct InstantExecutor: SandboxExecutor {
    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        ExecutionResult(
            status: .success,
            run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data("hello\n".utf8), wallTime: 0.0101),
            backend: .sandboxFusion)
    }
}
