import Foundation
import ModalProto
import SwiftProtobuf
import Testing

/// The generated Modal messages match the bytes Modal's own Python classes produce, and the method table is right.
@Suite struct ModalProtoTests {
    /// Bytes from the modal==1.6.4 wheel's `task_command_router_pb2.TaskExecStartRequest(...).SerializeToString()`.
    static let pythonExecStart = hex(
        "0a0974612d76322d313233122439323033336263652d366433612d343461362d613932622d3730323963393531343564621a04"
            + "626173681a032d6c631a0f6563686f2068693b2065786974203320012801303c3a042f746d70"
    )

    /// Bytes of `grpc-status-details-bin` as the modal SDK's codec encodes RESOURCE_EXHAUSTED with a retry policy.
    static let pythonThrottleDetails = hex(
        "08081209736c6f7720646f776e1a330a2a747970652e6d6f64616c2e636f6d2f6d6f64616c2e636c69656e742e5250435265747279"
            + "506f6c69637912050dcdcc4c3d"
    )

    @Test func execStartEncodesLikeModalsPythonClasses() throws {
        var request = Modal_TaskCommandRouter_TaskExecStartRequest()
        request.taskID = "ta-v2-123"
        request.execID = "92033bce-6d3a-44a6-a92b-7029c95145db"
        request.commandArgs = ["bash", "-lc", "echo hi; exit 3"]
        request.stdoutConfig = .pipe
        request.stderrConfig = .pipe
        request.timeoutSecs = 60
        request.workdir = "/tmp"

        let bytes: Data = try request.serializedBytes()
        #expect(bytes == Self.pythonExecStart)
        let parsed = try Modal_TaskCommandRouter_TaskExecStartRequest(serializedBytes: Self.pythonExecStart)
        #expect(parsed == request)
        #expect(parsed.hasTimeoutSecs)
        #expect(parsed.commandArgs.last == "echo hi; exit 3")
    }

    @Test func stdioReadAndWaitRoundTrip() throws {
        var read = Modal_TaskCommandRouter_TaskExecStdioReadRequest()
        read.taskID = "ta-1"
        read.execID = "ex-1"
        read.offset = 5
        read.fileDescriptor = .stderr
        let readBytes: Data = try read.serializedBytes()
        #expect(readBytes == Self.hex("0a0474612d31120465782d3118052001"))
        #expect(try Modal_TaskCommandRouter_TaskExecStdioReadRequest(serializedBytes: readBytes) == read)

        let signalled = try Modal_TaskCommandRouter_TaskExecWaitResponse(serializedBytes: Self.hex("1009"))
        #expect(signalled.exitStatus == .signal(9))
        var exited = Modal_TaskCommandRouter_TaskExecWaitResponse()
        exited.code = 0
        let exitedBytes: Data = try exited.serializedBytes()
        // A oneof member set to its default is still present on the wire, so "exit 0" differs from "not finished".
        #expect(try Modal_TaskCommandRouter_TaskExecWaitResponse(serializedBytes: exitedBytes).exitStatus == .code(0))
    }

    @Test func retryPolicyDecodesFromStatusDetails() throws {
        let status = try Modal_Client_RPCStatus(serializedBytes: Self.pythonThrottleDetails)
        #expect(status.code == 8)
        #expect(status.message == "slow down")
        let detail = try #require(status.details.first)
        #expect(detail.typeURL == "type.modal.com/modal.client.RPCRetryPolicy")
        let policy = try Modal_Client_RPCRetryPolicy(unpackingAny: detail)
        #expect(abs(policy.retryAfterSecs - 0.05) < 1e-6)

        var rebuilt = Modal_Client_RPCStatus()
        rebuilt.code = 8
        rebuilt.message = "slow down"
        rebuilt.details = [try Google_Protobuf_Any(message: policy, typePrefix: "type.modal.com")]
        let rebuiltBytes: Data = try rebuilt.serializedBytes()
        #expect(rebuiltBytes == Self.pythonThrottleDetails)
    }

    @Test func traceJSONParsesWithProtoNames() throws {
        let create = try Modal_Client_SandboxCreateV2Response(
            jsonString: #"{"sandbox_id": "sb-v2-123", "task_id": "ta-v2-123", "metadata": {"app_id": "ap-0"}, "#
                + #""command_router_access": {"jwt": "fake-jwt-token", "url": "http://127.0.0.1:18182"}}"#
        )
        #expect(create.sandboxID == "sb-v2-123")
        #expect(create.commandRouterAccess.url == "http://127.0.0.1:18182")
        let wait = try Modal_Client_SandboxWaitResponse(
            jsonString: #"{"result": {"status": "GENERIC_STATUS_TERMINATED", "exitcode": -1}}"#
        )
        #expect(wait.result.status == .terminated)
        #expect(wait.result.exitcode == -1)
        let waitBytes: Data = try wait.serializedBytes()
        #expect(try Modal_Client_SandboxWaitResponse(serializedBytes: waitBytes) == wait)
    }

    @Test func methodTableHasTheFlowsPaths() {
        #expect(ModalRPC.ModalClient.sandboxCreateV2.path == "/modal.client.ModalClient/SandboxCreateV2")
        #expect(ModalRPC.ModalClient.sandboxWaitV2.path == "/modal.client.ModalClient/SandboxWaitV2")
        #expect(ModalRPC.ModalClient.authTokenGet.path == "/modal.client.ModalClient/AuthTokenGet")
        #expect(ModalRPC.ModalClient.imageJoinStreaming.isServerStreaming)
        #expect(!ModalRPC.ModalClient.appGetOrCreate.isServerStreaming)
        let stdio = ModalRPC.TaskCommandRouter.taskExecStdioRead
        #expect(stdio.path == "/modal.task_command_router.TaskCommandRouter/TaskExecStdioRead")
        #expect(stdio.isServerStreaming)
        #expect(stdio.service == "modal.task_command_router.TaskCommandRouter")
        #expect(stdio.name == "TaskExecStdioRead")
        #expect(ModalRPC.allPaths.count == 20)
        #expect(Set(ModalRPC.allPaths).count == ModalRPC.allPaths.count)
        #expect(ModalRPC.allPaths.contains("/modal.client.ModalClient/SandboxGetTaskIdV2"))
        #expect(ModalRPC.allPaths.contains("/modal.task_command_router.TaskCommandRouter/TaskExecWait"))
    }

    /// Decodes a hex string (test data only).
    static func hex(_ text: String) -> Data {
        var data = Data()
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            data.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return data
    }
}
