import Foundation
import GRPCCore
import SandboxVCR
import Synchronization

/// One exec a client started in a live sandbox: its stdin as it arrives, and either its replayed answer or what
/// the upstream has answered so far (for the recording).
final class LiveExec: Sendable {
    /// The two output streams, as `TaskExecStdioRead` names them.
    enum Stream: Int, Sendable {
        case stdout = 0
        case stderr = 1
    }

    private struct State {
        var stdin = Data()
        var stdinEOF = false
        var answer: Result<ReplayAnswer, RPCError>?
        // Recording.
        var streams: [RecordedStream] = [RecordedStream(), RecordedStream()]
        var streamComplete = [false, false]
        var activeReaders = [0, 0]
        var exit: RecordedExit?
        var exitAt: ContinuousClock.Instant?
        var isFinalizing = false
    }

    let execID: String
    /// The exec's position among its sandbox's execs, in the order they started (1-based).
    let step: Int
    /// argv, workdir and timeout; stdin arrives later (``stdin``).
    let start: ExecCall
    /// How its calls are answered: the sandbox's route when it started (a later test may bind the sandbox anew).
    let route: LiveSandbox.Route
    /// The cassette that route replays from or records into.
    let term: CassetteTerm?
    let startedAt = ContinuousClock.now
    let changes = Pulse()
    private let state = Mutex(State())

    init(execID: String, step: Int, start: ExecCall, route: LiveSandbox.Route, term: CassetteTerm?) {
        self.execID = execID
        self.step = step
        self.start = start
        self.route = route
        self.term = term
    }

    /// The call with the stdin received so far.
    var call: ExecCall {
        var call = start
        call.stdin = state.withLock { $0.stdin }
        return call
    }

    var stdinState: (data: Data, eof: Bool) { state.withLock { ($0.stdin, $0.stdinEOF) } }

    /// Takes a stdin write: bytes before what was received are skipped (retries are idempotent), a gap is refused.
    ///
    /// - Throws: `RPCError` `OUT_OF_RANGE` for a gap.
    func writeStdin(offset: UInt64, data: Data, eof: Bool) throws(RPCError) {
        try state.withLock { state throws(RPCError) in
            let received = UInt64(state.stdin.count)
            guard offset <= received else {
                throw RPCError(
                    code: .outOfRange,
                    message: "stdin write at offset \(offset) but only \(received) bytes were received (exec \(execID))"
                )
            }
            let skip = Int(received - offset)
            if skip < data.count { state.stdin.append(data.dropFirst(skip)) }
            if eof { state.stdinEOF = true }
        }
        changes.fire()
    }

    // MARK: Replay

    var answer: Result<ReplayAnswer, RPCError>? { state.withLock { $0.answer } }

    /// Sets the answer once; returns the one that holds.
    func settle(_ make: () -> Result<ReplayAnswer, RPCError>) -> Result<ReplayAnswer, RPCError> {
        let settled = state.withLock { state in
            if let answer = state.answer { return answer }
            let answer = make()
            state.answer = answer
            return answer
        }
        changes.fire()
        return settled
    }

    // MARK: Recording

    /// Notes that a client stream for `stream` starts (so the recorder does not read it itself meanwhile).
    func beginReading(_ stream: Stream) {
        state.withLock { $0.activeReaders[stream.rawValue] += 1 }
    }

    /// Takes one upstream message of `stream` that started at `offset`; only bytes past what is recorded are kept.
    func record(_ data: Data, at offset: UInt64, of stream: Stream) {
        guard !data.isEmpty else { return }
        state.withLock { state in
            let recorded = UInt64(state.streams[stream.rawValue].chunks.reduce(0) { $0 + $1.count })
            guard offset <= recorded, offset + UInt64(data.count) > recorded else { return }
            state.streams[stream.rawValue].chunks.append(Data(data.dropFirst(Int(recorded - offset))))
        }
    }

    /// Notes how a stream read ended (`nil`: at its end, `OK`); returns whether the exec is now ready to be saved.
    func endReading(_ stream: Stream, failure: RecordedStatus?, complete: Bool) -> Bool {
        state.withLock { state in
            state.activeReaders[stream.rawValue] -= 1
            if complete || failure != nil {
                state.streamComplete[stream.rawValue] = true
                if let failure { state.streams[stream.rawValue].failure = failure }
            }
            return state.exit != nil && state.streamComplete.allSatisfy { $0 }
        }
    }

    /// Records the exit (the first one wins).
    func recordExit(_ exit: RecordedExit) {
        state.withLock { state in
            if state.exit == nil {
                state.exit = exit
                state.exitAt = .now
            }
        }
    }

    /// Whether the exec's recording is saved or being saved.
    var isFinalizing: Bool { state.withLock { $0.isFinalizing } }

    var recordedOffset: [UInt64] {
        state.withLock { state in state.streams.map { UInt64($0.chunks.reduce(0) { $0 + $1.count }) } }
    }

    /// The streams nobody reads and that have not ended, once the exit is known: the recorder reads them itself.
    /// Returns `nil` when the exec is not ready or already being finalized.
    func beginFinalizing(force: Bool) -> [Stream]? {
        state.withLock { state in
            guard !state.isFinalizing, force || state.exit != nil else { return nil }
            let orphaned = [Stream.stdout, .stderr].filter {
                !state.streamComplete[$0.rawValue] && state.activeReaders[$0.rawValue] == 0
            }
            let readersBusy = [Stream.stdout, .stderr].contains {
                !state.streamComplete[$0.rawValue] && state.activeReaders[$0.rawValue] > 0
            }
            guard force || !readersBusy else { return nil }
            state.isFinalizing = true
            return orphaned
        }
    }

    /// What was recorded, as a cassette keeps it.
    func recorded() -> RecordedExec {
        state.withLock { state in
            var call = start
            call.stdin = state.stdin
            var streams = state.streams
            for index in streams.indices where !state.streamComplete[index] { streams[index].isComplete = false }
            return RecordedExec(
                step: step, call: call, stdout: streams[0], stderr: streams[1], exit: state.exit ?? .unfinished,
                duration: state.exitAt.map { ($0 - startedAt).inSeconds })
        }
    }
}
