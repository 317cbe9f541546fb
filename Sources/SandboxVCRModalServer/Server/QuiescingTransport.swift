import GRPCCore
import Synchronization

/// A server transport that knows how many calls it is answering, so that shutdown can wait for them, and then for a
/// short quiet time, before it sends HTTP/2 `GOAWAY`.
///
/// The wait matters because grpclib (under Modal's Python SDK) closes its connection on any `GOAWAY`, graceful or not,
/// and cancels every call still open on it, even one whose answer has arrived but that its coroutine has not taken
/// yet: the client then retries against a server that is gone. A call counts until the server's stream handler
/// returns; the quiet time (``settleTime`` with no call in flight) gives the client's event loop room to take the
/// last answers.
struct QuiescingTransport<Wrapped: ServerTransport>: ServerTransport {
    typealias Bytes = Wrapped.Bytes

    /// How long no call must be in flight before shutdown sends `GOAWAY`.
    static var settleTime: Duration { .milliseconds(500) }

    let wrapped: Wrapped
    private let calls = CallsInFlight()

    init(_ wrapped: Wrapped) {
        self.wrapped = wrapped
    }

    func configure(context: GRPCServerContext) {
        wrapped.configure(context: context)
    }

    func listen(
        streamHandler: @escaping @Sendable (RPCStream<Inbound, Outbound>, ServerContext) async -> Void
    ) async throws {
        let calls = calls
        try await wrapped.listen { stream, context in
            calls.begin()
            defer { calls.end() }
            await streamHandler(stream, context)
        }
    }

    func beginGracefulShutdown() {
        wrapped.beginGracefulShutdown()
    }

    /// Returns once no call has been in flight for ``settleTime``, or at `deadline`.
    ///
    /// - Returns: the calls in flight then (0 unless the deadline passed).
    func waitUntilQuiet(until deadline: ContinuousClock.Instant) async -> Int {
        await calls.waitUntilQuiet(for: Self.settleTime, until: deadline)
    }
}

/// A count of calls in flight and when the last one ended, awaitable until the calls have been quiet a while.
private final class CallsInFlight: Sendable {
    private struct State {
        var count = 0
        var lastEnded: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let changes = Pulse()

    func begin() {
        state.withLock { $0.count += 1 }
        changes.fire()
    }

    func end() {
        state.withLock { state in
            state.count -= 1
            state.lastEnded = .now
        }
        changes.fire()
    }

    func waitUntilQuiet(for settle: Duration, until deadline: ContinuousClock.Instant) async -> Int {
        while true {
            let seen = changes.version
            let (count, lastEnded) = state.withLock { ($0.count, $0.lastEnded) }
            let quietAt = count == 0 ? (lastEnded.map { $0 + settle } ?? .now) : deadline
            if quietAt <= .now || deadline <= .now { return count }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.changes.wait(after: seen) }
                group.addTask { try? await Task.sleep(until: min(quietAt, deadline), clock: .continuous) }
                await group.next()
                group.cancelAll()
            }
        }
    }
}
