public import Foundation

/// How a command in a Modal sandbox ended: exit code or signal, its output (capped), and whether it timed out.
public struct ModalCommandResult: Hashable, Sendable {
    /// The exit code, when the command exited by itself.
    public var exitCode: Int?
    /// The signal that killed it (9 after a timeout).
    public var signal: Int?
    /// Standard output, at most the call's `maxOutputBytes`.
    public var stdout: Data
    /// Standard error, at most the call's `maxOutputBytes`.
    public var stderr: Data
    /// Bytes of standard output read past the cap and dropped.
    public var stdoutDroppedBytes: Int
    /// Bytes of standard error read past the cap and dropped.
    public var stderrDroppedBytes: Int
    /// Whether the command was killed at its timeout.
    public var timedOut: Bool
    /// Wall-clock seconds from start to exit.
    public var duration: Double

    public init(
        exitCode: Int?, signal: Int? = nil, stdout: Data = Data(), stderr: Data = Data(), stdoutDroppedBytes: Int = 0,
        stderrDroppedBytes: Int = 0, timedOut: Bool = false, duration: Double = 0
    ) {
        self.exitCode = exitCode
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.stdoutDroppedBytes = stdoutDroppedBytes
        self.stderrDroppedBytes = stderrDroppedBytes
        self.timedOut = timedOut
        self.duration = duration
    }

    /// The shell's view: the exit code, or 128 + the signal.
    public var exitStatus: Int { exitCode ?? (128 + (signal ?? 0)) }
    /// Whether the command exited with 0.
    public var succeeded: Bool { exitCode == 0 }
    /// Standard output as text (invalid UTF-8 replaced).
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// Standard error as text (invalid UTF-8 replaced).
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    /// Whether either stream was cut at the cap.
    public var isTruncated: Bool { stdoutDroppedBytes > 0 || stderrDroppedBytes > 0 }
}
