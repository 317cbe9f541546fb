import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTestSupport
import Synchronization

/// The configuration that points at a fake server.
func modalConfiguration(
    for server: FakeModalServer, poolSize: Int = 8, creationRateLimit: Double = 50
) -> ModalConfiguration {
    ModalConfiguration(
        tokenID: server.tokenID, tokenSecret: server.tokenSecret, serverURL: server.url, poolSize: poolSize,
        creationRateLimit: creationRateLimit)
}

/// A temporary folder removed by the caller.
func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The package root, from this file's path.
func packageRoot(filePath: String = #filePath) -> URL {
    CommandRunner.packageRoot(from: filePath)
}

/// Every log line (message and metadata) a logger wrote, for checking that no secret leaks.
final class CapturedLogs: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }

    /// A logger at `trace` level writing here.
    func logger(label: String = "modal-test") -> Logger {
        Logger(label: label, factory: { label in CapturingLogHandler(label: label, sink: self) })
    }
}

/// A LogHandler that records everything into ``CapturedLogs``.
struct CapturingLogHandler: LogHandler {
    let label: String
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        sink.append("\(event.level) \(label): \(event.message) \(merged)")
    }
}
