import Foundation
import Testing

@testable import SandboxVCR

/// `CancellableSleep`: it sleeps until its deadline, and a cancelled sleep ends at once, however far its deadline is.
/// (That it releases its timer, unlike `Task.sleep`, shows in `Tools/bench modal`'s memory figures.)
@Suite struct CancellableSleepTests {
    @Test func returnsNoEarlierThanItsDeadline() async throws {
        let start = ContinuousClock.now
        try await CancellableSleep.sleep(for: .milliseconds(50))
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }

    @Test func aDeadlineThatPassedReturnsAtOnce() async throws {
        try await CancellableSleep.sleep(until: .now - .seconds(5))
        try await CancellableSleep.sleep(for: .zero)
    }

    @Test func aCancelledSleepThrowsCancellationErrorLongBeforeItsDeadline() async throws {
        let started = AsyncStream<Void>.makeStream()
        let sleeper = Task {
            started.continuation.yield()
            try await CancellableSleep.sleep(for: .seconds(3600))
        }
        // Cancel once the task runs; the sleep may not have begun yet, and must end either way.
        for await _ in started.stream { break }
        sleeper.cancel()
        let result = await sleeper.result
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test func aTaskCancelledBeforeItSleepsThrowsAtOnce() async throws {
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await CancellableSleep.sleep(for: .seconds(3600))
        }
        let result = await sleeper.result
        #expect(throws: CancellationError.self) { try result.get() }
    }

    @Test func manySleepsCancelledAtOnceAllEnd() async throws {
        // Each is cancelled while sleeping or before it starts: every one must throw, none may be lost or hang.
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<2_000 {
                group.addTask {
                    (try? await CancellableSleep.sleep(for: .seconds(3600))) == nil
                }
            }
            group.cancelAll()
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.count == 2_000)
        #expect(outcomes.allSatisfy { $0 })
    }
}
