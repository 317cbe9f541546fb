public import Foundation
internal import SandboxVCR

/// gRPC's message framing: each message is 1 flag byte (0: not compressed), a 4-byte big-endian length, the bytes.
public enum GRPCFraming {
    /// One message framed for the wire.
    public static func frame(_ message: Data) -> Data {
        var framed = Data(capacity: message.count + 5)
        framed.append(0)
        let length = UInt32(message.count)
        framed.append(contentsOf: [
            UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF),
        ])
        framed.append(message)
        return framed
    }

    /// The messages of a whole body, and the bytes of an incomplete last frame (a stream that broke mid-message).
    ///
    /// - Throws: ``GRPCStatusError`` with code `INTERNAL` for a compressed message (never asked for).
    public static func messages(in body: Data) throws -> (messages: [Data], incompleteBytes: Int) {
        var messages: [Data] = []
        var index = body.startIndex
        while body.endIndex - index >= 5 {
            let flag = body[index]
            let length =
                Int(body[index + 1]) << 24 | Int(body[index + 2]) << 16 | Int(body[index + 3]) << 8
                | Int(body[index + 4])
            guard body.endIndex - (index + 5) >= length else { break }
            guard flag == 0 else {
                throw GRPCStatusError(code: .internal, message: "the server sent a compressed message (flag \(flag))")
            }
            messages.append(Data(body[(index + 5)..<(index + 5 + length)]))
            index += 5 + length
        }
        return (messages, body.endIndex - index)
    }

    /// `grpc-message` is percent-encoded: decode it (invalid escapes are kept as they are).
    public static func decodeMessage(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            // Two hex digits exactly: `UInt8(_:radix:)` alone would also take a sign ("%+1").
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
                utf8[(index + 1)...(index + 2)].allSatisfy({ $0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit }),
                let value = UInt8(String(decoding: utf8[(index + 1)...(index + 2)], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The `grpc-timeout` header value for a duration: whole milliseconds (`1500m`), at most 8 digits.
    public static func timeoutHeader(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds(clampedTo: 1...Int64.max, rounding: .towardZero)
        if milliseconds < 100_000_000 { return "\(milliseconds)m" }
        return "\(min(99_999_999, milliseconds / 1000))S"
    }
}
