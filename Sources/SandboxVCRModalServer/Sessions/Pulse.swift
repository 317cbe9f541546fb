import SandboxVCR
import Synchronization

/// A counter of changes that tasks can wait on: a waiter reads ``version``, checks its condition, and if it does not
/// hold yet waits for the next change. Cancellation ends a wait.
final class Pulse: Sendable {
    private struct State {
        var version = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    init() {}

    var version: Int { state.withLock { $0.version } }

    /// Records a change and wakes every waiter.
    func fire() {
        let waiters = state.withLock { state in
            state.version += 1
            let waiters = state.waiters
            state.waiters = [:]
            return waiters
        }
        for waiter in waiters.values { waiter.resume() }
    }

    /// Returns once ``version`` differs from `seen`, or at `deadline`, whichever comes first.
    func wait(after seen: Int, until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait(after: seen) }
            group.addTask { try? await CancellableSleep.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns once ``version`` differs from `seen` (at once if it already does), or the task is cancelled.
    func wait(after seen: Int) async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.version != seen || Task.isCancelled { return true }
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
