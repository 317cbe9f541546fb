public import Foundation
public import SandboxVCR

/// How a recorded Modal sandbox is kept in a cassette: as a session of ordinary interactions (values, not wire bytes).
///
/// - The session id is `modal/` and 16 hex digits.
/// - Step 0 is the sandbox itself: argv `["modal.Sandbox.create"]`, the image's layers as the file `image.json`,
///   the sandbox timeout as the run timeout.
/// - Step k ≥ 1 is the k-th exec that started: its argv, workdir, stdin and timeout; the result holds the exit code
///   or signal and both streams. Chunk sizes (`.modal/stdout-chunks`, `.modal/stderr-chunks`: decimal, comma
///   separated) are kept when a stream came in more than one chunk; a stream or wait that failed keeps its gRPC
///   status as `.modal/stdout-status`, `.modal/stderr-status` or `.modal/exit-status` (`CODE MESSAGE`).
///
/// Keys chain each step to the session id, so they never collide with SandboxFusion recordings or other sessions.
public enum ModalSessionCoding {
    /// The prefix of every Modal session id.
    public static let sessionPrefix = "modal/"
    /// argv of step 0.
    static let createArgv = ["modal.Sandbox.create"]
    static let imageFile = "image.json"
    /// The status of a stream or exit that never ended.
    static let open = "open"

    /// A new session id.
    public static func newSessionID() -> String {
        sessionPrefix + String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))
    }

    /// The interaction of step 0.
    public static func sandboxInteraction(session: String, image: ImageSpec, timeoutSecs: UInt32, at date: Date)
        -> Cassette.NewInteraction
    {
        let request = ExecutionRequest(
            program: .command(argv: createArgv, workdir: nil), files: [imageFile: image.json],
            runTimeout: .seconds(Int64(timeoutSecs)))
        let result = ExecutionResult(status: .success, message: image.canonicalID, backend: .modal)
        return Cassette.NewInteraction(
            key: key(session: session, request: request), ordinal: 0, session: session, step: 0,
            request: request, outcome: .result(result), recordedAt: date)
    }

    /// The interaction of an exec.
    public static func execInteraction(session: String, exec: RecordedExec, at date: Date, duration: Double?)
        -> Cassette.NewInteraction
    {
        let request = ExecutionRequest(
            program: .command(argv: exec.call.argv, workdir: exec.call.workdir), stdin: exec.call.stdin,
            runTimeout: .seconds(Int64(exec.call.timeoutSecs)))
        var files: [String: Data] = [:]
        var run = CommandOutcome(status: .finished, stdout: exec.stdout.bytes, stderr: exec.stderr.bytes)
        var status = ExecutionStatus.success
        var message = ""
        switch exec.exit {
        case .code(let code):
            run.exitCode = Int(code)
            if code != 0 { status = .failed }
        case .signal(let signal):
            run.signal = Int(signal)
            status = .failed
        case .failure(let failure):
            run.status = .error
            status = .sandboxError
            message = failure.message
            files[".modal/exit-status"] = Data(failure.text.utf8)
        case .unfinished:
            run.status = .error
            status = .sandboxError
            message = "no exit: the client stopped waiting first"
            files[".modal/exit-status"] = Data(Self.open.utf8)
        }
        for (name, stream) in [("stdout", exec.stdout), ("stderr", exec.stderr)] {
            if stream.chunks.count > 1 {
                files[".modal/\(name)-chunks"] = Data(
                    stream.chunks.map { String($0.count) }.joined(separator: ",").utf8)
            }
            if let failure = stream.failure {
                files[".modal/\(name)-status"] = Data(failure.text.utf8)
            } else if !stream.isComplete {
                files[".modal/\(name)-status"] = Data(Self.open.utf8)
            }
        }
        let result = ExecutionResult(status: status, run: run, files: files, message: message, backend: .modal)
        return Cassette.NewInteraction(
            key: key(session: session, request: request, step: exec.step), ordinal: 0, session: session,
            step: exec.step, request: request, outcome: .result(result), recordedAt: date, duration: duration)
    }

    private static func key(session: String, request: ExecutionRequest, step: Int = 0) -> ContentHash {
        RequestMatcher.chainedKey(
            previous: ContentHash.sha256(Data("\(session)#\(step)".utf8)),
            current: RequestMatcher.exact.key(for: request))
    }

    /// Groups a cassette's Modal interactions into sandboxes (sessions without a readable step 0 are skipped and
    /// counted).
    public static func sandboxes(from interactions: [Cassette.Interaction]) -> (
        sandboxes: [RecordedSandbox], skipped: Int
    ) {
        var bySession: [String: [Cassette.Interaction]] = [:]
        for interaction in interactions {
            guard let session = interaction.session, session.hasPrefix(sessionPrefix) else { continue }
            bySession[session, default: []].append(interaction)
        }
        var sandboxes: [RecordedSandbox] = []
        var skipped = 0
        for (session, steps) in bySession {
            let ordered = steps.sorted { ($0.step ?? 0) < ($1.step ?? 0) }
            guard let first = ordered.first, first.step == 0, first.request.argv == createArgv,
                let imageData = first.request.files[imageFile], let image = ImageSpec(json: imageData)
            else {
                skipped += 1
                continue
            }
            var execs: [RecordedExec] = []
            for interaction in ordered.dropFirst() {
                guard let exec = exec(from: interaction) else { continue }
                execs.append(exec)
            }
            sandboxes.append(
                RecordedSandbox(
                    session: session, image: image,
                    timeoutSecs: UInt32(clamping: first.request.runTimeout.components.seconds),
                    execs: execs, recordedAt: first.recordedAt))
        }
        sandboxes.sort { ($0.recordedAt, $0.session) < ($1.recordedAt, $1.session) }
        return (sandboxes, skipped)
    }

    /// The exec an interaction holds, or `nil` when it is not one.
    static func exec(from interaction: Cassette.Interaction) -> RecordedExec? {
        guard case .command(let argv, let workdir) = interaction.request.program, let step = interaction.step,
            case .result(let result) = interaction.outcome, let run = result.run
        else { return nil }
        let call = ExecCall(
            argv: argv, workdir: workdir, stdin: interaction.request.stdin,
            timeoutSecs: UInt32(clamping: interaction.request.runTimeout.components.seconds))
        func stream(_ name: String, _ bytes: Data) -> RecordedStream {
            var chunks: [Data] = []
            if let sizes = result.files[".modal/\(name)-chunks"].map({ String(decoding: $0, as: UTF8.self) }) {
                var offset = bytes.startIndex
                for size in sizes.split(separator: ",").compactMap({ Int($0) }) where size >= 0 {
                    let end = min(bytes.endIndex, offset + size)
                    chunks.append(bytes.subdata(in: offset..<end))
                    offset = end
                }
                if offset < bytes.endIndex { chunks.append(bytes.subdata(in: offset..<bytes.endIndex)) }
            } else if !bytes.isEmpty {
                chunks = [bytes]
            }
            let status = result.files[".modal/\(name)-status"].map { String(decoding: $0, as: UTF8.self) }
            return RecordedStream(
                chunks: chunks, failure: status.flatMap(RecordedStatus.init(text:)), isComplete: status != Self.open)
        }
        let exit: RecordedExit
        let exitStatus = result.files[".modal/exit-status"].map { String(decoding: $0, as: UTF8.self) }
        if exitStatus == Self.open {
            exit = .unfinished
        } else if let failure = exitStatus.flatMap(RecordedStatus.init(text:)) {
            exit = .failure(failure)
        } else if let signal = run.signal {
            exit = .signal(Int32(clamping: signal))
        } else {
            exit = .code(Int32(clamping: run.exitCode ?? 0))
        }
        return RecordedExec(
            step: step, call: call, stdout: stream("stdout", run.stdout), stderr: stream("stderr", run.stderr),
            exit: exit, duration: interaction.duration)
    }
}
