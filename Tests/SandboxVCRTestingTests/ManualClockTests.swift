import Foundation
import SandboxVCR
import SandboxVCRTesting
import Testing

@Suite("ManualClock and simulated latency", .timeLimit(.minutes(1)))
struct ManualClockTests {
    let request = ExecutionRequest(code: "print(1)", language: .python)

    @Test func aCallSuspendsUntilTheClockIsAdvanced() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(stdout: "1\n"), latency: .seconds(5), clock: clock)
        let done = Locked(false)
        let task = Task {
            let result = try await fake.execute(request)
            done.withLock { $0 = true }
            return result
        }
        await clock.waitForSleepers(count: 1)
        #expect(fake.requestCount == 1)
        clock.advance(by: .seconds(4))
        #expect(clock.sleeperCount == 1)
        #expect(!done.value)
        clock.advance(by: .seconds(1))
        #expect(try await task.value.stdoutText == "1\n")
        #expect(clock.sleeperCount == 0)
        #expect(clock.now == ManualClock.Instant(offset: .seconds(5)))
    }

    @Test func sleepersWakeInDeadlineOrder() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(stdout: "slow\n"), clock: clock)
        fake.on(.codeContains("fast"), answer: .success(stdout: "fast\n"), latency: .milliseconds(10))
        fake.on(.codeContains("slow"), answer: .success(stdout: "slow\n"), latency: .milliseconds(30))
        fake.on(.codeContains("mid"), answer: .success(stdout: "mid\n"), latency: .milliseconds(20))
        let order = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for name in ["slow", "fast", "mid"] {
                group.addTask {
                    let result = try await fake.execute(ExecutionRequest(code: name, language: .python))
                    order.withLock { $0.append(result.stdoutText) }
                }
            }
            await clock.waitForSleepers(count: 3)
            clock.advance(by: .milliseconds(10))
            try await group.next()
            clock.advance(by: .milliseconds(10))
            try await group.next()
            clock.advance(by: .milliseconds(10))
            try await group.next()
        }
        #expect(order.value == ["fast\n", "mid\n", "slow\n"])
    }

    @Test func zeroLatencyNeverSleeps() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(), clock: clock)
        _ = try await fake.execute(request)
        #expect(clock.now == ManualClock.Instant(offset: .zero))
    }

    @Test func aPastDeadlineReturnsAtOnce() async throws {
        let clock = ManualClock()
        clock.advance(by: .seconds(10))
        try await clock.sleep(until: ManualClock.Instant(offset: .seconds(3)))
        #expect(clock.sleeperCount == 0)
    }

    @Test func cancellingASleepingCallThrowsCancelled() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(), latency: .seconds(60), clock: clock)
        let task = Task { try await fake.execute(request) }
        await clock.waitForSleepers(count: 1)
        task.cancel()
        let error = await #expect(throws: ExecutionError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(clock.sleeperCount == 0)
    }

    @Test func aTaskCancelledBeforeSleepingDoesNotSleep() async throws {
        let clock = ManualClock()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await clock.sleep(for: .seconds(1))
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func latencyFromTheExecutorCanBeChanged() async throws {
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(), clock: clock)
        fake.latency = .seconds(2)
        #expect(fake.latency == .seconds(2))
        async let result = fake.execute(request)
        await clock.waitForSleepers(count: 1)
        clock.advance(by: .seconds(2))
        #expect(try await result.status == .success)
    }

    @Test func manySleepersHalfCancelledTheRestWokenByAdvance() async throws {
        let clock = ManualClock()
        let tasks = (0..<100).map { index in
            Task { try await clock.sleep(for: .seconds(index % 10 + 1)) }
        }
        await clock.waitForSleepers(count: 100)
        for index in stride(from: 0, to: 100, by: 2) { tasks[index].cancel() }
        clock.advance(by: .seconds(10))
        var cancelled = 0
        for task in tasks {
            do { try await task.value } catch is CancellationError { cancelled += 1 }
        }
        #expect(cancelled == 50)
        #expect(clock.sleeperCount == 0)
    }

    @Test func tasksCancelledWhileStartingToSleepAllThrow() async throws {
        let clock = ManualClock()
        let tasks = (0..<100).map { _ in Task { try await clock.sleep(for: .seconds(1)) } }
        // Cancelled at arbitrary points: before, during or after registering; every one must end.
        for task in tasks { task.cancel() }
        for task in tasks {
            await #expect(throws: CancellationError.self) { try await task.value }
        }
        #expect(clock.sleeperCount == 0)
    }
}
