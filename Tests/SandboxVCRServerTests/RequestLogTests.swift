import Logging
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

@testable import SandboxVCRServer

/// Keeps every log record, for checking what the server logs.
final class CapturingLogHandlerStore: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let stored = Mutex<[Record]>([])
    var records: [Record] { stored.withLock { $0 } }

    func append(_ record: Record) { stored.withLock { $0.append(record) } }

    func makeLogger() -> Logger {
        var logger = Logger(label: "test.serve") { _ in CapturingLogHandler(store: self) }
        logger.logLevel = .info
        return logger
    }
}

struct CapturingLogHandler: LogHandler {
    let store: CapturingLogHandlerStore
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        store.append(
            .init(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
    }
}

@Suite("One structured log line per request")
struct RequestLogTests {
    /// The key `0123abcd…` as a digest.
    static let key = ContentHash(hex: "0123abcd" + String(repeating: "0", count: 56))

    @Test func requestLinesCarryMethodPathStatusOutcomeKeyAndLatency() async throws {
        let store = CapturingLogHandlerStore()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(
            executor: OutcomeExecutor(
                inner: makeEchoExecutor(), source: .recorded, key: Self.key, liveDuration: .milliseconds(12)),
            configuration: configuration, logger: store.makeLogger())
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task { try await server.run(onReady: { readyContinuation.yield($0.port) }) }
        var iterator = ready.makeAsyncIterator()
        let port = try #require(await iterator.next())
        _ = try await RawHTTP.exchange(
            port: port, request: RawHTTP.postJSON(path: "/run_code", body: #"{"code": "1", "language": "python"}"#))
        _ = try await RawHTTP.exchange(port: port, request: RawHTTP.request(method: "GET", path: "/v1/ping"))
        await server.triggerGracefulShutdown()
        try await running.value

        let lines = store.records.filter { $0.message == "request" }
        #expect(lines.count == 2)
        let runCode = try #require(lines.first)
        #expect(runCode.level == .info)
        #expect(runCode.metadata["method"] == "POST")
        #expect(runCode.metadata["path"] == "/run_code")
        #expect(runCode.metadata["status"] == "200")
        #expect(runCode.metadata["outcome"] == "recorded")
        #expect(runCode.metadata["key"] == "0123abcd0000")
        #expect(runCode.metadata["upstream_ms"] == "12.0")
        #expect(lines.last?.metadata["path"] == "/v1/ping")
        #expect(lines.last?.metadata["outcome"] == nil)
    }

    @Test func missIsLoggedAsAWarningWithTheDiagnostics() async throws {
        let store = CapturingLogHandlerStore()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(
            executor: makeFailingExecutor(testReplayMiss(diagnostics: "nothing recorded for key ffff0000")),
            configuration: configuration, logger: store.makeLogger())
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task { try await server.run(onReady: { readyContinuation.yield($0.port) }) }
        var iterator = ready.makeAsyncIterator()
        let port = try #require(await iterator.next())
        _ = try await RawHTTP.exchange(
            port: port, request: RawHTTP.postJSON(path: "/run_code", body: #"{"code": "1", "language": "python"}"#))
        await server.triggerGracefulShutdown()
        try await running.value

        let warning = try #require(store.records.first { $0.message == "replay miss" })
        #expect(warning.level == .warning)
        #expect(warning.metadata["diagnostics"] == "nothing recorded for key ffff0000")
        #expect(store.records.first { $0.message == "request" }?.metadata["outcome"] == "miss")
    }

    /// Issue 12, item 7: the request line previews the code's first line; a secret in it is scrubbed first, on a
    /// replay hit as on a miss.
    @Test func theLoggedPreviewOfTheCodeIsScrubbed() async throws {
        let secret = "as-abc123secretvalue"
        for executor in [
            OutcomeExecutor(inner: makeEchoExecutor(), source: .hit, key: Self.key) as any SandboxExecutor,
            makeFailingExecutor(testReplayMiss(diagnostics: "nothing recorded")),
        ] {
            let store = CapturingLogHandlerStore()
            var configuration = ServeConfiguration()
            configuration.port = 0
            let server = SandboxFusionServer(
                executor: executor, configuration: configuration, logger: store.makeLogger())
            let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
            let running = Task { try await server.run(onReady: { readyContinuation.yield($0.port) }) }
            var iterator = ready.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let body = ##"{"code": "# MODAL_TOKEN_SECRET=\##(secret)\nprint(1)", "language": "python"}"##
            _ = try await RawHTTP.exchange(port: port, request: RawHTTP.postJSON(path: "/run_code", body: body))
            await server.triggerGracefulShutdown()
            try await running.value

            let request = try #require(store.records.first { $0.message == "request" }?.metadata["request"])
            #expect(request.contains("MODAL_TOKEN_SECRET"), "the preview is still there: \(request)")
            for record in store.records {
                #expect(!record.message.contains(secret))
                #expect(!record.metadata.values.contains { $0.contains(secret) }, "\(record.metadata)")
            }
        }
    }
}
