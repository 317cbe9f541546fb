// Replay through `serve --modal-port` (issue 10): the same ModalServer the CLI runs, in process, in mode `never`
// on 127.0.0.1:0, over a synthetic cassette of 64 recorded sandboxes × 160 execs (`echo s<i>-<j>`, each with its
// stdout), driven by the Swift client (`ModalClient`, libcurl HTTP/2, one client shared by every sandbox) at
// concurrency 64: 64 tasks, each creating its own sandbox, running its 160 execs one after another, then
// terminating it; a round is 10,240 execs, and ended sandboxes give their recording back, so rounds repeat.
//
// The cassette's image is what the client sends for `ModalImage.debianSlim()`: setup records one sandbox through a
// ModalServer in mode `all` in front of Tools/fake_modal_server.py (Tools/.venv, from Tools/setup) and reuses its
// layers.
//
// Figures: execs/s over whole rounds (sandbox creation and termination included, ~1% of the calls); each exec's
// latency (`runCommand`: TaskExecStart, TaskExecStdinWrite, two TaskExecStdioRead streams and TaskExecWait); process
// CPU per exec (server and client together: they share the process and the 2 cores); resident memory after
// 10,240, 51,200 and 102,400 replayed execs, as it is, after `malloc_trim`, and the heap in use (bytes allocated and
// not freed), which tells growth the program holds from growth the allocator keeps.
import Benchmark
import BenchmarkSupport
import Foundation

/// Figures of this suite.
private enum ModalMetric {
    static let execsPerSecond = BenchmarkMetric.custom("execs/s", polarity: .prefersLarger, useScalingFactor: false)
    /// Process CPU time (server and client: every thread) per exec, in microseconds.
    static let cpuPerExec = BenchmarkMetric.custom("CPU/exec (us)", useScalingFactor: false)
    /// Resident memory (`statm`) after the first round (10,240 execs) and after the tenth (102,400), in KiB.
    static let residentAt10k = BenchmarkMetric.custom("RSS @10k execs (KiB)", useScalingFactor: false)
    static let residentAt100k = BenchmarkMetric.custom("RSS @100k execs (KiB)", useScalingFactor: false)
    /// Peak resident memory (`VmHWM`) at the same points, in KiB.
    static let peakAt10k = BenchmarkMetric.custom("peak RSS @10k execs (KiB)", useScalingFactor: false)
    static let peakAt100k = BenchmarkMetric.custom("peak RSS @100k execs (KiB)", useScalingFactor: false)
    /// Resident memory after the fifth round (51,200 execs): with the tenth, whether growth levels off.
    static let residentAt50k = BenchmarkMetric.custom("RSS @50k execs (KiB)", useScalingFactor: false)
    /// The same after `malloc_trim(0)`, at the same points (read just after the others).
    static let trimmedAt10k = BenchmarkMetric.custom("trimmed RSS @10k execs (KiB)", useScalingFactor: false)
    static let trimmedAt50k = BenchmarkMetric.custom("trimmed RSS @50k execs (KiB)", useScalingFactor: false)
    static let trimmedAt100k = BenchmarkMetric.custom("trimmed RSS @100k execs (KiB)", useScalingFactor: false)
    /// Bytes allocated and not freed (live objects), at the same points: whether growth is held or the allocator's.
    static let heapAt10k = BenchmarkMetric.custom("heap in use @10k execs (KiB)", useScalingFactor: false)
    static let heapAt50k = BenchmarkMetric.custom("heap in use @50k execs (KiB)", useScalingFactor: false)
    static let heapAt100k = BenchmarkMetric.custom("heap in use @100k execs (KiB)", useScalingFactor: false)
}

/// Rounds of the memory benchmark: 10 × 10,240 = 102,400 execs.
private let memoryRounds = 10

let benchmarks: @Sendable () -> Void = {
    Benchmark(
        "Modal replay exec",
        configuration: .suite(
            checked: [
                ModalMetric.execsPerSecond: Tolerance.timing,
                SuiteMetric.latencyMicroseconds: Tolerance.timing,
                ModalMetric.cpuPerExec: Tolerance.timing,
            ],
            reported: [SuiteMetric.residentGrowthKiB, .peakMemoryResident],
            tags: ["c": "\(ModalPlan.concurrency)", "execs": "\(ModalPlan.execsPerRound)"], maxIterations: 5,
            maxDuration: .seconds(60), warmupIterations: 0)
    ) { benchmark, state in
        let cpuBefore = ProcessFigures.cpuTime()
        let figures = try await state.fixture.run(rounds: 1)
        let cpu = ProcessFigures.cpuTime() - cpuBefore
        benchmark.stopMeasurement()
        try state.checkNoMisses()
        benchmark.measurement(ModalMetric.execsPerSecond, Int(figures.execsPerSecond))
        benchmark.measurement(ModalMetric.cpuPerExec, cpu.nanoseconds / figures.execs / 1000)
        benchmark.record(SuiteMetric.latencyMicroseconds, figures.latencies.lazy.map { $0 / 1000 })
        benchmark.measurement(SuiteMetric.residentGrowthKiB, max(0, ProcessFigures.residentKiB() - state.residentKiB))
    } setup: {
        // One round first: the server's and the client's warm-up.
        try await ModalState(warmUpRounds: 1)
    }

    Benchmark(
        "Modal replay memory",
        configuration: .suite(
            checked: [
                ModalMetric.residentAt100k: Tolerance.memory,
                ModalMetric.peakAt100k: Tolerance.memory,
            ],
            reported: [
                ModalMetric.residentAt10k, ModalMetric.residentAt50k, ModalMetric.peakAt10k, ModalMetric.execsPerSecond,
                ModalMetric.cpuPerExec, ModalMetric.trimmedAt10k, ModalMetric.trimmedAt50k, ModalMetric.trimmedAt100k,
                ModalMetric.heapAt10k, ModalMetric.heapAt50k, ModalMetric.heapAt100k,
            ],
            tags: ["c": "\(ModalPlan.concurrency)", "execs": "\(memoryRounds * ModalPlan.execsPerRound)"],
            maxIterations: 1, maxDuration: .seconds(600), warmupIterations: 0)
    ) { benchmark, state in
        var at10k = (resident: 0, peak: 0)
        var residentAt50k = 0
        var trimmed = (at10k: 0, at50k: 0)
        var heap = (at10k: 0, at50k: 0)
        let cpuBefore = ProcessFigures.cpuTime()
        let figures = try await state.fixture.run(rounds: memoryRounds) { round in
            if round == 1 {
                at10k = (ProcessFigures.residentKiB(), ProcessFigures.peakResidentKiB())
                trimmed.at10k = ProcessFigures.residentKiBAfterTrim()
                heap.at10k = ProcessFigures.heapInUseKiB()
            }
            if round == 5 {
                residentAt50k = ProcessFigures.residentKiB()
                trimmed.at50k = ProcessFigures.residentKiBAfterTrim()
                heap.at50k = ProcessFigures.heapInUseKiB()
            }
        }
        let cpu = ProcessFigures.cpuTime() - cpuBefore
        let at100k = (resident: ProcessFigures.residentKiB(), peak: ProcessFigures.peakResidentKiB())
        let trimmedAt100k = ProcessFigures.residentKiBAfterTrim()
        let heapAt100k = ProcessFigures.heapInUseKiB()
        benchmark.stopMeasurement()
        try state.checkNoMisses()
        benchmark.measurement(ModalMetric.residentAt10k, at10k.resident)
        benchmark.measurement(ModalMetric.peakAt10k, at10k.peak)
        benchmark.measurement(ModalMetric.residentAt50k, residentAt50k)
        benchmark.measurement(ModalMetric.residentAt100k, at100k.resident)
        benchmark.measurement(ModalMetric.peakAt100k, at100k.peak)
        benchmark.measurement(ModalMetric.trimmedAt10k, trimmed.at10k)
        benchmark.measurement(ModalMetric.trimmedAt50k, trimmed.at50k)
        benchmark.measurement(ModalMetric.trimmedAt100k, trimmedAt100k)
        benchmark.measurement(ModalMetric.heapAt10k, heap.at10k)
        benchmark.measurement(ModalMetric.heapAt50k, heap.at50k)
        benchmark.measurement(ModalMetric.heapAt100k, heapAt100k)
        benchmark.measurement(ModalMetric.execsPerSecond, Int(figures.execsPerSecond))
        benchmark.measurement(ModalMetric.cpuPerExec, cpu.nanoseconds / figures.execs / 1000)
    } setup: {
        // No warm-up: the first round is the first 10,240 execs.
        try await ModalState(warmUpRounds: 0)
    }
}

/// The fixture, warmed up, and the resident memory then.
private final class ModalState {
    let fixture: ModalFixture
    private(set) var residentKiB = 0

    init(warmUpRounds: Int) async throws {
        fixture = try await ModalFixture()
        if warmUpRounds > 0 { _ = try await fixture.run(rounds: warmUpRounds) }
        try checkNoMisses()
        residentKiB = ProcessFigures.residentKiB()
    }

    /// - Throws: ``BenchmarkFailure`` when the server counted a miss or an unimplemented call.
    func checkNoMisses() throws {
        let statistics = fixture.statistics
        guard statistics["misses"] == 0, statistics["unimplemented"] == 0 else {
            throw BenchmarkFailure("the Modal port counted \(statistics)")
        }
    }
}
