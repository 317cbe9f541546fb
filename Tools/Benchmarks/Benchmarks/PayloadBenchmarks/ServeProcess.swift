import BenchmarkSupport
import Foundation
import SandboxVCRTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A `sandbox-vcr serve` process (the release binary that `Tools/bench payload` builds) on a free loopback port.
final class ServeProcess {
    /// The environment variable naming the `sandbox-vcr` binary.
    static let binaryVariable = "SANDBOX_VCR_BIN"

    let child: MeasuredProcess
    let port: Int

    /// The `sandbox-vcr` binary named by ``binaryVariable``.
    /// - Throws: ``BenchmarkFailure`` saying how to build it when the variable is unset or names no executable.
    static func binary() throws -> URL {
        guard let path = ProcessInfo.processInfo.environment[binaryVariable], !path.isEmpty else {
            throw BenchmarkFailure(
                "\(binaryVariable) is not set: run the payload suite with `Tools/bench payload`, which builds "
                    + "sandbox-vcr (`swift build -c release --product sandbox-vcr` at the package root) and sets it")
        }
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchmarkFailure(
                "\(binaryVariable)=\(path) is not an executable: build it with `swift build -c release --product "
                    + "sandbox-vcr` at the package root, or run `Tools/bench payload`")
        }
        return URL(fileURLWithPath: path)
    }

    /// Starts `sandbox-vcr serve ARGUMENTS --port 0 --ready-file … --log-level warning` and returns once it
    /// listens (it prints its readiness line after writing the ready file).
    /// - Parameters:
    ///   - arguments: what to answer from, e.g. `--cassette FILE --record never`.
    ///   - folder: where the ready file and the server's standard error (`NAME.stderr`) go.
    ///   - name: the files' base name.
    /// - Throws: ``BenchmarkFailure`` with the server's standard error when it does not come up.
    init(_ arguments: [String], folder: URL, name: String) async throws {
        let readyFile = folder.appendingPathComponent("\(name).ready")
        let child = try MeasuredProcess(
            try Self.binary(),
            ["serve"] + arguments + ["--port", "0", "--ready-file", readyFile.path, "--log-level", "warning"],
            stderr: folder.appendingPathComponent("\(name).stderr"))
        let line = try? await RawHTTP.onThread { try child.readLine(timeout: .seconds(60)) }
        guard line?.hasPrefix("sandbox-vcr serve: listening on ") == true,
            let url = try? String(contentsOf: readyFile, encoding: .utf8),
            let port = url.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").last.flatMap({
                Int($0)
            })
        else {
            child.send(SIGKILL)
            let exit = try await child.wait()
            throw BenchmarkFailure("\(child.commandLine) did not come up (\(exit.description)):\n\(child.stderrTail)")
        }
        self.child = child
        self.port = port
    }

    /// Stops the server with SIGTERM (it answers what is in flight and saves its recordings) and waits for it.
    /// - Throws: ``BenchmarkFailure`` when it does not exit with status 0.
    @discardableResult
    func stop() async throws -> MeasuredProcess.Exit {
        child.send(SIGTERM)
        let exit = try await child.wait()
        guard exit.succeeded else {
            throw BenchmarkFailure("\(child.commandLine) ended with \(exit.description):\n\(child.stderrTail)")
        }
        return exit
    }
}
