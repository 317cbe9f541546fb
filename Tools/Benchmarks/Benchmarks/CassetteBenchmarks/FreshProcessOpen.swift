import BenchmarkSupport
import Foundation
import SandboxVCR

/// Opens a cassette in a new process (this executable, started again with ``variable`` set) and reads the time the
/// open took and the process's resident memory after one replay: what a new `sandbox-vcr serve` or a new test
/// process pays.
enum FreshProcessOpen {
    /// Set to a cassette's path, this executable measures the open instead of running benchmarks.
    static let variable = "SANDBOX_VCR_BENCH_OPEN_PROBE"

    /// What the new process measured.
    struct Figures {
        var open: Duration
        var residentKiB: Int
    }

    /// Starts this executable on `url` and reads its figures.
    /// - Throws: ``BenchmarkFailure`` when the process fails or prints no figures.
    static func measure(_ url: URL) throws -> Figures {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var environment = ProcessInfo.processInfo.environment
        environment[variable] = url.path
        // A plain process: without the benchmark tool's malloc interposer.
        environment["LD_PRELOAD"] = nil
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let words = output.split(whereSeparator: \.isWhitespace)
        guard process.terminationStatus == 0, words.count == 4, words[0] == "open_ns", words[2] == "rss_kib",
            let nanoseconds = Int(words[1]), let residentKiB = Int(words[3])
        else { throw BenchmarkFailure("the open probe failed (status \(process.terminationStatus)): \(output)") }
        return Figures(open: .nanoseconds(nanoseconds), residentKiB: residentKiB)
    }

    /// In the probe process (``variable`` set): opens the cassette, replays request 0, prints
    /// `open_ns N rss_kib N` and exits. Elsewhere returns at once.
    ///
    /// It runs before any benchmark is registered, from the runner's synchronous registration hook, so it waits for
    /// its task on a semaphore: this process does nothing else.
    static func runIfRequested() {
        guard let path = ProcessInfo.processInfo.environment[variable] else { return }
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                let start = ContinuousClock.now
                let cassette = try await Cassette.open(at: URL(fileURLWithPath: path))
                let open = ContinuousClock.now - start
                let result = try await RecordingExecutor(cassette: cassette, mode: .never)
                    .execute(CassetteFixture.makeRequest(0))
                guard result.stdout.count == 1024 else { throw BenchmarkFailure("wrong replay") }
                print("open_ns \(open.nanoseconds) rss_kib \(ProcessFigures.residentKiB())")
                await cassette.close()
                exit(0)
            } catch {
                FileHandle.standardError.write(Data("open probe: \(error)\n".utf8))
                exit(1)
            }
        }
        done.wait()
    }
}
