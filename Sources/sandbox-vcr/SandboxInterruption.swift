import Dispatch
import Foundation
import SandboxVCRModal
import Synchronization

/// SIGINT and SIGTERM for a command whose executor creates Modal sandboxes (`run`, `grade`).
///
/// The first signal terminates every sandbox of the pool (within ``grace``), lets the command commit its recordings
/// (within what is left of the grace period), writes one line on standard error naming how many sandboxes were
/// terminated, and exits with 128 + the signal. A second signal exits at once.
final class SandboxInterruption: Sendable {
    /// How long terminating the sandboxes and committing the recordings may take before the process exits anyway.
    static let grace = Duration.seconds(10)

    private struct State {
        var signal: Int32?
        var commandFinished = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let command: String
    private let pool: ModalSandboxPool
    private let state = Mutex(State())
    /// The signal sources, kept for the life of the process (only touched in `init`).
    private nonisolated(unsafe) let sources: [any DispatchSourceSignal]

    private init(command: String, pool: ModalSandboxPool) {
        self.command = command
        self.pool = pool
        let numbers = [SIGINT, SIGTERM]
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            return DispatchSource.makeSignalSource(signal: number, queue: .global())
        }
        for (number, source) in zip(numbers, sources) {
            source.setEventHandler { [self] in received(number) }
            source.resume()
        }
    }

    /// Handles SIGINT and SIGTERM from now on when `stack` has a Modal pool; `nil` (the default actions stay)
    /// otherwise.
    static func install(command: String, stack: ExecutorStack) -> SandboxInterruption? {
        guard let pool = stack.modalPool else { return nil }
        return SandboxInterruption(command: command, pool: pool)
    }

    /// Says the command is done with its executor (recordings committed). After a signal it never returns: the
    /// handler exits the process; otherwise it returns at once.
    func commandFinished() async {
        let (interrupted, waiters) = state.withLock { state in
            state.commandFinished = true
            defer { state.waiters = [] }
            return (state.signal != nil, state.waiters)
        }
        for waiter in waiters { waiter.resume() }
        guard interrupted else { return }
        await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
    }

    private func received(_ number: Int32) {
        let name = number == SIGINT ? "SIGINT" : "SIGTERM"
        let first = state.withLock { state -> Bool in
            guard state.signal == nil else { return false }
            state.signal = number
            return true
        }
        guard first else {
            report("second signal (\(name)): exiting now; Modal sandboxes not yet terminated run until their timeout")
            exit(128 + number)
        }
        Task {
            let deadline = ContinuousClock.now + Self.grace
            let termination = await pool.terminateNow(grace: Self.grace)
            await waitForCommand(until: deadline)
            let count = termination.terminated
            var line = "interrupted by \(name): terminated \(count) Modal sandbox\(count == 1 ? "" : "es")"
            if termination.unconfirmed > 0 {
                line +=
                    "; \(termination.unconfirmed) not confirmed within \(Self.grace) (they end at their own timeout)"
            }
            report(line)
            exit(128 + number)
        }
    }

    /// Waits until ``commandFinished()`` was called or `deadline` passed.
    private func waitForCommand(until deadline: ContinuousClock.Instant) async {
        await withCheckedContinuation { continuation in
            let finished = state.withLock { state -> Bool in
                if state.commandFinished { return true }
                state.waiters.append(continuation)
                return false
            }
            if finished {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                let waiters = self.state.withLock { state in
                    defer { state.waiters = [] }
                    return state.waiters
                }
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    private func report(_ message: String) {
        FileHandle.standardError.write(Data("sandbox-vcr \(command): \(message)\n".utf8))
    }
}
