import Foundation
import Synchronization

/// A child process's exit, awaited by any number of callers, each with a time limit, so that a test whose child
/// hangs fails with a message instead of hanging the whole run.
///
/// ``ChildProcess`` calls ``finish(status:reason:usage:)`` when its child has exited.
public final class ProcessExit: Sendable {
    private struct State {
        var status: Int32?
        var reason = ChildProcess.TerminationReason.exit
        var usage: ChildProcess.Usage?
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Int32?, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The exit status, or `nil` while the process runs.
    public var status: Int32? { state.withLock { $0.status } }

    /// How it ended (an exit, or a signal, whose number is then ``status``); `.exit` while it runs.
    public var reason: ChildProcess.TerminationReason { state.withLock { $0.reason } }

    /// What the process used over its life, once it has exited.
    public var usage: ChildProcess.Usage? { state.withLock { $0.usage } }

    /// Records the exit and wakes every waiter.
    func finish(status: Int32, reason: ChildProcess.TerminationReason, usage: ChildProcess.Usage) {
        let waiters = state.withLock { state in
            state.status = status
            state.reason = reason
            state.usage = usage
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    /// The exit status, or `nil` if the process is still running after `timeout`.
    public func wait(timeout: Duration) async -> Int32? {
        await withCheckedContinuation { continuation in
            let waiter = state.withLock { state -> Int? in
                guard state.status == nil else { return nil }
                defer { state.nextWaiter += 1 }
                state.waiters[state.nextWaiter] = continuation
                return state.nextWaiter
            }
            guard let waiter else { return continuation.resume(returning: status) }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout.timeInterval) { [self] in
                let expired = state.withLock { $0.waiters.removeValue(forKey: waiter) }
                expired?.resume(returning: nil)
            }
        }
    }

    /// Waits up to `timeout`; if `process` still runs, kills it (`SIGKILL`) and waits for that exit.
    ///
    /// - Returns: the exit status, and whether the process had to be killed.
    public func waitOrKill(_ process: ChildProcess, timeout: Duration) async -> (status: Int32, killed: Bool) {
        if let status = await wait(timeout: timeout) { return (status, false) }
        kill(process.processIdentifier, SIGKILL)
        // A killed process exits at once; the bound only guards against a handler that never runs.
        return (await wait(timeout: .seconds(60)) ?? -1, true)
    }
}

extension Duration {
    /// The duration in seconds, for Dispatch and Foundation APIs.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return TimeInterval(seconds) + TimeInterval(attoseconds) / 1e18
    }
}
