import Foundation
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

/// The built `sandbox-vcr` binary, found next to the test bundle (or in `.build/debug`).
let builtBinary: URL? = {
    let name = "sandbox-vcr"
    var candidates: [URL] = []
    if let override = ProcessInfo.processInfo.environment["SANDBOX_VCR_BINARY"] {
        candidates.append(URL(fileURLWithPath: override))
    }
    let executable = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
    var folder = executable.deletingLastPathComponent()
    for _ in 0..<4 {
        candidates.append(folder.appendingPathComponent(name))
        folder = folder.deletingLastPathComponent()
    }
    candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name))
    candidates.append(repositoryRoot.appendingPathComponent(".build/debug/\(name)"))
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
}()

@Suite("sandbox-vcr serve as a built binary")
struct ServeCommandEndToEndTests {
    @Test(.enabled(if: builtBinary != nil, "build the sandbox-vcr product first"))
    func echoServerAnswersThenStopsOnSIGTERM() async throws {
        let binary = try #require(builtBinary)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("serve-e2e-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let readyFile = folder.appendingPathComponent("ready").path

        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--echo", "--port", "0", "--ready-file", readyFile, "--log-level", "warning"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let handle = output.fileHandleForReading
        let line = try await RawHTTP.onThread { () -> String in
            var bytes: [UInt8] = []
            while true {
                let byte = handle.readData(ofLength: 1)
                guard let first = byte.first else { break }
                if first == UInt8(ascii: "\n") { break }
                bytes.append(first)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        let prefix = "sandbox-vcr serve: listening on http://127.0.0.1:"
        #expect(line.hasPrefix(prefix), "readiness line: \(line)")
        let port = try #require(Int(line.dropFirst(prefix.count)))
        #expect(try String(contentsOfFile: readyFile, encoding: .utf8) == "http://127.0.0.1:\(port)\n")

        let response = try await RawHTTP.exchange(
            port: port,
            request: RawHTTP.postJSON(path: "/run_code", body: #"{"code": "x", "language": "python", "stdin": "ok"}"#))
        #expect(response.status == 200)
        #expect(try parseJSON(response.body)["run_result"]?["stdout"] == "ok")

        kill(process.processIdentifier, SIGTERM)
        let status = try await RawHTTP.onThread { () -> Int32 in
            process.waitUntilExit()
            return process.terminationStatus
        }
        #expect(status == 0)
        #expect(process.terminationReason == .exit)
    }

    @Test(.enabled(if: builtBinary != nil, "build the sandbox-vcr product first"))
    func remoteBindIsRefusedWithoutTheFlag() async throws {
        let binary = try #require(builtBinary)
        let process = Process()
        process.executableURL = binary
        process.arguments = ["serve", "--echo", "--host", "0.0.0.0", "--port", "0"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let (status, text) = try await RawHTTP.onThread { () -> (Int32, String) in
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        #expect(status != 0)
        #expect(text.contains("--allow-remote"))
    }
}
