public import Foundation
import SandboxVCR

/// A gRPC status as a recording keeps it: its numeric code and message.
public struct RecordedStatus: Hashable, Sendable {
    public var code: Int
    public var message: String

    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    /// `CODE MESSAGE`, as stored in a cassette.
    var text: String { "\(code) \(message)" }

    /// Parses ``text``; `nil` for anything else.
    init?(text: String) {
        let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = parts.first, let code = Int(first), (1...16).contains(code) else { return nil }
        self.init(code: code, message: parts.count > 1 ? String(parts[1]) : "")
    }
}

/// One output stream of a recorded exec: the chunks in the order they arrived, and how the stream ended.
public struct RecordedStream: Hashable, Sendable {
    public var chunks: [Data]
    /// `nil`: the stream ended with `OK` (or did not end).
    public var failure: RecordedStatus?
    /// False when the client stopped reading before the stream ended (its own deadline passed): a replay holds it
    /// open after the chunks, as the backend did.
    public var isComplete: Bool

    public init(chunks: [Data] = [], failure: RecordedStatus? = nil, isComplete: Bool = true) {
        self.chunks = chunks
        self.failure = failure
        self.isComplete = isComplete
    }

    /// All bytes of the stream.
    public var bytes: Data { chunks.reduce(into: Data()) { $0.append($1) } }
}

/// How a recorded exec ended, as `TaskExecWait` answered.
public enum RecordedExit: Hashable, Sendable {
    case code(Int32)
    case signal(Int32)
    /// The wait failed, e.g. `NOT_FOUND` for a sandbox terminated mid-command.
    case failure(RecordedStatus)
    /// No exit was seen: the client gave up first (its own deadline), so a replay never answers one either.
    case unfinished
}

/// One command run in a recorded sandbox, with what it returned.
public struct RecordedExec: Hashable, Sendable {
    /// The exec's position among the sandbox's execs, in the order they started (1-based).
    public var step: Int
    public var call: ExecCall
    public var stdout: RecordedStream
    public var stderr: RecordedStream
    public var exit: RecordedExit
    /// Seconds from the start to the exit, when known.
    public var duration: Double?

    public init(
        step: Int, call: ExecCall, stdout: RecordedStream, stderr: RecordedStream, exit: RecordedExit,
        duration: Double? = nil
    ) {
        self.step = step
        self.call = call
        self.stdout = stdout
        self.stderr = stderr
        self.exit = exit
        self.duration = duration
    }

    /// How long after its start a replay answers the exit: the recorded duration for an exec its backend killed at
    /// its time limit (SIGKILL at about `timeout_secs`), so clients that time commands see the same; else at once.
    public var exitDelay: Duration? {
        guard case .signal(9) = exit, call.timeoutSecs > 0, let duration,
            duration >= Double(call.timeoutSecs) * 0.9
        else { return nil }
        return .milliseconds(Int64(duration * 1000))
    }
}

/// What a client asked an exec to do: the values matching compares.
public struct ExecCall: Hashable, Sendable {
    public var argv: [String]
    public var workdir: String?
    public var stdin: Data
    public var timeoutSecs: UInt32

    public init(argv: [String], workdir: String?, stdin: Data = Data(), timeoutSecs: UInt32 = 0) {
        self.argv = argv
        self.workdir = workdir
        self.stdin = stdin
        self.timeoutSecs = timeoutSecs
    }

    /// A one-line description for logs and diagnostics (shortened; never whole stdin).
    public var summary: String {
        let command = argv.count == 3 && argv[0] == "bash" && argv[1] == "-lc" ? argv[2] : argv.joined(separator: " ")
        let shown = command.count > 100 ? String(command.prefix(97)) + "..." : command
        return "exec \"\(shown.replacingOccurrences(of: "\n", with: "\\n"))\""
            + (workdir.map { " in \($0)" } ?? "") + (stdin.isEmpty ? "" : " with \(stdin.count) bytes of stdin")
    }
}

/// The image of a sandbox, as its layers' Dockerfile commands (base layer first): the same image has the same
/// canonical id whatever ids a Modal server gave its layers.
public struct ImageSpec: Hashable, Sendable {
    public var layers: [[String]]

    public init(layers: [[String]]) { self.layers = layers }

    /// `im-` and 24 hex digits of the layers' SHA-256: the id replays hand out.
    public var canonicalID: String {
        var text = ""
        for layer in layers {
            text += layer.joined(separator: "\n") + "\n\u{1}"
        }
        return "im-" + String(ContentHash.sha256(Data(text.utf8)).hex.prefix(24))
    }

    /// The layers as JSON (stored in a cassette).
    var json: Data {
        (try? JSONSerialization.data(withJSONObject: ["layers": layers], options: [.sortedKeys])) ?? Data()
    }

    /// Parses ``json``.
    init?(json: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
            let layers = object["layers"] as? [[String]]
        else { return nil }
        self.layers = layers
    }
}

/// A sandbox a cassette holds: what it was made from and the execs that ran in it.
public struct RecordedSandbox: Hashable, Sendable {
    /// The cassette session that holds it (`modal/…`).
    public var session: String
    public var image: ImageSpec
    public var timeoutSecs: UInt32
    /// In the order they started.
    public var execs: [RecordedExec]
    /// When it was recorded (orders sandboxes of the same shape: older first).
    public var recordedAt: Date

    public init(session: String, image: ImageSpec, timeoutSecs: UInt32, execs: [RecordedExec], recordedAt: Date) {
        self.session = session
        self.image = image
        self.timeoutSecs = timeoutSecs
        self.execs = execs
        self.recordedAt = recordedAt
    }
}
