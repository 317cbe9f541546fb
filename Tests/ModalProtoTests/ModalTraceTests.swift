import Foundation
import ModalProto
import SwiftProtobuf
import Testing

/// Every message in the recorded SDK traces decodes with the generated (pruned) types, with no unknown field.
@Suite struct ModalTraceTests {
    static var tracesFolder: URL {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url.deleteLastPathComponent()
        }
        return url.appendingPathComponent("Fixtures/modal/traces")
    }

    @Test(arguments: ["sdk_v2_with_timeouts.txt", "sdk_v1.txt", "images.txt"])
    func everyTracedMessageDecodes(file: String) throws {
        let types = Dictionary(uniqueKeysWithValues: ModalRPC.messageTypes.map { ($0.protoMessageName, $0) })
        let text = try String(contentsOf: Self.tracesFolder.appendingPathComponent(file), encoding: .utf8)
        var decoded = 0
        for line in text.split(separator: "\n") {
            guard line.hasPrefix("  -> ") || line.hasPrefix("  <- ") else { continue }
            let rest = line.dropFirst(5)
            guard let space = rest.firstIndex(of: " ") else { continue }
            let name = String(rest[..<space])
            let json = String(rest[rest.index(after: space)...])
            let type = try #require(types[name], "\(name) is not in ModalProto")
            let message = try type.init(jsonString: json)
            let bytes: Data = try message.serializedBytes()
            let again = try type.init(serializedBytes: bytes)
            #expect(again.isEqualTo(message: message), "\(name) round-trips")
            decoded += 1
        }
        #expect(decoded >= 20)
    }

    @Test func messageTableCoversEveryMethodsTypes() {
        let names = Set(ModalRPC.messageTypes.map { $0.protoMessageName })
        #expect(names.count == ModalRPC.messageTypes.count)
        #expect(names.contains("modal.client.SandboxCreateV2Request"))
        #expect(names.contains("modal.client.RPCRetryPolicy"))
        #expect(names.contains("modal.task_command_router.TaskExecStdioReadResponse"))
    }
}
