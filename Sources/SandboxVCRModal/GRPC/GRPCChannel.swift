package import Foundation
package import Logging
package import ModalProto
package import SandboxVCR
package import SwiftProtobuf

/// gRPC calls over the package's libcurl `HTTPClient`: HTTP/2 (TLS with ALPN for `https://`, cleartext with
/// prior knowledge for `http://`), message framing, metadata, trailers and trailers-only answers, deadlines
/// (`grpc-timeout` plus the transport deadline), cancellation, and retries with backoff as Modal's SDKs do.
///
/// Streaming answers are read whole: a stream's messages arrive when it ends (Modal's streams end by themselves).
package final class GRPCChannel: Sendable {
    /// One try's answer: the messages received and how the call ended (`nil`: `OK`).
    package struct Answer: Sendable {
        package var messages: [Data]
        package var status: GRPCStatusError?
    }

    /// The server's base URL, e.g. `https://api.modal.com` or `http://127.0.0.1:40123`.
    package let baseURL: String
    private let http: HTTPClient
    private let logger: Logger

    /// - Parameters:
    ///   - baseURL: scheme, host and port; `http://` means cleartext HTTP/2 with prior knowledge.
    ///   - http: the transport (shared by channels).
    ///   - logger: logs each call's method and outcome at `debug` level (never metadata values).
    package init(baseURL: String, http: HTTPClient, logger: Logger) {
        var trimmed = baseURL
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.baseURL = trimmed
        self.http = http
        self.logger = logger
    }

    /// Whether this process's libcurl (before 8.1) can drop the trailers, so the `grpc-status`, of a call whose
    /// HTTP/2 stream is multiplexed beside others on one connection; the answer then looks whole, with
    /// ``GRPCStatusError/isStatusMissing`` set. Such calls that are safe to repeat are sent again
    /// (``call(path:body:metadata:timeout:retry:idempotencyKeys:isSafeToRepeat:)``); the others go on a connection
    /// of their own, where nothing runs beside them.
    package static var losesStatusOfMultiplexedCalls: Bool { HTTPClient.losesTrailersOfMultiplexedStreams }

    /// One try of a call, without retries.
    ///
    /// - Parameters:
    ///   - isSafeToRepeat: whether sending the call twice does no harm (``ModalCallSafety``); one that is not goes on
    ///     a connection of its own where ``losesStatusOfMultiplexedCalls``.
    /// - Returns: the messages and the final status (a failed status is returned, not thrown; a missing one is
    ///   `UNKNOWN` with ``GRPCStatusError/isStatusMissing``).
    /// - Throws: ``ExecutionError`` for transport failures; libcurl's HTTP/2 stream error (92) without a status
    ///   comes back as an `UNAVAILABLE` answer, so callers retry it.
    package func attempt(path: String, body: Data, metadata: HTTPHeaders, timeout: Duration, isSafeToRepeat: Bool)
        async throws -> Answer
    {
        try await attempt(
            path: path, body: body, metadata: metadata, timeout: timeout, isSafeToRepeat: isSafeToRepeat, sink: nil)
    }

    /// One try of a server-streaming call whose messages are handed to `onMessage` as they arrive (never held
    /// whole), without retries.
    ///
    /// A stream that ended whole without its status (``GRPCStatusError/isStatusMissing``) delivered every message
    /// it carried: a caller that reads from an offset reconnects at the offset it has reached.
    ///
    /// - Returns: the final status (`nil`: `OK`).
    /// - Throws: ``ExecutionError`` as ``attempt(path:body:metadata:timeout:isSafeToRepeat:)`` does.
    package func attemptStreaming(
        path: String, body: Data, metadata: HTTPHeaders, timeout: Duration, isSafeToRepeat: Bool = true,
        onMessage: @escaping @Sendable (Data) -> Void
    ) async throws -> GRPCStatusError? {
        let decoder = GRPCFrameDecoder(onMessage: onMessage)
        let answer = try await attempt(
            path: path, body: body, metadata: metadata, timeout: timeout, isSafeToRepeat: isSafeToRepeat,
            sink: HTTPBodySink { decoder.feed($0) })
        if let failure = decoder.failure { return failure }
        guard var status = answer.status else { return nil }
        if status.isStatusMissing, decoder.pendingBytes > 0 {
            // It broke in the middle of a message: not a whole answer.
            status.isStatusMissing = false
            status.message = "the stream ended in the middle of a message without a grpc-status"
        }
        return status
    }

    private func attempt(
        path: String, body: Data, metadata: HTTPHeaders, timeout: Duration, isSafeToRepeat: Bool,
        sink: HTTPBodySink?
    ) async throws -> Answer {
        var headers: HTTPHeaders = [
            "content-type": "application/grpc",
            "te": "trailers",
            "grpc-timeout": GRPCFraming.timeoutHeader(timeout),
        ]
        for field in metadata { headers.add(name: field.name, value: field.value) }
        let request = HTTPRequest(
            method: "POST", url: baseURL + path, headers: headers, body: GRPCFraming.frame(body),
            httpVersion: baseURL.hasPrefix("https://") ? .http2 : .http2PriorKnowledge, bodySink: sink,
            usesOwnConnection: !isSafeToRepeat && Self.losesStatusOfMultiplexedCalls)
        let response: HTTPResponse
        do {
            response = try await http.execute(request, deadline: .now + timeout + .seconds(2))
        } catch let error as ExecutionError where error.code == .transport && error.message.contains("(curl 92)") {
            logger.debug("gRPC stream error without status", metadata: ["path": "\(path)"])
            return Answer(
                messages: [],
                status: GRPCStatusError(
                    code: .unavailable, message: "HTTP/2 stream error before the status arrived (curl 92)", path: path))
        } catch let error as ExecutionError
            where isSafeToRepeat && error.code == .transport && error.message.contains("(curl 16)")
        {
            // libcurl 7.88 sends RST_STREAM for each stream it has finished; a server that counts those as stream
            // errors (SwiftNIO's HTTP/2, so `serve`, allows 200 per connection) ends the shared connection with
            // GOAWAY ENHANCE_YOUR_CALM, and the calls still on it fail with curl 16. A call safe to repeat is tried
            // again (on another connection); the others never share one where that matters (usesOwnConnection).
            logger.debug("gRPC connection error without status", metadata: ["path": "\(path)"])
            return Answer(
                messages: [],
                status: GRPCStatusError(
                    code: .unavailable, message: "HTTP/2 connection error before the status arrived (curl 16)",
                    path: path))
        }
        let (messages, incompleteBytes) = try GRPCFraming.messages(in: response.body)
        let status = Self.status(of: response, path: path, isBodyWhole: incompleteBytes == 0)
        logger.debug(
            "gRPC call", metadata: ["path": "\(path)", "status": "\(status?.code.description ?? "OK")"])
        return Answer(messages: messages, status: status)
    }

    /// The call's final status from its trailers, or from the headers of a trailers-only answer.
    ///
    /// - Parameter isBodyWhole: whether the body held whole messages only (no cut-off last frame); a whole HTTP 200
    ///   answer without any `grpc-status` is `UNKNOWN` with ``GRPCStatusError/isStatusMissing``.
    static func status(of response: HTTPResponse, path: String, isBodyWhole: Bool = true) -> GRPCStatusError? {
        let source: HTTPHeaders
        if response.trailers.first(name: "grpc-status") != nil {
            source = response.trailers
        } else if response.headers.first(name: "grpc-status") != nil {
            source = response.headers
        } else {
            let code: GRPCStatusError.Code =
                switch response.status {
                case 200: .unknown
                case 401: .unauthenticated
                case 403: .permissionDenied
                case 404: .unimplemented
                case 429, 502, 503, 504: .unavailable
                default: .unknown
                }
            if response.status == 200, isBodyWhole {
                return GRPCStatusError(
                    code: .unknown, message: "the answer came whole but without its grpc-status (HTTP 200)",
                    path: path, isStatusMissing: true)
            }
            return GRPCStatusError(
                code: code, message: "no grpc-status in the answer (HTTP \(response.status))", path: path)
        }
        let rawCode = Int(source.first(name: "grpc-status") ?? "") ?? GRPCStatusError.Code.unknown.rawValue
        if rawCode == 0 { return nil }
        let message = GRPCFraming.decodeMessage(source.first(name: "grpc-message") ?? "")
        var retryAfter: Duration?
        if let details = source.first(name: "grpc-status-details-bin") {
            retryAfter = Self.retryAfter(fromDetails: details)
        }
        return GRPCStatusError(
            code: GRPCStatusError.Code(rawValue: rawCode), message: message, path: path, retryAfter: retryAfter)
    }

    /// `retry_after_secs` of an `RPCRetryPolicy` in a base64 `RPCStatus` (padding optional).
    package static func retryAfter(fromDetails value: String) -> Duration? {
        var text = value.trimmingCharacters(in: .whitespaces)
        while text.count % 4 != 0 { text += "=" }
        guard let bytes = Data(base64Encoded: text),
            let status = try? Modal_Client_RPCStatus(serializedBytes: bytes)
        else { return nil }
        for detail in status.details where detail.typeURL.hasSuffix("modal.client.RPCRetryPolicy") {
            if let policy = try? Modal_Client_RPCRetryPolicy(serializedBytes: detail.value) {
                return Duration(secondsClamped: Double(policy.retryAfterSecs))
            }
        }
        return nil
    }

    /// A call with retries: every try carries the same `x-idempotency-key` and its `x-retry-attempt`.
    ///
    /// An answer that came whole without its `grpc-status` (``GRPCStatusError/isStatusMissing``) is a transport
    /// fault, not the server's verdict: a call that is safe to repeat is sent again at once, up to
    /// ``GRPCRetryPolicy/maxMissingStatusRetries`` times; one that is not is never sent again.
    ///
    /// - Parameters:
    ///   - path: the method's full path.
    ///   - body: the serialized request.
    ///   - metadata: the headers of each try (asked again before each, so tokens can be refreshed).
    ///   - timeout: each try's deadline.
    ///   - retry: how often and how soon to retry retryable statuses and transport resets.
    ///   - idempotencyKeys: whether to send `x-idempotency-key` / `x-retry-attempt` (control plane).
    ///   - isSafeToRepeat: whether a second copy of the call does no harm (``ModalCallSafety``).
    /// - Returns: the messages of the successful try.
    /// - Throws: ``GRPCStatusError`` (final status) or ``ExecutionError`` (transport, cancellation; code
    ///   ``ExecutionError/Code/transport`` for an answer without its status that could not be sent again).
    package func call(
        path: String, body: Data, metadata: @Sendable () async throws -> HTTPHeaders, timeout: Duration,
        retry: GRPCRetryPolicy, idempotencyKeys: Bool, isSafeToRepeat: Bool
    ) async throws -> [Data] {
        let key = UUID().uuidString.lowercased()
        var retries = 0
        var throttles = 0
        var missingStatuses = 0
        var attempt = 0
        while true {
            var headers = try await metadata()
            if idempotencyKeys {
                headers.add(name: "x-idempotency-key", value: key)
                headers.add(name: "x-retry-attempt", value: "\(attempt)")
            }
            var failure: any Error
            do {
                let answer = try await self.attempt(
                    path: path, body: body, metadata: headers, timeout: timeout, isSafeToRepeat: isSafeToRepeat)
                guard let status = answer.status else { return answer.messages }
                if status.isStatusMissing {
                    missingStatuses += 1
                    guard isSafeToRepeat, missingStatuses <= retry.maxMissingStatusRetries else {
                        throw Self.missingStatusError(
                            status, answers: missingStatuses, isSafeToRepeat: isSafeToRepeat, url: baseURL)
                    }
                    attempt += 1
                    logger.debug(
                        "gRPC answer without its status; sent again",
                        metadata: ["path": "\(path)", "attempt": "\(attempt)"])
                    continue
                }
                if let retryAfter = status.retryAfter, throttles < retry.maxThrottleRetries {
                    throttles += 1
                    attempt += 1
                    try await Self.sleep(retryAfter)
                    continue
                }
                guard status.isRetryable else { throw status }
                failure = status
            } catch let error as ExecutionError where [.connectionReset, .timedOut].contains(error.code) {
                failure = error
            }
            guard retries < retry.maxRetries else { throw failure }
            let wait = retry.delay(beforeRetry: retries)
            retries += 1
            attempt += 1
            logger.debug("gRPC retry", metadata: ["path": "\(path)", "attempt": "\(attempt)", "error": "\(failure)"])
            try await Self.sleep(wait)
        }
    }

    /// The error for a call whose answer came without its status and that is not sent again: it names the method,
    /// says why, and what to do.
    package static func missingStatusError(_ status: GRPCStatusError, answers: Int, isSafeToRepeat: Bool, url: String)
        -> ExecutionError
    {
        let cause =
            losesStatusOfMultiplexedCalls
            ? "libcurl \(HTTPClient.libcurlVersion) drops the trailers of HTTP/2 streams multiplexed on one "
                + "connection (fixed in libcurl 8.1.0); upgrade libcurl to 8.1 or later"
            : "the server (or a proxy) sent no grpc-status trailer"
        let what =
            isSafeToRepeat
            ? "\(status.method): \(answers) answers in a row came whole but without their grpc-status; "
            : "\(status.method): the answer came whole but without its grpc-status, so whether the call took effect "
                + "is unknown; it was not sent again because a second \(status.method) could act twice (e.g. create a "
                + "second sandbox); "
        return ExecutionError(
            code: .transport, message: what + cause, url: HTTPClient.redactedURL(url), attempts: answers)
    }

    /// A unary call with retries; whether it may be sent again after a lost status comes from ``ModalCallSafety``.
    package func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request,
        metadata: @Sendable () async throws -> HTTPHeaders, timeout: Duration = .seconds(60),
        retry: GRPCRetryPolicy = .controlPlane, idempotencyKeys: Bool = true
    ) async throws -> Response {
        let messages = try await call(
            path: method.path, body: try request.serializedData(), metadata: metadata, timeout: timeout,
            retry: retry, idempotencyKeys: idempotencyKeys, isSafeToRepeat: ModalCallSafety.isSafeToRepeat(method))
        guard let first = messages.first else {
            throw GRPCStatusError(
                code: .internal, message: "the server answered OK without a message", path: method.path)
        }
        return try Response(serializedBytes: first)
    }

    /// A server-streaming call with retries of the whole call; returns every message once the stream ended.
    package func serverStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request,
        metadata: @Sendable () async throws -> HTTPHeaders, timeout: Duration = .seconds(60),
        retry: GRPCRetryPolicy = .controlPlane, idempotencyKeys: Bool = false
    ) async throws -> [Response] {
        let messages = try await call(
            path: method.path, body: try request.serializedData(), metadata: metadata, timeout: timeout,
            retry: retry, idempotencyKeys: idempotencyKeys, isSafeToRepeat: ModalCallSafety.isSafeToRepeat(method))
        return try messages.map { try Response(serializedBytes: $0) }
    }

    /// Whether a URL's host is loopback: `localhost`, an IPv4 address in 127.0.0.0/8, or `::1`.
    package static func isLoopback(url: String) -> Bool {
        guard var host = URLComponents(string: url)?.host?.lowercased() else { return false }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
    }

    /// Sleeps; a cancelled task gets ``ExecutionError/Code/cancelled``.
    static func sleep(_ duration: Duration) async throws {
        do {
            try await Task.sleep(for: duration)
        } catch {
            throw ExecutionError(code: .cancelled, message: "the task was cancelled while waiting to retry")
        }
    }
}
