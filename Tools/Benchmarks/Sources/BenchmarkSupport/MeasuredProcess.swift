public import Foundation
public import SandboxVCRTestSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A program run as a child process of the benchmark, measured from outside: its CPU time and peak resident memory
/// while it runs (`/proc/PID/stat`, `/proc/PID/status`), its resource usage at exit (`wait4`).
///
/// Started by the test support's ``SandboxVCRTestSupport/ChildProcess`` (`posix_spawn`; Foundation's `Process` reaps
/// the child itself and so hides the `rusage` of its exit). The child gets this process's environment without
/// `LD_PRELOAD` (the benchmark tool's malloc interposer), stdin from `/dev/null`, stdout on a pipe
/// (``readLine(timeout:)``) and stderr in a file. Children still running when the benchmark process exits are killed.
public final class MeasuredProcess: Sendable {
    /// How the child ended.
    public struct Exit: Sendable {
        /// Its exit status, or the number of the signal that ended it.
        public var status: Int32
        public var reason: ChildProcess.TerminationReason
        /// User plus system CPU time of the child over its life.
        public var cpuTime: Duration
        /// Its peak resident memory (`ru_maxrss`), in KiB.
        public var peakResidentKiB: Int

        /// Whether it exited with status 0.
        public var succeeded: Bool { reason == .exit && status == 0 }

        /// `exit status N` or `killed by signal N`.
        public var description: String {
            reason == .exit ? "exit status \(status)" : "killed by signal \(status)"
        }
    }

    /// The child's process id.
    public var pid: pid_t { child.processIdentifier }
    /// The command line, for messages.
    public let commandLine: String
    /// Where its standard error goes.
    public let stderrURL: URL
    private let child: ChildProcess
    /// The read end of its standard output.
    private let stdoutDescriptor: Int32
    /// Unread standard output (after the last line returned).
    private let pending = Mutex<[UInt8]>([])

    /// Starts `executable` with `arguments`.
    /// - Parameter stderr: the file that receives its standard error (created or truncated).
    /// - Throws: ``BenchmarkFailure`` when the process cannot be started.
    public init(_ executable: URL, _ arguments: [String], stderr: URL) throws {
        commandLine = ([executable.path] + arguments).joined(separator: " ")
        stderrURL = stderr
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = nil
        do {
            child = try MeasuredProcess.registry.withLock { running in
                let child = try ChildProcess(
                    executable, arguments, environment: environment, stdin: .null, stderr: .file(stderr))
                running.insert(child.processIdentifier)
                return child
            }
        } catch {
            throw BenchmarkFailure("cannot start \(executable.path): \(error)")
        }
        guard let stdout = child.stdout else { throw BenchmarkFailure("\(commandLine): no stdout pipe") }
        stdoutDescriptor = stdout.fileDescriptor
    }

    deinit {
        child.send(SIGKILL)
        _ = MeasuredProcess.registry.withLock { $0.remove(child.processIdentifier) }
    }

    /// The next line of the child's standard output, without its newline; `nil` at end of file (the child closed
    /// it, usually by exiting). Blocks: call it from a thread of its own (`RawHTTP.onThread`), not the cooperative pool.
    /// - Throws: ``BenchmarkFailure`` when no line comes within `timeout`.
    public func readLine(timeout: Duration) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let line: String? = pending.withLock { pending in
                guard let newline = pending.firstIndex(of: 10) else { return nil }
                let text = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeFirst(newline + 1)
                return text
            }
            if let line { return line }
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw BenchmarkFailure("\(commandLine): no output line within \(timeout)") }
            var descriptor = pollfd(fd: stdoutDescriptor, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + 1)
            let ready = poll(&descriptor, 1, milliseconds)
            if ready < 0 {
                guard errno == EINTR else { throw BenchmarkFailure("poll failed: errno \(errno)") }
                continue
            }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { read(stdoutDescriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return nil }
            pending.withLock { $0 += chunk[0..<count] }
        }
    }

    /// Sends `signal` to the child, unless it was reaped already.
    public func send(_ signal: Int32) {
        child.send(signal)
    }

    /// Waits for the child to end (reaped by a thread of its own).
    public func wait() async throws -> Exit {
        guard let status = await child.exit.wait(timeout: .seconds(3600)), let usage = child.usage else {
            throw BenchmarkFailure("\(commandLine) still runs after an hour")
        }
        _ = MeasuredProcess.registry.withLock { $0.remove(child.processIdentifier) }
        return Exit(
            status: status, reason: child.terminationReason, cpuTime: usage.cpuTime,
            peakResidentKiB: usage.peakResidentKiB)
    }

    /// User plus system CPU time of the running child so far, every thread (`utime + stime` of `/proc/PID/stat`,
    /// in clock ticks, usually 10 ms).
    public func cpuTime() throws -> Duration {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { throw BenchmarkFailure("cannot read /proc/\(pid)/stat") }
        // After the command name: field 3 (state) first, so utime (field 14) and stime (15) are at 11 and 12.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else {
            throw BenchmarkFailure("unexpected /proc/\(pid)/stat: \(text)")
        }
        return .microseconds((user + system) * 1_000_000 / sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The running child's peak resident memory so far (`VmHWM` of `/proc/PID/status`), in KiB.
    public func peakResidentKiB() throws -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kib = line.split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap({ Int($0) })
        else { throw BenchmarkFailure("cannot read VmHWM from /proc/\(pid)/status") }
        return kib
    }

    /// The child's standard error so far (its last 4 KB), for messages.
    public var stderrTail: String {
        let data = (try? Data(contentsOf: stderrURL)) ?? Data()
        return String(decoding: data.suffix(4096), as: UTF8.self)
    }

    /// Children started and not yet reaped: killed when the benchmark process exits.
    private static let registry: Mutex<Set<pid_t>> = {
        atexit {
            for pid in MeasuredProcess.registry.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
        return Mutex([])
    }()
}
