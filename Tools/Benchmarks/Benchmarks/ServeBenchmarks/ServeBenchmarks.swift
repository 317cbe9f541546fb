// Replay throughput of `sandbox-vcr serve`: the same SandboxFusionServer the CLI runs, in process, over an instant
// executor (a replay that costs nothing), driven over loopback HTTP by 64 keep-alive connections, each on a thread
// of its own sending `/run_code` requests in a loop. Resident memory is read after the warm-up and after each sample.
import Benchmark
import BenchmarkSupport
import Foundation
import SandboxVCR
import SandboxVCRServer
import SandboxVCRTestSupport

/// Keep-alive connections, each on its own thread.
private let connections = 64
/// Requests per sample, shared by the connections.
private let requestsPerSample = 20_000

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "Serve /run_code",
        configuration: .suite(
            checked: [
                SuiteMetric.requestsPerSecond: Tolerance.timing,
                SuiteMetric.latencyMicroseconds: Tolerance.timing,
                .mallocCountTotal: Tolerance.allocations,
                .peakMemoryResident: Tolerance.memory,
            ],
            reported: [SuiteMetric.residentGrowthKiB, .wallClock, .cpuTotal],
            tags: ["connections": "\(connections)"], maxIterations: 10, maxDuration: .seconds(15))
    ) { benchmark, state in
        let start = ContinuousClock.now
        let latencies = try await state.load(total: requestsPerSample)
        let elapsed = ContinuousClock.now - start
        benchmark.stopMeasurement()
        benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(requestsPerSample) / elapsed.seconds))
        benchmark.record(SuiteMetric.latencyMicroseconds, latencies.lazy.map { $0 / 1000 })
        benchmark.measurement(SuiteMetric.residentGrowthKiB, max(0, ProcessFigures.residentKiB() - state.residentKiB))
    } setup: {
        try await ServeState()
    }
}

/// The running server, the request every connection sends, and the resident memory after the warm-up.
///
/// Each benchmark runs in a process of its own: the server stops when that process ends.
private final class ServeState {
    let server: SandboxFusionServer
    let running: Task<Void, any Error>
    let port: Int
    let request = RawHTTP.request(
        method: "POST", path: "/run_code", headers: [("Content-Type", "application/json")],
        body: Array(#"{"code": "print('hello')", "language": "python", "stdin": "", "run_timeout": 2}"#.utf8),
        keepAlive: true)
    private(set) var residentKiB = 0

    /// Starts the server on a free port and warms it up with 10,000 requests.
    init() async throws {
        var configuration = ServeConfiguration()
        configuration.port = 0
        configuration.maxConcurrency = 64
        let server = SandboxFusionServer(executor: InstantExecutor(), configuration: configuration)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        running = Task {
            try await server.run(onReady: {
                readyContinuation.yield($0.port)
                readyContinuation.finish()
            })
        }
        self.server = server
        var iterator = ready.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await running.value
            throw BenchmarkFailure("the server stopped before listening")
        }
        self.port = port
        _ = try await load(total: 10_000)
        residentKiB = ProcessFigures.residentKiB()
    }

    /// Sends `total` requests over ``connections`` keep-alive connections, one thread each.
    /// - Returns: each request's latency in nanoseconds.
    /// - Throws: ``BenchmarkFailure`` on an answer other than 200.
    func load(total: Int) async throws -> [Int] {
        let request = request
        return try await withThrowingTaskGroup(of: [Int].self) { group in
            for connection in 0..<connections {
                let count = total / connections + (connection < total % connections ? 1 : 0)
                group.addTask { [port] in
                    try await RawHTTP.onThread {
                        let socket = try RawHTTPConnection(port: port)
                        var latencies: [Int] = []
                        latencies.reserveCapacity(count)
                        for _ in 0..<count {
                            let start = ContinuousClock.now
                            let response = try socket.exchange(request)
                            latencies.append((ContinuousClock.now - start).nanoseconds)
                            guard response.status == 200 else { throw BenchmarkFailure("status \(response.status)") }
                        }
                        return latencies
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
    }
}
