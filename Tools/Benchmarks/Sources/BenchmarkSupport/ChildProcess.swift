public import Foundation
import SandboxVCRTestSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A program run as a child process of the benchmark, measured from outside: its CPU time and peak resident memory
/// while it runs (`/proc/PID/stat`, `/proc/PID/status`), its resource usage at exit (`wait4`).
///
/// Started with `posix_spawn` rather than Foundation's `Process`, which reaps the child itself and so hides the
/// `rusage` of its exit. The child gets this process's environment without `LD_PRELOAD` (the benchmark tool's
/// malloc interposer), stdin from `/dev/null`, stdout on a pipe (``readLine(timeout:)``) and stderr in a file.
/// Children still running when the benchmark process exits are killed.
public final class ChildProcess: Sendable {
    /// How the child ended.
    public struct Exit: Sendable {
        /// The raw `wait4` status.
        public var status: Int32
        /// User plus system CPU time of the child over its life.
        public var cpuTime: Duration
        /// Its peak resident memory (`ru_maxrss`), in KiB.
        public var peakResidentKiB: Int

        /// Whether it exited with status 0.
        public var succeeded: Bool { status & 0x7F == 0 && (status >> 8) & 0xFF == 0 }

        /// `exit status N` or `killed by signal N`.
        public var description: String {
            status & 0x7F == 0 ? "exit status \((status >> 8) & 0xFF)" : "killed by signal \(status & 0x7F)"
        }
    }

    /// The child's process id.
    public let pid: pid_t
    /// The command line, for messages.
    public let commandLine: String
    /// Where its standard error goes.
    public let stderrURL: URL
    /// The read end of its standard output.
    private let stdoutDescriptor: Int32
    /// Unread standard output (after the last line returned) and, once reaped, how the child ended.
    private let state = Mutex(State())

    private struct State {
        var pending: [UInt8] = []
        var exit: Exit?
    }

    /// Starts `executable` with `arguments`.
    /// - Parameter stderr: the file that receives its standard error (created or truncated).
    /// - Throws: ``BenchmarkFailure`` when the process cannot be started.
    public init(_ executable: URL, _ arguments: [String], stderr: URL) throws {
        commandLine = ([executable.path] + arguments).joined(separator: " ")
        stderrURL = stderr
        var pipeDescriptors: [Int32] = [-1, -1]
        guard pipe(&pipeDescriptors) == 0 else { throw BenchmarkFailure("pipe failed: errno \(errno)") }
        // Neither end goes to other children; the child's stdout is a dup2 of the write end, which has no such flag.
        for descriptor in pipeDescriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        defer { close(pipeDescriptors[1]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeDescriptors[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderr.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        // Default dispositions and no blocked signal, whatever the benchmark process set.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = nil
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let status = ChildProcess.registry.withLock { running in
            let status = posix_spawn(&pid, executable.path, &actions, &attributes, argv, envp)
            if status == 0 { running.insert(pid) }
            return status
        }
        guard status == 0 else {
            close(pipeDescriptors[0])
            throw BenchmarkFailure("cannot start \(executable.path): \(String(cString: strerror(status)))")
        }
        self.pid = pid
        self.stdoutDescriptor = pipeDescriptors[0]
    }

    deinit {
        if state.withLock({ $0.exit == nil }) {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            _ = ChildProcess.registry.withLock { $0.remove(pid) }
        }
        close(stdoutDescriptor)
    }

    /// The next line of the child's standard output, without its newline; `nil` at end of file (the child closed
    /// it, usually by exiting). Blocks: call it from a thread of its own (`RawHTTP.onThread`), not the cooperative pool.
    /// - Throws: ``BenchmarkFailure`` when no line comes within `timeout`.
    public func readLine(timeout: Duration) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let line: String? = state.withLock { state in
                guard let newline = state.pending.firstIndex(of: 10) else { return nil }
                let text = String(decoding: state.pending[..<newline], as: UTF8.self)
                state.pending.removeFirst(newline + 1)
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
            state.withLock { $0.pending += chunk[0..<count] }
        }
    }

    /// Sends `signal` to the child, unless it was reaped already.
    public func send(_ signal: Int32) {
        if state.withLock({ $0.exit == nil }) { kill(pid, signal) }
    }

    /// Waits for the child to end (on a thread of its own) and reaps it.
    public func wait() async throws -> Exit {
        if let exit = state.withLock({ $0.exit }) { return exit }
        let pid = pid
        let exit = try await RawHTTP.onThread { () -> Exit in
            var status: Int32 = 0
            var usage = rusage()
            while wait4(pid, &status, 0, &usage) < 0 {
                guard errno == EINTR else { throw BenchmarkFailure("wait4(\(pid)) failed: errno \(errno)") }
            }
            let microseconds =
                (Int64(usage.ru_utime.tv_sec) + Int64(usage.ru_stime.tv_sec)) * 1_000_000
                + Int64(usage.ru_utime.tv_usec) + Int64(usage.ru_stime.tv_usec)
            return Exit(status: status, cpuTime: .microseconds(microseconds), peakResidentKiB: usage.ru_maxrss)
        }
        _ = ChildProcess.registry.withLock { $0.remove(pid) }
        state.withLock { $0.exit = exit }
        return exit
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
            for pid in ChildProcess.registry.withLock({ $0 }) { kill(pid, SIGKILL) }
        }
        return Mutex([])
    }()
}
