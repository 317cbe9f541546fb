import Foundation
import SandboxVCRTestSupport
import Testing

/// A new Swift user's package, made of the README's snippets exactly as printed (each block under a
/// `<!-- user-package: PATH -->` marker becomes that file), depending on this package by path with `traits: []`.
/// It records against a loopback SandboxFusion-shaped server, then replays with `CI=true` and the server gone, and
/// must leave `git status` clean. It builds a package from scratch (about two minutes); set
/// `SANDBOX_VCR_SKIP_USER_PACKAGE=1` to skip it in a quick local run.
@Suite(
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["SANDBOX_VCR_SKIP_USER_PACKAGE"] == nil),
    .timeLimit(.minutes(20)))
struct UserPackageTests {
    static let root = CommandRunner.packageRoot()

    /// The README's files for the user package: path → contents.
    static func readmeFiles() throws -> [String: String] {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        var files: [String: String] = [:]
        var pending: String?
        var body: [Substring]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if var lines = body {
                if line == "```" {
                    files[pending ?? ""] = lines.joined(separator: "\n") + "\n"
                    body = nil
                    pending = nil
                } else {
                    lines.append(line)
                    body = lines
                }
            } else if line.hasPrefix("<!-- user-package: "), line.hasSuffix(" -->") {
                pending = String(line.dropFirst("<!-- user-package: ".count).dropLast(" -->".count))
            } else if pending != nil, line.hasPrefix("```") {
                body = []
            }
        }
        return files
    }

    /// Runs `tool` (looked up on `PATH`) in `folder`, with the SandboxVCR variables of this process removed; a cold
    /// `swift build` on a loaded CI machine gets up to 30 minutes.
    static func run(
        _ tool: String, _ arguments: [String], in folder: URL, environment: [String: String?] = [:]
    ) async throws -> CommandRunner.Output {
        let cleared: [String: String?] = [
            "SANDBOX_BACKEND": nil, "SANDBOX_URL": nil, "SANDBOX_FUSION_ENDPOINT": nil, "SANDBOX_VCR_RECORD": nil,
            "SANDBOX_VCR_STAMP_REPLAYS": nil, "CI": nil,
        ]
        return try await CommandRunner.run(
            URL(fileURLWithPath: "/usr/bin/env"), [tool] + arguments,
            environment: cleared.merging(environment) { $1 }, currentDirectory: folder, timeout: .seconds(1800))
    }

    /// Runs `tool` and requires exit status 0, showing its output otherwise.
    @discardableResult
    static func succeed(
        _ tool: String, _ arguments: [String], in folder: URL, environment: [String: String?] = [:]
    ) async throws -> CommandRunner.Output {
        let output = try await run(tool, arguments, in: folder, environment: environment)
        let command = "\(tool) \(arguments.joined(separator: " "))"
        try #require(
            output.status == 0,
            "\(command) exited with \(output.status):\n\(output.stdoutText)\n\(output.stderrText.suffix(6000))")
        return output
    }

    static func seconds(since start: ContinuousClock.Instant) -> String {
        let duration = ContinuousClock.now - start
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.1f s", seconds)
    }

    @Test func readmePackageRecordsThenReplaysWithGitClean() async throws {
        let files = try Self.readmeFiles()
        #expect(
            Set(files.keys) == [
                "Package.swift", ".gitignore", "Sources/grade-once/main.swift", "Tests/GraderTests/SumTwoTests.swift",
                "Tests/GraderTests/GradingLogicTests.swift",
            ])
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("user-package-\(UUID())")
        defer { try? FileManager.default.removeItem(at: workspace) }
        // This package, by path, in a folder named as the snippet names it.
        let dependency = workspace.appendingPathComponent("sandbox-vcr")
        try FileManager.default.createDirectory(at: dependency, withIntermediateDirectories: true)
        for entry in ["Package.swift", "Sources"] {
            try FileManager.default.copyItem(
                at: Self.root.appendingPathComponent(entry), to: dependency.appendingPathComponent(entry))
        }
        let package = workspace.appendingPathComponent("my-grader")
        for (path, contents) in files {
            let url = package.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: url)
        }
        let git = ["-c", "user.name=SandboxVCR", "-c", "user.email=tests@sandbox-vcr.invalid"]
        try await Self.succeed("git", ["init", "-q"], in: package)
        try await Self.succeed("git", ["add", "-A"], in: package)
        try await Self.succeed("git", git + ["commit", "-qm", "README snippets"], in: package)

        // Cold build, then the re-plan a switch from `swift build --build-tests` to `swift build` costs.
        var start = ContinuousClock.now
        let build = try await Self.succeed("swift", ["build", "--build-tests"], in: package)
        let coldBuild = Self.seconds(since: start)
        // The one warning allowed: the excluded `__Cassettes__` does not exist before the first recording.
        let warnings = build.stderrText.split(separator: "\n").filter {
            $0.contains("warning:") && !($0.contains("Invalid Exclude") && $0.contains("__Cassettes__"))
        }
        #expect(warnings.isEmpty, "the README's package builds with warnings")
        start = ContinuousClock.now
        try await Self.succeed("swift", ["build"], in: package)
        let replan = Self.seconds(since: start)
        let resolved = try String(contentsOf: package.appendingPathComponent("Package.resolved"), encoding: .utf8)
        let identities = resolved.split(separator: "\n").filter { $0.contains("\"identity\"") }.map {
            $0.split(separator: "\"")[3]
        }
        #expect(identities.sorted() == ["grdb.swift", "swift-log"], "traits: [] resolves the library's needs only")
        print("user package: cold build \(coldBuild), re-plan \(replan), \(identities.count) resolved packages")

        // Record: the live server answers; the executable and the tests record their cassettes.
        let server = try LoopbackHTTPServer { _ in .respond(.sandboxFusionSuccess(stdout: "7\n")) }
        let live: [String: String?] = ["SANDBOX_URL": "http://127.0.0.1:\(server.port)/run_code"]
        let recorded = try await Self.succeed(
            "swift", ["run", "--skip-build", "grade-once"], in: package, environment: live)
        #expect(recorded.stdoutText == "Success 7\n\n")
        try await Self.succeed("swift", ["test", "--skip-build"], in: package, environment: live)
        let calls = server.statistics.requests
        #expect(calls == 2)
        server.shutdown()
        let status = try await Self.succeed("git", ["status", "--porcelain", "--untracked-files=all"], in: package)
        #expect(
            Set(status.stdoutText.split(separator: "\n")) == [
                "?? Tests/GraderTests/__Cassettes__/SumTwoTests/sum-two.sqlite", "?? Tests/cassettes/grader.sqlite",
            ], "recording leaves exactly the two cassettes (no -wal or -shm)")
        try await Self.succeed("git", ["add", "-A"], in: package)
        try await Self.succeed("git", git + ["commit", "-qm", "cassettes"], in: package)

        // With the cassettes in place the package builds without a warning (they are excluded, not sources).
        let rebuilt = try await Self.succeed("swift", ["build", "--build-tests"], in: package)
        #expect(!rebuilt.stderrText.contains("warning:"), "warnings once cassettes exist:\n\(rebuilt.stderrText)")

        // Replay on CI with the server gone: same answers, and nothing in the checkout changes.
        let ci: [String: String?] = ["CI": "true", "SANDBOX_URL": "http://127.0.0.1:\(server.port)/run_code"]
        let replayed = try await Self.succeed(
            "swift", ["run", "--skip-build", "grade-once"], in: package, environment: ci)
        #expect(replayed.stdoutText == "Success 7\n\n")
        try await Self.succeed("swift", ["test", "--skip-build"], in: package, environment: ci)
        #expect(server.statistics.requests == calls)
        let after = try await Self.succeed("git", ["status", "--porcelain", "--untracked-files=all"], in: package)
        #expect(after.stdoutText.isEmpty, "replaying changed the checkout:\n\(after.stdoutText)")
    }
}
