import Foundation
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCR

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

    /// A request on a connection of its own shares it with nothing: beside 16 small requests sharing one connection,
    /// 8 answers of 3 MB each on their own connections (9 connections in all) all keep their trailers. (On a libcurl
    /// before 8.1, answers larger than the 1 MiB receive buffer multiplexed together can lose them.)
    @Test(.enabled(if: TCPConnectionCount.isAvailable, "needs /proc/net/tcp"))
    func requestsOnTheirOwnConnectionsKeepTheirTrailers() async throws {
        let server = try NGHTTPDServer(files: [:], trailer: "grpc-status: 0", echoUpload: true)
        defer { server.stop() }
        let opened = TCPConnectionCount.Opened(toPort: server.port)
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        let url = server.baseURL + "/echo"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                group.addTask {
                    let isLarge = index < 8
                    var body = Data(repeating: UInt8(truncatingIfNeeded: index), count: isLarge ? 3_000_000 : 100)
                    body.append(Data("request \(index)".utf8))
                    let response = try await client.execute(
                        HTTPRequest(method: "POST", url: url, body: body, usesOwnConnection: isLarge),
                        deadline: .now + .seconds(30))
                    #expect(response.body == body)
                    #expect(response.trailers.first(name: "grpc-status") == "0", "request \(index)")
                }
            }
            try await group.waitForAll()
        }
        #expect(opened.clientPorts.count == 9)
    }

    @Test func connectToEntriesLeadAURLToItsOwnHostAndPort() {
        #expect(TransferTable.connectToEntry(for: "http://127.0.0.1:8080/a/b") == "::127.0.0.1:8080")
        #expect(TransferTable.connectToEntry(for: "https://user:pw@api.modal.com/x") == "::api.modal.com:443")
        #expect(TransferTable.connectToEntry(for: "http://[::1]:9000") == "::[::1]:9000")
        #expect(TransferTable.connectToEntry(for: "http://example.com?q") == "::example.com:80")
        #expect(TransferTable.connectToEntry(for: "no scheme") == nil)
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
        let opened = TCPConnectionCount.Opened(toPort: server.port)
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        try await Self.post(64, atOnce: true, to: server, with: client)
        for _ in 0..<3 { try await Self.post(20, atOnce: false, to: server, with: client) }
        try await Self.post(64, atOnce: true, to: server, with: client)
        #expect(opened.clientPorts.count == 1)
    }

    /// When the connection goes away (here its server restarts on the same port), the next requests open one new
    /// connection and share it.
    @Test(.enabled(if: TCPConnectionCount.isAvailable, "needs /proc/net/tcp"))
    func h2cRequestsOpenOneNewConnectionAfterTheServerRestarts() async throws {
        let first = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true)
        let opened = TCPConnectionCount.Opened(toPort: first.port)
        let client = HTTPClient(configuration: .init(httpVersion: .http2PriorKnowledge))
        try await Self.post(10, atOnce: false, to: first, with: client)
        first.stop()
        let second = try NGHTTPDServer(files: [:], trailer: nil, echoUpload: true, port: first.port)
        defer { second.stop() }
        try await Self.post(10, atOnce: false, to: second, with: client)
        try await Self.post(32, atOnce: true, to: second, with: client)
        // Two: the first server's and the second's (the first may also be gone from the table if it was reset).
        #expect(opened.clientPorts.count <= 2)
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
