import Foundation
import SandboxVCR
import SandboxVCRTestSupport

/// Recording overhead as the goal states it: the live SandboxFusion client (libcurl, `maxConcurrency` 64) against a
/// loopback server that answers at once with a canned hello-world, alone and wrapped in a ``RecordingExecutor``
/// (mode `all`, and mode `missing` where every request misses), at concurrency 64.
///
/// Every request is distinct (its own stdin), so every wrapped call records. Rounds alternate the three runs (their
/// order rotates each round); a recording run's time includes `flush()`, so every recording is committed when the
/// clock stops. Reports each run's median throughput and the overhead of the medians, all from the same process.
///
/// Arguments: `--requests N` per run (default 10000), `--rounds N` (default 7).
enum RecordingBenchmark {
    static let concurrency = 64

    static func run(arguments: [String]) async throws -> [String: Double] {
        func option(_ name: String, _ fallback: Int) -> Int {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
                let value = Int(arguments[index + 1])
            else { return fallback }
            return value
        }
        let requests = option("--requests", 10_000)
        let rounds = option("--rounds", 7)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("record-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let answer = LoopbackHTTPServer.Response.json(Data(ClientBenchmark.helloAnswer.utf8))
        let server = try LoopbackHTTPServer { _ in .respond(answer) }
        defer { server.shutdown() }
        let live = ClientBenchmark.makeExecutor(server: server, concurrency: concurrency)
        let all = try await Cassette.open(at: folder.appendingPathComponent("all.sqlite"))
        let missing = try await Cassette.open(at: folder.appendingPathComponent("missing.sqlite"))

        // Warm up every path (connections, page cache, allocator), untimed.
        _ = try await drive(live, requests: 2_000, tag: "warm-live")
        _ = try await drive(RecordingExecutor(cassette: all, mode: .all, live: live), requests: 2_000, tag: "warm-all")
        _ = try await drive(
            RecordingExecutor(cassette: missing, mode: .missing, live: live), requests: 2_000, tag: "warm-missing")
        try await all.flush()
        try await missing.flush()

        var rates: [String: [Double]] = ["live": [], "all": [], "missing": []]
        var cpu: [String: [Double]] = ["live": [], "all": [], "missing": []]
        let order = ["live", "all", "missing"]
        for round in 0..<rounds {
            for offset in 0..<order.count {
                let name = order[(round + offset) % order.count]
                let tag = "\(name)-\(round)"
                let seconds: Double
                let cpuBefore = ProcessUsage.cpuSeconds()
                switch name {
                case "live":
                    seconds = try await drive(live, requests: requests, tag: tag)
                case "all":
                    let recorder = RecordingExecutor(cassette: all, mode: .all, live: live)
                    seconds = try await drive(recorder, requests: requests, tag: tag) { try await all.flush() }
                default:
                    let recorder = RecordingExecutor(cassette: missing, mode: .missing, live: live)
                    seconds = try await drive(recorder, requests: requests, tag: tag) { try await missing.flush() }
                }
                rates[name, default: []].append(Double(requests) / seconds)
                cpu[name, default: []].append((ProcessUsage.cpuSeconds() - cpuBefore) / Double(requests) * 1e6)
            }
            log(
                "round \(round + 1)/\(rounds): "
                    + order.map { "\($0) \(Int(rates[$0]!.last!)) req/s \(Int(cpu[$0]!.last!)) us cpu/req" }
                    .joined(separator: ", "))
        }
        let expected = rounds * requests + 2_000
        for (name, cassette) in [("all", all), ("missing", missing)] {
            let count = try await cassette.count()
            precondition(count == expected, "\(name): recorded \(count) of \(expected)")
            await cassette.close()
        }

        // The recorder alone: a live executor that answers at once without I/O, so only recording costs.
        let alone = try await Cassette.open(at: folder.appendingPathComponent("alone.sqlite"))
        let instant = InstantExecutor()
        var aloneCPU: [Double] = []
        var aloneRates: [Double] = []
        for round in 0..<3 {
            let cpuBefore = ProcessUsage.cpuSeconds()
            let recorder = RecordingExecutor(cassette: alone, mode: .all, live: instant)
            let seconds = try await drive(recorder, requests: requests, tag: "alone-\(round)") {
                try await alone.flush()
            }
            aloneCPU.append((ProcessUsage.cpuSeconds() - cpuBefore) / Double(requests) * 1e6)
            aloneRates.append(Double(requests) / seconds)
        }
        await alone.close()

        var results: [String: Double] = [:]
        results["record_alone_median_req/s"] = median(aloneRates)
        results["record_alone_cpu_per_request_us"] = median(aloneCPU)
        let liveMedian = median(rates["live"]!)
        results["record_live_median_req/s"] = liveMedian
        results["record_live_cpu_per_request_us"] = median(cpu["live"]!)
        for name in ["all", "missing"] {
            let recordMedian = median(rates[name]!)
            results["record_\(name)_median_req/s"] = recordMedian
            results["record_\(name)_cpu_per_request_us"] = median(cpu[name]!)
            results["record_\(name)_overhead_pct"] = (1 - recordMedian / liveMedian) * 100
        }
        results["record_rounds_count"] = Double(rounds)
        results["record_requests_per_run_count"] = Double(requests)
        return results
    }

    /// Sends `requests` distinct requests from 64 workers, then runs `finish` (a flush); returns the seconds taken.
    static func drive(
        _ executor: some SandboxExecutor, requests: Int, tag: String,
        finish: () async throws -> Void = {}
    ) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var index = worker
                    while index < requests {
                        let result = try await executor.execute(
                            ExecutionRequest(
                                code: "print(\"hello world\")", language: .python, stdin: "\(tag)-\(index)\n"))
                        guard result.isSuccess else {
                            throw ClientBenchmark.BenchError(message: "unexpected result \(result.status)")
                        }
                        index += concurrency
                    }
                }
            }
            try await group.waitForAll()
        }
        try await finish()
        return start.duration(to: clock.now).inSeconds
    }

    /// Answers every request at once with a fixed success (the recorder's own cost, without a live call).
    struct InstantExecutor: SandboxExecutor {
        func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
            ExecutionResult(
                status: .success,
                run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data("hello world\n".utf8)),
                backend: .sandboxFusion)
        }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        return sorted.count % 2 == 1
            ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    static func log(_ text: String) { FileHandle.standardError.write(Data("record bench: \(text)\n".utf8)) }
}
