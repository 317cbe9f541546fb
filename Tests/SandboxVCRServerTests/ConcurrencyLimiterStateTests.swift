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
