import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// HTTP/2 with prior knowledge (h2c) and trailers, against nghttpd (Debian's nghttp2-server, which Tools/setup
/// installs). Skipped where nghttpd is not installed.
@Suite(
    "Transport: HTTP/2 prior knowledge against nghttpd", .timeLimit(.minutes(1)),
    .enabled(if: NGHTTPDServer.executable != nil, "nghttpd (Debian package nghttp2-server) is not installed"))
struct TransportHTTP2Tests {
    @Test func h2cGetReturnsTheBodyAndTrailers() async throws {
        let server = try NGHTTPDServer(files: ["hello.txt": "hello over h2c"], trailer: "grpc-status: 0")
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/hello.txt"))
        #expect(response.status == 200)
        #expect(response.httpVersion == .http2)
        #expect(response.bodyText == "hello over h2c")
        #expect(response.trailers.first(name: "grpc-status") == "0")
        #expect(response.headers.first(name: "grpc-status") == nil)
    }

    @Test func h2cPostEchoesTheBodyPerRequestVersion() async throws {
        let server = try NGHTTPDServer(files: [:], trailer: "grpc-message: done", echoUpload: true)
        defer { server.stop() }
        let client = HTTPClient()
        let body = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0) })
        let responses = try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await client.execute(
                        HTTPRequest(
                            method: "POST", url: server.baseURL + "/echo", body: body,
                            httpVersion: .http2PriorKnowledge))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(responses.count == 8)
        for response in responses {
            #expect(response.httpVersion == .http2)
            #expect(response.body == body)
            #expect(response.trailers.first(name: "grpc-message") == "done")
        }
    }

    @Test func sequentialH2CRequestsAllSucceed() async throws {
        let server = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true)
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        for index in 0..<5 {
            let response = try await client.execute(
                HTTPRequest(method: "POST", url: server.baseURL + "/echo", body: Data("request \(index)".utf8)))
            #expect(response.bodyText == "request \(index)")
            #expect(response.httpVersion == .http2)
        }
    }

    /// libcurl before 8.0 breaks a reused prior-knowledge connection (curl 16, curl/curl issue 10634), yet the client
    /// multiplexes on one connection rather than opening one per request, whether the requests come one after
    /// another or at once from a cold start.
    @Test(.enabled(if: TCPConnectionCount.isAvailable, "needs /proc/net/tcp"))
    func h2cRequestsShareOneConnection() async throws {
        let server = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true)
        defer { server.stop() }
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        try await Self.post(64, atOnce: true, to: server, with: client)
        for _ in 0..<3 { try await Self.post(20, atOnce: false, to: server, with: client) }
        try await Self.post(64, atOnce: true, to: server, with: client)
        #expect(TCPConnectionCount.clientPorts(connectedTo: server.port).count == 1)
    }

    /// When the connection goes away (here its server restarts on the same port), the next requests open one new
    /// connection and share it.
    @Test(.enabled(if: TCPConnectionCount.isAvailable, "needs /proc/net/tcp"))
    func h2cRequestsOpenOneNewConnectionAfterTheServerRestarts() async throws {
        let first = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true)
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        try await Self.post(10, atOnce: false, to: first, with: client)
        first.stop()
        let second = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true, port: first.port)
        defer { second.stop() }
        try await Self.post(10, atOnce: false, to: second, with: client)
        try await Self.post(32, atOnce: true, to: second, with: client)
        // Two: the first server's and the second's (the first may also be gone from the table if it was reset).
        #expect(TCPConnectionCount.clientPorts(connectedTo: second.port).count <= 2)
    }

    /// Posts `count` distinct bodies to nghttpd's echo, one after another or all at once; checks every answer.
    private static func post(_ count: Int, atOnce: Bool, to server: NGHTTPDServer, with client: HTTPClient)
        async throws
    {
        let url = server.baseURL + "/echo"
        let send: @Sendable (Int) async throws -> Void = { index in
            let body = Data("request \(index)".utf8)
            let response = try await client.execute(
                HTTPRequest(method: "POST", url: url, body: body), deadline: .now + .seconds(20))
            #expect(response.httpVersion == .http2)
            #expect(response.body == body)
        }
        guard atOnce else {
            for index in 0..<count { try await send(index) }
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count { group.addTask { try await send(index) } }
            try await group.waitForAll()
        }
    }

    @Test func http1ToTheSameServerIsNotHTTP2() async throws {
        let server = try NGHTTPDServer(files: ["a.txt": "a"], trailer: nil)
        defer { server.stop() }
        // nghttpd speaks only HTTP/2: an HTTP/1.1 request fails at the protocol level.
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/a.txt"), deadline: .now + .seconds(5))
        }
        #expect(error != nil)
    }
}

/// An nghttpd process serving a temporary folder over h2c on 127.0.0.1.
final class NGHTTPDServer: Sendable {
    static let executable: String? =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/stdbuf")
        ? ["/usr/sbin/nghttpd", "/usr/bin/nghttpd", "/usr/local/bin/nghttpd"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        : nil

    let port: Int
    let process: Process
    let folder: URL

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// - Parameter requestedPort: where to listen; `nil`: a free port.
    init(files: [String: String], trailer: String?, echoUpload: Bool = false, port requestedPort: Int? = nil) throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nghttpd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: folder.appendingPathComponent(name)) }
        port = try requestedPort ?? TransportHTTPClientTests.closedPort()
        process = Process()
        // stdbuf: nghttpd's output is block-buffered into a pipe; line buffering lets the listen line through.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/stdbuf")
        // --no-content-length: as gRPC answers; libcurl 7.88 drops HTTP/2 trailers after a Content-Length body.
        var arguments = [
            "-oL", try #require(Self.executable), "-v", "--no-tls", "--no-content-length", "-a", "127.0.0.1", "-d",
            folder.path,
        ]
        if let trailer { arguments += ["--trailer", trailer] }
        if echoUpload { arguments.append("--echo-upload") }
        process.arguments = arguments + [String(port)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // nghttpd -v prints "IPv4: listen 127.0.0.1:<port>" once it listens; then keep draining its output.
        let handle = output.fileHandleForReading
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("listen 127.0.0.1:\(port)") {
            let chunk = handle.availableData
            guard !chunk.isEmpty else { throw NGHTTPDError.didNotStart(String(decoding: seen, as: UTF8.self)) }
            seen.append(chunk)
        }
        let drain = Thread { while !handle.availableData.isEmpty {} }
        drain.start()
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: the child may inherit a signal mask that blocks SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    enum NGHTTPDError: Error { case didNotStart(String) }
}
