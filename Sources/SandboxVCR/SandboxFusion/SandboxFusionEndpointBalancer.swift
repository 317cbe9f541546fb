import Synchronization

/// Picks the endpoint with the fewest requests in flight, taking turns among equally loaded ones.
final class SandboxFusionEndpointBalancer: Sendable {
    private struct State {
        var inFlight: [Int]
        var next = 0
    }

    private let state: Mutex<State>

    init(count: Int) {
        precondition(count > 0, "at least one endpoint")
        state = Mutex(State(inFlight: Array(repeating: 0, count: count)))
    }

    /// Marks a request in flight on the least-loaded endpoint and returns that endpoint's index.
    func acquire() -> Int {
        state.withLock { state in
            let count = state.inFlight.count
            var best = state.next % count
            for offset in 1..<max(count, 1) {
                let index = (state.next + offset) % count
                if state.inFlight[index] < state.inFlight[best] { best = index }
            }
            state.inFlight[best] += 1
            state.next = (best + 1) % count
            return best
        }
    }

    /// Marks a request on endpoint `index` done.
    func release(_ index: Int) {
        state.withLock { $0.inFlight[index] -= 1 }
    }
}
