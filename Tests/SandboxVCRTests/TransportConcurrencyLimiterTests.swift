import Testing

@testable import SandboxVCR

@Suite("Transport: concurrency limiter state machine")
struct TransportConcurrencyLimiterTests {
    typealias Machine = ConcurrencyLimiter.StateMachine<String>

    @Test func grantsUpToTheLimitThenQueues() {
        var machine = Machine(limit: 2)
        #expect(machine.acquire(id: 1, waiter: "a") == .proceed)
        #expect(machine.acquire(id: 2, waiter: "b") == .proceed)
        #expect(machine.acquire(id: 3, waiter: "c") == .wait)
        #expect(machine.activeCount == 2)
        #expect(machine.waitingCount == 1)
    }

    @Test func releaseHandsThePermitToTheFirstWaiterInOrder() {
        var machine = Machine(limit: 1)
        #expect(machine.acquire(id: 1, waiter: "a") == .proceed)
        #expect(machine.acquire(id: 2, waiter: "b") == .wait)
        #expect(machine.acquire(id: 3, waiter: "c") == .wait)
        #expect(machine.release() == "b")
        #expect(machine.activeCount == 1)
        #expect(machine.release() == "c")
        #expect(machine.release() == nil)
        #expect(machine.activeCount == 0)
        #expect(machine.acquire(id: 4, waiter: "d") == .proceed)
    }

    @Test func aCancelledWaiterLeavesTheQueue() {
        var machine = Machine(limit: 1)
        _ = machine.acquire(id: 1, waiter: "a")
        _ = machine.acquire(id: 2, waiter: "b")
        _ = machine.acquire(id: 3, waiter: "c")
        #expect(machine.cancel(id: 2) == "b")
        #expect(machine.cancel(id: 2) == nil)
        #expect(machine.waitingCount == 1)
        #expect(machine.release() == "c")
        #expect(machine.release() == nil)
        #expect(machine.activeCount == 0)
    }

    @Test func cancellingAnUnknownOrRunningIDChangesNothing() {
        var machine = Machine(limit: 1)
        _ = machine.acquire(id: 1, waiter: "a")
        #expect(machine.cancel(id: 1) == nil)
        #expect(machine.cancel(id: 99) == nil)
        #expect(machine.activeCount == 1)
    }

    @Test func aNewcomerDoesNotOvertakeWaiters() {
        var machine = Machine(limit: 1)
        _ = machine.acquire(id: 1, waiter: "a")
        _ = machine.acquire(id: 2, waiter: "b")
        // The permit goes to b; a newcomer must queue behind, not take a free slot.
        #expect(machine.release() == "b")
        #expect(machine.acquire(id: 3, waiter: "c") == .wait)
    }

    @Test func manyWaitersStayInFIFOOrderAcrossCompaction() {
        var machine = Machine(limit: 1)
        _ = machine.acquire(id: 0, waiter: "first")
        for index in 1...500 { _ = machine.acquire(id: UInt64(index), waiter: "w\(index)") }
        for index in 1...500 {
            #expect(machine.release() == "w\(index)")
            if index == 250 { _ = machine.cancel(id: 400) }
            if index == 399 { break }
        }
        #expect(machine.release() == "w401")
    }

    @Test func theLiveLimiterCancelsAQueuedWaiter() async throws {
        let limiter = ConcurrencyLimiter(limit: 1)
        try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        while limiter.waitingCount == 0 { await Task.yield() }
        waiter.cancel()
        let error = await #expect(throws: ExecutionError.self) { try await waiter.value }
        #expect(error?.code == .cancelled)
        #expect(limiter.waitingCount == 0)
        limiter.release()
        #expect(limiter.activeCount == 0)
    }
}
