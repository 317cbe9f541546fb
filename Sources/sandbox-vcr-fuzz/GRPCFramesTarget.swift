import Foundation
import ModalProto
import SandboxVCRModal
import SwiftProtobuf
import Synchronization

/// The gRPC body decoder: ``GRPCFrameDecoder`` fed the body in random pieces must deliver what a straight reading
/// of the frames gives, as must ``GRPCFraming/messages(in:)`` on the whole body (also as a slice of a larger
/// `Data`); each message is then decoded as a Modal message, as a status detail (`grpc-status-details-bin`), and
/// its text percent-encoded as a `grpc-message` must decode back.
///
/// Input: byte 0 picks the Modal message type, bytes 1–7 seed the chunking, the rest is the body.
enum GRPCFramesTarget: FuzzTarget {
    static let name = "grpc-frames"
    static let headerSize = 8

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        let header = input.prefix(headerSize) + [UInt8](repeating: 0, count: max(0, headerSize - input.count))
        let body = Array(input.dropFirst(headerSize))
        var seed: UInt64 = 0
        for byte in header.dropFirst() { seed = seed << 8 | UInt64(byte) }

        let expected = frames(of: body)
        try checkWholeBody(body, expected: expected, padding: Int(header[header.startIndex + 1] % 8))
        let delivered = try checkChunked(body, expected: expected, seed: seed)

        let type = ModalRPC.messageTypes[Int(header[header.startIndex]) % ModalRPC.messageTypes.count]
        for message in delivered {
            _ = try? type.init(serializedBytes: message)
            _ = try? Modal_TaskCommandRouter_TaskExecStdioReadResponse(serializedBytes: message)
            _ = GRPCChannel.retryAfter(fromDetails: message.base64EncodedString())
            try checkMessageDecoding(message)
        }
    }

    /// The frames of a body read the plain way: the whole messages before the first compressed one or the first
    /// incomplete frame; the bytes left over (`nil` when a whole compressed frame stops the stream).
    static func frames(of body: [UInt8]) -> (messages: [Data], incomplete: Int?) {
        var messages: [Data] = []
        var index = 0
        while body.count - index >= 5 {
            let length = body[(index + 1)..<(index + 5)].reduce(0) { $0 << 8 | Int($1) }
            guard body.count - index - 5 >= length else { break }
            guard body[index] == 0 else { return (messages, nil) }
            messages.append(Data(body[(index + 5)..<(index + 5 + length)]))
            index += 5 + length
        }
        return (messages, body.count - index)
    }

    static func checkWholeBody(_ body: [UInt8], expected: (messages: [Data], incomplete: Int?), padding: Int)
        throws(FuzzFailure)
    {
        // The body as it is, and as a slice that does not start at index 0.
        let padded = Data(repeating: 0xA5, count: padding) + Data(body)
        for data in [Data(body), padded[(padded.startIndex + padding)...]] {
            do {
                let (messages, incomplete) = try GRPCFraming.messages(in: data)
                guard expected.incomplete != nil else {
                    throw FuzzFailure("GRPCFraming.messages accepted a compressed frame; body: \(preview(body))")
                }
                guard messages == expected.messages, incomplete == expected.incomplete else {
                    throw FuzzFailure(
                        "GRPCFraming.messages gave \(messages.count) messages and \(incomplete) bytes left, "
                            + "expected \(expected.messages.count) and \(expected.incomplete ?? -1); "
                            + "body: \(preview(body))")
                }
            } catch let failure as FuzzFailure {
                throw failure
            } catch {
                guard expected.incomplete == nil, (error as? GRPCStatusError)?.code == .internal else {
                    throw FuzzFailure("GRPCFraming.messages threw \(error); body: \(preview(body))")
                }
            }
        }
    }

    /// Feeds the body in pieces (mostly small, sometimes large, some empty).
    static func checkChunked(_ body: [UInt8], expected: (messages: [Data], incomplete: Int?), seed: UInt64)
        throws(FuzzFailure) -> [Data]
    {
        let collected = Collected()
        let decoder = GRPCFrameDecoder { message in collected.messages.withLock { $0.append(message) } }
        var random = SplitMix64(seed: seed)
        var index = 0
        while index < body.count {
            let scale = [1, 2, 8, 64, body.count + 1][Int(random.next() % 5)]
            let size = Int(random.next() % UInt64(scale))
            let end = min(body.count, index + size)
            decoder.feed(Data(body[index..<end]))
            index = end
        }
        decoder.feed(Data())
        let delivered = collected.messages.withLock { $0 }
        if let incomplete = expected.incomplete {
            guard delivered == expected.messages, decoder.failure == nil, decoder.pendingBytes == incomplete else {
                throw FuzzFailure(
                    "GRPCFrameDecoder delivered \(delivered.count) messages with \(decoder.pendingBytes) bytes "
                        + "pending (failure: \(String(describing: decoder.failure))), expected "
                        + "\(expected.messages.count) and \(incomplete); seed \(seed); body: \(preview(body))")
            }
        } else {
            // A compressed frame fails the stream; the messages of the piece that completed it are dropped.
            guard decoder.failure?.code == .internal, expected.messages.starts(with: delivered) else {
                throw FuzzFailure(
                    "GRPCFrameDecoder on a compressed frame: failure \(String(describing: decoder.failure)), "
                        + "\(delivered.count) of \(expected.messages.count) messages; seed \(seed); "
                        + "body: \(preview(body))")
            }
        }
        return delivered
    }

    /// `grpc-message` percent-encoding (as gRPC servers write it) decodes back to the text.
    static func checkMessageDecoding(_ message: Data) throws(FuzzFailure) {
        guard let text = String(validating: message, as: UTF8.self) else {
            _ = GRPCFraming.decodeMessage(String(decoding: message, as: UTF8.self))
            return
        }
        var encoded = ""
        for byte in message {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        let decoded = GRPCFraming.decodeMessage(encoded)
        guard decoded == text, Array(decoded.utf8) == Array(text.utf8) else {
            throw FuzzFailure(
                "grpc-message \(encoded.debugDescription) decodes to \(decoded.debugDescription), not "
                    + "\(text.debugDescription)")
        }
    }

    private final class Collected: Sendable {
        let messages = Mutex<[Data]>([])
    }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        let types = ModalRPC.messageTypes
        let indexByName = Dictionary(uniqueKeysWithValues: types.enumerated().map { ($1.protoMessageName, $0) })
        var seeds: [FuzzSeed] = []
        let folder = fixtures.appendingPathComponent("modal/traces")
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        where file.hasSuffix(".txt") {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            // One body per call and direction: its messages framed one after the other.
            var bodies: [(type: Int, body: [UInt8])] = []
            var lastDirection = ""
            for line in text.split(separator: "\n") {
                if line.hasPrefix("#") { lastDirection = "" }
                guard line.hasPrefix("  -> ") || line.hasPrefix("  <- ") else { continue }
                let direction = String(line.prefix(5))
                let rest = line.dropFirst(5)
                guard let space = rest.firstIndex(of: " "), let index = indexByName[String(rest[..<space])] else {
                    continue
                }
                let message = try types[index].init(jsonString: String(rest[rest.index(after: space)...]))
                let bytes: [UInt8] = try message.serializedBytes()
                let framed = [UInt8](GRPCFraming.frame(Data(bytes)))
                if direction == lastDirection, let last = bodies.indices.last {
                    bodies[last].body += framed
                } else {
                    bodies.append((index, framed))
                }
                lastDirection = direction
            }
            for (number, entry) in bodies.enumerated() {
                let header = [UInt8(entry.type % 256), 0, 0, 0, 0, 0, UInt8(number % 256), 7]
                seeds.append(FuzzSeed("\(file.dropLast(4))-\(number)", header + entry.body))
            }
        }
        // A status detail with a retry policy, a compressed frame, an empty message, a frame cut short.
        var policy = Modal_Client_RPCRetryPolicy()
        policy.retryAfterSecs = 1.5
        var detail = Google_Protobuf_Any()
        detail.typeURL = "type.googleapis.com/modal.client.RPCRetryPolicy"
        detail.value = try policy.serializedBytes()
        var status = Modal_Client_RPCStatus()
        status.code = 8
        status.message = "slow down: 100% busy"
        status.details = [detail]
        let statusBytes: [UInt8] = try status.serializedBytes()
        let header: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7]
        seeds.append(FuzzSeed("rpc-status", header + [UInt8](GRPCFraming.frame(Data(statusBytes)))))
        seeds.append(FuzzSeed("compressed", header + [0, 0, 0, 0, 1, 0x41, 1, 0, 0, 0, 1, 0x42]))
        seeds.append(FuzzSeed("empty-and-cut", header + [0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0x41, 0x42]))
        return seeds
    }
}

/// A small, fast generator with a fixed sequence for a seed (Steele, Lea and Flood's SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
