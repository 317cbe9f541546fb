internal import Synchronization

/// At most `limit` operations at once; callers beyond it wait in arrival order.
final class ConcurrencyLimiter: Sendable {
    private struct Locked {
        var state: ConcurrencyLimiterState<CheckedContinuation<Void, any Error>>
        var nextTicket: UInt64 = 0
    }

    private let locked: Mutex<Locked>

    init(limit: Int) {
        locked = Mutex(Locked(state: ConcurrencyLimiterState(limit: limit)))
    }

    /// How many operations hold a slot now.
    var inUse: Int { locked.withLock { $0.state.inUse } }

    /// How many callers wait for a slot now.
    var waitingCount: Int { locked.withLock { $0.state.waitingCount } }

    /// Runs `operation` once a slot is free, and frees the slot after it.
    ///
    /// - Throws: `CancellationError` when the task is cancelled while waiting, or what `operation` throws.
    func withSlot<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await operation()
    }

    private func acquire() async throws {
        let ticket = locked.withLock { locked in
            locked.nextTicket += 1
            return locked.nextTicket
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let action = locked.withLock { $0.state.acquire(ticket: ticket, waiter: continuation) }
                switch action {
                case .proceed:
                    continuation.resume()
                case .wait where Task.isCancelled:
                    // Cancelled before the waiter was queued: the cancellation handler found nothing to remove.
                    let waiter = locked.withLock { $0.state.cancel(ticket: ticket) }
                    waiter?.resume(throwing: CancellationError())
                case .wait:
                    break
                }
            }
        } onCancel: {
            let waiter = locked.withLock { $0.state.cancel(ticket: ticket) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func release() {
        let next = locked.withLock { $0.state.release() }
        next?.resume()
    }
}
