import Foundation
public import SandboxVCR

/// Sends requests from concurrent workers and times each one.
public enum RequestLoad {
    /// Sends `count` requests, made by `makeRequest(index)`, from `concurrency` tasks; every answer must succeed.
    ///
    /// - Returns: the latency of every request, in nanoseconds (in no particular order).
    /// - Throws: ``BenchmarkFailure`` when an answer is not a success, or what the executor throws.
    public static func drive(
        _ executor: some SandboxExecutor, count: Int, concurrency: Int,
        makeRequest: @escaping @Sendable (Int) -> ExecutionRequest
    ) async throws -> [Int] {
        try await withThrowingTaskGroup(of: [Int].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var latencies: [Int] = []
                    latencies.reserveCapacity(count / concurrency + 1)
                    let clock = ContinuousClock()
                    var index = worker
                    while index < count {
                        let request = makeRequest(index)
                        let start = clock.now
                        let result = try await executor.execute(request)
                        latencies.append((clock.now - start).nanoseconds)
                        guard result.isSuccess else { throw BenchmarkFailure("unexpected result \(result.status)") }
                        index += concurrency
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
    }
}

extension RequestLoad {
    /// Sends `count` requests as ``drive(_:count:concurrency:makeRequest:)`` does.
    ///
    /// - Returns: every request with the instant its answer came back.
    public static func answerTimes(
        _ executor: some SandboxExecutor, count: Int, concurrency: Int,
        makeRequest: @escaping @Sendable (Int) -> ExecutionRequest
    ) async throws -> [(ExecutionRequest, ContinuousClock.Instant)] {
        try await withThrowingTaskGroup(of: [(ExecutionRequest, ContinuousClock.Instant)].self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var answers: [(ExecutionRequest, ContinuousClock.Instant)] = []
                    var index = worker
                    while index < count {
                        let request = makeRequest(index)
                        let result = try await executor.execute(request)
                        answers.append((request, .now))
                        guard result.isSuccess else { throw BenchmarkFailure("unexpected result \(result.status)") }
                        index += concurrency
                    }
                    return answers
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }
}

/// Answers every request at once with a fixed success: the cost of what wraps it, with no live call.
public struct InstantExecutor: SandboxExecutor {
    public init() {}

    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        ExecutionResult(
            status: .success,
            run: CommandOutcome(status: .finished, exitCode: 0, stdout: Data("hello world\n".utf8), wallTime: 0.0101),
            backend: .sandboxFusion)
    }
}
