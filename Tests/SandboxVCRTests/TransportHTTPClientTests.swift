import Foundation
import Glibc
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@Suite("Transport: HTTPClient over real loopback HTTP", .timeLimit(.minutes(1)))
struct TransportHTTPClientTests {
    @Test func postsABodyAndReadsTheAnswer() async throws {
        let server = try LoopbackHTTPServer { request in
            var headers: HTTPHeaders = ["X-Echo-Method": request.method, "Content-Type": "text/plain"]
            headers.add(name: "X-Content-Type", value: request.headers.first(name: "content-type") ?? "none")
            return .respond(.init(status: 201, headers: headers, body: request.body))
        }
        defer { server.shutdown() }
        let client = HTTPClient()
        let body = Data("{\"hello\": \"world\"}".utf8)
        let response = try await client.execute(
            HTTPRequest(
                method: "POST", url: server.baseURL + "/echo", headers: ["Content-Type": "application/json"],
                body: body))
        #expect(response.status == 201)
        #expect(response.body == body)
        #expect(response.headers.first(name: "x-echo-method") == "POST")
        #expect(response.headers.first(name: "X-Content-Type") == "application/json")
        #expect(response.trailers.isEmpty)
    }

    @Test func largeBodiesGoBothWays() async throws {
        let big = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let server = try LoopbackHTTPServer { request in
            .respond(.init(status: 200, body: request.body + request.body))
        }
        defer { server.shutdown() }
        let response = try await HTTPClient().execute(
            HTTPRequest(method: "PUT", url: server.baseURL + "/big", body: big))
        #expect(response.body.count == big.count * 2)
        #expect(response.body == big + big)
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json("{}")) }
        defer { server.shutdown() }
        let client = HTTPClient()
        for _ in 0..<20 {
            let response = try await client.execute(HTTPRequest(url: server.baseURL + "/"))
            #expect(response.status == 200)
        }
        #expect(server.statistics.requests == 20)
        #expect(server.statistics.connections == 1)
    }

    @Test func trailersAfterTheBodyAreExposed() async throws {
        let raw =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\nContent-Type: text/plain\r\n\r\n"
            + "5\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n"
        let server = try LoopbackHTTPServer { _ in .sendRaw(Data(raw.utf8)) }
        defer { server.shutdown() }
        let response = try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/trailers"))
        #expect(response.bodyText == "hello world")
        #expect(response.headers.first(name: "content-type") == "text/plain")
        #expect(response.headers.first(name: "grpc-status") == nil)
        #expect(response.trailers.first(name: "grpc-status") == "0")
        #expect(response.trailers.first(name: "grpc-message") == "fine")
    }

    @Test func nothingListeningIsConnectionRefused() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let port = refusing.port
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: "http://user:secret@127.0.0.1:\(port)/x"))
        }
        #expect(error?.code == .connectionRefused)
        #expect(error?.message.contains("secret") == false)
        #expect(error?.message.contains("127.0.0.1:\(port)/x") == true)
        #expect(error?.url == "http://127.0.0.1:\(port)/x")
    }

    @Test func aDroppedConnectionIsConnectionReset() async throws {
        let server = try LoopbackHTTPServer { _ in .dropConnection }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/drop"))
        }
        #expect(error?.code == .connectionReset)
        #expect(error?.isRetryable == true)
    }

    @Test func aBodyCutShortIsConnectionReset() async throws {
        let server = try LoopbackHTTPServer { _ in
            .cutBodyShort(.json(String(repeating: "x", count: 10_000)), sentBytes: 1_000)
        }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/cut"))
        }
        #expect(error?.code == .connectionReset)
        #expect(error?.message.contains("curl 18") == true)
    }

    @Test func garbageInsteadOfHTTPIsATransportError() async throws {
        let server = try LoopbackHTTPServer { _ in .sendRaw(Data("this is not HTTP at all\r\n\r\n".utf8)) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/garbage"))
        }
        #expect(error?.code == .transport)
        #expect(error?.message.contains(server.baseURL + "/garbage") == true)
    }

    @Test func aServerSlowerThanTheDeadlineTimesOut() async throws {
        let gate = LoopbackGate()
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, .json("{}")) }
        defer {
            gate.open()
            server.shutdown()
        }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(
                HTTPRequest(url: server.baseURL + "/slow"), deadline: .now + .milliseconds(200))
        }
        #expect(error?.code == .timedOut)
        #expect(server.statistics.requests == 1)
    }

    @Test func aDeadlineAlreadyPastFailsWithoutSending() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json("{}")) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: server.baseURL + "/"), deadline: .now - .seconds(1))
        }
        #expect(error?.code == .timedOut)
        #expect(server.statistics.requests == 0)
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        let gate = LoopbackGate()
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, .json("{}")) }
        defer {
            gate.open()
            server.shutdown()
        }
        let client = HTTPClient()
        let task = Task { try await client.execute(HTTPRequest(url: server.baseURL + "/held")) }
        await server.wait { $0.requests >= 1 }
        task.cancel()
        let error = await #expect(throws: ExecutionError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        // The server sees the client hang up while it still holds the request.
        await server.wait { $0.clientClosesWhileHeld >= 1 }
        #expect(server.statistics.clientClosesWhileHeld == 1)
        // The client still works afterwards.
        gate.open()
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/after"))
        #expect(response.status == 200)
    }

    @Test func aTaskCancelledBeforeItStartsSendsNothing() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json("{}")) }
        defer { server.shutdown() }
        let client = HTTPClient()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.execute(HTTPRequest(url: server.baseURL + "/"))
        }
        let error = await #expect(throws: ExecutionError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(server.statistics.requests == 0)
    }

    @Test func theLimitIsNeverExceededAndEveryRequestCompletes() async throws {
        let gate = LoopbackGate()
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, .json("{}")) }
        defer {
            gate.open()
            server.shutdown()
        }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 8))
        async let statuses: [Int] = withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<200 {
                group.addTask { try await client.execute(HTTPRequest(url: server.baseURL + "/\(index)")).status }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        // Hold the first answers until the limit is reached, then let everything go.
        await server.wait { $0.inFlight >= 8 }
        gate.open()
        let all = try await statuses
        #expect(all.count == 200)
        #expect(all.allSatisfy { $0 == 200 })
        #expect(server.statistics.maxInFlight == 8)
        #expect(server.statistics.requests == 200)
    }

    @Test func aDeadlineThatPassesWhileQueuedTimesOutWithoutSending() async throws {
        let gate = LoopbackGate()
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, .json("{}")) }
        defer {
            gate.open()
            server.shutdown()
        }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 1))
        let first = Task { try await client.execute(HTTPRequest(url: server.baseURL + "/first")) }
        await server.wait { $0.requests >= 1 }
        let error = await #expect(throws: ExecutionError.self) {
            try await client.execute(HTTPRequest(url: server.baseURL + "/second"), deadline: .now + .milliseconds(100))
        }
        #expect(error?.code == .timedOut)
        #expect(error?.message.contains("free slot") == true)
        gate.open()
        #expect(try await first.value.status == 200)
        #expect(server.statistics.requests == 1)
    }

    @Test func aTimeoutCountsFromTheStartNotFromTheQueue() async throws {
        let server = try LoopbackHTTPServer { request in
            request.path == "/slow" ? .respondAfter(.milliseconds(400), .json("{}")) : .respond(.json("{}"))
        }
        defer { server.shutdown() }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 1))
        let slow = Task { try await client.execute(HTTPRequest(url: server.baseURL + "/slow"), timeout: .seconds(30)) }
        await server.wait { $0.requests >= 1 }
        // Queued for about 400 ms behind /slow, yet its 200 ms timeout only starts when it is sent.
        let fast = try await client.execute(HTTPRequest(url: server.baseURL + "/fast"), timeout: .milliseconds(200))
        #expect(fast.status == 200)
        #expect(try await slow.value.status == 200)
    }

    @Test func cancellingManyRunningAndQueuedRequestsLeavesTheClientWorking() async throws {
        let gate = LoopbackGate()
        let server = try LoopbackHTTPServer { request in
            request.path.hasPrefix("/held") ? .respondWhenOpen(gate, .json("{}")) : .respond(.json("{}"))
        }
        defer {
            gate.open()
            server.shutdown()
        }
        let client = HTTPClient(configuration: .init(maxConcurrentRequests: 16))
        let tasks = (0..<100).map { index in
            Task { try await client.execute(HTTPRequest(url: server.baseURL + "/held/\(index)")) }
        }
        await server.wait { $0.inFlight >= 16 }
        for task in tasks { task.cancel() }
        for task in tasks {
            let error = await #expect(throws: ExecutionError.self) { try await task.value }
            #expect(error?.code == .cancelled)
        }
        // Every request that reached the server (the 16 holding a slot, and any that got a freed slot before its
        // own cancellation) was aborted: the client hung up on each.
        await server.wait { $0.inFlight == 0 }
        #expect(server.statistics.requests >= 16)
        #expect(server.statistics.clientClosesWhileHeld == server.statistics.requests)
        let response = try await client.execute(HTTPRequest(url: server.baseURL + "/after"))
        #expect(response.status == 200)
    }

    @Test func aShutDownClientRefusesRequests() async throws {
        let client = HTTPClient()
        client.shutdown()
        let error = await #expect(throws: ExecutionError.self) {
            try await client.execute(HTTPRequest(url: "http://127.0.0.1:9/"))
        }
        #expect(error?.code == .cancelled)
    }

    @Test func credentialsAreRemovedFromURLs() {
        #expect(HTTPClient.redactedURL("http://user:pw@host:1/a@b") == "http://host:1/a@b")
        #expect(HTTPClient.redactedURL("https://host/path") == "https://host/path")
        #expect(HTTPClient.redactedURL("not a url") == "not a url")
    }
}
