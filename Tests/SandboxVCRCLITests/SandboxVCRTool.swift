import Foundation
import SandboxVCRTestSupport
import Testing

/// Runs the built `sandbox-vcr` in a clean environment (no backend, URL, record mode or CI variable inherited).
enum SandboxVCRTool {
    static let root = CommandRunner.packageRoot()

    /// Variables that change what the tool does, removed unless a test sets them.
    static let cleared: [String: String?] = [
        "SANDBOX_BACKEND": nil, "SANDBOX_URL": nil, "SANDBOX_FUSION_ENDPOINT": nil, "SANDBOX_VCR_RECORD": nil,
        "SANDBOX_MAX_CONCURRENCY": nil, "CI": nil,
    ]

    static func run(
        _ arguments: [String], environment: [String: String?] = [:], stdin: Data = Data(),
        currentDirectory: URL? = nil
    ) async throws -> CommandRunner.Output {
        let tool = try #require(
            CommandRunner.builtProduct(named: "sandbox-vcr"), "build sandbox-vcr first (swift build --build-tests)")
        return try await CommandRunner.run(
            tool, arguments, environment: cleared.merging(environment) { $1 }, stdin: stdin,
            currentDirectory: currentDirectory)
    }

    /// A fresh temporary folder.
    static func makeFolder(_ prefix: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes `text` to `name` in `folder` and returns the path.
    @discardableResult
    static func write(_ text: String, to name: String, in folder: URL) throws -> String {
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// Parses JSON output into a dictionary.
    static func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }
}
