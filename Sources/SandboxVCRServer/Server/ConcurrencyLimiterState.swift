/// The pure state of a first-in-first-out concurrency limit: how many callers hold a slot, and who waits.
///
/// Every transition returns what the caller must do; no I/O or continuations here, so it is tested alone.
struct ConcurrencyLimiterState<Waiter> {
    /// What an acquiring caller must do.
    enum AcquireAction {
        /// A slot was free and is now held.
        case proceed
        /// No slot: the waiter was queued under this ticket.
        case wait
    }

    let limit: Int
    private(set) var inUse = 0
    private var queue: [(ticket: UInt64, waiter: Waiter)?] = []
    private var head = 0

    init(limit: Int) {
        precondition(limit > 0, "a concurrency limit must be at least 1")
        self.limit = limit
    }

    /// How many callers wait for a slot.
    var waitingCount: Int { queue[head...].reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// Takes a slot, or queues `waiter` under `ticket` when all are held.
    mutating func acquire(ticket: UInt64, waiter: Waiter) -> AcquireAction {
        if inUse < limit {
            inUse += 1
            return .proceed
        }
        queue.append((ticket, waiter))
        return .wait
    }

    /// Gives a slot back. Returns the waiter that now holds it (the oldest), if any; the slot passes to it.
    mutating func release() -> Waiter? {
        while head < queue.count {
            let entry = queue[head]
            queue[head] = nil
            head += 1
            compactIfNeeded()
            if let entry { return entry.waiter }
        }
        precondition(inUse > 0, "release() without a matching acquire()")
        inUse -= 1
        return nil
    }

    /// Removes a waiter that gave up (its task was cancelled). Returns it when it was still waiting; `nil` when it
    /// already got a slot (then it must release that slot itself).
    mutating func cancel(ticket: UInt64) -> Waiter? {
        for index in head..<queue.count where queue[index]?.ticket == ticket {
            let waiter = queue[index]?.waiter
            queue[index] = nil
            return waiter
        }
        return nil
    }

    private mutating func compactIfNeeded() {
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024, head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }
}
