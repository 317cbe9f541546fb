import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization

/// A counting closure executor standing in for a live backend in cassette tests.
final class SandboxExecutorStub: SandboxExecutor {
    let calls = Mutex(0)
    let body: @Sendable (ExecutionRequest, Int) throws -> ExecutionResult

    init(_ body: @escaping @Sendable (ExecutionRequest, Int) throws -> ExecutionResult = SandboxExecutorStub.echo) {
        self.body = body
    }

    var callCount: Int { calls.withLock { $0 } }

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        let call = calls.withLock { value in
            value += 1
            return value
        }
        return try body(request, call)
    }

    /// Answers with stdin as stdout and the call number as stderr.
    static let echo: @Sendable (ExecutionRequest, Int) throws -> ExecutionResult = { request, call in
        ExecutionResult(
            status: .success,
            run: CommandOutcome(
                status: .finished, exitCode: 0, stdout: request.stdin, stderr: Data("call \(call)".utf8),
                wallTime: 0.01),
            backend: .fake)
    }
}

/// A temporary folder removed when the value is released.
final class TemporaryFolder: Sendable {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("cassette-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        _ = chmod(url.path, 0o755)
        try? FileManager.default.removeItem(at: url)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
}

/// The package root, found from this file.
func packageRoot(_ filePath: String = #filePath) -> URL {
    CommandRunner.packageRoot(from: filePath)
}

func request(
    _ code: String = "print(1)", stdin: String = "", files: [String: Data] = [:], timeout: Duration = .seconds(10)
)
    -> ExecutionRequest
{
    ExecutionRequest(code: code, language: .python, files: files, stdin: stdin, runTimeout: timeout)
}
