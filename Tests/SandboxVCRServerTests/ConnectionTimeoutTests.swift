import Foundation
import NIOCore
import SandboxVCR
import SandboxVCRTestSupport
import Testing

@testable import SandboxVCRServer

/// Slow clients are timed out: idle connections, a request head sent a byte at a time (slowloris), a body sent
/// too slowly; a slow answer is not (issue 12 item 10). Client-side bounds are generous for a loaded machine.
@Suite struct ConnectionTimeoutTests {
    static let hello = #"{"code": "print(1)", "language": "python", "stdin": "hi"}"#

    /// A server whose timeouts are all short, except those `configure` changes.
    private func withShortTimeouts<T: Sendable>(
        executor: any SandboxExecutor = makeEchoExecutor(),
        idle: Duration? = .milliseconds(500), head: Duration? = .milliseconds(500),
        body: Duration? = .milliseconds(500),
        _ run: (RunningServer) async throws -> T
    ) async throws -> T {
        try await withServer(
            executor: executor,
            configure: {
                $0.idleTimeout = idle
                $0.requestHeadTimeout = head
                $0.requestBodyTimeout = body
            }, run)
    }

    @Test func anIdleConnectionIsClosedAfterTheIdleTimeout() async throws {
        try await withShortTimeouts(head: .seconds(60), body: .seconds(60)) { server in
            let port = server.port
            let (answered, silent, elapsed) = try await RawHTTP.onThread {
                () -> (answer: RawHTTPResponse, silentLeftover: [UInt8], elapsed: Duration) in
                // One connection serves a keep-alive request first, another never sends anything.
                let used = try RawHTTPConnection(port: port)
                let silent = try RawHTTPConnection(port: port)
                for connection in [used, silent] { connection.setReadTimeout(seconds: 30) }
                let start = ContinuousClock.now
                let answer = try used.exchange(RawHTTP.request(method: "GET", path: "/v1/ping", keepAlive: true))
                let leftover = try used.readUntilClosed()
                let elapsed = ContinuousClock.now - start
                #expect(leftover.isEmpty, "an idle connection is closed without an answer")
                return (answer, try silent.readUntilClosed(), elapsed)
            }
            #expect(answered.status == 200)
            #expect(silent.isEmpty)
            #expect(elapsed >= .milliseconds(400))
        }
    }

    @Test func aSlowlorisHeadIsAnswered408WhileOthersAreServed() async throws {
        try await withShortTimeouts(idle: .seconds(60), head: .seconds(1)) { server in
            let port = server.port
            let (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
            let slowloris = Task {
                try await RawHTTP.onThread { () -> (sent: Int, lastByteAt: Duration, answer: String) in
                    let connection = try RawHTTPConnection(port: port)
                    connection.setReadTimeout(seconds: 30)
                    let text =
                        "GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: \(String(repeating: "a", count: 4000))\r\n\r\n"
                    let head = Array(text.utf8)
                    let start = ContinuousClock.now
                    var sent = 0
                    var lastByteAt = Duration.zero
                    // A byte every 20 ms, which never completes the head in time, until the server answers.
                    while sent < head.count, !connection.waitForInput(seconds: 0.02) {
                        try connection.write([head[sent]])
                        sent += 1
                        lastByteAt = ContinuousClock.now - start
                        if sent == 3 { startedContinuation.finish() }
                    }
                    let answer = String(decoding: try connection.readUntilClosed(), as: UTF8.self)
                    return (sent, lastByteAt, answer)
                }
            }
            // Other clients are served while the slowloris sends.
            for await _ in started {}
            #expect(try await server.exchange(RawHTTP.request(method: "GET", path: "/v1/ping")).status == 200)
            #expect(try await server.postJSON("/run_code", Self.hello).status == 200)

            let (sent, lastByteAt, answer) = try await slowloris.value
            #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(answer)")
            #expect(answer.contains("connection: close"))
            #expect(answer.contains(#""detail":"Request Timeout: the request head did not arrive within 1 s""#))
            // Bytes kept coming up to the deadline, and the head was never complete.
            #expect(lastByteAt >= .milliseconds(500))
            #expect(sent < 4000)
        }
    }

    @Test func aSlowBodyIsAnswered408() async throws {
        try await withShortTimeouts(idle: .seconds(60), head: .seconds(60), body: .seconds(1)) { server in
            let port = server.port
            let (sent, lastByteAt, answer) = try await RawHTTP.onThread { () -> (Int, Duration, String) in
                let connection = try RawHTTPConnection(port: port)
                connection.setReadTimeout(seconds: 30)
                let body = Array(Self.hello.utf8) + [UInt8](repeating: 32, count: 4000)
                let head =
                    "POST /run_code HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.count)\r\n\r\n"
                try connection.write(Array(head.utf8))
                let start = ContinuousClock.now
                var sent = 0
                var lastByteAt = Duration.zero
                while sent < body.count, !connection.waitForInput(seconds: 0.02) {
                    try connection.write([body[sent]])
                    sent += 1
                    lastByteAt = ContinuousClock.now - start
                }
                return (sent, lastByteAt, String(decoding: try connection.readUntilClosed(), as: UTF8.self))
            }
            #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(answer)")
            #expect(answer.contains("the request body did not arrive within 1 s"))
            #expect(lastByteAt >= .milliseconds(500), "bytes kept coming")
            #expect(sent < 4000 + Self.hello.utf8.count, "the body was never complete")
        }
    }

    /// The answer to a request takes longer than every timeout (the executor holds it until a silent connection
    /// opened beside it was closed as idle, and one that sent a byte of a head was answered 408), and still arrives.
    @Test func aSlowAnswerIsNotCut() async throws {
        let gate = GateExecutor()
        try await withShortTimeouts(executor: gate) { server in
            let port = server.port
            let answer = Task { try await server.postJSON("/run_code", Self.hello) }
            await gate.waitUntilEntered(1)
            let (silent, partial) = try await RawHTTP.onThread { () -> ([UInt8], String) in
                let silent = try RawHTTPConnection(port: port)
                let partial = try RawHTTPConnection(port: port)
                for connection in [silent, partial] { connection.setReadTimeout(seconds: 30) }
                try partial.write(Array("G".utf8))
                return (try silent.readUntilClosed(), String(decoding: try partial.readUntilClosed(), as: UTF8.self))
            }
            #expect(silent.isEmpty)
            #expect(partial.hasPrefix("HTTP/1.1 408 "))
            gate.release(1)
            let response = try await answer.value
            #expect(response.status == 200)
            #expect(response.bodyText.contains(#""stdout":"hi""#))
        }
    }

    @Test func noTimeoutsKeepsIdleConnections() async throws {
        // nil is no limit: a connection outlives the short idle timeout of another server.
        try await withShortTimeouts(idle: nil) { server in
            let port = server.port
            let stillOpen = try await RawHTTP.onThread { () -> Bool in
                let connection = try RawHTTPConnection(port: port)
                return !connection.waitForInput(seconds: 1.5)
            }
            #expect(stillOpen)
        }
    }

    @Test func outOfRangeTimeoutsAreRefused() {
        for keyPath in [
            \ServeConfiguration.idleTimeout, \ServeConfiguration.requestHeadTimeout,
            \ServeConfiguration.requestBodyTimeout,
        ] {
            for value in [Duration.zero, .seconds(-1), .seconds(86_401)] {
                var configuration = ServeConfiguration()
                configuration[keyPath: keyPath] = value
                #expect(throws: ServeError.self) { try configuration.validate() }
            }
            var configuration = ServeConfiguration()
            configuration[keyPath: keyPath] = nil
            #expect(throws: Never.self) { try configuration.validate() }
        }
    }
}

/// The `serve` flags: out-of-range values are refused before the server starts.
@Suite struct ConnectionTimeoutFlagTests {
    @Test func outOfRangeTimeoutFlagsAreRefused() async throws {
        for flag in ["--idle-timeout", "--request-head-timeout", "--request-body-timeout"] {
            for value in ["-1", "1e300", "nan"] {
                let run = try await runSandboxVCR(["serve", "--backend", "fake", "\(flag)=\(value)", "--port", "0"])
                #expect(run.status != 0)
                #expect(run.errors.contains("timeout must be more than 0"), "\(flag) \(value): \(run.errors)")
            }
        }
    }
}

/// ``ConnectionDeadlineState``: which deadline runs when, with times given.
@Suite struct ConnectionDeadlineStateTests {
    let limits = ConnectionDeadlineState.Limits(idle: .seconds(60), head: .seconds(10), body: .seconds(30))
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    func at(_ seconds: Int64) -> NIODeadline { start + .seconds(seconds) }

    @Test func aNewConnectionIsIdleThenTimesItsHeadFromTheFirstByte() {
        var state = ConnectionDeadlineState(limits: limits, now: start)
        #expect(state.deadline?.phase == .idle)
        #expect(state.deadline?.at == at(60))
        state.requestBytesArrived(now: at(5))
        #expect(state.deadline?.phase == .head)
        #expect(state.deadline?.at == at(15))
        // More bytes do not move the head's deadline.
        state.requestBytesArrived(now: at(14))
        #expect(state.expired(at: at(15)) == .head)
        #expect(state.expired(at: at(14)) == nil)
    }

    @Test func theBodyIsTimedFromTheHeadAndTheAnswerIsNot() {
        var state = ConnectionDeadlineState(limits: limits, now: start)
        state.requestBytesArrived(now: at(1))
        state.headReceived(now: at(2))
        #expect(state.deadline?.phase == .body)
        #expect(state.deadline?.at == at(32))
        state.endReceived(now: at(3))
        #expect(state.isServerBusy)
        #expect(state.deadline == nil)
        #expect(state.expired(at: at(10_000)) == nil)
        state.answerHeadWritten()
        #expect(state.isAnswerStarted)
        state.answerEnded(now: at(500))
        #expect(!state.isAnswerStarted)
        #expect(state.deadline?.phase == .idle)
        #expect(state.deadline?.at == at(560))
    }

    @Test func aSlowReaderIsIdleOnlyWhenWritesStop() {
        var state = ConnectionDeadlineState(limits: limits, now: start)
        state.requestBytesArrived(now: at(0))
        state.headReceived(now: at(0))
        state.endReceived(now: at(0))
        state.answerEnded(now: at(1))
        state.writeCompleted(now: at(50))
        #expect(state.deadline?.at == at(110))
    }

    @Test func aPipelinedRequestIsTimedOnlyOnceTheEarlierOneIsAnswered() {
        var state = ConnectionDeadlineState(limits: limits, now: start)
        state.requestBytesArrived(now: at(0))
        state.headReceived(now: at(0))
        state.endReceived(now: at(0))
        // The next request's head arrives (or stalls, unread) while the first is answered.
        state.requestBytesArrived(now: at(1))
        #expect(state.deadline == nil)
        state.answerEnded(now: at(100))
        #expect(state.deadline?.phase == .head)
        #expect(state.deadline?.at == at(110))
        state.headReceived(now: at(101))
        #expect(state.deadline?.phase == .body)
    }

    @Test func anAnswerBeforeTheBodyEndsLeavesTheBodyTimed() {
        // A 413 is answered before the body was read: the client still owes the body, on the same deadline.
        var state = ConnectionDeadlineState(limits: limits, now: start)
        state.requestBytesArrived(now: at(0))
        state.headReceived(now: at(0))
        #expect(state.mayAnswerTimeout)
        state.answerHeadWritten()
        #expect(!state.mayAnswerTimeout)
        state.answerEnded(now: at(1))
        #expect(state.deadline?.phase == .body)
        #expect(state.deadline?.at == at(30))
        // It was answered: a timeout closes the connection without a second answer.
        #expect(!state.mayAnswerTimeout)
    }

    @Test func aMissingLimitTimesNothing() {
        var state = ConnectionDeadlineState(
            limits: .init(idle: nil, head: .seconds(1), body: nil), now: start)
        #expect(state.deadline == nil)
        state.requestBytesArrived(now: at(0))
        #expect(state.deadline?.phase == .head)
        state.headReceived(now: at(0))
        #expect(state.deadline == nil)
    }
}
