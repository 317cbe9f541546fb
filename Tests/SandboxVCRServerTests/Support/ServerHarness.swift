import Foundation
import Logging
import SandboxVCR
import SandboxVCRTestSupport
import SandboxVCRTesting
import Synchronization
import Testing

@testable import SandboxVCRServer

/// The repository root (the folder holding Package.swift), found from this file's path.
let repositoryRoot: URL = CommandRunner.packageRoot()

/// A server running in this process on a free loopback port, for one test.
struct RunningServer: Sendable {
    let server: SandboxFusionServer
    let port: Int

    func exchange(_ request: [UInt8]) async throws -> RawHTTPResponse {
        try await RawHTTP.exchange(port: port, request: request)
    }

    func postJSON(_ path: String, _ body: String) async throws -> RawHTTPResponse {
        try await exchange(RawHTTP.postJSON(path: path, body: body))
    }
}

/// Starts a server over `executor` on port 0, runs `body`, then shuts the server down gracefully and waits for it.
func withServer<T: Sendable>(
    executor: any SandboxExecutor,
    configure: (inout ServeConfiguration) -> Void = { _ in },
    jupyterHandler: SandboxFusionServer.JupyterHandler? = nil,
    onShutdown: @escaping @Sendable () async throws -> Void = {},
    _ body: (RunningServer) async throws -> T
) async throws -> T {
    var configuration = ServeConfiguration()
    configuration.port = 0
    configure(&configuration)
    let server = SandboxFusionServer(
        executor: executor, configuration: configuration, jupyterHandler: jupyterHandler)
    return try await withRunning(server, onShutdown: onShutdown, body)
}

/// Runs `server` (configured for port 0), runs `body` once it listens, then shuts it down gracefully and waits.
func withRunning<T: Sendable>(
    _ server: SandboxFusionServer, onShutdown: @escaping @Sendable () async throws -> Void = {},
    _ body: (RunningServer) async throws -> T
) async throws -> T {
    let (ready, readyContinuation) = AsyncStream.makeStream(of: Int.self)
    let running = Task {
        try await server.run(
            onReady: { address in
                readyContinuation.yield(address.port)
                readyContinuation.finish()
            },
            onShutdown: onShutdown)
    }
    var iterator = ready.makeAsyncIterator()
    guard let port = await iterator.next() else {
        try await running.value
        throw RawHTTPError(description: "the server stopped before listening")
    }
    do {
        let value = try await body(RunningServer(server: server, port: port))
        await server.triggerGracefulShutdown()
        try await running.value
        return value
    } catch {
        await server.triggerGracefulShutdown()
        try? await running.value
        throw error
    }
}

/// Success with stdout = stdin, as SandboxFusion reports it.
func echoResult(for request: ExecutionRequest) -> ExecutionResult {
    ExecutionResult(
        status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: request.stdin, wallTime: 0.5),
        backend: .sandboxFusion)
}

/// A fake that answers every request with ``echoResult(for:)`` and records the requests it receives.
func makeEchoExecutor() -> FakeExecutor {
    FakeExecutor(default: .respond(label: "echo stdin") { echoResult(for: $0) })
}

/// A fake that throws `error` for every request.
func makeFailingExecutor(_ error: any Error & Sendable) -> FakeExecutor {
    FakeExecutor(default: .respond(label: "throw \(error)") { _ in throw error })
}

/// A cassette miss whose message is `diagnostics`.
func testReplayMiss(diagnostics: String) -> CassetteError {
    CassetteError(code: .miss, message: diagnostics, path: "test.sqlite")
}

/// Answers like `inner`, and says the answer came from `source` (with that key prefix and live duration), as a
/// recording executor would.
struct OutcomeExecutor: SandboxExecutor {
    var inner: any SandboxExecutor
    var source: ExecutionOutcome.Source
    var key: ContentHash?
    var liveDuration: Duration?

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        try await outcome(of: request).result.get()
    }

    func outcome(of request: ExecutionRequest) async -> ExecutionOutcome {
        var outcome = await inner.outcome(of: request)
        outcome.source = source
        outcome.key = key
        outcome.liveDuration = liveDuration
        return outcome
    }
}

/// Blocks every call until released, and tracks how many calls are inside at once; then answers with
/// ``echoResult(for:)``.
final class GateExecutor: SandboxExecutor {
    private struct State {
        var inside = 0
        var maxInside = 0
        var entered = 0
        var finished = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
        var releasedPermits = 0
        var events: [String] = []
        var enteredWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    var maxInside: Int { state.withLock { $0.maxInside } }
    var inside: Int { state.withLock { $0.inside } }
    var finished: Int { state.withLock { $0.finished } }
    var events: [String] { state.withLock { $0.events } }

    func note(_ event: String) { state.withLock { $0.events.append(event) } }

    /// Waits until `count` calls in all have entered the executor.
    func waitUntilEntered(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let isDone = state.withLock { state in
                if state.entered >= count { return true }
                state.enteredWaiters.append((count, continuation))
                return false
            }
            if isDone { continuation.resume() }
        }
    }

    /// Lets `count` more calls finish (the oldest waiting first).
    func release(_ count: Int) {
        let toResume = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.releasedPermits += count
            let resumable = min(state.releasedPermits, state.waiting.count)
            state.releasedPermits -= resumable
            let resumed = Array(state.waiting.prefix(resumable))
            state.waiting.removeFirst(resumable)
            return resumed
        }
        for continuation in toResume { continuation.resume() }
    }

    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        await withCheckedContinuation { continuation in
            let (ready, resumeNow) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool) in
                state.inside += 1
                state.maxInside = max(state.maxInside, state.inside)
                state.entered += 1
                let entered = state.entered
                let ready = state.enteredWaiters.filter { $0.count <= entered }.map(\.continuation)
                state.enteredWaiters.removeAll { $0.count <= entered }
                if state.releasedPermits > 0 {
                    state.releasedPermits -= 1
                    return (ready, true)
                }
                state.waiting.append(continuation)
                return (ready, false)
            }
            for waiter in ready { waiter.resume() }
            if resumeNow { continuation.resume() }
        }
        state.withLock { state in
            state.inside -= 1
            state.finished += 1
            state.events.append("finished")
        }
        return echoResult(for: request)
    }
}

/// Parses JSON the way the server does (key order kept).
func parseJSON(_ bytes: [UInt8]) throws -> JSONValue {
    guard let value = try PythonJSONParser.parse(bytes) else { throw RawHTTPError(description: "not UTF-8") }
    return value
}

func parseJSON(_ text: String) throws -> JSONValue { try parseJSON(Array(text.utf8)) }

extension JSONValue {
    /// The element at `index` of an array, or `nil`.
    subscript(index: Int) -> JSONValue? {
        guard case .array(let elements) = self, elements.indices.contains(index) else { return nil }
        return elements[index]
    }
}
