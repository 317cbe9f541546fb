internal import Dispatch
import Synchronization

/// A sleep whose timer, and the memory it holds, is released as soon as the sleeping task is cancelled.
///
/// `Task.sleep` keeps a cancelled sleep's timer until the deadline it was set for, with about 600 bytes. A call that
/// races each request against a long deadline (a command's timeout plus a grace) therefore holds that memory for
/// every request of the last timeout's worth: 60 MB at 1,500 commands a second and a 63 s deadline. This sleep is a
/// dispatch timer that its cancellation handler cancels.
package enum CancellableSleep {
    /// Returns at `deadline` (at once if it passed); throws `CancellationError` as soon as the task is cancelled.
    package static func sleep(until deadline: ContinuousClock.Instant) async throws {
        let sleeper = Sleeper()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                sleeper.start(continuation, remaining: ContinuousClock.now.duration(to: deadline))
            }
        } onCancel: {
            sleeper.end(cancelled: true)
        }
    }

    /// Returns after `duration`; throws `CancellationError` as soon as the task is cancelled.
    package static func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }
}

/// One sleep's continuation and timer; the first of the timer and the cancellation ends it.
private final class Sleeper: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, any Error>?
        /// Whether the timer was resumed (a dispatch source must be resumed before it is cancelled or released).
        var isStarted = false
        var isOver = false
    }

    /// The longest timer set: a later deadline is as good as never for a sleep that something else ends.
    private static let longestMilliseconds = 365 * 24 * 3600 * 1000

    /// Dispatch sources are thread-safe.
    nonisolated(unsafe) private let timer = DispatchSource.makeTimerSource(queue: .global())
    private let state = Mutex(State())

    /// Starts the timer; `withCheckedThrowingContinuation` calls this at once, so it runs for every sleep.
    func start(_ continuation: CheckedContinuation<Void, any Error>, remaining: Duration) {
        // The handler keeps this object alive until the timer is cancelled, which releases the handler.
        timer.setEventHandler { [self] in end(cancelled: false) }
        let milliseconds = remaining.milliseconds(clampedTo: 0...Self.longestMilliseconds)
        timer.schedule(deadline: .now() + .milliseconds(milliseconds))
        let isOver = state.withLock { state in
            state.isStarted = true
            if !state.isOver { state.continuation = continuation }
            return state.isOver
        }
        timer.resume()
        if isOver {
            timer.cancel()
            continuation.resume(throwing: CancellationError())
        }
    }

    /// Ends the sleep (the first call does): cancels its timer and resumes its task.
    func end(cancelled: Bool) {
        let ending = state.withLock { state -> (CheckedContinuation<Void, any Error>?, isStarted: Bool)? in
            guard !state.isOver else { return nil }
            state.isOver = true
            defer { state.continuation = nil }
            return (state.continuation, state.isStarted)
        }
        guard let (continuation, isStarted) = ending else { return }
        // Not started yet: `start` cancels it and throws.
        guard isStarted else { return }
        timer.cancel()
        if cancelled {
            continuation?.resume(throwing: CancellationError())
        } else {
            continuation?.resume()
        }
    }
}
