import BenchmarkSupport
import Foundation
import SandboxVCRTestSupport

/// Drives a `serve` process over loopback: keep-alive connections, each on a thread of its own, sending one request
/// in a loop.
struct ServeLoad {
    /// What one run measured.
    struct Figures {
        /// Each request's latency, in nanoseconds (in no particular order).
        var latencies: [Int]
        /// Request and response body bytes moved.
        var bodyBytes: Int
        var elapsed: Duration
    }

    /// The port of the server.
    let port: Int
    /// The whole HTTP request.
    let request: [UInt8]
    /// The offset of the request's variant digits, when each request is to be made distinct.
    let variantOffset: Int?
    /// The request body's length.
    let requestBodyBytes: Int
    /// The answer's body length, as ``check(_:stdoutBytes:)`` found it.
    var answerBodyBytes = 0

    /// A load of `body` POSTed to `/run_code`; `distinct` stamps each request's variant line (a new recording each).
    init(port: Int, body: [UInt8], distinct: Bool) throws {
        self.port = port
        request = RawHTTP.request(
            method: "POST", path: "/run_code", headers: [("Content-Type", "application/json")], body: body,
            keepAlive: true)
        requestBodyBytes = body.count
        if distinct {
            guard let offset = Payload.variantOffset(in: request) else {
                throw BenchmarkFailure("the request has no variant line")
            }
            variantOffset = offset
        } else {
            variantOffset = nil
        }
    }

    /// Sends one request (variant `variant`) and checks its answer in full: HTTP 200, a SandboxFusion success with
    /// `stdoutBytes` of stdout. Later answers of ``run(total:connections:firstVariant:)`` must have the same length.
    mutating func check(variant: Int, stdoutBytes: Int) async throws {
        let request = stamped(variant)
        let response = try await RawHTTP.exchange(port: port, request: request)
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        let stdout = (object?["run_result"] as? [String: Any])?["stdout"] as? String
        guard response.status == 200, object?["status"] as? String == "Success",
            stdout?.utf8.count == stdoutBytes
        else {
            let text = String(decoding: response.body.prefix(600), as: UTF8.self)
            throw BenchmarkFailure("unexpected answer (HTTP \(response.status)): \(text)")
        }
        answerBodyBytes = response.body.count
    }

    /// Sends `total` requests over `connections` keep-alive connections, one thread each; when the load is distinct,
    /// each request gets a variant of its own, from `firstVariant` up. The clock starts once every connection is open
    /// and its thread running, so that the figures are those of a steady load, not of threads and connections starting.
    /// - Throws: ``BenchmarkFailure`` on an answer other than 200, or one whose length differs from the checked one.
    func run(total: Int, connections: Int = 64, firstVariant: Int = 0) async throws -> Figures {
        let expectedLength = answerBodyBytes
        let startLine = StartLine(threads: connections)
        let latencies = try await withThrowingTaskGroup(of: [Int].self) { group in
            for connection in 0..<connections {
                let count = total / connections + (connection < total % connections ? 1 : 0)
                group.addTask {
                    try await RawHTTP.onThread {
                        var request = request
                        let socket: RawHTTPConnection
                        do {
                            socket = try RawHTTPConnection(port: port)
                        } catch {
                            startLine.arrive()
                            throw error
                        }
                        startLine.arrive()
                        var latencies: [Int] = []
                        latencies.reserveCapacity(count)
                        for index in 0..<count {
                            if let variantOffset {
                                let variant = firstVariant + connection + index * connections
                                Payload.stamp(variant, into: &request, at: variantOffset)
                            }
                            let start = ContinuousClock.now
                            let response = try socket.exchange(request)
                            latencies.append((ContinuousClock.now - start).nanoseconds)
                            guard response.status == 200, response.body.count == expectedLength else {
                                throw BenchmarkFailure(
                                    "HTTP \(response.status), \(response.body.count) bytes (expected \(expectedLength)): "
                                        + String(decoding: response.body.prefix(600), as: UTF8.self))
                            }
                        }
                        return latencies
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
        return Figures(
            latencies: latencies, bodyBytes: total * (requestBodyBytes + answerBodyBytes),
            elapsed: ContinuousClock.now - startLine.start)
    }

    private func stamped(_ variant: Int) -> [UInt8] {
        var request = request
        if let variantOffset { Payload.stamp(variant, into: &request, at: variantOffset) }
        return request
    }
}

/// Holds a load's threads until every one of them has arrived, then lets them all go at once.
private final class StartLine: @unchecked Sendable {
    private let condition = NSCondition()
    /// Threads still to arrive.
    private var missing: Int
    private var released: ContinuousClock.Instant?

    init(threads: Int) { missing = threads }

    /// Waits until every thread has arrived.
    func arrive() {
        condition.lock()
        defer { condition.unlock() }
        missing -= 1
        if missing == 0 {
            released = .now
            condition.broadcast()
        }
        while released == nil { condition.wait() }
    }

    /// When the last thread arrived (call once every thread has).
    var start: ContinuousClock.Instant {
        condition.lock()
        defer { condition.unlock() }
        return released ?? .now
    }
}
