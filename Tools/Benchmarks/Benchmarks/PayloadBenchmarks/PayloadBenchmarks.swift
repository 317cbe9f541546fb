// Realistic payloads (issue 15): requests of ~100 B (`print(1)`), ~23 KB (a 20 KB Python harness, a 1 KB solution,
// ~1 KB of stdin) and ~1 MB (the same plus a ~1 MB base64 `files` entry), each answered with 1 KB of stdout, and the
// 23 KB request answered with 5 MB of stdout (see `Payload`). Four paths:
// - serve replay: the release `sandbox-vcr serve --record never` as a process of its own, on a cassette recorded in
//   setup through `serve --record all`, driven by 64 keep-alive connections (a thread each) from this process;
// - serve record: `serve --record all` in front of a loopback upstream that answers at once, a fresh process and
//   cassette per sample, every request distinct;
// - the live client: `SandboxFusionExecutor` at concurrency 64 against a loopback server that answers at once;
// - `sandbox-vcr cassette import` of an `exchanges.jsonl` file, as a process of its own.
// Server figures (CPU, peak RSS) are the server process's own, read from /proc; the load driver's are not in them,
// but it shares the 2 cores. The live client's CPU is this process's, the in-process loopback server's included.
// bytes/s counts request and response bodies. Rates are whole numbers: at a few requests/s, bytes/s is the finer one.
//
// The binary comes from SANDBOX_VCR_BIN (`Tools/bench payload` builds it and sets it).
import Benchmark
import BenchmarkSupport
import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization

/// Keep-alive connections to `serve`, and the live client's concurrency.
private let connections = 64

/// Requests (or exchanges) per sample, and the most samples, for each payload size.
///
/// Sized so that the whole suite runs in a few minutes on a 2-core machine. A replay sample lasts a second or more at
/// today's rates (hundreds of requests per connection), so that its p99 is that of a steady load, not of its first
/// requests.
private struct Plan {
    var requests: Int
    var samples: Int
    /// Requests sent in setup before the first sample (the server's and the client's warm-up).
    var warmUp: Int

    static func replay(_ size: Payload.Size) -> Plan {
        switch size {
        case .tiny: Plan(requests: 32_000, samples: 3, warmUp: 2_000)
        case .harness: Plan(requests: 12_800, samples: 3, warmUp: 640)
        case .file: Plan(requests: 640, samples: 3, warmUp: 64)
        case .largeAnswer: Plan(requests: 64, samples: 2, warmUp: 4)
        }
    }

    /// Each sample starts a new server; its warm-up is one request.
    static func record(_ size: Payload.Size) -> Plan {
        switch size {
        case .tiny: Plan(requests: 5_000, samples: 2, warmUp: 1)
        case .harness: Plan(requests: 2_560, samples: 2, warmUp: 1)
        case .file: Plan(requests: 128, samples: 1, warmUp: 1)
        case .largeAnswer: Plan(requests: 64, samples: 1, warmUp: 1)
        }
    }

    static func client(_ size: Payload.Size) -> Plan {
        switch size {
        case .tiny: Plan(requests: 10_000, samples: 3, warmUp: 1_000)
        case .harness: Plan(requests: 2_000, samples: 3, warmUp: 200)
        case .file: Plan(requests: 256, samples: 2, warmUp: 64)
        case .largeAnswer: Plan(requests: 64, samples: 2, warmUp: 64)
        }
    }

    /// 10,000 exchanges at 100 B and 23 KB; at 1 MB 100 (10,000 would be a 10 GB file, and as much again in the
    /// cassette, per sample).
    static func importing(_ size: Payload.Size) -> Plan {
        switch size {
        case .tiny: Plan(requests: 10_000, samples: 2, warmUp: 0)
        case .harness: Plan(requests: 10_000, samples: 1, warmUp: 0)
        case .file, .largeAnswer: Plan(requests: 100, samples: 1, warmUp: 0)
        }
    }
}

/// Figures of another process, and of imports.
private enum PayloadMetric {
    /// The server process's CPU time (user + system, every thread) per request, in microseconds.
    static let serverCPUPerRequest = BenchmarkMetric.custom("server CPU/request (us)", useScalingFactor: false)
    /// The server process's peak resident memory since it started (`VmHWM`), in KiB.
    static let serverPeakResidentKiB = BenchmarkMetric.custom("server peak RSS (KiB)", useScalingFactor: false)
    /// From SIGTERM to the recording server's exit (it saves its recordings), in milliseconds.
    static let stopMilliseconds = BenchmarkMetric.custom("server stop (ms)", useScalingFactor: false)
    static let exchangesPerSecond = BenchmarkMetric.custom(
        "exchanges/s", polarity: .prefersLarger, useScalingFactor: false)
    /// The import process's CPU time per exchange, in microseconds.
    static let importCPUPerExchange = BenchmarkMetric.custom("import CPU/exchange (us)", useScalingFactor: false)
    /// The import process's peak resident memory (`ru_maxrss`), in KiB.
    static let importPeakResidentKiB = BenchmarkMetric.custom("import peak RSS (KiB)", useScalingFactor: false)
}

/// `serve --record never` replaying one payload size at concurrency 64.
/// - Parameter serverArguments: more arguments for the replaying server.
private func replayBenchmark(_ name: String, _ size: Payload.Size, serverArguments: [String] = []) {
    let plan = Plan.replay(size)
    Benchmark(name, configuration: serveConfiguration(size, plan)) { benchmark, state in
        let cpuBefore = try state.server.child.cpuTime()
        let figures = try await state.load.run(total: plan.requests)
        let cpu = try state.server.child.cpuTime() - cpuBefore
        let peak = try state.server.child.peakResidentKiB()
        benchmark.stopMeasurement()
        recordServeFigures(figures, serverCPU: cpu, serverPeakKiB: peak, requests: plan.requests, in: benchmark)
    } setup: {
        try await ReplayState(size, warmUp: plan.warmUp, serverArguments: serverArguments)
    }
}

/// The metrics of a `serve` benchmark.
private func serveConfiguration(_ size: Payload.Size, _ plan: Plan, extra: [BenchmarkMetric] = [])
    -> Benchmark.Configuration
{
    .suite(
        checked: [
            SuiteMetric.requestsPerSecond: Tolerance.timing,
            SuiteMetric.latencyMicroseconds: Tolerance.timing,
            PayloadMetric.serverCPUPerRequest: Tolerance.timing,
            PayloadMetric.serverPeakResidentKiB: Tolerance.memory,
        ],
        reported: [SuiteMetric.bytesPerSecond] + extra,
        tags: size.tags.merging(["c": "\(connections)"]) { $1 }, maxIterations: plan.samples,
        maxDuration: .seconds(60), warmupIterations: 0)
}

let benchmarks: @Sendable () -> Void = {
    for size in Payload.Size.allCases { replayBenchmark("Serve replay", size) }
    // The dashboard's cost while nobody watches: the same replay with `--no-dashboard` (no request journal), to
    // compare with "Serve replay" above (dashboard on, the default).
    for size in [Payload.Size.tiny, .harness] {
        replayBenchmark("Serve replay, no dashboard", size, serverArguments: ["--no-dashboard"])
    }

    for size in Payload.Size.allCases {
        let plan = Plan.record(size)
        Benchmark(
            "Serve record", configuration: serveConfiguration(size, plan, extra: [PayloadMetric.stopMilliseconds])
        ) { benchmark, state in
            try await state.sample(plan.requests, benchmark)
        } setup: {
            try RecordState(size)
        }
    }

    for size in Payload.Size.allCases {
        let plan = Plan.client(size)
        Benchmark(
            "Live client",
            configuration: .suite(
                checked: [
                    SuiteMetric.requestsPerSecond: Tolerance.timing,
                    SuiteMetric.latencyMicroseconds: Tolerance.timing,
                    SuiteMetric.cpuPerRequestMicroseconds: Tolerance.timing,
                ],
                reported: [SuiteMetric.bytesPerSecond, .peakMemoryResident],
                tags: size.tags.merging(["c": "\(connections)"]) { $1 }, maxIterations: plan.samples,
                maxDuration: .seconds(60), warmupIterations: 0)
        ) { benchmark, state in
            let request = state.request
            let bytesBefore = state.upstream.receivedBytes
            let cpuBefore = ProcessFigures.cpuTime()
            let start = ContinuousClock.now
            let latencies = try await RequestLoad.drive(
                state.executor, count: plan.requests, concurrency: connections
            ) { _ in request }
            let elapsed = ContinuousClock.now - start
            let cpu = ProcessFigures.cpuTime() - cpuBefore
            let bytes = state.upstream.receivedBytes - bytesBefore + plan.requests * state.upstream.answerBytes
            benchmark.stopMeasurement()
            benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(plan.requests) / elapsed.seconds))
            benchmark.measurement(SuiteMetric.cpuPerRequestMicroseconds, cpu.nanoseconds / plan.requests / 1000)
            benchmark.measurement(SuiteMetric.bytesPerSecond, Int(Double(bytes) / elapsed.seconds))
            benchmark.record(SuiteMetric.latencyMicroseconds, latencies.lazy.map { $0 / 1000 })
        } setup: {
            try await ClientState(size, warmUp: plan.warmUp)
        }
    }

    for size in Payload.Size.allCases where size != .largeAnswer {
        let plan = Plan.importing(size)
        Benchmark(
            "Cassette import",
            configuration: .suite(
                checked: [
                    PayloadMetric.exchangesPerSecond: Tolerance.timing,
                    PayloadMetric.importPeakResidentKiB: Tolerance.memory,
                ],
                reported: [SuiteMetric.bytesPerSecond, PayloadMetric.importCPUPerExchange],
                tags: size.tags.merging(["exchanges": "\(plan.requests)"]) { $1 }, maxIterations: plan.samples,
                maxDuration: .seconds(60), warmupIterations: 0)
        ) { benchmark, state in
            try await state.sample(benchmark)
        } setup: {
            try ImportState(size, exchanges: plan.requests)
        }
    }
}

/// Records a serve load's figures.
private func recordServeFigures(
    _ figures: ServeLoad.Figures, serverCPU: Duration, serverPeakKiB: Int, requests: Int, in benchmark: Benchmark
) {
    benchmark.measurement(SuiteMetric.requestsPerSecond, Int(Double(requests) / figures.elapsed.seconds))
    benchmark.measurement(PayloadMetric.serverCPUPerRequest, serverCPU.nanoseconds / requests / 1000)
    benchmark.measurement(SuiteMetric.bytesPerSecond, Int(Double(figures.bodyBytes) / figures.elapsed.seconds))
    benchmark.measurement(PayloadMetric.serverPeakResidentKiB, serverPeakKiB)
    benchmark.record(SuiteMetric.latencyMicroseconds, figures.latencies.lazy.map { $0 / 1000 })
}

/// A folder of this process's files in the temporary folder, removed when the process exits (the benchmark runner
/// keeps each benchmark's state until then).
private struct ScratchFolder {
    let url: URL

    init(_ name: String) throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("payload-bench-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        Self.created.withLock { $0.append(url) }
    }

    /// The folders to remove at exit.
    private static let created: Mutex<[URL]> = {
        atexit {
            for url in ScratchFolder.created.withLock({ $0 }) { try? FileManager.default.removeItem(at: url) }
        }
        return Mutex([])
    }()
}

/// A loopback SandboxFusion that answers every `/run_code` at once with a payload's answer, counting the request
/// body bytes it reads.
private final class Upstream: Sendable {
    let server: LoopbackHTTPServer
    /// The answer's body length.
    let answerBytes: Int
    private let received: ByteCounter

    init(answering payload: Payload) throws {
        let answer = Data(payload.answerBody)
        let received = ByteCounter()
        server = try LoopbackHTTPServer { request in
            received.add(request.body.count)
            return .respond(.json(answer))
        }
        answerBytes = answer.count
        self.received = received
    }

    deinit { server.shutdown() }

    /// Request body bytes read so far.
    var receivedBytes: Int { received.total }

    private final class ByteCounter: Sendable {
        private let bytes = Atomic(0)
        func add(_ count: Int) { bytes.wrappingAdd(count, ordering: .relaxed) }
        var total: Int { bytes.load(ordering: .relaxed) }
    }
}

/// Removes a cassette file and its WAL companions.
private func removeCassette(at url: URL) {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: url.path + suffix) }
}

/// `serve --record never` replaying a cassette that holds the payload's exchange (recorded in setup by
/// `serve --record all` in front of a loopback upstream), and its warmed-up load.
private final class ReplayState {
    let folder: ScratchFolder
    let server: ServeProcess
    let load: ServeLoad

    /// - Parameter serverArguments: more arguments for the replaying server (e.g. `--no-dashboard`).
    init(_ size: Payload.Size, warmUp: Int, serverArguments: [String] = []) async throws {
        let payload = Payload(size)
        let stdoutBytes = payload.stdout.utf8.count
        folder = try ScratchFolder("replay")
        let cassette = folder.url.appendingPathComponent("cassette.sqlite").path
        let upstream = try Upstream(answering: payload)
        let recorder = try await ServeProcess(
            ["--cassette", cassette, "--record", "all", "--url", upstream.server.baseURL], folder: folder.url,
            name: "recorder")
        var recording = try ServeLoad(port: recorder.port, body: payload.requestBody, distinct: false)
        try await recording.check(variant: 0, stdoutBytes: stdoutBytes)
        try await recorder.stop()

        server = try await ServeProcess(
            ["--cassette", cassette, "--record", "never"] + serverArguments, folder: folder.url, name: "server")
        var load = try ServeLoad(port: server.port, body: payload.requestBody, distinct: false)
        try await load.check(variant: 0, stdoutBytes: stdoutBytes)
        _ = try await load.run(total: warmUp)
        self.load = load
    }
}

/// A loopback upstream; each sample starts `serve --record all` in front of it on a new cassette.
private final class RecordState {
    let payload: Payload
    let body: [UInt8]
    let folder: ScratchFolder
    let upstream: Upstream
    private var samples = 0

    init(_ size: Payload.Size) throws {
        payload = Payload(size)
        body = payload.requestBody
        folder = try ScratchFolder("record")
        upstream = try Upstream(answering: payload)
    }

    /// Starts a server on a new cassette, sends it one request (its warm-up, checked in full), then `requests`
    /// distinct ones, measured; stops it and checks that the cassette holds every request.
    func sample(_ requests: Int, _ benchmark: Benchmark) async throws {
        samples += 1
        let cassette = folder.url.appendingPathComponent("record-\(samples).sqlite")
        defer { removeCassette(at: cassette) }
        let server = try await ServeProcess(
            ["--cassette", cassette.path, "--record", "all", "--url", upstream.server.baseURL], folder: folder.url,
            name: "record-\(samples)")
        var load = try ServeLoad(port: server.port, body: body, distinct: true)
        try await load.check(variant: 0, stdoutBytes: payload.stdout.utf8.count)

        let cpuBefore = try server.child.cpuTime()
        let figures = try await load.run(total: requests, firstVariant: 1)
        let cpu = try server.child.cpuTime() - cpuBefore
        let peak = try server.child.peakResidentKiB()
        let stopStart = ContinuousClock.now
        try await server.stop()
        let stop = ContinuousClock.now - stopStart
        benchmark.stopMeasurement()

        let opened = try await Cassette.open(at: cassette, readOnly: true)
        let recorded = try await opened.count()
        await opened.close()
        guard recorded == requests + 1 else {
            throw BenchmarkFailure("the cassette holds \(recorded) interactions, not \(requests + 1)")
        }
        recordServeFigures(figures, serverCPU: cpu, serverPeakKiB: peak, requests: requests, in: benchmark)
        benchmark.measurement(PayloadMetric.stopMilliseconds, stop.nanoseconds / 1_000_000)
    }
}

/// The live client of a loopback upstream, warmed up.
private final class ClientState {
    let upstream: Upstream
    let executor: SandboxFusionExecutor
    let request: ExecutionRequest

    /// - Parameter serverArguments: more arguments for the replaying server (e.g. `--no-dashboard`).
    init(_ size: Payload.Size, warmUp: Int, serverArguments: [String] = []) async throws {
        let payload = Payload(size)
        upstream = try Upstream(answering: payload)
        executor = SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(
                endpoints: [upstream.server.baseURL], maxConcurrency: connections, retryPolicy: .none))
        let request = payload.request
        let result = try await executor.execute(request)
        guard result.isSuccess, result.stdout.count == payload.stdout.utf8.count else {
            throw BenchmarkFailure("unexpected answer \(result.status): \(result.message)")
        }
        _ = try await RequestLoad.drive(executor, count: warmUp, concurrency: connections) { _ in request }
        self.request = request
    }
}

/// An `exchanges.jsonl` file of harness-heavy exchanges, imported by `sandbox-vcr cassette import` once per sample.
///
/// Exchange `i` of `n` is problem `i / √n` (its harness and test data), candidate `i % √n` (its solution), with
/// `i` on the variant line of its stdin: every exchange is distinct, harnesses repeat as in a real grading run.
private final class ImportState {
    let folder: ScratchFolder
    let exchanges: URL
    let count: Int
    private(set) var fileBytes = 0
    private var samples = 0

    init(_ size: Payload.Size, exchanges count: Int) throws {
        folder = try ScratchFolder("import")
        self.count = count
        exchanges = folder.url.appendingPathComponent("exchanges.jsonl")
        guard FileManager.default.createFile(atPath: exchanges.path, contents: nil) else {
            throw BenchmarkFailure("cannot create \(exchanges.path)")
        }
        let handle = try FileHandle(forWritingTo: exchanges)
        defer { try? handle.close() }
        let perProblem = max(1, Int(Double(count).squareRoot()))
        var buffer: [UInt8] = []
        buffer.reserveCapacity(9 << 20)
        for index in 0..<count {
            buffer +=
                Payload(size, problem: index / perProblem, candidate: index % perProblem, variant: index)
                .exchangeLine
            if buffer.count >= 8 << 20 || index == count - 1 {
                try handle.write(contentsOf: buffer)
                fileBytes += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Imports the file into a new cassette, as a process of its own.
    func sample(_ benchmark: Benchmark) async throws {
        samples += 1
        let cassette = folder.url.appendingPathComponent("import-\(samples).sqlite")
        defer { removeCassette(at: cassette) }
        let start = ContinuousClock.now
        let child = try MeasuredProcess(
            try ServeProcess.binary(), ["cassette", "import", cassette.path, exchanges.path],
            stderr: folder.url.appendingPathComponent("import-\(samples).stderr"))
        let exit = try await child.wait()
        let elapsed = ContinuousClock.now - start
        benchmark.stopMeasurement()
        guard exit.succeeded, child.stderrTail.contains("imported \(count) result(s)") else {
            throw BenchmarkFailure("\(child.commandLine) ended with \(exit.description):\n\(child.stderrTail)")
        }
        benchmark.measurement(PayloadMetric.exchangesPerSecond, Int(Double(count) / elapsed.seconds))
        benchmark.measurement(SuiteMetric.bytesPerSecond, Int(Double(fileBytes) / elapsed.seconds))
        benchmark.measurement(PayloadMetric.importCPUPerExchange, exit.cpuTime.nanoseconds / count / 1000)
        benchmark.measurement(PayloadMetric.importPeakResidentKiB, exit.peakResidentKiB)
    }
}
