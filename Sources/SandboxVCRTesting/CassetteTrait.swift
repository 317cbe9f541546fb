public import Foundation
public import SandboxVCR
public import Testing

/// A Swift Testing trait that gives a test a ``RecordingExecutor`` over its own cassette.
///
/// Cassettes live next to the test file, in `__Cassettes__/<TestFileName>/<name>.sqlite` (like
/// swift-snapshot-testing's `__Snapshots__`). The test reads its executor from ``testExecutor`` (or
/// `RecordingExecutor.current`). After the test, recordings it did not use are listed on standard error.
///
/// ```swift
/// @Test(.cassette("sum-two", live: SandboxFusionExecutor(configuration: try .fromEnvironment())))
/// func grades() async throws {
///     let result = try await testExecutor.execute(ExecutionRequest(code: "print(1+1)", language: .python))
///     #expect(result.stdoutText == "2\n")
/// }
/// ```
public struct CassetteTrait: TestTrait, TestScoping {
    /// The cassette's name (a file name without `.sqlite`; no folders, no `..`).
    public var name: String
    /// The record mode; `nil` resolves it (task-local, `SANDBOX_VCR_RECORD`, default).
    public var record: RecordMode?
    /// Makes the live executor: called at most once per test, and only when a call needs one (a miss to record);
    /// a throw fails that call with the error, never the process.
    public var live: @Sendable () throws -> (any SandboxExecutor)?
    /// Matching, redaction, exhaustion and expiry.
    public var configuration: RecordingExecutor.Configuration
    /// The folder holding `__Cassettes__` (default: the test file's folder).
    public var directory: URL?
    /// The test file (`#filePath`).
    public var filePath: String
    /// List unused recordings on standard error after the test.
    public var reportsUnused: Bool

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let url = try CassetteLocation.url(name: name, filePath: filePath, directory: directory)
        let mode = try RecordMode.resolve(record)
        let cassette = try await Cassette.open(at: url, readOnly: false, create: mode != .never)
        let executor = RecordingExecutor(
            cassette: cassette, mode: mode, makeLive: live, configuration: configuration)
        do {
            try await RecordMode.$current.withValue(mode) {
                try await RecordingExecutor.$current.withValue(executor) { try await function() }
            }
            try await cassette.flush()
        } catch {
            await cassette.close()
            throw error
        }
        if reportsUnused, mode == .never || mode == .missing {
            let unused = try await executor.unusedRecordings()
            if !unused.isEmpty {
                var text =
                    "cassette \(url.lastPathComponent): \(unused.count) recording(s) not used by "
                    + "\(test.name):\n"
                for interaction in unused.prefix(10) { text += "  - \(interaction.request.summary)\n" }
                text +=
                    "  (to remove what no test uses: run the tests with SANDBOX_VCR_STAMP_REPLAYS=1, then "
                    + "`sandbox-vcr cassette prune --never-replayed \(url.path)`)\n"
                FileHandle.standardError.write(Data(text.utf8))
            }
        }
        await cassette.close()
    }
}

extension Trait where Self == CassetteTrait {
    /// Gives the test a recording executor over `__Cassettes__/<TestFileName>/<name>.sqlite`.
    ///
    /// - Parameters:
    ///   - name: the cassette's name (no folders, no `..`).
    ///   - record: the record mode; `nil` resolves it from the environment (default `missing`, `never` on CI).
    ///   - live: the live executor used when recording; evaluated only when a call needs it (so a replay needs no
    ///     live configuration), and a throw from it fails that call with its error instead of crashing the tests.
    ///   - configuration: matching, redaction, exhaustion and expiry.
    ///   - directory: where `__Cassettes__` goes (default: next to the test file).
    public static func cassette(
        _ name: String, record: RecordMode? = nil,
        live: @autoclosure @escaping @Sendable () throws -> (any SandboxExecutor)? = nil,
        configuration: RecordingExecutor.Configuration = .init(), directory: URL? = nil,
        reportsUnused: Bool = true, filePath: String = #filePath
    ) -> Self {
        CassetteTrait(
            name: name, record: record, live: live, configuration: configuration, directory: directory,
            filePath: filePath, reportsUnused: reportsUnused)
    }
}

/// The executor the current test's `.cassette` trait provides.
///
/// - Throws: ``CassetteError`` (`io`) when the test has no `.cassette` trait.
public var testExecutor: RecordingExecutor {
    get throws {
        guard let executor = RecordingExecutor.current else {
            throw CassetteError(
                code: .io, message: "this test has no cassette; add `.cassette(\"name\")` to its @Test traits",
                path: "")
        }
        return executor
    }
}

/// Where test cassettes are stored.
public enum CassetteLocation {
    /// The folder name, like swift-snapshot-testing's `__Snapshots__`.
    public static let folderName = "__Cassettes__"

    /// `<directory or test file's folder>/__Cassettes__/<TestFileName>/<name>.sqlite`.
    ///
    /// - Throws: ``CassetteError/Code/invalidName`` for an empty name, a name with `/`, `\`, `..`, a leading
    ///   `.`, or a control character.
    public static func url(name: String, filePath: String, directory: URL? = nil) throws -> URL {
        try validate(name)
        let testFile = URL(fileURLWithPath: filePath)
        let base = directory ?? testFile.deletingLastPathComponent()
        let folder = testFile.deletingPathExtension().lastPathComponent
        try validate(folder)
        return base.appendingPathComponent(folderName).appendingPathComponent(folder)
            .appendingPathComponent(name + ".sqlite")
    }

    /// Rejects names that are not a single safe file name.
    public static func validate(_ name: String) throws {
        let problem: String? =
            if name.isEmpty { "is empty" } else if name.contains("/") || name.contains("\\") {
                "contains a path separator"
            } else if name.contains("..") { "contains `..`" } else if name.hasPrefix(".") {
                "starts with a dot"
            } else if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                "contains a control character"
            } else if name.utf8.count > 200 { "is longer than 200 bytes" } else { nil }
        if let problem {
            throw CassetteError(
                code: .invalidName,
                message: "the cassette name \"\(name)\" \(problem); use a plain file name such as \"sum-two\"",
                path: name)
        }
    }
}
