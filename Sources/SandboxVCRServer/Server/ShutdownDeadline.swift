internal import SandboxVCR
internal import Synchronization

/// The end of a graceful shutdown's grace period: calls still in flight then are cancelled and answered with an
/// error, so that a silent upstream cannot hold the exit and no client is left without an answer.
final class ShutdownDeadline: Sendable {
    private struct State {
        var hasPassed = false
        /// How to cancel each call in flight, by call number.
        var calls: [Int: @Sendable () -> Void] = [:]
        var nextCall = 0
    }

    private let state = Mutex(State())

    /// The grace period is over: cancels every call in flight (and any that starts later).
    func pass() {
        let calls = state.withLock { state in
            state.hasPassed = true
            defer { state.calls.removeAll() }
            return Array(state.calls.values)
        }
        for cancel in calls { cancel() }
    }

    /// Runs `body` in a task of its own; if the deadline passes before it returns, cancels it and returns
    /// `onDeadline()` instead (once `body` has returned from its cancellation).
    func race<T: Sendable>(
        _ body: @escaping @Sendable () async -> T, onDeadline: @escaping @Sendable () -> T
    ) async -> T {
        let call = Task { () -> (value: T, isCutShort: Bool) in
            let value = await body()
            return (value, Task.isCancelled)
        }
        let number = state.withLock { state -> Int? in
            guard !state.hasPassed else { return nil }
            defer { state.nextCall += 1 }
            state.calls[state.nextCall] = { call.cancel() }
            return state.nextCall
        }
        if number == nil { call.cancel() }
        let result = await withTaskCancellationHandler {
            await call.value
        } onCancel: {
            call.cancel()
        }
        if let number { _ = state.withLock { $0.calls.removeValue(forKey: number) } }
        return result.isCutShort && state.withLock({ $0.hasPassed }) ? onDeadline() : result.value
    }
}

extension ShutdownDeadline {
    /// What a call cut short by the deadline answers.
    static let cancelledError = ExecutionError(
        code: .cancelled,
        message: "sandbox-vcr serve is shutting down and this call did not finish within the shutdown grace period "
            + "(--shutdown-grace); send it again to a running server")
}
