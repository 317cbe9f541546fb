import Foundation
import SandboxVCRTestSupport
import Testing

/// The fuzz targets' inputs through the normal build of `sandbox-vcr-fuzz` (a replayer, one process per target so
/// that a crash fails one test): every regression input in `Fixtures/fuzz/<target>/` (what `Tools/fuzz` found, and
/// known hard cases), and the seeds each target makes from `Fixtures/`.
@Suite("Fuzz targets: regression inputs and seeds")
struct FuzzRegressionTests {
    static let targets = [
        "json-parsers", "sandboxfusion-response", "grpc-frames", "modal-toml", "cassette-records", "cassette-import",
    ]
    static let regressionFolder = SandboxVCRTool.root.appendingPathComponent("Fixtures/fuzz")

    static func replay(_ arguments: [String]) async throws -> CommandRunner.Output {
        let tool = try #require(
            CommandRunner.builtProduct(named: "sandbox-vcr-fuzz"),
            "build sandbox-vcr-fuzz first (swift build --build-tests)")
        // A crash's backtrace: the crashed thread only, without registers and images.
        return try await CommandRunner.run(
            tool, arguments,
            environment: ["SWIFT_BACKTRACE": "enable=yes,interactive=no,threads=crashed,registers=none,images=none"])
    }

    @Test("the replayer has every target, and every regression folder names one")
    func targetsMatch() async throws {
        let output = try await Self.replay(["list"])
        #expect(output.status == 0)
        #expect(output.stdoutText.split(separator: "\n").map(String.init) == Self.targets)
        let folders = (try? FileManager.default.contentsOfDirectory(atPath: Self.regressionFolder.path)) ?? []
        for folder in folders where !folder.hasPrefix(".") && !folder.hasSuffix(".md") {
            #expect(Self.targets.contains(folder), "Fixtures/fuzz/\(folder) is not a fuzz target")
        }
    }

    @Test("every input in Fixtures/fuzz/<target> passes its target", arguments: targets)
    func regressionInputs(target: String) async throws {
        let folder = Self.regressionFolder.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        // One process per input, so that each one that crashes is named.
        for name in names.sorted() where !name.hasPrefix(".") && !name.hasSuffix(".md") {
            let output = try await Self.replay([target, folder.appendingPathComponent(name).path])
            #expect(
                output.status == 0,
                "Fixtures/fuzz/\(target)/\(name) fails (exit \(output.status)):\n\(output.stdoutText)\(output.stderrText)"
            )
        }
    }

    @Test("the seeds made from Fixtures/ pass their targets")
    func seeds() async throws {
        let folder = try SandboxVCRTool.makeFolder("fuzz-seeds")
        defer { try? FileManager.default.removeItem(at: folder) }
        let made = try await Self.replay([
            "seeds", SandboxVCRTool.root.appendingPathComponent("Fixtures").path, folder.path,
        ])
        try #require(made.status == 0, "\(made.stdoutText)\(made.stderrText)")
        for target in Self.targets {
            let seeds = folder.appendingPathComponent(target)
            let count = try FileManager.default.contentsOfDirectory(atPath: seeds.path).count
            #expect(count >= 4, "\(target) has \(count) seeds")
            let output = try await Self.replay([target, seeds.path])
            #expect(output.status == 0, "\(target): \(output.stdoutText)\(output.stderrText)")
        }
    }
}
