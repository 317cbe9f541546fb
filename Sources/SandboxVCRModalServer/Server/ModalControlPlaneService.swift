import Foundation
import GRPCCore
import ModalGRPC
import ModalProto

/// `modal.client.ModalClient`: the control plane a Modal SDK talks to (apps, images, tokens, sandboxes; V1 and V2).
struct ModalControlPlaneService: Modal_Client_ModalClient.ServiceProtocol {
    let hub: ModalSandboxHub

    private func answer<Response: Sendable>(_ body: () async throws -> Response) async throws
        -> ServerResponse<Response>
    {
        hub.statistics.countCall()
        return ServerResponse(message: try await body())
    }

    func appGetOrCreate(request: ServerRequest<Modal_Client_AppGetOrCreateRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_AppGetOrCreateResponse>
    {
        try await answer { try await hub.appGetOrCreate(request.message, metadata: request.metadata) }
    }

    func authTokenGet(request: ServerRequest<Modal_Client_AuthTokenGetRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_AuthTokenGetResponse>
    {
        try await answer { try await hub.authTokenGet(request.message, metadata: request.metadata) }
    }

    func environmentGetOrCreate(
        request: ServerRequest<Modal_Client_EnvironmentGetOrCreateRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_Client_EnvironmentGetOrCreateResponse> {
        try await answer { try await hub.environmentGetOrCreate(request.message, metadata: request.metadata) }
    }

    func imageGetOrCreate(request: ServerRequest<Modal_Client_ImageGetOrCreateRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_ImageGetOrCreateResponse>
    {
        try await answer { try await hub.imageGetOrCreate(request.message, metadata: request.metadata) }
    }

    func imageJoinStreaming(
        request: ServerRequest<Modal_Client_ImageJoinStreamingRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Modal_Client_ImageJoinStreamingResponse> {
        hub.statistics.countCall()
        let messages = try await hub.imageJoin(request.message, metadata: request.metadata)
        return StreamingServerResponse { writer in
            try await writer.write(contentsOf: messages)
            return [:]
        }
    }

    func sandboxCreate(request: ServerRequest<Modal_Client_SandboxCreateRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxCreateResponse>
    {
        try await answer {
            let sandbox = try hub.createSandbox(
                appID: request.message.appID, definition: request.message.definition, create: .v1(request.message),
                metadata: request.metadata)
            var response = Modal_Client_SandboxCreateResponse()
            response.sandboxID = sandbox.id
            response.metadata.appID = sandbox.appID
            return response
        }
    }

    func sandboxCreateV2(request: ServerRequest<Modal_Client_SandboxCreateV2Request>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxCreateV2Response>
    {
        try await answer {
            let sandbox = try hub.createSandbox(
                appID: request.message.appID, definition: request.message.definition, create: .v2(request.message),
                metadata: request.metadata)
            let access = try hub.routerAccess(for: sandbox)
            var response = Modal_Client_SandboxCreateV2Response()
            response.sandboxID = sandbox.id
            response.taskID = sandbox.taskID
            response.metadata.appID = sandbox.appID
            response.commandRouterAccess.jwt = access.jwt
            response.commandRouterAccess.url = access.url
            return response
        }
    }

    private func taskID(_ request: Modal_Client_SandboxGetTaskIdRequest) async throws
        -> Modal_Client_SandboxGetTaskIdResponse
    {
        let sandbox = try hub.sandbox(request.sandboxID)
        var response = Modal_Client_SandboxGetTaskIdResponse()
        if let result = sandbox.result {
            response.taskResult = result
        } else {
            response.taskID = sandbox.taskID
        }
        return response
    }

    func sandboxGetTaskId(request: ServerRequest<Modal_Client_SandboxGetTaskIdRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxGetTaskIdResponse>
    {
        try await answer { try await taskID(request.message) }
    }

    func sandboxGetTaskIdV2(request: ServerRequest<Modal_Client_SandboxGetTaskIdRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxGetTaskIdResponse>
    {
        try await answer { try await taskID(request.message) }
    }

    func sandboxGetCommandRouterAccess(
        request: ServerRequest<Modal_Client_SandboxGetCommandRouterAccessRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_Client_SandboxGetCommandRouterAccessResponse> {
        try await answer {
            let sandbox: LiveSandbox
            switch request.message.target {
            case .taskID(let taskID): sandbox = try hub.sandbox(task: taskID)
            case .sandboxID(let id): sandbox = try hub.sandbox(id)
            case nil: throw RPCError(code: .invalidArgument, message: "neither sandbox_id nor task_id is set")
            }
            let access = try hub.routerAccess(for: sandbox)
            var response = Modal_Client_SandboxGetCommandRouterAccessResponse()
            response.jwt = access.jwt
            response.url = access.url
            return response
        }
    }

    func taskGetCommandRouterAccess(
        request: ServerRequest<Modal_Client_TaskGetCommandRouterAccessRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_Client_TaskGetCommandRouterAccessResponse> {
        try await answer {
            let access = try hub.routerAccess(for: try hub.sandbox(task: request.message.taskID))
            var response = Modal_Client_TaskGetCommandRouterAccessResponse()
            response.jwt = access.jwt
            response.url = access.url
            return response
        }
    }

    private func terminate(_ request: Modal_Client_SandboxTerminateRequest) async throws
        -> Modal_Client_SandboxTerminateResponse
    {
        let sandbox = try hub.sandbox(request.sandboxID)
        var response = Modal_Client_SandboxTerminateResponse()
        if let existing = sandbox.result { response.existingResult = existing }
        await hub.terminate(sandbox)
        return response
    }

    func sandboxTerminate(request: ServerRequest<Modal_Client_SandboxTerminateRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxTerminateResponse>
    {
        try await answer { try await terminate(request.message) }
    }

    func sandboxTerminateV2(request: ServerRequest<Modal_Client_SandboxTerminateRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxTerminateResponse>
    {
        try await answer { try await terminate(request.message) }
    }

    private func wait(_ request: Modal_Client_SandboxWaitRequest) async throws -> Modal_Client_SandboxWaitResponse {
        let sandbox = try hub.sandbox(request.sandboxID)
        let timeout = Duration.milliseconds(Int64((Double(max(0, min(request.timeout, 300))) * 1000).rounded()))
        var response = Modal_Client_SandboxWaitResponse()
        response.metadata.appID = sandbox.appID
        if let result = await hub.wait(sandbox, timeout: timeout) {
            response.result = result
            response.metadata.result = result
        }
        return response
    }

    func sandboxWait(request: ServerRequest<Modal_Client_SandboxWaitRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxWaitResponse>
    {
        try await answer { try await wait(request.message) }
    }

    func sandboxWaitV2(request: ServerRequest<Modal_Client_SandboxWaitRequest>, context: ServerContext)
        async throws -> ServerResponse<Modal_Client_SandboxWaitResponse>
    {
        try await answer { try await wait(request.message) }
    }
}

/// `modal.task_command_router.TaskCommandRouter`: the execs of every sandbox (the router URL serve hands out).
struct ModalCommandRouterService: Modal_TaskCommandRouter_TaskCommandRouter.ServiceProtocol {
    let hub: ModalSandboxHub

    func taskExecStart(
        request: ServerRequest<Modal_TaskCommandRouter_TaskExecStartRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_TaskCommandRouter_TaskExecStartResponse> {
        hub.statistics.countCall()
        try await hub.execStart(request.message)
        return ServerResponse(message: Modal_TaskCommandRouter_TaskExecStartResponse())
    }

    func taskExecStdinWrite(
        request: ServerRequest<Modal_TaskCommandRouter_TaskExecStdinWriteRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_TaskCommandRouter_TaskExecStdinWriteResponse> {
        hub.statistics.countCall()
        try await hub.stdinWrite(request.message)
        return ServerResponse(message: Modal_TaskCommandRouter_TaskExecStdinWriteResponse())
    }

    func taskExecStdioRead(
        request: ServerRequest<Modal_TaskCommandRouter_TaskExecStdioReadRequest>, context: ServerContext
    ) async throws -> StreamingServerResponse<Modal_TaskCommandRouter_TaskExecStdioReadResponse> {
        hub.statistics.countCall()
        let message = request.message
        let hub = self.hub
        return StreamingServerResponse { writer in
            try await hub.stdioRead(message) { data in
                var response = Modal_TaskCommandRouter_TaskExecStdioReadResponse()
                response.data = data
                try await writer.write(response)
            }
            return [:]
        }
    }

    func taskExecWait(
        request: ServerRequest<Modal_TaskCommandRouter_TaskExecWaitRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_TaskCommandRouter_TaskExecWaitResponse> {
        hub.statistics.countCall()
        return ServerResponse(message: try await hub.execWait(request.message))
    }

    func taskExecPoll(
        request: ServerRequest<Modal_TaskCommandRouter_TaskExecPollRequest>, context: ServerContext
    ) async throws -> ServerResponse<Modal_TaskCommandRouter_TaskExecPollResponse> {
        hub.statistics.countCall()
        return ServerResponse(message: try await hub.execPoll(request.message))
    }
}
