public import Foundation
import Synchronization

/// Collects a child's output stream on a thread of its own and lets tests wait for text in it or for its end,
/// each wait with a time limit (no sleeps, and no hang when the child never writes).
public final class OutputCollector: Sendable {
    private struct Waiter {
        /// The text awaited, or `nil` for the end of the stream.
        var text: String?
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var bytes = Data()
        var isClosed = false
        var nextWaiter = 0
        var waiters: [Int: Waiter] = [:]

        var text: String { String(decoding: bytes, as: UTF8.self) }

        func isMet(_ waiter: Waiter, in text: String) -> Bool {
            waiter.text.map { text.contains($0) } ?? isClosed
        }
    }

    private let state = Mutex(State())

    /// Reads `handle` until end of file on a new thread.
    public init(reading handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                update { $0.bytes.append(data) }
            }
            update { $0.isClosed = true }
        }
        thread.start()
    }

    /// What was read so far, as UTF-8 text.
    public var text: String { state.withLock { $0.text } }

    /// What was read so far.
    public var bytes: Data { state.withLock { $0.bytes } }

    /// Returns `true` once the output contains `text`; `false` if the stream ends without it or `timeout` passes.
    public func wait(for text: String, timeout: Duration = .seconds(120)) async -> Bool {
        await wait(Optional(text), timeout: timeout)
    }

    /// Returns `true` once the stream has ended (the writer closed it or exited), `false` after `timeout`.
    public func waitForEnd(timeout: Duration = .seconds(120)) async -> Bool {
        await wait(nil, timeout: timeout)
    }

    private func wait(_ text: String?, timeout: Duration) async -> Bool {
        await withCheckedContinuation { continuation in
            let registered = state.withLock { state -> Int? in
                let waiter = Waiter(text: text, continuation: continuation)
                if state.isMet(waiter, in: text == nil ? "" : state.text) { return nil }
                if state.isClosed { return -1 }
                defer { state.nextWaiter += 1 }
                state.waiters[state.nextWaiter] = waiter
                return state.nextWaiter
            }
            switch registered {
            case nil: continuation.resume(returning: true)
            case -1: continuation.resume(returning: false)
            case let id?:
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout.timeInterval) { [self] in
                    let expired = state.withLock { $0.waiters.removeValue(forKey: id) }
                    expired?.continuation.resume(returning: false)
                }
            }
        }
    }

    /// Applies `change`, then wakes the waiters it satisfies (and all of them, unsatisfied, at the end of stream).
    private func update(_ change: (inout State) -> Void) {
        let woken = state.withLock { state -> [(CheckedContinuation<Bool, Never>, Bool)] in
            change(&state)
            let text = state.waiters.values.contains { $0.text != nil } ? state.text : ""
            var woken: [(CheckedContinuation<Bool, Never>, Bool)] = []
            for (id, waiter) in state.waiters {
                let met = state.isMet(waiter, in: text)
                guard met || state.isClosed else { continue }
                woken.append((waiter.continuation, met))
                state.waiters[id] = nil
            }
            return woken
        }
        for (continuation, met) in woken { continuation.resume(returning: met) }
    }
}
