import Foundation
import GRPCCore
import ModalProto
import Synchronization

/// A sandbox a client created through `serve`: serve's own ids, its image, and how its execs are answered.
final class LiveSandbox: Sendable {
    /// How the sandbox's execs are answered.
    enum Route: Sendable {
        /// Before the first exec (mode `missing`, or a test's cassette): replayed if that exec binds a recording, else
        /// recorded.
        case undecided
        case replay(ReplayBinder)
        /// Forwarded to the upstream sandbox; recorded under `session` unless it is `nil` (mode `live`).
        case forward(UpstreamSandbox, session: String?)
    }

    private struct State {
        var route: Route
        /// The cassette the route replays from or records into.
        var term: CassetteTerm?
        var execs: [String: LiveExec] = [:]
        var execCount = 0
        var result: Modal_Client_GenericResult?
        var sessionWritten = false
    }

    let id: String
    let taskID: String
    let appID: String
    let image: ImageSpec
    let timeoutSecs: UInt32
    /// The forwarding side, when the mode may record (`nil` in mode `never`).
    let upstream: UpstreamSandbox?
    let changes = Pulse()
    private let state: Mutex<State>

    init(
        id: String, taskID: String, appID: String, image: ImageSpec, timeoutSecs: UInt32, route: Route,
        upstream: UpstreamSandbox?, term: CassetteTerm?
    ) {
        self.id = id
        self.taskID = taskID
        self.appID = appID
        self.image = image
        self.timeoutSecs = timeoutSecs
        self.upstream = upstream
        self.state = Mutex(State(route: route, term: term))
    }

    var route: Route { state.withLock { $0.route } }

    /// The cassette the sandbox is bound to (`nil` before its first exec in a test's cassette).
    var term: CassetteTerm? { state.withLock { $0.term } }

    /// Sets the route of an undecided sandbox (the first decision wins) and returns the route that holds.
    ///
    /// - Throws: what `make` throws (a miss); the sandbox stays undecided.
    func decide(_ make: () throws(RPCError) -> (Route, CassetteTerm?)) throws(RPCError) -> Route {
        try state.withLock { state throws(RPCError) in
            if case .undecided = state.route { (state.route, state.term) = try make() }
            return state.route
        }
    }

    /// Unbinds a sandbox whose test's cassette was replaced: its next exec binds it again, as step 1 of a new
    /// session. Returns the route it had (to release a replay's claim), or `nil` when it was not bound to `term`.
    func unbind(from term: CassetteTerm) -> Route? {
        state.withLock { state in
            guard let bound = state.term, bound === term else { return nil }
            let old = state.route
            state.route = .undecided
            state.term = nil
            state.execCount = 0
            state.sessionWritten = false
            return old
        }
    }

    /// How the sandbox ended, once it did.
    var result: Modal_Client_GenericResult? { state.withLock { $0.result } }

    var isTerminated: Bool { result != nil }

    /// Ends the sandbox (the first end wins); returns false when it had ended already.
    @discardableResult
    func finish(_ status: Modal_Client_GenericResult.GenericStatus) -> Bool {
        let changed = state.withLock { state in
            guard state.result == nil else { return false }
            var result = Modal_Client_GenericResult()
            result.status = status
            result.exitcode = -1
            state.result = result
            return true
        }
        if changed { changes.fire() }
        return changed
    }

    /// Registers an exec on the sandbox's route now (which its calls keep); a repeated exec id (a retried start)
    /// returns the first one.
    func startExec(id execID: String, call: ExecCall) -> (exec: LiveExec, isNew: Bool) {
        state.withLock { state in
            if let existing = state.execs[execID] { return (existing, false) }
            state.execCount += 1
            let exec = LiveExec(
                execID: execID, step: state.execCount, start: call, route: state.route, term: state.term)
            state.execs[execID] = exec
            return (exec, true)
        }
    }

    func exec(_ execID: String) throws(RPCError) -> LiveExec {
        guard let exec = state.withLock({ $0.execs[execID] }) else {
            throw RPCError(code: .notFound, message: "exec \(execID) not found in task \(taskID)")
        }
        return exec
    }

    var execs: [LiveExec] { state.withLock { Array($0.execs.values) } }

    /// Forgets the execs of an ended sandbox (their calls answer `NOT_FOUND` now): memory stays flat however many
    /// sandboxes a long session runs.
    func dropExecs() {
        state.withLock { $0.execs = [:] }
    }

    /// Whether the session's step 0 still has to be written (true once).
    func claimSessionWrite() -> Bool {
        state.withLock { state in
            defer { state.sessionWritten = true }
            return !state.sessionWritten
        }
    }
}
