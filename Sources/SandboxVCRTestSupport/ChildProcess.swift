public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`: its pid, its standard streams and its exit, awaited on a thread of
/// its own.
///
/// Tests use it instead of Foundation's `Process`, whose `run()` now and then crashed the whole test run on Linux
/// (an over-read in `findMaximumOpenFromProcSelfFD`, swift-corelibs-foundation #5472). The child starts with no
/// blocked signals, default signal handlers, and no descriptor of the test process but the three it is given, so
/// it never holds another test's socket or pipe open.
public final class ChildProcess: Sendable {
    /// Where a child's standard input comes from.
    public enum Input: Sendable {
        /// A pipe, written through ``stdin``.
        case pipe
        /// `/dev/null`.
        case null
    }

    /// Where a child's standard output or error goes.
    public enum Output: Sendable {
        /// A pipe, read through ``stdout`` or ``stderr``.
        case pipe
        /// `/dev/null`.
        case null
        /// A file, created or truncated.
        case file(URL)
    }

    /// How a child ended.
    public enum TerminationReason: Sendable {
        /// It exited; the status is its exit code.
        case exit
        /// A signal ended it; the status is the signal's number.
        case uncaughtSignal
    }

    /// What an exited child used over its life (`wait4`).
    public struct Usage: Sendable {
        /// User plus system CPU time.
        public var cpuTime: Duration
        /// Peak resident memory (`ru_maxrss`), in KiB.
        public var peakResidentKiB: Int
    }

    /// Why a child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The child's pid.
    public let processIdentifier: pid_t
    /// Its exit, to await with a time limit.
    public let exit = ProcessExit()
    /// The writing end of its standard input, with ``Input/pipe`` (close it to send end of file).
    public let stdin: FileHandle?
    /// The reading end of its standard output, with ``Output/pipe``.
    public let stdout: FileHandle?
    /// The reading end of its standard error, with ``Output/pipe``.
    public let stderr: FileHandle?
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `executable` with `arguments` and exactly `environment`.
    ///
    /// - Throws: ``SpawnError`` naming the executable and the system's reason.
    public init(
        _ executable: URL,
        _ arguments: [String],
        environment: [String: String],
        currentDirectory: URL? = nil,
        stdin: Input = .pipe,
        stdout: Output = .pipe,
        stderr: Output = .pipe
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // The child's ends of its pipes, closed here once it has them; the parent's ends, by standard descriptor.
        var childEnds: [Int32] = []
        var parentEnds: [Int32: Int32] = [:]
        func closeAll() { for descriptor in childEnds + parentEnds.values { close(descriptor) } }

        func pipe(for descriptor: Int32) throws {
            var ends: [Int32] = [-1, -1]
            // Close-on-exec, so that no other child inherits them (this child's closefrom would not protect others).
            guard Glibc.pipe(&ends) == 0, fcntl(ends[0], F_SETFD, FD_CLOEXEC) == 0,
                fcntl(ends[1], F_SETFD, FD_CLOEXEC) == 0
            else {
                let reason = Self.systemError()
                for end in ends where end >= 0 { close(end) }
                closeAll()
                throw SpawnError(description: "cannot create a pipe for \(executable.path): \(reason)")
            }
            let (childEnd, parentEnd) = descriptor == STDIN_FILENO ? (ends[0], ends[1]) : (ends[1], ends[0])
            childEnds.append(childEnd)
            parentEnds[descriptor] = parentEnd
            posix_spawn_file_actions_adddup2(&actions, childEnd, descriptor)
        }
        switch stdin {
        case .pipe: try pipe(for: STDIN_FILENO)
        case .null: posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
        }
        for (descriptor, output) in [(STDOUT_FILENO, stdout), (STDERR_FILENO, stderr)] {
            switch output {
            case .pipe: try pipe(for: descriptor)
            case .null: posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", O_WRONLY, 0)
            case .file(let url):
                posix_spawn_file_actions_addopen(&actions, descriptor, url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            }
        }
        guard let closeFrom = SpawnExtensions.closeFrom, let changeDirectory = SpawnExtensions.changeDirectory else {
            closeAll()
            throw SpawnError(description: "this C library lacks posix_spawn_file_actions_addclosefrom_np (glibc 2.34+)")
        }
        _ = closeFrom(&actions, 3)
        if let currentDirectory { _ = changeDirectory(&actions, currentDirectory.path) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable.path, &actions, &attributes, argv, envp)
        for descriptor in childEnds { close(descriptor) }
        guard result == 0 else {
            for descriptor in parentEnds.values { close(descriptor) }
            throw SpawnError(description: "cannot start \(executable.path): \(String(cString: strerror(result)))")
        }
        let child = pid
        processIdentifier = child
        self.stdin = parentEnds[STDIN_FILENO].map { FileHandle(fileDescriptor: $0, closeOnDealloc: true) }
        self.stdout = parentEnds[STDOUT_FILENO].map { FileHandle(fileDescriptor: $0, closeOnDealloc: true) }
        self.stderr = parentEnds[STDERR_FILENO].map { FileHandle(fileDescriptor: $0, closeOnDealloc: true) }
        let exit = exit
        let exited = exited
        Thread {
            var status: Int32 = 0
            var usage = rusage()
            while wait4(child, &status, 0, &usage) == -1 && errno == EINTR {}
            let microseconds =
                (Int64(usage.ru_utime.tv_sec) + Int64(usage.ru_stime.tv_sec)) * 1_000_000
                + Int64(usage.ru_utime.tv_usec) + Int64(usage.ru_stime.tv_usec)
            let used = Usage(cpuTime: .microseconds(microseconds), peakResidentKiB: usage.ru_maxrss)
            // The wait status: the low 7 bits are the ending signal (0: it exited, with the next 8 bits as its code).
            let signal = status & 0x7f
            if signal == 0 {
                exit.finish(status: (status >> 8) & 0xff, reason: .exit, usage: used)
            } else {
                exit.finish(status: signal, reason: .uncaughtSignal, usage: used)
            }
            exited.signal()
        }.start()
    }

    /// Whether it has not exited yet.
    public var isRunning: Bool { exit.status == nil }

    /// How it ended; `.exit` while it runs.
    public var terminationReason: TerminationReason { exit.reason }

    /// What it used over its life, once it has exited.
    public var usage: Usage? { exit.usage }

    /// Sends `signal` if it is still running.
    public func send(_ signal: Int32) {
        if isRunning { kill(processIdentifier, signal) }
    }

    /// Sends `SIGTERM` if it is still running.
    public func terminate() { send(SIGTERM) }

    /// Blocks the calling thread until it has exited (for synchronous clean-up after `SIGKILL`).
    public func waitUntilExit() {
        exited.wait()
        exited.signal()
    }

    private static func systemError() -> String { String(cString: strerror(errno)) }
}

/// glibc's `posix_spawn` extensions, which Swift's Glibc module does not declare (they need `_GNU_SOURCE`).
private enum SpawnExtensions {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let closeFrom: CloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    static let changeDirectory: ChangeDirectory? = symbol("posix_spawn_file_actions_addchdir_np")

    private static func symbol<Function>(_ name: String) -> Function? {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(address, to: Function.self)
    }
}
