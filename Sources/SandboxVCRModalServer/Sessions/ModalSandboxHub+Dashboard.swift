import Foundation
import SandboxVCR
import SandboxVCRWebUI

/// The Modal port's entries in `serve`'s dashboard: each exec replayed, missed or recorded, under its sandbox.
extension ModalSandboxHub {
    func journalExec(
        _ call: ExecCall, sandbox: LiveSandbox, outcome: String, duration: Duration, stdout: RecordedStream? = nil,
        stderr: RecordedStream? = nil, exit: RecordedExit? = nil, error: String? = nil
    ) {
        guard let journal = configuration.dashboard else { return }
        let request = ExecutionRequest(
            program: .command(argv: call.argv, workdir: call.workdir), stdin: call.stdin,
            runTimeout: .seconds(Int64(call.timeoutSecs)))
        var result: ExecutionResult?
        var failure = error
        if let exit {
            let out = stdout.map { Data($0.chunks.joined()) } ?? Data()
            let err = stderr.map { Data($0.chunks.joined()) } ?? Data()
            switch exit {
            case .code(let code):
                result = ExecutionResult(
                    status: code == 0 ? .success : .failed,
                    run: CommandOutcome(status: .finished, exitCode: Int(code), stdout: out, stderr: err),
                    backend: .modal)
            case .signal(let signal):
                result = ExecutionResult(
                    status: .failed,
                    run: CommandOutcome(status: .finished, signal: Int(signal), stdout: out, stderr: err),
                    backend: .modal)
            case .unfinished:
                result = ExecutionResult(
                    status: .failed, run: CommandOutcome(status: .timeLimitExceeded, stdout: out, stderr: err),
                    message: "no exit was recorded: the client gave up first", backend: .modal)
            case .failure(let status):
                failure = failure ?? "gRPC status \(status.code): \(status.message)"
            }
        }
        journal.record(
            RequestJournal.Entry(
                endpoint: "modal exec", outcome: outcome, duration: duration, status: 0, sandbox: sandbox.id,
                detail: RequestJournal.Detail(request: request, result: result, error: failure)))
    }
}
