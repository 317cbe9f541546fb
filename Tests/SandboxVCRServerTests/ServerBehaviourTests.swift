import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import SandboxVCRTesting
import Synchronization
import Testing

@testable import SandboxVCRServer

/// The server over real loopback HTTP: errors, limits, statistics, shutdown.
@Suite("Server behaviour over loopback HTTP")
struct ServerBehaviourTests {
    private let hello = #"{"code": "print(1)", "language": "python", "stdin": "in"}"#

    @Test func answersFromTheExecutor() async throws {
        let response = try await withServer(executor: makeEchoExecutor()) { server in
            try await server.postJSON("/run_code", hello)
        }
        #expect(response.status == 200)
        #expect(
            response.bodyText
                == #"{"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished","#
                + #""execution_time":0.5,"return_code":0,"stdout":"in","stderr":""},"executor_pod_name":null,"#
                + #""files":{}}"#)
    }

    @Test func replayMissIsASandboxErrorWithTheDiagnostics() async throws {
        let diagnostics =
            "no recorded answer for python code (8 bytes); nearest: stdin differs; record with --record missing"
        let (response, stats) = try await withServer(
            executor: makeFailingExecutor(testReplayMiss(diagnostics: diagnostics))
        ) {
            server in (try await server.postJSON("/run_code", hello), server.server.statistics.snapshot)
        }
        #expect(response.status == 200)
        let answer = try parseJSON(response.body)
        #expect(answer["status"] == "SandboxError")
        #expect(answer["message"] == .string(diagnostics))
        #expect(answer["run_result"] == .null)
        #expect(stats.misses == 1)
        #expect(stats.errors == 0)
    }

    /// How upstream failures are answered (see the table on `SandboxFusionServer`).
    @Test(arguments: [
        (ExecutionError(code: .connectionRefused, message: "nothing listens at 127.0.0.1:9"), 502),
        (ExecutionError(code: .timedOut, message: "no answer in 10s"), 504),
        (ExecutionError(code: .httpStatus, message: "upstream said 500", httpStatus: 500), 502),
        (ExecutionError(code: .unmatchedRequest, message: "no fake rule matches"), 200),
        (ExecutionError(code: .sandboxError, message: "the sandbox failed"), 200),
        (ExecutionError(code: .configuration, message: "bad URL"), 500),
    ])
    func upstreamFailures(error: ExecutionError, status: Int) async throws {
        let response = try await withServer(executor: makeFailingExecutor(error)) { server in
            try await server.postJSON("/run_code", hello)
        }
        #expect(response.status == status)
        let answer = try parseJSON(response.body)
        if status == 200 {
            #expect(answer["status"] == "SandboxError")
            #expect(answer["message"] == .string(error.message))
        } else {
            #expect(answer["detail"]?.stringValue?.contains(error.message) == true, "\(response.bodyText)")
        }
    }

    @Test func upstreamValidationErrorPassesThrough() async throws {
        let error = ExecutionError(
            code: .httpStatus, message: "422", httpStatus: 422,
            validationIssues: [.init(type: "missing", location: ["body", "files", "0"], message: "Field required")])
        let response = try await withServer(executor: makeFailingExecutor(error)) { server in
            try await server.postJSON("/run_code", hello)
        }
        #expect(response.status == 422)
        #expect(
            response.bodyText == #"{"detail":[{"type":"missing","loc":["body","files",0],"msg":"Field required"}]}"#)
    }

    @Test func statisticsCountEveryKindOfRequest() async throws {
        let response = try await withServer(executor: makeEchoExecutor()) { server in
            _ = try await server.postJSON("/run_code", hello)
            _ = try await server.postJSON("/run_code", hello)
            _ = try await server.postJSON("/run_code", #"{"code": 1}"#)
            _ = try await server.exchange(RawHTTP.request(method: "GET", path: "/v1/ping"))
            _ = try await server.exchange(RawHTTP.request(method: "GET", path: "/missing"))
            return try await server.exchange(RawHTTP.request(method: "GET", path: "/stats"))
        }
        #expect(response.status == 200)
        #expect(
            response.bodyText
                == #"{"requests":6,"hits":0,"misses":0,"recorded":0,"live":2,"fake":0,"errors":0,"rejected":2,"#
                + #""by_endpoint":{"GET /stats":1,"GET /v1/ping":1,"POST /run_code":3,"other":1}}"#)
    }

    @Test func theExecutorsOutcomeIsCounted() async throws {
        let hits = OutcomeExecutor(inner: makeEchoExecutor(), source: .hit)
        let stats = try await withServer(executor: hits) { server in
            _ = try await server.postJSON("/run_code", hello)
            return server.server.statistics.snapshot
        }
        #expect(stats.hits == 1)
        #expect(stats.live == 0)
    }

    @Test func bodyOverTheLimitIsRefused() async throws {
        let big = #"{"code": ""# + String(repeating: "x", count: 5000) + #"", "language": "python"}"#
        let executor = makeEchoExecutor()
        let (declared, chunked, small) = try await withServer(executor: executor, configure: { $0.maxBodyBytes = 1000 })
        {
            server in
            let declared = try await server.postJSON("/run_code", big)
            // A chunked upload has no Content-Length: the server must stop reading at the limit.
            var chunkedRequest = Array(
                "POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .utf8)
            for chunk in stride(from: 0, to: big.utf8.count, by: 700) {
                let part = Array(big.utf8)[chunk..<min(chunk + 700, big.utf8.count)]
                chunkedRequest += Array((String(part.count, radix: 16) + "\r\n").utf8) + part + Array("\r\n".utf8)
            }
            chunkedRequest += Array("0\r\n\r\n".utf8)
            let chunked = try await server.exchange(chunkedRequest)
            let small = try await server.postJSON("/run_code", hello)
            return (declared, chunked, small)
        }
        for response in [declared, chunked] {
            #expect(response.status == 413)
            #expect(try parseJSON(response.body)["detail"]?.stringValue?.contains("--max-body-bytes") == true)
        }
        #expect(small.status == 200)
        #expect(executor.requests.count == 1)
    }

    @Test func jupyterIsValidatedThenAnsweredAsUnsupported() async throws {
        let (invalid, unsupported) = try await withServer(executor: makeEchoExecutor()) { server in
            (
                try await server.postJSON("/run_jupyter", #"{"cells": "a"}"#),
                try await server.postJSON("/run_jupyter", #"{"cells": ["a = 1"]}"#)
            )
        }
        #expect(invalid.status == 422)
        #expect(try parseJSON(invalid.body)["detail"]?.pythonJSONText.contains("list_type") == true)
        #expect(unsupported.status == 200)
        let answer = try parseJSON(unsupported.body)
        #expect(answer["status"] == "SandboxError")
        #expect(answer["message"]?.stringValue?.contains("/run_jupyter") == true)
    }

    @Test func jupyterHandlerAnswers() async throws {
        let response = try await withServer(
            executor: makeEchoExecutor(),
            jupyterHandler: { body in ["status": "Success", "cells": body["cells"] ?? .null] }
        ) { server in
            try await server.postJSON("/run_jupyter", #"{"cells": ["a = 1"]}"#)
        }
        #expect(response.bodyText == #"{"status":"Success","cells":["a = 1"]}"#)
    }

    @Test func nonLoopbackBindNeedsPermission() throws {
        var configuration = ServeConfiguration()
        configuration.host = "0.0.0.0"
        #expect(throws: ServeError.self) { try configuration.validate() }
        configuration.allowsRemoteBind = true
        try configuration.validate()
        configuration.host = "127.0.0.2"
        configuration.allowsRemoteBind = false
        try configuration.validate()
    }

    @Test func readyFileIsWrittenWhole() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("serve-ready-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("ready").path
        try ServeAddress(host: "127.0.0.1", port: 4242).writeReadyFile(to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "http://127.0.0.1:4242\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["ready"])
        #expect(throws: ServeError.self) {
            try ServeAddress(host: "127.0.0.1", port: 1).writeReadyFile(to: "/nonexistent/x")
        }
    }

    @Test func concurrentExecutorCallsStayWithinTheLimit() async throws {
        let gate = GateExecutor()
        let statuses = try await withServer(executor: gate, configure: { $0.maxConcurrency = 2 }) { server in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await server.postJSON("/run_code", hello).status }
                }
                await gate.waitUntilEntered(2)
                // Every request has arrived and waits for a slot before the first two are released.
                while server.server.statistics.snapshot.requests < 6 { await Task.yield() }
                #expect(gate.inside == 2)
                #expect(server.server.limiter.activeCount == 2)
                for entered in 3...6 {
                    gate.release(1)
                    await gate.waitUntilEntered(entered)
                }
                gate.release(2)
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        #expect(statuses == Array(repeating: 200, count: 6))
        #expect(gate.maxInside == 2)
    }

    @Test func gracefulShutdownAnswersInFlightRequestsThenRunsTheHook() async throws {
        let gate = GateExecutor()
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(executor: gate, configuration: configuration)
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task {
            try await server.run(
                onReady: { readyContinuation.yield($0.port) },
                onShutdown: { gate.note("shutdown hook") })
        }
        var iterator = ready.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let body = hello
        let requests = (0..<3).map { _ in
            Task { try await RawHTTP.exchange(port: port, request: RawHTTP.postJSON(path: "/run_code", body: body)) }
        }
        await gate.waitUntilEntered(3)
        let shutdown = Task { await server.triggerGracefulShutdown() }
        await shutdown.value
        gate.release(3)
        var statuses: [Int] = []
        for request in requests { statuses.append(try await request.value.status) }
        try await running.value
        #expect(statuses == [200, 200, 200])
        #expect(gate.events == ["finished", "finished", "finished", "shutdown hook"])
        // After shutdown nothing listens any more.
        await #expect(throws: (any Error).self) {
            try await RawHTTP.exchange(port: port, request: RawHTTP.request(method: "GET", path: "/v1/ping"))
        }
    }

    @Test(.timeLimit(.minutes(1))) func shutdownAskedBeforeRunStillStopsAndRunsTheHook() async throws {
        var configuration = ServeConfiguration()
        configuration.port = 0
        let server = SandboxFusionServer(executor: makeEchoExecutor(), configuration: configuration)
        await server.triggerGracefulShutdown()
        let hookRuns = Mutex(0)
        try await server.run(onShutdown: { hookRuns.withLock { $0 += 1 } })
        #expect(hookRuns.withLock { $0 } == 1)
    }

    /// After a 413 on a keep-alive connection the server either goes on with the next request or closes the
    /// connection; it never reads the refused body as a new request.
    @Test func keepAliveConnectionAfterRefusedBody() async throws {
        let big = #"{"code": ""# + String(repeating: "x", count: 5000) + #"", "language": "python"}"#
        let outcome = try await withServer(executor: makeEchoExecutor(), configure: { $0.maxBodyBytes = 1000 }) {
            server in
            let port = server.port
            return try await RawHTTP.onThread { () -> (Int, String) in
                let connection = try RawHTTPConnection(port: port)
                let refused = try connection.exchange(
                    RawHTTP.request(
                        method: "POST", path: "/run_code", headers: [("Content-Type", "application/json")],
                        body: Array(big.utf8), keepAlive: true))
                do {
                    let next = try connection.exchange(
                        RawHTTP.request(method: "GET", path: "/v1/ping", keepAlive: true))
                    return (refused.status, "\(next.status) \(next.bodyText)")
                } catch {
                    return (refused.status, "closed")
                }
            }
        }
        #expect(outcome.0 == 413)
        #expect(outcome.1 == #"200 "pong""# || outcome.1 == "closed", "\(outcome.1)")
    }
}
