import Foundation
import GRPCCore
import Logging
import ModalProto
import SandboxVCR
import SandboxVCRModal
import SwiftProtobuf
import Synchronization

/// The command router: execs replayed from a recording or forwarded to the upstream sandbox and recorded.
extension ModalSandboxHub {
    func execStart(_ request: Modal_TaskCommandRouter_TaskExecStartRequest) async throws {
        let sandbox = try runningSandbox(task: request.taskID)
        let call = ExecCall(
            argv: request.commandArgs, workdir: request.hasWorkdir ? request.workdir : nil,
            timeoutSecs: request.hasTimeoutSecs ? request.timeoutSecs : 0)
        _ = try route(of: sandbox, first: call)
        // A repeated exec id is a retried start (the client's connection dropped): the same exec, started again
        // upstream, where starts are idempotent too.
        let (exec, _) = sandbox.startExec(id: request.execID, call: call)
        switch exec.route {
        case .replay, .undecided:
            logger.debug("Modal exec started (replay)", metadata: ["sandbox": "\(sandbox.id)", "step": "\(exec.step)"])
        case .forward(let upstream, let session):
            if let session { recordSandboxOnce(sandbox, session: session, term: exec.term) }
            _ = try await upstream.router(ModalRPC.TaskCommandRouter.taskExecStart) { handle in
                var forwarded = request
                forwarded.taskID = handle.taskID
                return forwarded
            }
            statistics.countForwarded()
            exec.term?.count { $0.forwarded += 1 }
        }
    }

    func stdinWrite(_ request: Modal_TaskCommandRouter_TaskExecStdinWriteRequest) async throws {
        let sandbox = try runningSandbox(task: request.taskID)
        let exec = try sandbox.exec(request.execID)
        if case .forward(let upstream, _) = exec.route {
            _ = try await upstream.router(ModalRPC.TaskCommandRouter.taskExecStdinWrite) { handle in
                var forwarded = request
                forwarded.taskID = handle.taskID
                return forwarded
            }
        }
        try exec.writeStdin(offset: request.offset, data: request.data, eof: request.eof)
    }

    /// Streams one output of an exec from `offset`, message by message.
    func stdioRead(
        _ request: Modal_TaskCommandRouter_TaskExecStdioReadRequest,
        send: @escaping @Sendable (Data) async throws -> Void
    ) async throws {
        let sandbox = try runningSandbox(task: request.taskID)
        let exec = try sandbox.exec(request.execID)
        let stream: LiveExec.Stream = request.fileDescriptor == .stderr ? .stderr : .stdout
        switch exec.route {
        case .replay(let binder):
            let answer = try await replayAnswer(exec, in: sandbox, binder: binder)
            let recorded = stream == .stdout ? answer.stdout : answer.stderr
            var skip = Int(clamping: request.offset)
            for chunk in recorded.chunks {
                if skip >= chunk.count {
                    skip -= chunk.count
                    continue
                }
                try await send(skip == 0 ? chunk : Data(chunk.dropFirst(skip)))
                skip = 0
            }
            if !recorded.isComplete { try await holdOpen(exec) }
            try await delay(until: answer.exitDelay, of: exec)
            if let failure = recorded.failure { throw RPCError(recorded: failure) }
        case .forward(let upstream, _):
            try await forwardStream(
                request, stream: stream, exec: exec, sandbox: sandbox, upstream: upstream, send: send)
        case .undecided:
            throw RPCError(code: .internalError, message: "sandbox \(sandbox.id) has no route (sandbox-vcr bug)")
        }
    }

    private func forwardStream(
        _ request: Modal_TaskCommandRouter_TaskExecStdioReadRequest, stream: LiveExec.Stream, exec: LiveExec,
        sandbox: LiveSandbox, upstream: UpstreamSandbox, send: @escaping @Sendable (Data) async throws -> Void
    ) async throws {
        exec.beginReading(stream)
        // Upstream messages arrive on libcurl's thread; they are handed to the client in order from this task.
        let (messages, continuation) = AsyncStream.makeStream(of: Data.self)
        let received = Mutex<UInt64>(request.offset)
        let forwarding = Task {
            // A stream that ended whole without its status (libcurl before 8.1 can drop the trailers of multiplexed
            // streams) delivered everything it carried: read on from the offset reached, a few times at most.
            var missingStatuses = 0
            while true {
                let status = try await upstream.routerStream(
                    path: ModalRPC.TaskCommandRouter.taskExecStdioRead.path,
                    timeout: .seconds(Int64(exec.start.timeoutSecs) + 300),
                    onMessage: { message in
                        if let data = try? Modal_TaskCommandRouter_TaskExecStdioReadResponse(serializedBytes: message)
                            .data
                        {
                            let at = received.withLock { value in
                                defer { value += UInt64(data.count) }
                                return value
                            }
                            exec.record(data, at: at, of: stream)
                            continuation.yield(data)
                        }
                    }
                ) { handle in
                    var forwarded = request
                    forwarded.taskID = handle.taskID
                    forwarded.offset = received.withLock { $0 }
                    return forwarded
                }
                guard let status, status.isStatusMissing,
                    missingStatuses < GRPCRetryPolicy.router.maxMissingStatusRetries
                else { return status }
                missingStatuses += 1
            }
        }
        let ending: Result<GRPCStatusError?, any Error>
        do {
            // Ends the message sequence when the upstream call ends, whatever way.
            Task {
                _ = await forwarding.result
                continuation.finish()
            }
            for await data in messages { try await send(data) }
            ending = await forwarding.result
        } catch {
            forwarding.cancel()
            _ = exec.endReading(stream, failure: nil, complete: false)
            throw error
        }
        switch ending {
        case .success(let status):
            let failure = status.map(RecordedStatus.init)
            if exec.endReading(stream, failure: failure, complete: true) { finalize(exec, in: sandbox) }
            if let status { throw RPCError(forwarding: status) }
        case .failure(let error):
            _ = exec.endReading(stream, failure: nil, complete: false)
            throw error
        }
    }

    func execWait(_ request: Modal_TaskCommandRouter_TaskExecWaitRequest) async throws
        -> Modal_TaskCommandRouter_TaskExecWaitResponse
    {
        let sandbox = try runningSandbox(task: request.taskID)
        let exec = try sandbox.exec(request.execID)
        switch exec.route {
        case .replay(let binder):
            let answer = try await replayAnswer(exec, in: sandbox, binder: binder)
            if case .unfinished = answer.exit { try await holdOpen(exec) }
            try await delay(until: answer.exitDelay, of: exec)
            return try Self.waitResponse(answer.exit)
        case .forward(let upstream, _):
            logger.debug("Modal exec wait forwarded", metadata: ["sandbox": "\(sandbox.id)", "step": "\(exec.step)"])
            do {
                let response = try await upstream.router(
                    ModalRPC.TaskCommandRouter.taskExecWait, timeout: .seconds(Int64(exec.start.timeoutSecs) + 300)
                ) { handle in
                    var forwarded = request
                    forwarded.taskID = handle.taskID
                    return forwarded
                }
                switch response.exitStatus {
                case .code(let code): exec.recordExit(.code(code))
                case .signal(let signal): exec.recordExit(.signal(signal))
                case nil: return response
                }
                finalize(exec, in: sandbox)
                return response
            } catch let error as RPCError where error.code != .unavailable && error.code != .deadlineExceeded {
                exec.recordExit(.failure(RecordedStatus(error)))
                finalize(exec, in: sandbox)
                throw error
            }
        case .undecided:
            throw RPCError(code: .internalError, message: "sandbox \(sandbox.id) has no route (sandbox-vcr bug)")
        }
    }

    func execPoll(_ request: Modal_TaskCommandRouter_TaskExecPollRequest) async throws
        -> Modal_TaskCommandRouter_TaskExecPollResponse
    {
        let sandbox = try runningSandbox(task: request.taskID)
        let exec = try sandbox.exec(request.execID)
        var response = Modal_TaskCommandRouter_TaskExecPollResponse()
        switch exec.route {
        case .replay(let binder):
            // Still running while the answer waits for stdin; otherwise the recorded exit.
            let (stdin, eof) = exec.stdinState
            var call = exec.start
            call.stdin = stdin
            guard exec.answer != nil || eof || !binder.awaitsStdin(call, received: stdin) else { return response }
            let answer = try await replayAnswer(exec, in: sandbox, binder: binder)
            if let delay = answer.exitDelay, ContinuousClock.now < exec.startedAt + delay { return response }
            switch answer.exit {
            case .code(let code): response.code = code
            case .signal(let signal): response.signal = signal
            case .failure(let status): throw RPCError(recorded: status)
            case .unfinished: break
            }
            return response
        case .forward(let upstream, _):
            response = try await upstream.router(ModalRPC.TaskCommandRouter.taskExecPoll) { handle in
                var forwarded = request
                forwarded.taskID = handle.taskID
                return forwarded
            }
            switch response.exitStatus {
            case .code(let code):
                exec.recordExit(.code(code))
                finalize(exec, in: sandbox)
            case .signal(let signal):
                exec.recordExit(.signal(signal))
                finalize(exec, in: sandbox)
            case nil: break
            }
            return response
        case .undecided:
            throw RPCError(code: .internalError, message: "sandbox \(sandbox.id) has no route (sandbox-vcr bug)")
        }
    }

    private static func waitResponse(_ exit: RecordedExit) throws -> Modal_TaskCommandRouter_TaskExecWaitResponse {
        var response = Modal_TaskCommandRouter_TaskExecWaitResponse()
        switch exit {
        case .code(let code): response.code = code
        case .signal(let signal): response.signal = signal
        case .failure(let status): throw RPCError(recorded: status)
        case .unfinished:
            throw RPCError(code: .deadlineExceeded, message: "the recorded exec never reported an exit")
        }
        return response
    }

    /// Waits until `delay` after the exec started (a replayed time limit takes as long as the recorded one).
    private func delay(until delay: Duration?, of exec: LiveExec) async throws {
        guard let delay else { return }
        let deadline = exec.startedAt + delay
        if deadline > .now { try await CancellableSleep.sleep(until: deadline) }
    }

    /// Keeps a call open as the recorded backend did (the client gave up first): until the client cancels it, or
    /// the exec's time limit and a minute more pass.
    private func holdOpen(_ exec: LiveExec) async throws {
        let limit = Duration.seconds(Int64(exec.start.timeoutSecs > 0 ? exec.start.timeoutSecs : 600) + 60)
        try await CancellableSleep.sleep(until: exec.startedAt + limit)
        throw RPCError(code: .deadlineExceeded, message: "the recorded exec never ended (sandbox-vcr replay)")
    }

    /// The exec's replayed answer: resolved once, when its stdin is complete enough to choose a recording.
    private func replayAnswer(_ exec: LiveExec, in sandbox: LiveSandbox, binder: ReplayBinder) async throws
        -> ReplayAnswer
    {
        while true {
            try Task.checkCancellation()
            let seen = exec.changes.version
            if let answer = exec.answer { return try answer.get() }
            if sandbox.isTerminated {
                throw RPCError(code: .notFound, message: "task \(sandbox.taskID) not found: its sandbox has terminated")
            }
            let (stdin, eof) = exec.stdinState
            var call = exec.start
            call.stdin = stdin
            if eof || !binder.awaitsStdin(call, received: stdin) {
                let settled = exec.settle {
                    switch binder.resolve(call, step: exec.step) {
                    case .success(let answer):
                        statistics.countReplayed()
                        exec.term?.count { $0.replayed += 1 }
                        journalExec(
                            call, sandbox: sandbox, outcome: "hit", duration: .now - exec.startedAt,
                            stdout: answer.stdout, stderr: answer.stderr, exit: answer.exit)
                        logger.debug(
                            "Modal exec replayed",
                            metadata: ["sandbox": "\(sandbox.id)", "step": "\(exec.step)", "from": "\(answer.source)"])
                        return .success(answer)
                    case .failure(let miss):
                        statistics.countMiss()
                        let message = miss.message(
                            cassette: exec.term?.path ?? "-", mode: exec.term?.mode ?? configuration.mode)
                        exec.term?.countMiss(message)
                        journalExec(
                            call, sandbox: sandbox, outcome: "miss", duration: .now - exec.startedAt, error: message)
                        logger.warning(
                            "Modal replay miss",
                            metadata: [
                                "sandbox": "\(sandbox.id)", "step": "\(exec.step)",
                                "exec": "\(Redactor.scrub(call.summary))",
                            ])
                        return .failure(RPCError(code: .failedPrecondition, message: message))
                    }
                }
                return try settled.get()
            }
            await exec.changes.wait(after: seen)
        }
    }
}
