import BenchmarkSupport
import Foundation
import SandboxVCR

/// The replay cassettes: `count` interactions, each a 1 KB program with a 20 KB harness file shared by all of them
/// and a 1 KB stdout, recorded through the public recording path (``RecordingExecutor`` in mode `all`).
///
/// Every benchmark runs in a process of its own, so a cassette is built once per build of this executable and kept
/// in the temporary folder (its name carries the executable's modification time).
enum CassetteFixture {
    /// The 20 KB harness every request carries.
    static let harness = Data((0..<20_480).map { UInt8(ascii: "a") + UInt8($0 % 26) })

    /// Request `index`: 1 KB of code, the shared harness, `index` on stdin.
    static func makeRequest(_ index: Int) -> ExecutionRequest {
        var code = "# solution \(index)\n"
        while code.utf8.count < 1024 { code += "x_\(index) = \(index) * 2  # padding line\n" }
        code = String(code.utf8.prefix(1024))!
        return ExecutionRequest(
            code: code, language: .python, files: ["harness.py": harness], stdin: "\(index)\n", runTimeout: .seconds(5))
    }

    /// The answer recorded for request `index`: 1 KB of stdout.
    static func makeResult(_ index: Int) -> ExecutionResult {
        var stdout = "answer \(index)\n"
        while stdout.utf8.count < 1024 { stdout += "line \(index) ok\n" }
        return ExecutionResult(
            status: .success,
            run: CommandOutcome(
                status: .finished, exitCode: 0, stdout: Data(stdout.utf8.prefix(1024)), wallTime: 0.02),
            backend: .sandboxFusion)
    }

    /// `samples` request indices in `0..<count`, the same in every run (SplitMix64 from seed 42).
    static func sampleIndices(count: Int, samples: Int) -> [Int] {
        var state: UInt64 = 42
        return (0..<samples).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(count))
        }
    }

    /// The cassette of `count` interactions, built first if this build of the benchmarks has none yet.
    static func url(interactions count: Int) async throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sandbox-vcr-benchmarks")
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let built =
            (try? executable.resourceValues(forKeys: [.contentModificationDateKey]))?
            .contentModificationDate?.timeIntervalSince1970 ?? 0
        let name = "replay-\(count)-\(Int(built))"
        let folder = root.appendingPathComponent(name)
        let url = folder.appendingPathComponent("cassette.sqlite")
        if FileManager.default.fileExists(atPath: url.path) { return url }

        // Build in a folder of this process, then move it into place: another benchmark process never sees half
        // a cassette. Older builds' cassettes of this size go.
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        for old in try FileManager.default.contentsOfDirectory(atPath: root.path)
        where old.hasPrefix("replay-\(count)-") && old != name {
            try? FileManager.default.removeItem(at: root.appendingPathComponent(old))
        }
        let building = root.appendingPathComponent("\(name).building-\(getpid())")
        try FileManager.default.createDirectory(at: building, withIntermediateDirectories: true)
        let start = ContinuousClock.now
        let cassette = try await Cassette.open(at: building.appendingPathComponent("cassette.sqlite"))
        let recorder = RecordingExecutor(cassette: cassette, mode: .all, live: FixtureExecutor())
        _ = try await RequestLoad.drive(recorder, count: count, concurrency: 64, makeRequest: makeRequest)
        try await cassette.flush()
        let recorded = try await cassette.count()
        await cassette.close()
        guard recorded == count else { throw BenchmarkFailure("recorded \(recorded) of \(count) interactions") }
        do {
            try FileManager.default.moveItem(at: building, to: folder)
        } catch {
            // Another process built it first.
            try? FileManager.default.removeItem(at: building)
        }
        FileHandle.standardError.write(Data("built \(count) interactions in \(ContinuousClock.now - start)\n".utf8))
        return url
    }

    /// Answers request `index` (read from its stdin) with ``makeResult(_:)``.
    private struct FixtureExecutor: SandboxExecutor {
        func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
            let text = String(decoding: request.stdin, as: UTF8.self)
            return makeResult(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0)
        }
    }
}
