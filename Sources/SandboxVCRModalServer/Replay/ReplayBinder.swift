package import Foundation
package import SandboxVCR
import Synchronization

/// What a replayed exec answers, in the live sandbox's terms (bound tokens substituted).
package struct ReplayAnswer: Hashable, Sendable {
    package var stdout: RecordedStream
    package var stderr: RecordedStream
    package var exit: RecordedExit
    /// How long after the exec's start the exit (and the end of its streams) is answered.
    package var exitDelay: Duration?
    /// The recording that answered (`session#step`), for logs.
    package var source: String
}

/// Binds one live sandbox to a recorded one lazily, by what runs in it, and answers its execs.
///
/// Until its first exec, a live sandbox is bound to nothing. Each exec narrows a set of hypotheses: recorded
/// sandboxes of the same image, each with the token bindings under which every exec so far matched one of its
/// unused execs (in any order, so concurrent execs need not start in their recorded order). The first hypothesis
/// answers; hypotheses that would have answered differently are dropped; the last one left is claimed, so no other
/// live sandbox replays it.
package final class ReplayBinder: Sendable {
    private struct Hypothesis {
        var sandbox: Int
        var bindings: TokenBindings
        var used: Set<Int>
    }

    private struct State {
        var hypotheses: [Hypothesis]?
        var claimed: Int?
    }

    package let liveID: String
    package let imageID: String
    private let library: ReplayLibrary
    private let state = Mutex(State())

    package init(liveID: String, imageID: String, library: ReplayLibrary) {
        self.liveID = liveID
        self.imageID = imageID
        self.library = library
    }

    /// Whether some recorded exec this sandbox could still replay starts like `call` and needs more stdin than
    /// `received` (so resolving must wait for the client's next stdin write or its end).
    package func awaitsStdin(_ call: ExecCall, received: Data) -> Bool {
        let shape = ReplayLibrary.startShape(ExecNormalizer.apply(library.normalizers, to: call))
        return state.withLock { state in
            for (sandbox, used) in candidates(state) {
                let shapes = library.startShapes[sandbox]
                for index in shapes.indices
                where shapes[index] == shape && !used.contains(index)
                    && library.calls[sandbox][index].stdin.count > received.count
                {
                    return true
                }
            }
            return false
        }
    }

    /// Whether a first exec like `call` (its stdin aside) could bind a recorded sandbox of this image.
    package func couldBind(_ call: ExecCall) -> Bool {
        let shape = ReplayLibrary.startShape(ExecNormalizer.apply(library.normalizers, to: call))
        for sandbox in library.byImage[imageID] ?? [] where claimantAllows(sandbox) {
            if library.startShapes[sandbox].contains(shape) { return true }
        }
        return false
    }

    private func candidates(_ state: State) -> [(Int, Set<Int>)] {
        if let hypotheses = state.hypotheses {
            return hypotheses.filter { claimantAllows($0.sandbox) }.map { ($0.sandbox, $0.used) }
        }
        return (library.byImage[imageID] ?? []).filter(claimantAllows).map { ($0, []) }
    }

    private func claimantAllows(_ sandbox: Int) -> Bool {
        let holder = library.claimant(of: sandbox)
        return holder == nil || holder == liveID
    }

    /// Gives the recorded sandbox this one claimed back (the live sandbox ended), and forgets its hypotheses: an ended
    /// sandbox stays known for late calls, and its binder answers no more execs.
    package func release() {
        let claimed = state.withLock { state in
            defer {
                state.claimed = nil
                state.hypotheses = []
            }
            return state.claimed
        }
        if let claimed { library.release(claimed, from: liveID) }
    }

    /// Answers the exec that started `step`-th in this sandbox, or explains why nothing recorded matches.
    package func resolve(_ call: ExecCall, step: Int) -> Result<ReplayAnswer, ReplayMiss> {
        let normalized = ExecNormalizer.apply(library.normalizers, to: call)
        let shape = ReplayLibrary.shape(normalized)
        return state.withLock { state in
            var matches: [(hypothesis: Hypothesis, exec: Int)] = []
            if let hypotheses = state.hypotheses {
                for hypothesis in hypotheses where claimantAllows(hypothesis.sandbox) {
                    if let match = firstMatch(normalized, shape: shape, in: hypothesis, step: step) {
                        matches.append(match)
                    }
                }
            } else {
                // Unbound: bind by what runs first, the first recorded exec of each candidate; concurrent first
                // execs may have started in another order, so any unused exec is tried next.
                let fresh = (library.byImage[imageID] ?? []).filter(claimantAllows).map {
                    Hypothesis(sandbox: $0, bindings: TokenBindings(), used: [])
                }
                for hypothesis in fresh {
                    guard let first = library.shapes[hypothesis.sandbox].first, first == shape else { continue }
                    if let bindings = hypothesis.bindings.matching(
                        call: normalized, recorded: library.calls[hypothesis.sandbox][0], step: step)
                    {
                        var bound = hypothesis
                        bound.bindings = bindings
                        bound.used = [0]
                        matches.append((bound, 0))
                    }
                }
                if matches.isEmpty {
                    for hypothesis in fresh {
                        if let match = firstMatch(normalized, shape: shape, in: hypothesis, step: step) {
                            matches.append(match)
                        }
                    }
                }
            }
            guard let chosen = matches.first else {
                return .failure(miss(normalized, step: step, state: state))
            }
            let answer = render(chosen.hypothesis, exec: chosen.exec)
            // Hypotheses that would have answered the same stay; the answer's source is not part of that.
            let kept = matches.filter { match in
                if match.exec == chosen.exec, match.hypothesis.sandbox == chosen.hypothesis.sandbox { return true }
                var other = render(match.hypothesis, exec: match.exec)
                other.source = answer.source
                return other == answer
            }.map(\.hypothesis)
            state.hypotheses = kept
            if kept.count == 1, state.claimed == nil, library.claim(kept[0].sandbox, for: liveID) {
                state.claimed = kept[0].sandbox
            }
            return .success(answer)
        }
    }

    private func firstMatch(_ call: ExecCall, shape: ContentHash, in hypothesis: Hypothesis, step: Int)
        -> (hypothesis: Hypothesis, exec: Int)?
    {
        let shapes = library.shapes[hypothesis.sandbox]
        for index in shapes.indices where !hypothesis.used.contains(index) && shapes[index] == shape {
            if let bindings = hypothesis.bindings.matching(
                call: call, recorded: library.calls[hypothesis.sandbox][index], step: step)
            {
                var bound = hypothesis
                bound.bindings = bindings
                bound.used.insert(index)
                return (bound, index)
            }
        }
        return nil
    }

    private func render(_ hypothesis: Hypothesis, exec index: Int) -> ReplayAnswer {
        let sandbox = library.sandboxes[hypothesis.sandbox]
        let exec = sandbox.execs[index]
        let bindings = hypothesis.bindings
        func live(_ stream: RecordedStream) -> RecordedStream {
            guard !bindings.isEmpty else { return stream }
            var failure = stream.failure
            if let message = failure?.message {
                failure?.message = String(decoding: bindings.live(Data(message.utf8)), as: UTF8.self)
            }
            return RecordedStream(chunks: stream.chunks.map(bindings.live), failure: failure)
        }
        var exit = exec.exit
        if case .failure(var status) = exit, !bindings.isEmpty {
            status.message = String(decoding: bindings.live(Data(status.message.utf8)), as: UTF8.self)
            exit = .failure(status)
        }
        return ReplayAnswer(
            stdout: live(exec.stdout), stderr: live(exec.stderr), exit: exit, exitDelay: exec.exitDelay,
            source: "\(sandbox.session)#\(exec.step)")
    }

    private func miss(_ call: ExecCall, step: Int, state: State) -> ReplayMiss {
        // The nearest recorded exec: among the hypotheses' unused execs, else every sandbox of the image, else all.
        var pool: [(sandbox: Int, exec: Int, bindings: TokenBindings)] = []
        if let hypotheses = state.hypotheses, !hypotheses.isEmpty {
            for hypothesis in hypotheses {
                for index in library.calls[hypothesis.sandbox].indices where !hypothesis.used.contains(index) {
                    pool.append((hypothesis.sandbox, index, hypothesis.bindings))
                }
            }
        } else {
            let sandboxes = library.byImage[imageID] ?? Array(library.sandboxes.indices)
            for sandbox in sandboxes.prefix(500) {
                for index in library.calls[sandbox].indices.prefix(20) {
                    pool.append((sandbox, index, TokenBindings()))
                }
            }
        }
        let requested = call.asRequest
        var best: (sandbox: Int, exec: Int, bindings: TokenBindings, differences: [String])?
        for candidate in pool.prefix(5_000) {
            let differences = MissDiagnostics.differences(
                recorded: library.calls[candidate.sandbox][candidate.exec].asRequest, requested: requested)
            let score = differences.count * 1000 + differences.joined().count
            if best == nil || score < best!.differences.count * 1000 + best!.differences.joined().count {
                best = (candidate.sandbox, candidate.exec, candidate.bindings, differences)
            }
        }
        var nearest: ReplayMiss.Nearest?
        if let best {
            let sandbox = library.sandboxes[best.sandbox]
            nearest = ReplayMiss.Nearest(
                session: sandbox.session, step: sandbox.execs[best.exec].step,
                summary: library.calls[best.sandbox][best.exec].summary, differences: best.differences,
                bindings: best.bindings.description)
        }
        return ReplayMiss(
            liveSandbox: liveID, step: step, call: call, nearest: nearest,
            wasBound: state.hypotheses != nil, recordedSandboxes: library.byImage[imageID]?.count ?? 0)
    }
}

extension TokenBindings {
    /// These bindings extended so that every value of `call` matches `recorded`, or `nil`.
    func matching(call: ExecCall, recorded: ExecCall, step: Int) -> TokenBindings? {
        guard call.argv.count == recorded.argv.count, call.timeoutSecs == recorded.timeoutSecs,
            (call.workdir == nil) == (recorded.workdir == nil)
        else { return nil }
        var bindings = self
        for (live, old) in zip(call.argv, recorded.argv) {
            guard let next = bindings.matching(live: live.utf8, recorded: old.utf8, step: step) else { return nil }
            bindings = next
        }
        if let live = call.workdir, let old = recorded.workdir {
            guard let next = bindings.matching(live: live.utf8, recorded: old.utf8, step: step) else { return nil }
            bindings = next
        }
        guard let next = bindings.matching(live: call.stdin, recorded: recorded.stdin, step: step) else { return nil }
        return next
    }
}

extension ExecCall {
    /// The call as an ``ExecutionRequest`` (for miss diagnostics).
    var asRequest: ExecutionRequest {
        ExecutionRequest(
            program: .command(argv: argv, workdir: workdir), stdin: stdin, runTimeout: .seconds(Int64(timeoutSecs)))
    }
}

/// Why a live exec has no recording: the step, the nearest recorded exec with its differences and bindings.
package struct ReplayMiss: Error, Sendable {
    package struct Nearest: Sendable {
        package var session: String
        package var step: Int
        package var summary: String
        package var differences: [String]
        package var bindings: [String]
    }

    package var liveSandbox: String
    package var step: Int
    package var call: ExecCall
    package var nearest: Nearest?
    package var wasBound: Bool
    package var recordedSandboxes: Int

    /// The diagnostics a client gets as the gRPC error message (and the log shows).
    package func message(cassette: String, mode: RecordMode) -> String {
        var text =
            "sandbox-vcr: no recording matches step \(step) of Modal sandbox \(liveSandbox) in cassette \(cassette) "
            + "(record mode `\(mode)`).\nRequested: \(Redactor.scrub(call.summary))\n"
        if let nearest {
            text += "Nearest recording: \(nearest.session) step \(nearest.step), \(Redactor.scrub(nearest.summary))\n"
            for line in nearest.differences {
                text +=
                    line.split(separator: "\n", omittingEmptySubsequences: false).map { "   " + $0 }
                    .joined(separator: "\n") + "\n"
            }
            if nearest.differences.isEmpty { text += "   (it differs only in tokens that cannot be bound)\n" }
            text +=
                nearest.bindings.isEmpty
                ? "Bindings: none\n" : "Bindings: " + nearest.bindings.joined(separator: "; ") + "\n"
        } else {
            text += "The cassette has no recorded sandbox of this image (\(recordedSandboxes)).\n"
        }
        if !wasBound { text += "This was the sandbox's first exec: it is bound to a recording by what runs first.\n" }
        text +=
            "To record it, run serve with --record missing (or all) and a Modal upstream (--modal-upstream, "
            + "credentials in MODAL_TOKEN_ID / MODAL_TOKEN_SECRET); add --normalize REGEX=REPLACEMENT for values "
            + "that change between runs."
        return text
    }
}
