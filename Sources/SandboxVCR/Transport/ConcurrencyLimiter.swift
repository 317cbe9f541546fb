import Synchronization

/// Lets at most `limit` operations run at once; the others wait their turn in FIFO order. Used by the HTTP
/// client (requests in flight) and by `sandbox-vcr serve` (executor calls at once).
///
/// A waiter whose task is cancelled leaves the queue and throws ``ExecutionError/Code/cancelled``.
package final class ConcurrencyLimiter: Sendable {
    typealias Waiter = CheckedContinuation<Void, any Error>

    private let state: Mutex<StateMachine<Waiter>>
    private let nextID = Atomic<UInt64>(0)

    package init(limit: Int) {
        state = Mutex(StateMachine(limit: limit))
    }

    /// How many operations hold a permit now.
    package var activeCount: Int { state.withLock { $0.activeCount } }
    /// How many operations wait for a permit now.
    package var waitingCount: Int { state.withLock { $0.waitingCount } }

    /// Runs `body` once a permit is free, and frees it afterwards.
    package func withPermit<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await acquire()
        defer { release() }
        return try await body()
    }

    /// Waits for a permit.
    ///
    /// - Parameter deadline: when to stop waiting (``ExecutionError/Code/timedOut``); `nil`: wait as long as it takes.
    /// - Throws: ``ExecutionError/Code/cancelled`` when the task is cancelled while waiting.
    func acquire(deadline: ContinuousClock.Instant? = nil) async throws {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let timer = Mutex<Task<Void, Never>?>(nil)
        defer { timer.withLock { $0?.cancel() } }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: Waiter) in
                enum Outcome { case proceed, wait, cancelled, timedOut }
                let outcome: Outcome = state.withLock { state in
                    // Checked under the lock so a cancellation that lands later finds the waiter queued.
                    if Task.isCancelled { return .cancelled }
                    if let deadline, deadline <= .now { return .timedOut }
                    return state.acquire(id: id, waiter: continuation) == .proceed ? .proceed : .wait
                }
                switch outcome {
                case .proceed: continuation.resume()
                case .cancelled: continuation.resume(throwing: Self.cancelledError)
                case .timedOut: continuation.resume(throwing: Self.timedOutError)
                case .wait:
                    if let deadline {
                        let task = Task { [self] in
                            guard (try? await CancellableSleep.sleep(until: deadline)) != nil else { return }
                            if let waiter = state.withLock({ $0.cancel(id: id) }) {
                                waiter.resume(throwing: Self.timedOutError)
                            }
                        }
                        timer.withLock { $0 = task }
                    }
                }
            }
        } onCancel: {
            if let waiter = state.withLock({ $0.cancel(id: id) }) {
                waiter.resume(throwing: Self.cancelledError)
            }
        }
    }

    func release() {
        if let next = state.withLock({ $0.release() }) {
            next.resume()
        }
    }

    static var timedOutError: ExecutionError {
        ExecutionError(
            code: .timedOut,
            message: "the deadline passed while the request waited for a free slot; raise the client's "
                + "concurrency limit or the deadline")
    }

    static var cancelledError: ExecutionError {
        ExecutionError(code: .cancelled, message: "the task was cancelled while waiting for a free request slot")
    }
}

extension ConcurrencyLimiter {
    /// The limiter's bookkeeping as a pure state machine: it returns what to do, the caller does it outside the lock.
    struct StateMachine<W> {
        enum AcquireAction: Equatable {
            /// A permit was taken: go ahead.
            case proceed
            /// No permit is free: the waiter was queued and is resumed by a later ``release()``.
            case wait
            /// The task was cancelled before it queued.
            case cancelled
        }

        let limit: Int
        private(set) var activeCount = 0
        private var queue: [(id: UInt64, waiter: W)] = []
        private var head = 0

        init(limit: Int) {
            precondition(limit > 0, "a concurrency limit must be at least 1")
            self.limit = limit
        }

        var waitingCount: Int { queue.count - head }

        /// Takes a permit if one is free and nobody waits before us, else queues the waiter.
        mutating func acquire(id: UInt64, waiter: W) -> AcquireAction {
            if activeCount < limit && waitingCount == 0 {
                activeCount += 1
                return .proceed
            }
            queue.append((id, waiter))
            return .wait
        }

        /// Removes a queued waiter; returns it so the caller can resume it with a cancellation error.
        mutating func cancel(id: UInt64) -> W? {
            guard let index = queue[head...].firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = queue.remove(at: index).waiter
            compact()
            return waiter
        }

        /// Frees a permit; returns the next waiter, which now holds it and must be resumed.
        mutating func release() -> W? {
            precondition(activeCount > 0, "release without a matching acquire")
            guard head < queue.count else {
                activeCount -= 1
                return nil
            }
            let waiter = queue[head].waiter
            head += 1
            compact()
            return waiter
        }

        private mutating func compact() {
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
        }
    }
}
