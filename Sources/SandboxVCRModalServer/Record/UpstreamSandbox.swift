import Foundation
import GRPCCore
import ModalProto
import SandboxVCR
import SandboxVCRModal
import SwiftProtobuf
import Synchronization

/// The upstream sandbox behind a live one that records (or forwards): created on first use with the client's own
/// create request and credentials, then reached through the command router the upstream hands out.
final class UpstreamSandbox: Sendable {
    /// The client's create request, as it was sent (V1 or V2).
    enum CreateRequest: Sendable {
        case v1(Modal_Client_SandboxCreateRequest)
        case v2(Modal_Client_SandboxCreateV2Request)
    }

    struct Handle: Sendable {
        var sandboxID: String
        var taskID: String
        var access: RouterAccess
    }

    let upstream: UpstreamModal
    let create: CreateRequest
    /// The client's control-plane metadata (credentials included; kept in memory only, never logged or stored).
    let metadata: HTTPHeaders
    private let creation = Mutex<Task<Handle, any Error>?>(nil)
    private let access = Mutex<RouterAccess?>(nil)

    init(upstream: UpstreamModal, create: CreateRequest, metadata: HTTPHeaders) {
        self.upstream = upstream
        self.create = create
        self.metadata = metadata
    }

    var isV2: Bool {
        if case .v2 = create { return true }
        return false
    }

    /// Whether the upstream sandbox was asked for.
    var isCreated: Bool { creation.withLock { $0 != nil } }

    /// The upstream sandbox, created by the first caller.
    func handle() async throws -> Handle {
        let task = creation.withLock { creation in
            if let creation { return creation }
            let task = Task { try await self.createUpstream() }
            creation = task
            return task
        }
        var handle = try await task.value
        if let fresh = access.withLock({ $0 }) { handle.access = fresh }
        return handle
    }

    private func createUpstream() async throws -> Handle {
        var sandboxID: String
        var taskID = ""
        var routerAccess: RouterAccess?
        switch create {
        case .v2(let request):
            let response = try await upstream.unary(ModalRPC.ModalClient.sandboxCreateV2, request, metadata: metadata)
            sandboxID = response.sandboxID
            taskID = response.taskID
            if response.hasCommandRouterAccess, !response.commandRouterAccess.url.isEmpty {
                routerAccess = RouterAccess(
                    url: response.commandRouterAccess.url, jwt: response.commandRouterAccess.jwt)
            }
        case .v1(let request):
            let response = try await upstream.unary(ModalRPC.ModalClient.sandboxCreate, request, metadata: metadata)
            sandboxID = response.sandboxID
        }
        var polls = 0
        while taskID.isEmpty {
            polls += 1
            var poll = Modal_Client_SandboxGetTaskIdRequest()
            poll.sandboxID = sandboxID
            poll.timeout = 10
            poll.waitUntilReady = true
            let method = isV2 ? ModalRPC.ModalClient.sandboxGetTaskIdV2 : ModalRPC.ModalClient.sandboxGetTaskId
            let answer = try await upstream.unary(method, poll, metadata: metadata, timeout: .seconds(20))
            if answer.hasTaskID, !answer.taskID.isEmpty {
                taskID = answer.taskID
            } else if answer.hasTaskResult || polls > 30 {
                throw RPCError(
                    code: .failedPrecondition,
                    message: "the upstream sandbox ended before it started (\(answer.taskResult.status)): "
                        + Redactor.scrub(answer.taskResult.exception))
            }
        }
        if routerAccess == nil { routerAccess = try await freshAccess(sandboxID: sandboxID, taskID: taskID) }
        return Handle(sandboxID: sandboxID, taskID: taskID, access: routerAccess!)
    }

    private func freshAccess(sandboxID: String, taskID: String) async throws -> RouterAccess {
        if isV2 {
            var request = Modal_Client_SandboxGetCommandRouterAccessRequest()
            request.sandboxID = sandboxID
            let response = try await upstream.unary(
                ModalRPC.ModalClient.sandboxGetCommandRouterAccess, request, metadata: metadata)
            return RouterAccess(url: response.url, jwt: response.jwt)
        }
        var request = Modal_Client_TaskGetCommandRouterAccessRequest()
        request.taskID = taskID
        let response = try await upstream.unary(
            ModalRPC.ModalClient.taskGetCommandRouterAccess, request, metadata: metadata)
        return RouterAccess(url: response.url, jwt: response.jwt)
    }

    /// A router call; an `UNAUTHENTICATED` answer fetches a fresh router JWT and tries once more.
    func router<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, timeout: Duration = .seconds(120),
        _ build: (Handle) -> Request
    ) async throws -> Response {
        var handle = try await self.handle()
        do {
            return try await upstream.router(method, build(handle), access: handle.access, timeout: timeout)
        } catch let error as RPCError where error.code == .unauthenticated {
            handle.access = try await refreshAccess(handle)
            return try await upstream.router(method, build(handle), access: handle.access, timeout: timeout)
        }
    }

    /// A streaming router call, with the same refresh.
    func routerStream<Request: SwiftProtobuf.Message>(
        path: String, timeout: Duration, onMessage: @escaping @Sendable (Data) -> Void,
        _ build: (Handle) -> Request
    ) async throws -> GRPCStatusError? {
        var handle = try await self.handle()
        let status = try await upstream.routerStream(
            path: path, build(handle), access: handle.access, timeout: timeout, onMessage: onMessage)
        guard status?.code == .unauthenticated else { return status }
        handle.access = try await refreshAccess(handle)
        return try await upstream.routerStream(
            path: path, build(handle), access: handle.access, timeout: timeout, onMessage: onMessage)
    }

    private func refreshAccess(_ handle: Handle) async throws -> RouterAccess {
        let fresh = try await freshAccess(sandboxID: handle.sandboxID, taskID: handle.taskID)
        access.withLock { $0 = fresh }
        return fresh
    }

    /// Terminates the upstream sandbox if it was created (errors are the caller's to log).
    func terminate() async throws {
        guard isCreated else { return }
        let handle = try await handle()
        var request = Modal_Client_SandboxTerminateRequest()
        request.sandboxID = handle.sandboxID
        let method = isV2 ? ModalRPC.ModalClient.sandboxTerminateV2 : ModalRPC.ModalClient.sandboxTerminate
        _ = try await upstream.unary(method, request, metadata: metadata)
    }
}
