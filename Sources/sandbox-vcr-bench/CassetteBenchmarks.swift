import Foundation
import SandboxVCR

/// Cassette benchmarks: replay latency at 10k and 100k interactions (and throughput with 64 tasks), open time and
/// memory, size against JSON Lines, and recording overhead at concurrency 64 (``RecordingBenchmark``).
///
/// Arguments: `--small N` (default 10000), `--large N` (default 100000), `--samples N` (default 2000), and
/// ``RecordingBenchmark``'s `--requests N` and `--rounds N`.
enum CassetteBenchmarks {
    static func run(arguments: [String]) async throws -> [String: Double] {
        func option(_ name: String, _ fallback: Int) -> Int {
            guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count,
                let value = Int(arguments[index + 1])
            else { return fallback }
            return value
        }
        let small = option("--small", 10_000)
        let large = option("--large", 100_000)
        let samples = option("--samples", 2000)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cassette-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        var results: [String: Double] = [:]
        let harness = Data((0..<20_480).map { UInt8(ascii: "a") + UInt8($0 % 26) })

        // Replay at 10k and 100k.
        for (label, count) in [("10k", small), ("100k", large)] {
            let url = folder.appendingPathComponent("replay-\(label).sqlite")
            let buildStart = ContinuousClock.now
            try await build(url, count: count, harness: harness)
            log("built \(count) interactions in \(ContinuousClock.now - buildStart)")
            let rssBefore = residentMegabytes()
            let openStart = ContinuousClock.now
            let cassette = try await Cassette.open(at: url)
            let openTime = ContinuousClock.now - openStart
            let executor = RecordingExecutor(cassette: cassette, mode: .never)
            var generator = SplitMix(seed: 42)
            let chosen = (0..<samples).map { _ in Int(generator.next() % UInt64(count)) }
            let prepared = chosen.map { makeRequest($0, harness: harness) }
            _ = try await executor.execute(prepared[0])
            let rssAfter = residentMegabytes()
            // Warm up (page cache, allocator) with other requests, untimed.
            let warmup = RecordingExecutor(cassette: cassette, mode: .never)
            for index in 0..<min(500, count) { _ = try await warmup.execute(makeRequest(index, harness: harness)) }
            var timings: [Double] = []
            timings.reserveCapacity(samples)
            for request in prepared {
                let start = ContinuousClock.now
                let result = try await executor.execute(request)
                timings.append(microseconds(ContinuousClock.now - start))
                precondition(result.stdout.count == 1024)
            }
            timings.sort()
            results["replay_\(label)_median_us"] = timings[timings.count / 2]
            // Throughput with 64 tasks replaying at once (mode `never`; repeats replay the last recording).
            let parallel = RecordingExecutor(cassette: cassette, mode: .never)
            results["replay_\(label)_c64_req/s"] = try await throughput(
                executor: parallel, requests: prepared, count: 20 * samples)
            results["replay_\(label)_p90_us"] = timings[timings.count * 9 / 10]
            // The part of a replay spent computing the request's key (normalise, encode, hash), no I/O.
            var keyTimings: [Double] = []
            for request in prepared {
                let start = ContinuousClock.now
                _ = RequestMatcher.exact.key(for: request)
                keyTimings.append(microseconds(ContinuousClock.now - start))
            }
            keyTimings.sort()
            results["replay_\(label)_key_median_us"] = keyTimings[keyTimings.count / 2]
            results["open_\(label)_ms"] = microseconds(openTime) / 1000
            results["open_\(label)_rss_delta_mb"] = rssAfter - rssBefore
            results["rss_\(label)_mb"] = rssAfter
            if let fresh = try freshProcessOpen(url) {
                results["open_\(label)_fresh_process_ms"] = fresh.milliseconds
                results["open_\(label)_fresh_process_rss_mb"] = fresh.rss
            }
            if label == "10k" {
                let size = fileSize(url)
                var exported = 0
                try await cassette.exportJSONLines { exported += $0.count }
                results["size_10k_cassette_mb"] = Double(size) / 1_048_576
                results["size_10k_jsonl_mb"] = Double(exported) / 1_048_576
                results["size_10k_ratio"] = Double(size) / Double(exported)
            }
            await cassette.close()
        }
        results["replay_100k_vs_10k"] = results["replay_100k_median_us"]! / results["replay_10k_median_us"]!

        // Recording overhead at concurrency 64: the real client against a loopback server (RecordingBenchmark).
        results.merge(try await RecordingBenchmark.run(arguments: arguments)) { _, new in new }
        return results
    }

    /// Opens the cassette in a fresh `cassette-stress open` process (next to this binary) and reads its open
    /// time and resident memory after one replay; `nil` when the tool is not built.
    static func freshProcessOpen(_ url: URL) throws -> (milliseconds: Double, rss: Double)? {
        let tool = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("cassette-stress")
        guard FileManager.default.isExecutableFile(atPath: tool.path) else { return nil }
        let process = Process()
        process.executableURL = tool
        process.arguments = ["open", url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count >= 4, let milliseconds = Double(words[1]), let rss = Double(words[3]) else { return nil }
        return (milliseconds, rss)
    }

    static func log(_ text: String) { FileHandle.standardError.write(Data("cassette bench: \(text)\n".utf8)) }

    static func makeRequest(_ index: Int, harness: Data) -> ExecutionRequest {
        var code = "# solution \(index)\n"
        while code.utf8.count < 1024 { code += "x_\(index) = \(index) * 2  # padding line\n" }
        code = String(code.utf8.prefix(1024))!
        return ExecutionRequest(
            code: code, language: .python, files: ["harness.py": harness], stdin: "\(index)\n", runTimeout: .seconds(5))
    }

    static func makeResult(_ index: Int) -> ExecutionResult {
        var stdout = "answer \(index)\n"
        while stdout.utf8.count < 1024 { stdout += "line \(index) ok\n" }
        return ExecutionResult(
            status: .success,
            run: CommandOutcome(
                status: .finished, exitCode: 0, stdout: Data(stdout.utf8.prefix(1024)), wallTime: 0.02),
            backend: .sandboxFusion)
    }

    /// Bulk-writes `count` interactions in batches of 1000 (one transaction each).
    static func build(_ url: URL, count: Int, harness: Data) async throws {
        let cassette = try await Cassette.open(at: url)
        let matcher = RequestMatcher.exact
        var batch: [Cassette.NewInteraction] = []
        batch.reserveCapacity(1000)
        for index in 0..<count {
            let request = makeRequest(index, harness: harness)
            batch.append(
                .init(
                    key: matcher.key(for: request), ordinal: 0, request: request, outcome: .result(makeResult(index)),
                    duration: 0.02))
            if batch.count == 1000 {
                try await cassette.record(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        try await cassette.record(batch)
        await cassette.close()
    }

    /// Replays `count` requests (cycling through `requests`) from 64 tasks at once; returns requests per second.
    static func throughput(executor: some SandboxExecutor, requests: [ExecutionRequest], count: Int) async throws
        -> Double
    {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var index = worker
                    while index < count {
                        let result = try await executor.execute(requests[index % requests.count])
                        precondition(result.stdout.count == 1024)
                        index += 64
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(count) / (microseconds(ContinuousClock.now - start) / 1_000_000)
    }

    static func microseconds(_ duration: Duration) -> Double {
        duration.inSeconds * 1_000_000
    }

    static func fileSize(_ url: URL) -> Int64 {
        var total: Int64 = 0
        for suffix in ["", "-wal"] {
            let attributes = try? FileManager.default.attributesOfItem(atPath: url.path + suffix)
            total += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        }
        return total
    }

    static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let digits = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
            return digits / 1024
        }
        return 0
    }

    /// A small deterministic generator.
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
