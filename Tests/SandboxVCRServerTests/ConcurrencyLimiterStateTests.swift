import Synchronization
import Testing

@testable import SandboxVCRServer

@Suite("Concurrency limit state machine")
struct ConcurrencyLimiterStateTests {
    @Test func slotsThenFirstInFirstOut() {
        var state = ConcurrencyLimiterState<String>(limit: 2)
        #expect(state.acquire(ticket: 1, waiter: "a") == .proceed)
        #expect(state.acquire(ticket: 2, waiter: "b") == .proceed)
        #expect(state.acquire(ticket: 3, waiter: "c") == .wait)
        #expect(state.acquire(ticket: 4, waiter: "d") == .wait)
        #expect(state.acquire(ticket: 5, waiter: "e") == .wait)
        #expect(state.waitingCount == 3)
        #expect(state.release() == "c")
        #expect(state.inUse == 2)
        #expect(state.cancel(ticket: 4) == "d")
        #expect(state.cancel(ticket: 4) == nil)
        #expect(state.release() == "e")
        #expect(state.release() == nil)
        #expect(state.release() == nil)
        #expect(state.inUse == 0)
        #expect(state.acquire(ticket: 6, waiter: "f") == .proceed)
    }

    @Test func cancelAfterGettingTheSlotFindsNothing() {
        var state = ConcurrencyLimiterState<Int>(limit: 1)
        _ = state.acquire(ticket: 1, waiter: 1)
        _ = state.acquire(ticket: 2, waiter: 2)
        #expect(state.release() == 2)
        #expect(state.cancel(ticket: 2) == nil)
        #expect(state.inUse == 1)
    }
}

@Suite("Concurrency limiter")
struct ConcurrencyLimiterTests {
    @Test func cancelledWaiterLeavesTheQueueWithoutTakingASlot() async throws {
        let limiter = ConcurrencyLimiter(limit: 1)
        let (holding, holdingContinuation) = AsyncStream.makeStream(of: Void.self)
        let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await limiter.withSlot {
                holdingContinuation.yield()
                for await _ in release { break }
            }
        }
        for await _ in holding { break }
        let waiter = Task { try await limiter.withSlot { "ran" } }
        while limiter.waitingCount == 0 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(limiter.waitingCount == 0)
        #expect(limiter.inUse == 1)
        releaseContinuation.yield()
        try await holder.value
        #expect(limiter.inUse == 0)
        #expect(try await limiter.withSlot { "next" } == "next")
    }

    @Test func waitersRunInArrivalOrder() async throws {
        let limiter = ConcurrencyLimiter(limit: 1)
        let order = OrderLog()
        let (release, releaseContinuation) = AsyncStream.makeStream(of: Void.self)
        let (holding, holdingContinuation) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await limiter.withSlot {
                holdingContinuation.yield()
                for await _ in release { break }
            }
        }
        for await _ in holding { break }
        var waiters: [Task<Void, any Error>] = []
        for index in 0..<5 {
            waiters.append(Task { try await limiter.withSlot { order.append(index) } })
            while limiter.waitingCount < index + 1 { await Task.yield() }
        }
        releaseContinuation.yield()
        try await holder.value
        for waiter in waiters { try await waiter.value }
        #expect(order.values == [0, 1, 2, 3, 4])
    }
}

final class OrderLog: Sendable {
    private let stored = Mutex<[Int]>([])
    var values: [Int] { stored.withLock { $0 } }
    func append(_ value: Int) { stored.withLock { $0.append(value) } }
}
