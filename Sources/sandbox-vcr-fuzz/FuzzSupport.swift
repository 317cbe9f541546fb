import Dispatch
import Foundation
import Synchronization

/// A private scratch folder for the targets that need files: in `SANDBOX_VCR_FUZZ_SCRATCH` (set by `Tools/fuzz`,
/// which removes it), else in memory (`/dev/shm`) when the system has it; removed when the process exits normally,
/// or by the next process when it crashed.
enum FuzzScratch {
    static let folder: URL = {
        let shm = URL(fileURLWithPath: "/dev/shm")
        let base =
            ProcessInfo.processInfo.environment["SANDBOX_VCR_FUZZ_SCRATCH"].map { URL(fileURLWithPath: $0) }
            ?? (FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory)
        // Folders left by processes that crashed (a crash is what a fuzzer is for) go first.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
        for name in names where name.hasPrefix("sandbox-vcr-fuzz-") {
            if let pid = Int32(name.dropFirst("sandbox-vcr-fuzz-".count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(at: base.appendingPathComponent(name))
            }
        }
        let url = base.appendingPathComponent("sandbox-vcr-fuzz-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: url)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: FuzzScratch.folder) }
        return url
    }()
}

/// Runs async code to completion from synchronous code (libFuzzer calls the targets synchronously).
enum Blocking {
    private final class Box<T: Sendable>: Sendable {
        let result = Mutex<Result<T, any Error>?>(nil)
    }

    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Box<T>()
        let done = DispatchSemaphore(value: 0)
        // Detached: never on the caller's actor, which this thread may be running.
        Task.detached {
            let result: Result<T, any Error>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            box.result.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try box.result.withLock { $0! }.get()
    }
}
