import Synchronization

/// A clock that moves only when told to, so tests of timing need no real sleeping.
///
/// A task that sleeps on it suspends until ``advance(by:)`` moves ``now`` to or past its deadline. One advance
/// resumes every due sleeper in deadline order (ties in the order they started sleeping), but resumed tasks then
/// run concurrently: to observe an order, advance step by step. ``waitForSleepers(count:)`` lets a test wait,
/// without polling, until the code under test is asleep (advancing before that would leave it asleep, since its
/// deadline is counted from the ``now`` at which it starts sleeping).
///
/// ```swift
/// let clock = ManualClock()
/// let fake = FakeExecutor(default: .success(stdout: "hi\n"), latency: .seconds(5), clock: clock)
/// async let result = fake.execute(request)
/// await clock.waitForSleepers(count: 1)
/// clock.advance(by: .seconds(5))
/// #expect(try await result.stdoutText == "hi\n")
/// ```
public final class ManualClock: Clock, Sendable {
    /// A point in this clock's time: how far it is from the clock's start.
    public struct Instant: InstantProtocol, Sendable {
        /// The time since the clock's start.
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var id: UInt64
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Waiter {
        var count: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var nextID: UInt64 = 0
        var sleepers: [Sleeper] = []
        var waiters: [Waiter] = []
        /// Ids of sleeps started but not yet registered as sleepers (or resumed at once).
        var starting: Set<UInt64> = []
        /// Ids of sleeps cancelled while starting.
        var cancelledEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// A clock at time zero with no sleepers.
    public init() {}

    public var now: Instant { state.withLock { $0.now } }

    public var minimumResolution: Duration { .zero }

    /// How many tasks are asleep on this clock.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Suspends until ``advance(by:)`` reaches `deadline`; returns at once if it has passed.
    ///
    /// - Throws: `CancellationError` when the task is cancelled first.
    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.starting.insert(state.nextID)
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Action { case resume, cancel, wait([CheckedContinuation<Void, Never>]) }
                let action: Action = state.withLock { state in
                    state.starting.remove(id)
                    if state.cancelledEarly.remove(id) != nil { return .cancel }
                    if deadline <= state.now { return .resume }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return .wait(Self.releaseWaiters(&state))
                }
                switch action {
                case .resume: continuation.resume()
                case .cancel: continuation.resume(throwing: CancellationError())
                case .wait(let waiters): waiters.forEach { $0.resume() }
                }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { state in
                if let index = state.sleepers.firstIndex(where: { $0.id == id }) {
                    return state.sleepers.remove(at: index)
                }
                // Cancelled before it was registered: the registration sees this and throws. (A sleep that
                // already ended needs nothing.)
                if state.starting.contains(id) { state.cancelledEarly.insert(id) }
                return nil
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes, in deadline order, every sleeper whose deadline is reached.
    public func advance(by duration: Duration) {
        precondition(duration >= .zero, "a ManualClock only moves forward")
        let woken: [Sleeper] = state.withLock { state in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            // A stable sort keeps ties in arrival order.
            return due.enumerated().sorted { ($0.element.deadline, $0.offset) < ($1.element.deadline, $1.offset) }
                .map(\.element)
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }

    /// Suspends until at least `count` tasks are asleep on this clock (returns at once if they already are).
    public func waitForSleepers(count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.sleepers.count >= count { return true }
                state.waiters.append(Waiter(count: count, continuation: continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    private static func releaseWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let count = state.sleepers.count
        let ready = state.waiters.filter { $0.count <= count }.map(\.continuation)
        state.waiters.removeAll { $0.count <= count }
        return ready
    }
}
