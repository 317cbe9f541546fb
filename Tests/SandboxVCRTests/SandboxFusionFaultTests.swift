import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Synchronization
import Testing

@Suite("SandboxFusion: faults, retries, limits and endpoints over loopback", .timeLimit(.minutes(1)))
struct SandboxFusionFaultTests {
    static let hello = ExecutionRequest(code: "print(\"hello world\")", language: .python)

    static var helloAnswer: LoopbackHTTPServer.Response {
        get throws { .json(try SandboxFusionTestFixtures.sample("01").responseBody) }
    }

    @Test func a503ThenA200IsRetriedAndSucceeds() async throws {
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { request in
            request.sequenceNumber == 1 ? .respond(.json(status: 503, "{\"detail\":\"busy\"}")) : .respond(answer)
        }
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(Self.hello)
        #expect(result.stdoutText == "hello world\n")
        #expect(server.statistics.requests == 2)
    }

    @Test func retriesStopAtMaxAttempts() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json(status: 502, "bad gateway")) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server, maxAttempts: 4).execute(Self.hello)
        }
        #expect(error?.httpStatus == 502)
        #expect(error?.attempts == 4)
        #expect(server.statistics.requests == 4)
    }

    @Test func a400IsNeverRetried() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json(status: 400, "{\"detail\":\"bad request\"}")) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server, maxAttempts: 5).execute(Self.hello)
        }
        #expect(error?.code == .httpStatus)
        #expect(error?.httpStatus == 400)
        #expect(error?.attempts == 1)
        #expect(error?.message.contains("bad request") == true)
        #expect(server.statistics.requests == 1)
    }

    @Test func aDroppedConnectionIsRetried() async throws {
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { request in
            request.sequenceNumber == 1 ? .dropConnection : .respond(answer)
        }
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(Self.hello)
        #expect(result.isSuccess)
        #expect(server.statistics.requests == 2)
    }

    @Test func aDroppedConnectionWithoutRetriesIsConnectionReset() async throws {
        let server = try LoopbackHTTPServer { _ in .dropConnection }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server, maxAttempts: 1).execute(Self.hello)
        }
        #expect(error?.code == .connectionReset)
        #expect(server.statistics.requests == 1)
    }

    @Test func aGarbageBodyIsUndecodable() async throws {
        let server = try LoopbackHTTPServer { _ in .respond(.json("<html>definitely not json</html>")) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server).execute(Self.hello)
        }
        #expect(error?.code == .undecodableResponse)
        #expect(error?.message.contains("definitely not json") == true)
        #expect(server.statistics.requests == 1)
    }

    @Test func garbageInsteadOfHTTPIsATransportErrorAndNotRetried() async throws {
        let server = try LoopbackHTTPServer { _ in .sendRaw(Data("\u{1}\u{2}garbage\r\n\r\n".utf8)) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server).execute(Self.hello)
        }
        #expect(error?.code == .transport)
        #expect(server.statistics.requests == 1)
    }

    @Test func aBodyCutShortIsConnectionReset() async throws {
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { _ in .cutBodyShort(answer, sentBytes: 40) }
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server, maxAttempts: 2).execute(Self.hello)
        }
        #expect(error?.code == .connectionReset)
        #expect(error?.attempts == 2)
        #expect(server.statistics.requests == 2)
    }

    @Test func aServerSlowerThanTheDeadlineTimesOutWithoutRetry() async throws {
        let gate = LoopbackGate()
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, answer) }
        defer {
            gate.open()
            server.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(server, requestTimeout: .milliseconds(200))
        let error = await #expect(throws: ExecutionError.self) { try await executor.execute(Self.hello) }
        #expect(error?.code == .timedOut)
        #expect(server.statistics.requests == 1)
    }

    @Test func nothingListeningIsRefusedAfterEveryAttempt() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let port = refusing.port
        let executor = SandboxFusionExecutor(
            configuration: .init(
                endpoints: ["http://127.0.0.1:\(port)"],
                retryPolicy: .init(maxAttempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2))))
        let error = await #expect(throws: ExecutionError.self) { try await executor.execute(Self.hello) }
        #expect(error?.code == .connectionRefused)
        #expect(error?.attempts == 3)
        #expect(error?.url == "http://127.0.0.1:\(port)/run_code")
    }

    @Test func twoHundredRequestsWithLimitEightNeverExceedEight() async throws {
        let gate = LoopbackGate()
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, answer) }
        defer {
            gate.open()
            server.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(server, maxConcurrency: 8)
        async let results: [ExecutionResult] = withThrowingTaskGroup(of: ExecutionResult.self) { group in
            for _ in 0..<200 { group.addTask { try await executor.execute(Self.hello) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        await server.wait { $0.inFlight >= 8 }
        gate.open()
        let all = try await results
        #expect(all.count == 200)
        #expect(all.allSatisfy { $0.isSuccess })
        #expect(server.statistics.requests == 200)
        #expect(server.statistics.maxInFlight == 8)
    }

    @Test func cancellingATaskAbortsItsTransfer() async throws {
        let gate = LoopbackGate()
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, answer) }
        defer {
            gate.open()
            server.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(server)
        let task = Task { try await executor.execute(Self.hello) }
        await server.wait { $0.requests >= 1 }
        task.cancel()
        let error = await #expect(throws: ExecutionError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        await server.wait { $0.clientClosesWhileHeld >= 1 }
        #expect(server.statistics.requests == 1)
    }

    @Test func cancellingAQueuedTaskLeavesTheQueue() async throws {
        let gate = LoopbackGate()
        let answer = try Self.helloAnswer
        let server = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, answer) }
        defer {
            gate.open()
            server.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(server, maxConcurrency: 1)
        let first = Task { try await executor.execute(Self.hello) }
        await server.wait { $0.requests >= 1 }
        let queued = Task { try await executor.execute(Self.hello) }
        queued.cancel()
        let error = await #expect(throws: ExecutionError.self) { try await queued.value }
        #expect(error?.code == .cancelled)
        gate.open()
        #expect(try await first.value.isSuccess)
        #expect(server.statistics.requests == 1)
    }

    @Test func severalEndpointsShareTheLoad() async throws {
        let answer = try Self.helloAnswer
        let first = try LoopbackHTTPServer { _ in .respond(answer) }
        let second = try LoopbackHTTPServer { _ in .respond(answer) }
        defer {
            first.shutdown()
            second.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(first, second)
        for _ in 0..<20 { _ = try await executor.execute(Self.hello) }
        #expect(first.statistics.requests == 10)
        #expect(second.statistics.requests == 10)
        // Concurrent requests spread too.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 { group.addTask { _ = try await executor.execute(Self.hello) } }
            try await group.waitForAll()
        }
        #expect(first.statistics.requests + second.statistics.requests == 60)
        #expect(first.statistics.requests >= 20)
        #expect(second.statistics.requests >= 20)
    }

    @Test func aBusyEndpointGetsTheNextRequestElsewhere() async throws {
        let gate = LoopbackGate()
        let answer = try Self.helloAnswer
        let slow = try LoopbackHTTPServer { _ in .respondWhenOpen(gate, answer) }
        let fast = try LoopbackHTTPServer { _ in .respond(answer) }
        defer {
            gate.open()
            slow.shutdown()
            fast.shutdown()
        }
        let executor = SandboxFusionTestFixtures.executor(slow, fast)
        let held = Task { try await executor.execute(Self.hello) }
        await slow.wait { $0.requests >= 1 }
        for _ in 0..<5 { _ = try await executor.execute(Self.hello) }
        #expect(fast.statistics.requests == 5)
        #expect(slow.statistics.requests == 1)
        gate.open()
        #expect(try await held.value.isSuccess)
    }
}
