internal import SandboxVCR
internal import Synchronization

/// The end of a graceful shutdown's grace period: calls still in flight then are cancelled and answered with an
/// error, so that a silent upstream cannot hold the exit and no client is left without an answer.
final class ShutdownDeadline: Sendable {
    private struct State {
        var hasPassed = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    /// The grace period is over: wakes every call still waiting.
    func pass() {
        let waiters = state.withLock { state in
            state.hasPassed = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Runs `body`; if the deadline passes first, cancels it and returns `onDeadline()` instead (after `body` has
    /// returned from its cancellation).
    func race<T: Sendable>(
        _ body: @escaping @Sendable () async -> T, onDeadline: @escaping @Sendable () -> T
    ) async -> T {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await body() }
            group.addTask {
                await self.wait()
                return Task.isCancelled ? nil : onDeadline()
            }
            var first: T?
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? onDeadline()
        }
    }

    /// Returns once the deadline has passed, or the task is cancelled.
    private func wait() async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.hasPassed || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

extension ShutdownDeadline {
    /// What a call cut short by the deadline answers.
    static let cancelledError = ExecutionError(
        code: .cancelled,
        message: "sandbox-vcr serve is shutting down and this call did not finish within the shutdown grace period "
            + "(--shutdown-grace); send it again to a running server")
}
