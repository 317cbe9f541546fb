import Foundation
import SandboxVCR
import SandboxVCRTestSupport

/// The live SandboxFusion client against a loopback server that answers at once with a canned hello-world.
enum ClientBenchmark {
    /// The real server's answer to `print("hello world")` (sample 01).
    static let helloAnswer = """
        {"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished",\
        "execution_time":0.02745819091796875,"return_code":0,"stdout":"hello world\\n","stderr":""},\
        "executor_pod_name":null,"files":{}}
        """
    static let request = ExecutionRequest(code: "print(\"hello world\")", language: .python)
    static let concurrencies = [1, 8, 64]
    static let memoryRequests = 100_000

    static func run(options: BenchOptions) async throws -> [BenchFigure] {
        let requests = options.requests ?? 20_000
        let answer = LoopbackHTTPServer.Response.json(Data(helloAnswer.utf8))
        let server = try LoopbackHTTPServer { _ in .respond(answer) }
        defer { server.shutdown() }
        var figures: [BenchFigure] = []
        for concurrency in concurrencies {
            let executor = makeExecutor(server: server, concurrency: concurrency)
            _ = try await drive(executor, requests: min(1_000, requests), concurrency: concurrency)
            let cpuBefore = ProcessUsage.cpuSeconds()
            let run = try await drive(executor, requests: requests, concurrency: concurrency)
            let cpu = ProcessUsage.cpuSeconds() - cpuBefore
            let note = "\(requests) requests"
            figures.append(
                BenchFigure(
                    suite: "client", name: "throughput c=\(concurrency)",
                    value: Double(requests) / run.seconds, unit: "req/s", note: note))
            figures.append(
                BenchFigure(
                    suite: "client", name: "latency p50 c=\(concurrency)", value: run.p50 * 1e6, unit: "us",
                    note: note))
            figures.append(
                BenchFigure(
                    suite: "client", name: "latency p99 c=\(concurrency)", value: run.p99 * 1e6, unit: "us",
                    note: note))
            figures.append(
                BenchFigure(
                    suite: "client", name: "cpu per request c=\(concurrency)", value: cpu / Double(requests) * 1e6,
                    unit: "us", note: "process CPU (user+sys), in-process loopback server included"))
        }

        let executor = makeExecutor(server: server, concurrency: 64)
        _ = try await drive(executor, requests: 1_000, concurrency: 64)
        let before = ProcessUsage.residentMiB()
        _ = try await drive(executor, requests: memoryRequests, concurrency: 64)
        let after = ProcessUsage.residentMiB()
        figures.append(
            BenchFigure(suite: "client", name: "rss before", value: before, unit: "MiB", note: "after warm-up, c=64"))
        figures.append(
            BenchFigure(
                suite: "client", name: "rss after \(memoryRequests) requests", value: after, unit: "MiB",
                note: "growth \(String(format: "%.1f", after - before)) MiB"))
        return figures
    }

    static func makeExecutor(server: LoopbackHTTPServer, concurrency: Int) -> SandboxFusionExecutor {
        SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(
                endpoints: [server.baseURL], maxConcurrency: concurrency, retryPolicy: .none))
    }

    struct Run {
        var seconds: Double
        var p50: Double
        var p99: Double
    }

    /// Sends `requests` requests from `concurrency` workers; every answer must be a success.
    static func drive(_ executor: SandboxFusionExecutor, requests: Int, concurrency: Int) async throws -> Run {
        let clock = ContinuousClock()
        let start = clock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<concurrency {
                let share = requests / concurrency + (worker < requests % concurrency ? 1 : 0)
                group.addTask {
                    var latencies: [Double] = []
                    latencies.reserveCapacity(share)
                    for _ in 0..<share {
                        let began = clock.now
                        let result = try await executor.execute(request)
                        guard result.isSuccess else { throw BenchError(message: "unexpected result \(result.status)") }
                        latencies.append(began.duration(to: clock.now).inSeconds)
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        let elapsed = start.duration(to: clock.now).inSeconds
        let sorted = latencies.sorted()
        func percentile(_ fraction: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
        }
        return Run(
            seconds: elapsed, p50: percentile(0.5),
            p99: percentile(0.99))
    }

    struct BenchError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
