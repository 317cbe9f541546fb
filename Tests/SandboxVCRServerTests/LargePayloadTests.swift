import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

@testable import SandboxVCRServer

/// Real payload sizes through the built `serve`: a 1 MB base64 file in, 5 MB of output out, recorded from a
/// loopback upstream, replayed with it gone, and carried through `cassette export` and `import`.
@Suite(
    "Large payloads through serve and the cassette",
    .enabled(if: builtBinary != nil, "build sandbox-vcr first"))
struct LargePayloadTests {
    /// About 5 MB of output with escapes, non-ASCII text and long plain runs.
    static let stdout: String = (0..<120_000).map { "line \($0): \"quoted\" → tab\there\n" }.joined()

    @Test func aMegabyteFileInAndFiveMegabytesOutAreRecordedAndReplayedExactly() async throws {
        let folder = try makeTemporaryFolder("large-payloads")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = Data((0..<750_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) })
        let body = JSONValue.object([
            ("code", .string(String(repeating: "assert solve([3, 1, 2]) == [1, 2, 3]  # harness\n", count: 450))),
            ("language", "python"), ("stdin", .string(String(repeating: "1 2 3\n", count: 200))),
            ("run_timeout", 10), ("files", .object([("data.bin", .string(file.base64EncodedString()))])),
        ]).pythonJSONText
        #expect(body.utf8.count > 1_000_000)

        let received = ReceivedFiles()
        let upstream = try LoopbackHTTPServer { request in
            if let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: request.body),
                let content = wire.files?["data.bin"] ?? nil
            {
                received.add(Data(base64Encoded: content))
            }
            return .respond(.sandboxFusionSuccess(stdout: Self.stdout))
        }
        defer { upstream.shutdown() }
        let cassette = folder.appendingPathComponent("large.sqlite")

        let recorder = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "all", "--url", "http://127.0.0.1:\(upstream.port)"],
            logLevel: "warning")
        let recorded = try await recorder.postJSON("/run_code", body)
        #expect(try await recorder.stop() == 0)
        #expect(recorded.status == 200)
        #expect(received.all == [file])
        let recordedAnswer = try decodeRunCodeAnswer(recorded)
        #expect(recordedAnswer.run?.stdoutText == Self.stdout)

        upstream.shutdown()
        let replayer = try await ServeProcess.start(
            ["--cassette", cassette.path, "--record", "never"], logLevel: "warning")
        let replayed = try await replayer.postJSON("/run_code", body)
        #expect(try await replayer.stop() == 0)
        #expect(replayed.status == 200)
        #expect(replayed.body == recorded.body)

        // Export and import keep the interaction whole.
        let original = try await Cassette.open(at: cassette, readOnly: true)
        let lines = try await original.exportJSONLines()
        await original.close()
        let copyURL = folder.appendingPathComponent("copy.sqlite")
        let copy = try await Cassette.open(at: copyURL)
        #expect(try await copy.importJSONLines(lines) == 1)
        let request = try SandboxFusionWire.request(
            from: JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: Data(body.utf8)))
        let result = try await RecordingExecutor(cassette: copy, mode: .never).execute(request)
        #expect(result.run?.stdoutText == Self.stdout)
        await copy.close()
    }
}

/// The files the upstream received, decoded.
private final class ReceivedFiles: Sendable {
    private let files = Mutex<[Data?]>([])
    func add(_ file: Data?) { files.withLock { $0.append(file) } }
    var all: [Data?] { files.withLock { $0 } }
}
