import GRPCCore
import ModalProto

/// Every other method of Modal's two services: `UNIMPLEMENTED`, with a message that names the method and says
/// serve neither records nor replays it (rather than gRPC's anonymous "Requested RPC isn't implemented").
struct UnrecordedMethodsService: RegistrableRPCService {
    let implemented: Set<String>
    let statistics: ModalServeStatistics

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for path in ModalRPC.schemaPaths where !implemented.contains(path) {
            let parts = path.dropFirst().split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let descriptor = MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
            let statistics = self.statistics
            router.registerHandler(
                forMethod: descriptor, deserializer: IgnoredMessage.Coder(), serializer: IgnoredMessage.Coder()
            ) { _, _ in
                statistics.countUnimplemented()
                return StreamingServerResponse(
                    of: IgnoredMessage.self,
                    error: RPCError(
                        code: .unimplemented,
                        message: "sandbox-vcr serve does not implement \(path): Modal calls outside the sandbox flow "
                            + "are neither recorded nor replayed (SandboxVCRModalServer's documentation lists what is)")
                )
            }
        }
    }
}

/// A message whose bytes are not read.
struct IgnoredMessage: Sendable {
    struct Coder: MessageSerializer, MessageDeserializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: IgnoredMessage) throws -> Bytes { Bytes([]) }
        func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> IgnoredMessage {
            IgnoredMessage()
        }
    }
}
