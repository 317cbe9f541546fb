// The live SandboxFusion client (libcurl) against an in-process loopback server that answers at once with a canned
// hello-world: requests/s, per-request latency and CPU per request at concurrency 1, 8 and 64, and resident memory
// over 100,000 requests. CPU figures include the in-process server (client and server share the machine).
import Benchmark
import BenchmarkSupport
import SandboxVCR

/// `print("hello world")`, the request every benchmark here sends.
private let helloRequest = ExecutionRequest(code: "print(\"hello world\")", language: .python)

let benchmarks: @Sendable () -> Void = {
    for concurrency in [1, 8, 64] {
        // One sample: 1,000 requests (scalingFactor .kilo), so cpuTotal and wallClock in ms read as µs per request.
        Benchmark(
            "Client",
            configuration: .suite(
                checked: [
                    SuiteMetric.requestsPerSecond: Tolerance.timing,
                    SuiteMetric.latencyMicroseconds: Tolerance.timing,
                    SuiteMetric.cpuPerRequestNanoseconds: Tolerance.timing,
                    .mallocCountTotal: Tolerance.allocations,
                    .peakMemoryResident: Tolerance.memory,
                ],
                reported: [.wallClock, .cpuTotal, .throughput],
                tags: ["c": "\(concurrency)"], scalingFactor: .kilo, maxIterations: 30, maxDuration: .seconds(4))
        ) { benchmark, server in
            let executor = server.makeExecutor(concurrency: concurrency)
            let requests = benchmark.scaledIterations.count
            let cpuBefore = ProcessFigures.cpuTime()
            let start = ContinuousClock.now
            let latencies = try await RequestLoad.drive(executor, count: requests, concurrency: concurrency) { _ in
                helloRequest
            }
            let elapsed = ContinuousClock.now - start
            let cpu = ProcessFigures.cpuTime() - cpuBefore
            benchmark.stopMeasurement()
            benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(requests) / elapsed.seconds))
            benchmark.measurement(SuiteMetric.cpuPerRequestNanoseconds, cpu.nanoseconds / requests)
            benchmark.record(SuiteMetric.latencyMicroseconds, latencies.lazy.map { $0 / 1000 })
        } setup: {
            try HelloServer()
        }
    }

    // Resident memory over 100,000 requests at c=64 (10 samples of 10,000): growth since the warm-up.
    Benchmark(
        "Client RSS over 100k requests",
        configuration: .suite(
            checked: [.peakMemoryResident: Tolerance.memory],
            reported: [SuiteMetric.residentGrowthKiB, SuiteMetric.requestsPerSecond],
            tags: ["c": "64"], maxIterations: 10, maxDuration: .seconds(60), warmupIterations: 0)
    ) { (benchmark: Benchmark, state: MemoryRun) async throws in
        let start = ContinuousClock.now
        _ = try await RequestLoad.drive(state.executor, count: 10_000, concurrency: 64) { _ in helloRequest }
        let elapsed = ContinuousClock.now - start
        benchmark.stopMeasurement()
        benchmark.measurement(SuiteMetric.requestsPerSecond, Int(10_000 / elapsed.seconds))
        benchmark.measurement(SuiteMetric.residentGrowthKiB, max(0, ProcessFigures.residentKiB() - state.residentKiB))
    } setup: {
        let server = try HelloServer()
        let executor = server.makeExecutor(concurrency: 64)
        _ = try await RequestLoad.drive(executor, count: 2_000, concurrency: 64) { _ in helloRequest }
        return MemoryRun(server: server, executor: executor, residentKiB: ProcessFigures.residentKiB())
    }
}

/// The state of the memory benchmark: the server, a warmed-up client, and the resident memory after the warm-up.
private struct MemoryRun {
    var server: HelloServer
    var executor: SandboxFusionExecutor
    var residentKiB: Int
}
