// Cassette benchmarks at 10,000 and 100,000 interactions (a 20 KB harness shared by every request, 1 KB of code,
// 1 KB of stdout): replay latency, the key computation alone, replays/s from 64 tasks, open time and resident memory
// in a fresh process, and the file's size against the same data as JSON Lines.
import Benchmark
import BenchmarkSupport
import Foundation
import SandboxVCR

/// The cassette sizes every cassette benchmark runs at (shown as the `interactions` tag).
private let scales = [10_000, 100_000]

/// Distinct requests replayed per sample: 1,000 (scalingFactor .kilo).
private var replaysPerSample: BenchmarkScalingFactor { .kilo }

let benchmarks: @Sendable () -> Void = {
    FreshProcessOpen.runIfRequested()

    for count in scales {
        let tags = ["interactions": "\(count)"]

        // One replay at a time (mode `never`): the latency of each replay, and per sample of 1,000 replays the
        // CPU time and allocations (`--scale` shows them per replay).
        Benchmark(
            "Replay",
            configuration: .suite(
                checked: [
                    SuiteMetric.latencyNanoseconds: Tolerance.timing,
                    .mallocCountTotal: Tolerance.allocations,
                ],
                reported: [.wallClock, .cpuTotal, .throughput, .peakMemoryResident],
                tags: tags, scalingFactor: replaysPerSample, maxIterations: 50, maxDuration: .seconds(3))
        ) { benchmark, state in
            let clock = ContinuousClock()
            var latencies: [Int] = []
            latencies.reserveCapacity(state.requests.count)
            for request in state.requests {
                let start = clock.now
                let result = try await state.executor.execute(request)
                latencies.append((clock.now - start).nanoseconds)
                guard result.stdout.count == 1024 else { throw BenchmarkFailure("wrong replay") }
            }
            benchmark.stopMeasurement()
            benchmark.record(SuiteMetric.latencyNanoseconds, latencies)
        } setup: {
            try await ReplayState(interactions: count, samples: replaysPerSample.rawValue)
        }

        // 64 tasks replaying at once; each sample replays 1,000 requests (the tasks share them).
        Benchmark(
            "Replay from 64 tasks",
            configuration: .suite(
                checked: [SuiteMetric.requestsPerSecond: Tolerance.timing],
                reported: [.wallClock, .cpuTotal, .mallocCountTotal],
                tags: tags, scalingFactor: replaysPerSample, maxIterations: 100, maxDuration: .seconds(3))
        ) { benchmark, state in
            let start = ContinuousClock.now
            _ = try await RequestLoad.drive(state.executor, count: state.requests.count, concurrency: 64) {
                [requests = state.requests] index in requests[index]
            }
            let elapsed = ContinuousClock.now - start
            benchmark.stopMeasurement()
            benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(state.requests.count) / elapsed.seconds))
        } setup: {
            try await ReplayState(interactions: count, samples: replaysPerSample.rawValue)
        }

        // A new process opens the cassette and replays one request; `open (us)` is the open alone.
        Benchmark(
            "Open in a fresh process",
            configuration: .suite(
                checked: [
                    FreshProcessOpen.openMicroseconds: Tolerance.timing, FreshProcessOpen.residentKiB: Tolerance.memory,
                ],
                tags: tags, maxIterations: 10, maxDuration: .seconds(5))
        ) { benchmark, url in
            let figures = try FreshProcessOpen.measure(url)
            benchmark.measurement(FreshProcessOpen.openMicroseconds, figures.open.nanoseconds / 1000)
            benchmark.measurement(FreshProcessOpen.residentKiB, figures.residentKiB)
        } setup: {
            try await CassetteFixture.url(interactions: count)
        }
    }

    // The request's key alone (normalise, encode, hash; no I/O), per request, over 1,000 distinct requests.
    Benchmark(
        "Key computation",
        configuration: .suite(
            checked: [SuiteMetric.latencyNanoseconds: Tolerance.timing, .mallocCountTotal: Tolerance.allocations],
            reported: [.wallClock, .cpuTotal],
            scalingFactor: replaysPerSample, maxIterations: 50, maxDuration: .seconds(2))
    ) { benchmark, requests in
        let clock = ContinuousClock()
        var latencies: [Int] = []
        latencies.reserveCapacity(requests.count)
        for request in requests {
            let start = clock.now
            blackHole(RequestMatcher.exact.key(for: request))
            latencies.append((clock.now - start).nanoseconds)
        }
        benchmark.stopMeasurement()
        benchmark.record(SuiteMetric.latencyNanoseconds, latencies)
    } setup: {
        CassetteFixture.sampleIndices(count: 10_000, samples: replaysPerSample.rawValue).map(
            CassetteFixture.makeRequest)
    }

    // The 10,000-interaction cassette's size on disk (file + WAL) against its JSON Lines export.
    Benchmark(
        "Size against JSON Lines",
        configuration: .suite(
            checked: [SizeMetric.cassetteKiB: Tolerance.memory],
            reported: [SizeMetric.jsonLinesKiB, SizeMetric.perMilleOfJSONLines],
            tags: ["interactions": "10000"], maxIterations: 1, warmupIterations: 0)
    ) { benchmark, url in
        let cassetteBytes = ["", "-wal"].reduce(0) { total, suffix in
            let attributes = try? FileManager.default.attributesOfItem(atPath: url.path + suffix)
            return total + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
        }
        let cassette = try await Cassette.open(at: url)
        var jsonLinesBytes = 0
        try await cassette.exportJSONLines { jsonLinesBytes += $0.count }
        await cassette.close()
        benchmark.stopMeasurement()
        benchmark.measurement(SizeMetric.cassetteKiB, cassetteBytes / 1024)
        benchmark.measurement(SizeMetric.jsonLinesKiB, jsonLinesBytes / 1024)
        benchmark.measurement(SizeMetric.perMilleOfJSONLines, cassetteBytes * 1000 / max(1, jsonLinesBytes))
    } setup: {
        try await CassetteFixture.url(interactions: 10_000)
    }
}

/// An open cassette, a replaying executor, and the requests one sample replays (warmed up: page cache, allocator).
private struct ReplayState {
    var cassette: Cassette
    var executor: RecordingExecutor
    var requests: [ExecutionRequest]

    init(interactions count: Int, samples: Int) async throws {
        cassette = try await Cassette.open(at: try await CassetteFixture.url(interactions: count))
        executor = RecordingExecutor(cassette: cassette, mode: .never)
        requests = CassetteFixture.sampleIndices(count: count, samples: samples).map(CassetteFixture.makeRequest)
        let warmup = RecordingExecutor(cassette: cassette, mode: .never)
        for index in 0..<min(500, count) { _ = try await warmup.execute(CassetteFixture.makeRequest(index)) }
    }
}

extension FreshProcessOpen {
    /// The open alone, in the new process, in microseconds.
    static let openMicroseconds = BenchmarkMetric.custom("open (us)", useScalingFactor: false)
    /// The new process's resident memory after the open and one replay, in KiB.
    static let residentKiB = BenchmarkMetric.custom("fresh process RSS (KiB)", useScalingFactor: false)
}

/// The size figures.
private enum SizeMetric {
    static let cassetteKiB = BenchmarkMetric.custom("cassette (KiB)", useScalingFactor: false)
    static let jsonLinesKiB = BenchmarkMetric.custom("JSON Lines (KiB)", useScalingFactor: false)
    static let perMilleOfJSONLines = BenchmarkMetric.custom("cassette/JSON Lines (per mille)", useScalingFactor: false)
}
