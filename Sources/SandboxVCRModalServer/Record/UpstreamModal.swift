import Foundation
import GRPCCore
import Logging
import ModalProto
import SandboxVCR
import SandboxVCRModal
import SwiftProtobuf

/// The real Modal (or a test server) that records go through, reached with the project's libcurl gRPC client.
///
/// Every call is one try: the client that called `serve` retries as it would against Modal. A failed status comes
/// back as the same `RPCError`; a transport failure as `UNAVAILABLE` naming the upstream (never credentials). An
/// answer that came whole without its status (``GRPCStatusError/isStatusMissing``: libcurl before 8.1 can drop the
/// trailers of multiplexed streams) is not the upstream's verdict: a call that is safe to repeat
/// (``ModalCallSafety``) is sent again at once, a few times at most; one that is not (sandbox creation) goes on a
/// connection of its own, where that does not happen.
final class UpstreamModal: Sendable {
    let url: String
    private let http: HTTPClient
    private let control: GRPCChannel
    private let logger: Logger

    init(url: String, logger: Logger) {
        self.url = url
        self.logger = logger
        http = HTTPClient(
            configuration: .init(
                httpVersion: .http2PriorKnowledge, maxCachedConnections: 512,
                userAgent: "sandbox-vcr/\(SandboxVCRVersion.current)"),
            logger: logger)
        control = GRPCChannel(baseURL: url, http: http, logger: logger)
    }

    deinit { http.shutdown() }

    /// A control-plane call with the caller's metadata.
    func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request, metadata: HTTPHeaders,
        timeout: Duration = .seconds(120)
    ) async throws -> Response {
        try await call(control, method, request, metadata: metadata, timeout: timeout)
    }

    /// A server-streaming control-plane call, read whole (for short streams such as an image build's).
    func stream<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request, metadata: HTTPHeaders,
        timeout: Duration = .seconds(120)
    ) async throws -> [Response] {
        let answer = try await attempt(control, method, request, metadata: metadata, timeout: timeout)
        if let status = answer.status { throw RPCError(forwarding: status) }
        do {
            return try answer.messages.map { try Response(serializedBytes: $0) }
        } catch {
            throw RPCError(
                code: .internalError,
                message: "the Modal upstream \(url) answered \(method.path) with a message that does not decode "
                    + "(\(error)) (sandbox-vcr serve)")
        }
    }

    /// A command-router call, authorized with the router JWT the upstream gave.
    func router<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request, access: RouterAccess,
        timeout: Duration = .seconds(120)
    ) async throws -> Response {
        let channel = GRPCChannel(baseURL: access.url, http: http, logger: logger)
        return try await call(
            channel, method, request, metadata: ["authorization": "Bearer \(access.jwt)"], timeout: timeout)
    }

    /// A server-streaming router call whose messages are handed on as they arrive.
    ///
    /// - Returns: how the stream ended (`nil`: `OK`).
    func routerStream<Request: SwiftProtobuf.Message>(
        path: String, _ request: Request, access: RouterAccess, timeout: Duration,
        onMessage: @escaping @Sendable (Data) -> Void
    ) async throws -> GRPCStatusError? {
        let channel = GRPCChannel(baseURL: access.url, http: http, logger: logger)
        do {
            return try await channel.attemptStreaming(
                path: path, body: try request.serializedData(),
                metadata: ["authorization": "Bearer \(access.jwt)"], timeout: timeout,
                isSafeToRepeat: ModalCallSafety.isSafeToRepeat(path: path), onMessage: onMessage)
        } catch let error as ExecutionError {
            throw unreachable(error, path: path)
        }
    }

    private func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ channel: GRPCChannel, _ method: ModalRPCMethod<Request, Response>, _ request: Request,
        metadata: HTTPHeaders, timeout: Duration
    ) async throws -> Response {
        let answer = try await attempt(channel, method, request, metadata: metadata, timeout: timeout)
        if let status = answer.status { throw RPCError(forwarding: status) }
        guard let first = answer.messages.first else {
            throw RPCError(
                code: .internalError,
                message: "the Modal upstream \(url) answered \(method.path) with no message (sandbox-vcr serve)")
        }
        do {
            return try Response(serializedBytes: first)
        } catch {
            throw RPCError(
                code: .internalError,
                message: "the Modal upstream \(url) answered \(method.path) with a message that does not decode "
                    + "(\(error)) (sandbox-vcr serve)")
        }
    }

    /// One call, sent again while its answer comes whole without its status and the call is safe to repeat.
    private func attempt<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ channel: GRPCChannel, _ method: ModalRPCMethod<Request, Response>, _ request: Request,
        metadata: HTTPHeaders, timeout: Duration
    ) async throws -> GRPCChannel.Answer {
        let isSafeToRepeat = ModalCallSafety.isSafeToRepeat(method)
        let body = try request.serializedData()
        var missingStatuses = 0
        while true {
            let answer: GRPCChannel.Answer
            do {
                answer = try await channel.attempt(
                    path: method.path, body: body, metadata: metadata, timeout: timeout,
                    isSafeToRepeat: isSafeToRepeat)
            } catch let error as ExecutionError {
                throw unreachable(error, path: method.path)
            }
            guard let status = answer.status, status.isStatusMissing else { return answer }
            missingStatuses += 1
            guard isSafeToRepeat, missingStatuses <= GRPCRetryPolicy.controlPlane.maxMissingStatusRetries else {
                let error = GRPCChannel.missingStatusError(
                    status, answers: missingStatuses, isSafeToRepeat: isSafeToRepeat, url: url)
                logger.warning(
                    "Modal upstream answer without its status", metadata: ["path": "\(method.path)"])
                throw RPCError(code: .unknown, message: "sandbox-vcr serve: " + error.message)
            }
            logger.debug("Modal upstream answer without its status; sent again", metadata: ["path": "\(method.path)"])
        }
    }

    private func unreachable(_ error: ExecutionError, path: String) -> RPCError {
        logger.warning("Modal upstream call failed", metadata: ["path": "\(path)", "error": "\(error.message)"])
        return RPCError(
            code: .unavailable,
            message: "sandbox-vcr serve could not reach the Modal upstream \(url) for \(path): \(error.message)")
    }
}

/// Where and how to reach a sandbox's command router.
struct RouterAccess: Sendable, Hashable {
    var url: String
    var jwt: String
}

extension RPCError {
    /// The upstream's status, handed to the client as it came.
    init(forwarding status: GRPCStatusError) {
        let code = Status.Code(rawValue: status.code.rawValue).flatMap { RPCError.Code($0) } ?? .unknown
        self.init(code: code, message: status.message)
    }

    /// A recorded status, replayed.
    init(recorded status: RecordedStatus) {
        let code = Status.Code(rawValue: status.code).flatMap { RPCError.Code($0) } ?? .unknown
        self.init(code: code, message: status.message)
    }
}

extension RecordedStatus {
    init(_ status: GRPCStatusError) {
        self.init(code: status.code.rawValue, message: Redactor.scrub(status.message))
    }

    init(_ error: RPCError) {
        self.init(code: Status.Code(error.code).rawValue, message: Redactor.scrub(error.message))
    }
}
