// Replay throughput of `sandbox-vcr serve`: the same SandboxFusionServer the CLI runs, in process, over an instant
// executor (a replay that costs nothing), driven over loopback HTTP by 64 keep-alive connections, each on a thread
// of its own sending `/run_code` requests in a loop. Resident memory is read after the warm-up and after each sample.
import Benchmark
import BenchmarkSupport
import Foundation
import SandboxVCR
import SandboxVCRServer
import SandboxVCRTestSupport
import SandboxVCRWebUI

/// Keep-alive connections, each on its own thread.
private let connections = 64
/// Requests per sample, shared by the connections.
private let requestsPerSample = 20_000

let benchmarks: @Sendable () -> Void = {
    runCodeBenchmark("Serve /run_code", dashboard: false)
    // The same with the dashboard's request journal, as `serve` runs by default (nobody watching): its cost per
    // request is the difference with "Serve /run_code".
    runCodeBenchmark("Serve /run_code, dashboard on", dashboard: true)

    // Memory over a long replay (issue 12): the grading demo's cassette replayed read-only by the same stack as
    // `serve --record never`, 1,000,000 requests in samples of 100,000: 99 in 100 are recorded requests (hits), one
    // in a hundred a request never seen before (a miss, with its diagnostics). The resident memory after each sample
    // is compared with the memory after a warm-up of 100,000; the goal is growth under 5 MB at the end. The server
    // keeps the dashboard's journal, as `serve` does by default (its 100,000 entries are full after the warm-up).
    Benchmark(
        "Serve replay memory, hits and misses",
        configuration: .suite(
            checked: [SuiteMetric.residentGrowthKiB: Tolerance.memory],
            reported: [SuiteMetric.requestsPerSecond, .wallClock],
            tags: ["connections": "\(connections)", "misses": "1 in 100"], maxIterations: 10,
            maxDuration: .seconds(1_200), warmupIterations: 0)
    ) { benchmark, state in
        let start = ContinuousClock.now
        try await state.load(total: MixedReplayState.requestsPerSample)
        let elapsed = ContinuousClock.now - start
        benchmark.stopMeasurement()
        benchmark.measurement(
            SuiteMetric.requestsPerSecond, Int(Double(MixedReplayState.requestsPerSample) / elapsed.seconds))
        benchmark.measurement(SuiteMetric.residentGrowthKiB, ProcessFigures.residentKiB() - state.residentKiB)
    } setup: {
        try await MixedReplayState()
    }
}

/// `/run_code` throughput and latency over an instant executor, with the dashboard's journal or without.
private func runCodeBenchmark(_ name: String, dashboard: Bool) {
    Benchmark(
        name,
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
        try await ServeState(dashboard: dashboard)
    }
}

/// Starts a server (at most 64 executor calls at once) on a free port; returns it, its task and its port.
private func startServer(executor: any SandboxExecutor, dashboard: RequestJournal? = nil) async throws
    -> (SandboxFusionServer, Task<Void, any Error>, Int)
{
    var configuration = ServeConfiguration()
    configuration.port = 0
    configuration.maxConcurrency = 64
    let server = SandboxFusionServer(executor: executor, configuration: configuration, dashboard: dashboard)
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
        throw BenchmarkFailure("the server stopped before listening")
    }
    return (server, running, port)
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

    /// Starts the server on a free port (with the dashboard's journal or not) and warms it up with 10,000 requests.
    init(dashboard: Bool) async throws {
        (server, running, port) = try await startServer(
            executor: InstantExecutor(), dashboard: dashboard ? RequestJournal() : nil)
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

/// `serve --record never` on a copy of the grading demo's cassette, and the requests of the mix.
private final class MixedReplayState {
    static let requestsPerSample = 100_000
    let server: SandboxFusionServer
    let running: Task<Void, any Error>
    let port: Int
    /// The demo's recorded requests (hits), as keep-alive HTTP requests.
    let hits: [[UInt8]]
    private(set) var residentKiB = 0
    /// Requests sent so far: each miss's program is numbered by it, so no two are alike.
    private var sent = 0
    private let folder: URL

    init() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let demo = root.appendingPathComponent("Fixtures/grading-demo")
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("serve-memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let copy = folder.appendingPathComponent("cassette.sqlite")
        try FileManager.default.copyItem(at: demo.appendingPathComponent("cassette.sqlite"), to: copy)
        var hits: [[UInt8]] = []
        for line in try String(contentsOf: demo.appendingPathComponent("exchanges.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        {
            guard let exchange = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let request = exchange["request"] as? [String: Any], let body = request["body"]
            else { continue }
            hits.append(Self.request(body: Array(try JSONSerialization.data(withJSONObject: body))))
        }
        guard !hits.isEmpty else { throw BenchmarkFailure("no requests in the demo's exchanges.jsonl") }
        self.hits = hits
        let cassette = try await Cassette.open(at: copy, readOnly: true, create: false)
        let executor = RecordingExecutor(cassette: cassette, mode: .never, live: nil)
        (server, running, port) = try await startServer(executor: executor, dashboard: RequestJournal())
        try await load(total: Self.requestsPerSample)
        residentKiB = ProcessFigures.residentKiB()
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    static func request(body: [UInt8]) -> [UInt8] {
        RawHTTP.request(
            method: "POST", path: "/run_code", headers: [("Content-Type", "application/json")], body: body,
            keepAlive: true)
    }

    /// Sends `total` requests over ``connections`` keep-alive connections; every hundredth is new (a miss).
    func load(total: Int) async throws {
        let hits = hits
        let base = sent
        sent += total
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in 0..<connections {
                let count = total / connections + (connection < total % connections ? 1 : 0)
                group.addTask { [port] in
                    try await RawHTTP.onThread {
                        let socket = try RawHTTPConnection(port: port)
                        for index in 0..<count {
                            let number = base + connection + index * connections
                            let request =
                                number % 100 == 0
                                ? Self.request(
                                    body: Array(
                                        #"{"code": "print(\#(number))", "language": "python", "run_timeout": 2}"#.utf8))
                                : hits[number % hits.count]
                            let response = try socket.exchange(request)
                            guard response.status == 200 else { throw BenchmarkFailure("status \(response.status)") }
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
