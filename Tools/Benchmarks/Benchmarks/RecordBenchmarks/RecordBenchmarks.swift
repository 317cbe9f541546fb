// Recording overhead at concurrency 64: the live SandboxFusion client (libcurl, maxConcurrency 64) against an
// in-process loopback server answering at once with a canned hello-world, alone and wrapped in a RecordingExecutor
// (mode `all`, and mode `missing` where every request misses), plus the recorder alone over an instant executor.
//
// Every request is distinct (its own stdin), so every wrapped call records; a recording sample's time includes
// `flush()`, so every recording is committed when the clock stops.
import Benchmark
import BenchmarkSupport
import Foundation
import SandboxVCR

/// Requests per sample.
private let requestsPerSample = 2_000

/// What a benchmark wraps around the live client.
private enum Path: String, CaseIterable {
    case live, all, missing
}

let benchmarks: @Sendable () -> Void = {
    for path in Path.allCases {
        Benchmark(
            "Record",
            configuration: .suite(
                checked: [
                    SuiteMetric.requestsPerSecond: Tolerance.timing,
                    SuiteMetric.cpuPerRequestNanoseconds: Tolerance.timing,
                    .mallocCountTotal: Tolerance.allocations,
                ],
                reported: [.wallClock, .cpuTotal, .peakMemoryResident],
                tags: ["mode": path.rawValue, "c": "64"], maxIterations: 15, maxDuration: .seconds(6))
        ) { benchmark, state in
            let figures = try await state.run(path)
            benchmark.stopMeasurement()
            benchmark.measurement(SuiteMetric.requestsPerSecond, Int(figures.requestsPerSecond))
            benchmark.measurement(SuiteMetric.cpuPerRequestNanoseconds, figures.cpuPerRequest.nanoseconds)
        } setup: {
            try await RecordState()
        }
    }

    // The overhead itself: each sample is one round of live, `all` and `missing` (their order rotating), all in
    // one process, so the machine's drift between benchmarks does not enter the ratio.
    Benchmark(
        "Recording overhead",
        configuration: .suite(
            checked: [OverheadMetric.all: Tolerance.timing, OverheadMetric.missing: Tolerance.timing],
            tags: ["c": "64"], maxIterations: 7, maxDuration: .seconds(20))
    ) { benchmark, state in
        var rates: [Path: Double] = [:]
        let order = Path.allCases
        for offset in order.indices {
            let path = order[(benchmark.currentIteration + offset) % order.count]
            rates[path] = try await state.run(path).requestsPerSecond
        }
        benchmark.stopMeasurement()
        // Per cent of the live rate lost (a histogram holds no negative value: a faster recording counts as 0).
        for (metric, path) in [(OverheadMetric.all, Path.all), (OverheadMetric.missing, Path.missing)] {
            benchmark.measurement(metric, max(0, Int(((1 - rates[path]! / rates[.live]!) * 100).rounded())))
        }
    } setup: {
        try await RecordState()
    }

    // The overhead against a backend that answers like a real one, and the recorder's own CPU per recording (the CPU
    // a run in mode `all` takes beyond the live run): after 20 ms (the real SandboxFusion's median here), and after
    // times that vary as real programs' do (log-normal, median 20 ms, sigma 0.5: the middle 80% between 11 and 38 ms).
    // The second asks whether the first's lockstep (64 calls starting and ending together) is what costs; in stop 23
    // it cost more, not less.
    let delayedBackends: [(name: String, tag: String, delay: HelloServer.Delay)] = [
        ("Recording overhead, 20 ms backend", "20ms", .fixed(.milliseconds(20))),
        (
            "Recording overhead, 20 ms median backend, varied", "20ms-lognormal",
            .logNormal(median: .milliseconds(20), sigma: 0.5)
        ),
    ]
    for backend in delayedBackends {
        Benchmark(
            backend.name,
            configuration: .suite(
                checked: [OverheadMetric.all: Tolerance.timing, OverheadMetric.missing: Tolerance.timing],
                reported: [OverheadMetric.recorderCPU],
                tags: ["c": "64", "backend": backend.tag], maxIterations: 7, maxDuration: .seconds(30))
        ) { benchmark, state in
            try await measureOverheadAgainstDelayedBackend(benchmark, state)
        } setup: {
            try await RecordState(delay: backend.delay)
        }
    }

    // The recorder alone: mode `all` over an executor that answers at once without I/O.
    Benchmark(
        "Recorder alone",
        configuration: .suite(
            checked: [
                SuiteMetric.requestsPerSecond: Tolerance.timing,
                SuiteMetric.cpuPerRequestNanoseconds: Tolerance.timing,
                .mallocCountTotal: Tolerance.allocations,
            ],
            reported: [.wallClock, .cpuTotal],
            tags: ["c": "64"], maxIterations: 15, maxDuration: .seconds(6))
    ) { benchmark, state in
        let recorder = RecordingExecutor(cassette: state.alone, mode: .all, live: InstantExecutor())
        let tag = "alone-\(state.nextRun())"
        let cpuBefore = ProcessFigures.cpuTime()
        let start = ContinuousClock.now
        _ = try await RequestLoad.drive(recorder, count: requestsPerSample, concurrency: 64) {
            helloRequest(tag: tag, index: $0)
        }
        try await state.alone.flush()
        let elapsed = ContinuousClock.now - start
        let cpu = ProcessFigures.cpuTime() - cpuBefore
        benchmark.stopMeasurement()
        benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(requestsPerSample) / elapsed.seconds))
        benchmark.measurement(SuiteMetric.cpuPerRequestNanoseconds, cpu.nanoseconds / requestsPerSample)
    } setup: {
        try await RecordState()
    }
}

/// One sample of the overhead against a backend that answers late: a round of live, `all` and `missing` (their order
/// rotating), the per cent of the live rate each recording mode loses, and the recorder's CPU per recording (what a
/// run in mode `all` takes beyond the live run).
private func measureOverheadAgainstDelayedBackend(_ benchmark: Benchmark, _ state: RecordState) async throws {
    var figures: [Path: RecordState.Figures] = [:]
    let order = Path.allCases
    for offset in order.indices {
        let path = order[(benchmark.currentIteration + offset) % order.count]
        figures[path] = try await state.run(path)
    }
    benchmark.stopMeasurement()
    let live = figures[.live]!
    for (metric, path) in [(OverheadMetric.all, Path.all), (OverheadMetric.missing, Path.missing)] {
        let rate = figures[path]!.requestsPerSecond
        benchmark.measurement(metric, max(0, Int(((1 - rate / live.requestsPerSecond) * 100).rounded())))
    }
    let extra = figures[.all]!.cpuPerRequest - live.cpuPerRequest
    benchmark.measurement(OverheadMetric.recorderCPU, max(0, Int(extra.nanoseconds)))
}

/// `print("hello world")` with its own stdin, so that every request records.
private func helloRequest(tag: String, index: Int) -> ExecutionRequest {
    ExecutionRequest(code: "print(\"hello world\")", language: .python, stdin: "\(tag)-\(index)\n")
}

/// The overhead figures: per cent of the live requests/s lost by recording.
private enum OverheadMetric {
    static let all = BenchmarkMetric.custom("overhead mode all (%)", useScalingFactor: false)
    static let missing = BenchmarkMetric.custom("overhead mode missing (%)", useScalingFactor: false)
    static let recorderCPU = BenchmarkMetric.custom("recorder CPU per recording (ns)", useScalingFactor: false)
}

/// The loopback server, the live client, and one cassette per recording path, in a folder removed at exit.
private final class RecordState {
    let server: HelloServer
    let live: SandboxFusionExecutor
    let folder: URL
    let all: Cassette
    let missing: Cassette
    let alone: Cassette

    /// Starts the server (answering after `delay`) and opens the cassettes; every path is warmed up (connections,
    /// page cache, allocator).
    init(delay: HelloServer.Delay? = nil) async throws {
        server = try HelloServer(delay: delay)
        live = server.makeExecutor(concurrency: 64)
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("record-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        all = try await Cassette.open(at: folder.appendingPathComponent("all.sqlite"))
        missing = try await Cassette.open(at: folder.appendingPathComponent("missing.sqlite"))
        alone = try await Cassette.open(at: folder.appendingPathComponent("alone.sqlite"))
        for path in Path.allCases { _ = try await run(path) }
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    /// What one run measured.
    struct Figures {
        var requestsPerSecond: Double
        var cpuPerRequest: Duration
    }

    /// A new run number, for a run made outside ``run(_:)``.
    func nextRun() -> Int {
        runs += 1
        return runs
    }

    /// Runs so far: part of every request's stdin, so that no request repeats one of an earlier run.
    private var runs = 0

    /// Sends `requestsPerSample` new requests through `path` from 64 tasks, flushing a recording cassette.
    func run(_ path: Path) async throws -> Figures {
        runs += 1
        let tag = "\(path.rawValue)-\(runs)"
        let cpuBefore = ProcessFigures.cpuTime()
        let start = ContinuousClock.now
        switch path {
        case .live:
            _ = try await RequestLoad.drive(live, count: requestsPerSample, concurrency: 64) {
                helloRequest(tag: tag, index: $0)
            }
        case .all, .missing:
            let cassette = path == .all ? all : missing
            let recorder = RecordingExecutor(cassette: cassette, mode: path == .all ? .all : .missing, live: live)
            _ = try await RequestLoad.drive(recorder, count: requestsPerSample, concurrency: 64) {
                helloRequest(tag: tag, index: $0)
            }
            try await cassette.flush()
        }
        let elapsed = ContinuousClock.now - start
        let cpu = ProcessFigures.cpuTime() - cpuBefore
        return Figures(
            requestsPerSecond: Double(requestsPerSample) / elapsed.seconds, cpuPerRequest: cpu / requestsPerSample)
    }
}
