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
import Synchronization

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
    // it cost more, not less. Beside the overheads they report what the overhead is made of: whether recording slows
    // the live calls (their mean in either run), and the delay from a live answer to its caller's answer (the
    // recording and its group commit); in stop 24 the delay's mean (1.2-1.7 ms on 23 ms calls) made up most of it.
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
                reported: OverheadMetric.delayed,
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
/// rotating), the per cent of the live rate each recording mode loses, and what it is made of: the recorder's CPU per
/// recording (what a run in mode `all` takes beyond the live run), the live calls' mean in either run, the delay from
/// a live answer to its caller's answer, and the closing flush.
private func measureOverheadAgainstDelayedBackend(_ benchmark: Benchmark, _ state: RecordState) async throws {
    var figures: [Path: RecordState.Figures] = [:]
    let order = Path.allCases
    for offset in order.indices {
        let path = order[(benchmark.currentIteration + offset) % order.count]
        figures[path] = try await state.run(path, timed: true)
    }
    benchmark.stopMeasurement()
    let live = figures[.live]!
    for (metric, path) in [(OverheadMetric.all, Path.all), (OverheadMetric.missing, Path.missing)] {
        let rate = figures[path]!.requestsPerSecond
        benchmark.measurement(metric, max(0, Int(((1 - rate / live.requestsPerSecond) * 100).rounded())))
    }
    let all = figures[.all]!
    benchmark.measurement(OverheadMetric.recorderCPU, max(0, Int((all.cpuPerRequest - live.cpuPerRequest).nanoseconds)))
    benchmark.measurement(OverheadMetric.liveRate, Int(live.requestsPerSecond))
    benchmark.measurement(OverheadMetric.liveCallLive, live.meanLiveCall.microseconds)
    benchmark.measurement(OverheadMetric.liveCallAll, all.meanLiveCall.microseconds)
    let delays = all.recorderDelays.sorted()
    if !delays.isEmpty {
        benchmark.measurement(OverheadMetric.delayMedian, delays[delays.count / 2].microseconds)
        benchmark.measurement(OverheadMetric.delayMean, (delays.reduce(.zero, +) / delays.count).microseconds)
    }
    benchmark.measurement(OverheadMetric.flush, all.flush.microseconds)
}

extension Duration {
    /// The duration in whole microseconds.
    fileprivate var microseconds: Int { nanoseconds / 1000 }
}

/// `print("hello world")` with its own stdin, so that every request records.
private func helloRequest(tag: String, index: Int) -> ExecutionRequest {
    ExecutionRequest(code: "print(\"hello world\")", language: .python, stdin: "\(tag)-\(index)\n")
}

/// The overhead figures: per cent of the live requests/s lost by recording; against a delayed backend, what they
/// are made of.
private enum OverheadMetric {
    static let all = metric("overhead mode all (%)")
    static let missing = metric("overhead mode missing (%)")
    static let recorderCPU = metric("recorder CPU per recording (ns)")
    static let liveRate = metric("live requests/s")
    static let liveCallLive = metric("live call, run live, mean (µs)")
    static let liveCallAll = metric("live call, run all, mean (µs)")
    static let delayMedian = metric("answer after the live answer, mode all, median (µs)")
    static let delayMean = metric("answer after the live answer, mode all, mean (µs)")
    static let flush = metric("closing flush, mode all (µs)")

    /// The delayed-backend benchmarks' figures beside the overheads.
    static let delayed = [recorderCPU, liveRate, liveCallLive, liveCallAll, delayMedian, delayMean, flush]

    private static func metric(_ name: String) -> BenchmarkMetric { .custom(name, useScalingFactor: false) }
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
        /// With timing: the mean duration of the live calls.
        var meanLiveCall: Duration = .zero
        /// With timing, for a recording run: the time from each live answer to its caller's answer (the recording
        /// and its commit).
        var recorderDelays: [Duration] = []
        /// For a recording run: its closing flush (commits the replay stamps and checkpoints the WAL).
        var flush: Duration = .zero
    }

    /// A new run number, for a run made outside ``run(_:)``.
    func nextRun() -> Int {
        runs += 1
        return runs
    }

    /// Runs so far: part of every request's stdin, so that no request repeats one of an earlier run.
    private var runs = 0

    /// Sends `requestsPerSample` new requests through `path` from 64 tasks, flushing a recording cassette.
    ///
    /// - Parameter timed: whether to time the live calls and the recorder's delays (``Figures``), at the cost of a
    ///   lock and a table entry per request.
    func run(_ path: Path, timed: Bool = false) async throws -> Figures {
        runs += 1
        let tag = "\(path.rawValue)-\(runs)"
        let times = timed ? AnswerTimes(live) : nil
        let live: any SandboxExecutor = times ?? self.live
        let cpuBefore = ProcessFigures.cpuTime()
        let start = ContinuousClock.now
        // Untimed runs keep to `drive`, whose allocations the committed baseline counts.
        func send(_ executor: some SandboxExecutor) async throws -> [(ExecutionRequest, ContinuousClock.Instant)] {
            let make: @Sendable (Int) -> ExecutionRequest = { helloRequest(tag: tag, index: $0) }
            guard timed else {
                _ = try await RequestLoad.drive(executor, count: requestsPerSample, concurrency: 64, makeRequest: make)
                return []
            }
            return try await RequestLoad.answerTimes(
                executor, count: requestsPerSample, concurrency: 64, makeRequest: make)
        }
        var answered: [(ExecutionRequest, ContinuousClock.Instant)] = []
        var flush = Duration.zero
        switch path {
        case .live:
            answered = try await send(live)
        case .all, .missing:
            let cassette = path == .all ? all : missing
            answered = try await send(
                RecordingExecutor(cassette: cassette, mode: path == .all ? .all : .missing, live: live))
            let flushStart = ContinuousClock.now
            try await cassette.flush()
            flush = .now - flushStart
        }
        let elapsed = ContinuousClock.now - start
        let cpu = ProcessFigures.cpuTime() - cpuBefore
        var figures = Figures(
            requestsPerSecond: Double(requestsPerSample) / elapsed.seconds, cpuPerRequest: cpu / requestsPerSample,
            flush: flush)
        if let times {
            figures.meanLiveCall = times.meanCall
            if path != .live {
                figures.recorderDelays = answered.compactMap { request, time in
                    times.answer(to: request).map { time - $0 }
                }
            }
        }
        return figures
    }
}

/// The live executor, noting when each answer came back (by its request's stdin, unique in these runs), so that a
/// recording run can tell how long after its live answer each caller was answered.
private final class AnswerTimes: SandboxExecutor {
    let inner: any SandboxExecutor
    private let times = Mutex([Data: ContinuousClock.Instant]())
    private let calls = Mutex([Duration]())

    init(_ inner: any SandboxExecutor) { self.inner = inner }

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        let start = ContinuousClock.now
        let result = try await inner.execute(request)
        let now = ContinuousClock.now
        times.withLock { $0[request.stdin] = now }
        calls.withLock { $0.append(now - start) }
        return result
    }

    /// When the live answer to `request` came back.
    func answer(to request: ExecutionRequest) -> ContinuousClock.Instant? {
        times.withLock { $0[request.stdin] }
    }

    /// The mean duration of the live calls.
    var meanCall: Duration { calls.withLock { $0.isEmpty ? .zero : $0.reduce(.zero, +) / $0.count } }
}
