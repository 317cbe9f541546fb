package import ModalProto

/// Which of Modal's RPCs may be sent a second time without harm, after an answer that came whole but without its
/// `grpc-status` (``GRPCStatusError/isStatusMissing``): the server probably did the work, so only a call whose
/// repeat changes nothing is sent again.
///
/// Safe (from how Modal's public SDKs use each call, and how `serve` and the fake server answer a repeat):
/// - lookups and get-or-create by a key: `AppGetOrCreate` (environment and name), `EnvironmentGetOrCreate`,
///   `ImageGetOrCreate` (the image definition), `AuthTokenGet` (another token), `SandboxGetTaskId(V2)`,
///   `SandboxGetCommandRouterAccess`, `TaskGetCommandRouterAccess` (another router JWT), `SandboxWait(V2)`;
/// - `ImageJoinStreaming` reads a build's log from `last_entry_id`;
/// - `SandboxTerminate(V2)`: terminating an ended sandbox changes nothing;
/// - the command router's exec calls: `TaskExecStart` carries the client's `exec_id` (a repeated start answers for
///   the first), `TaskExecStdinWrite` and `TaskExecStdioRead` carry byte offsets (bytes already written are
///   skipped; a read starts where the client is), `TaskExecWait` and `TaskExecPoll` only read.
///
/// Not safe: `SandboxCreate` and `SandboxCreateV2`. Each one makes a sandbox; the `x-idempotency-key` they carry
/// is not documented to make Modal drop a repeat (the fake server does; `serve`, replaying, makes a second live
/// sandbox), so a second one could leave a sandbox running and billed. Any method not listed here counts as not
/// safe.
package enum ModalCallSafety {
    /// The full paths of the calls that are safe to repeat.
    package static let safeToRepeat: Set<String> = [
        ModalRPC.ModalClient.appGetOrCreate.path,
        ModalRPC.ModalClient.environmentGetOrCreate.path,
        ModalRPC.ModalClient.imageGetOrCreate.path,
        ModalRPC.ModalClient.imageJoinStreaming.path,
        ModalRPC.ModalClient.authTokenGet.path,
        ModalRPC.ModalClient.sandboxGetTaskId.path,
        ModalRPC.ModalClient.sandboxGetTaskIdV2.path,
        ModalRPC.ModalClient.sandboxGetCommandRouterAccess.path,
        ModalRPC.ModalClient.taskGetCommandRouterAccess.path,
        ModalRPC.ModalClient.sandboxTerminate.path,
        ModalRPC.ModalClient.sandboxTerminateV2.path,
        ModalRPC.ModalClient.sandboxWait.path,
        ModalRPC.ModalClient.sandboxWaitV2.path,
        ModalRPC.TaskCommandRouter.taskExecStart.path,
        ModalRPC.TaskCommandRouter.taskExecStdinWrite.path,
        ModalRPC.TaskCommandRouter.taskExecStdioRead.path,
        ModalRPC.TaskCommandRouter.taskExecWait.path,
        ModalRPC.TaskCommandRouter.taskExecPoll.path,
    ]

    /// Whether the call at `path` may be sent again after an answer without its status.
    package static func isSafeToRepeat(path: String) -> Bool { safeToRepeat.contains(path) }

    /// Whether `method` may be sent again after an answer without its status.
    package static func isSafeToRepeat<Request, Response>(_ method: ModalRPCMethod<Request, Response>) -> Bool {
        isSafeToRepeat(path: method.path)
    }
}
