public import NIOCore
public import SandboxVCR

extension JSONValue {
    /// The bytes `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` writes: what FastAPI's
    /// `JSONResponse` sends.
    public var pythonJSONBytes: [UInt8] {
        var output = PythonJSONArraySink()
        write(to: &output)
        return output.bytes
    }

    /// The same bytes, written straight into a buffer (an answer's body is never copied from an array).
    public func pythonJSONBuffer(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var output = allocator.buffer(capacity: 256)
        write(to: &output)
        return output
    }

    /// The same as text.
    public var pythonJSONText: String { String(decoding: pythonJSONBytes, as: UTF8.self) }

    private func write(to output: inout some PythonJSONSink) {
        switch self {
        case .null: output.write("null")
        case .bool(let value): output.write(value ? "true" : "false")
        case .integer(let digits): output.write(digits)
        case .float(let value): output.write(Self.pythonRepr(value))
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output.write(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.write(UInt8(ascii: ",")) }
                value.write(to: &output)
            }
            output.write(UInt8(ascii: "]"))
        case .object(let members):
            output.write(UInt8(ascii: "{"))
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { output.write(UInt8(ascii: ",")) }
                Self.writeString(key, to: &output)
                output.write(UInt8(ascii: ":"))
                value.write(to: &output)
            }
            output.write(UInt8(ascii: "}"))
        }
    }

    /// Python's `repr(float)`, which `json.dumps` uses (`NaN` and `Infinity` as Python writes them).
    static func pythonRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        // Swift's shortest round-trip form matches Python's repr for the usual cases ("1.0", "1e-05", "1e+16").
        return value.description
    }

    private static func writeString(_ value: String, to output: inout some PythonJSONSink) {
        output.write(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in writeEscaped(bytes, to: &output) }
        output.write(UInt8(ascii: "\""))
    }

    /// Writes `bytes` with JSON's escapes, copying the runs between escapes in bulk (eight bytes are checked at a
    /// time), so a megabyte of plain output costs a scan and one copy.
    private static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout some PythonJSONSink) {
        guard let base = bytes.baseAddress else { return }
        let count = bytes.count
        var runStart = 0
        var position = 0
        while position < count {
            if count - position >= 8 {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
                let found = needsEscape(word)
                if found == 0 {
                    position += 8
                    continue
                }
                position += found.trailingZeroBitCount / 8
            }
            let byte = base[position]
            guard byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 else {
                position += 1
                continue
            }
            output.write(UnsafeBufferPointer(start: base + runStart, count: position - runStart))
            switch byte {
            case UInt8(ascii: "\""): output.write(#"\""#)
            case UInt8(ascii: "\\"): output.write(#"\\"#)
            case 0x0A: output.write(#"\n"#)
            case 0x0D: output.write(#"\r"#)
            case 0x09: output.write(#"\t"#)
            case 0x08: output.write(#"\b"#)
            case 0x0C: output.write(#"\f"#)
            default:
                let hex: StaticString = "0123456789abcdef"
                output.write(#"\u00"#)
                output.write(hex.utf8Start[Int(byte >> 4)])
                output.write(hex.utf8Start[Int(byte & 0xF)])
            }
            position += 1
            runStart = position
        }
        output.write(UnsafeBufferPointer(start: base + runStart, count: count - runStart))
    }

    /// The high bit of each byte of `word` that is `"`, `\` or a control character (exact for the lowest one).
    private static func needsEscape(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
        let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
        let zeroQuote = (quote &- ones) & ~quote
        let zeroBackslash = (backslash &- ones) & ~backslash
        let control = (word &- ones &* 0x20) & ~word
        return (zeroQuote | zeroBackslash | control) & (ones &* 0x80)
    }
}

/// Where ``JSONValue`` writes its Python-style bytes: an array, or an answer's buffer.
private protocol PythonJSONSink {
    mutating func write(_ byte: UInt8)
    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>)
}

extension PythonJSONSink {
    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write($0) }
    }
}

private struct PythonJSONArraySink: PythonJSONSink {
    var bytes: [UInt8] = []
    mutating func write(_ byte: UInt8) { bytes.append(byte) }
    mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes.append(contentsOf: bytes) }
}

extension ByteBuffer: PythonJSONSink {
    fileprivate mutating func write(_ byte: UInt8) { writeInteger(byte) }
    fileprivate mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) { writeBytes(bytes) }
}
