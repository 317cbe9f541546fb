public import SwiftProtobuf

/// One gRPC method of Modal's API: its full request path, whether the server streams answers, and its message types.
public struct ModalRPCMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    /// The HTTP/2 `:path`, e.g. `/modal.client.ModalClient/SandboxCreateV2`.
    public let path: String
    /// True when the server answers with a stream of messages (e.g. `TaskExecStdioRead`).
    public let isServerStreaming: Bool

    /// Describes a method; the generated `ModalRPC` table holds every method this package uses.
    public init(path: String, isServerStreaming: Bool) {
        self.path = path
        self.isServerStreaming = isServerStreaming
    }

    /// The service part of the path, e.g. `modal.client.ModalClient`.
    public var service: Substring {
        let trimmed = path.dropFirst()
        return trimmed.prefix { $0 != "/" }
    }

    /// The method name, e.g. `SandboxCreateV2`.
    public var name: Substring {
        path.split(separator: "/").last ?? ""
    }
}
