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

    /// Writes `bytes` with JSON's escapes. Runs between escapes are found eight bytes at a time and gathered with
    /// the escapes in a 16 KB scratch buffer, so the sink sees one write per 16 KB (or per long run), however
    /// dense the escapes: a megabyte of output costs a scan and about two copies.
    private static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout some PythonJSONSink) {
        guard let base = bytes.baseAddress else { return }
        let count = bytes.count
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 * 1024) { scratch in
            let scratchBase = scratch.baseAddress!
            var filled = 0
            func flush() {
                output.write(UnsafeBufferPointer(start: scratchBase, count: filled))
                filled = 0
            }
            func put(_ start: Int, _ end: Int) {
                let length = end - start
                guard length > 0 else { return }
                if length > 4096 {
                    flush()
                    output.write(UnsafeBufferPointer(start: base + start, count: length))
                    return
                }
                if filled + length > scratch.count { flush() }
                (scratchBase + filled).update(from: base + start, count: length)
                filled += length
            }
            func put(_ escape: StaticString) {
                let length = escape.utf8CodeUnitCount
                if filled + length > scratch.count { flush() }
                (scratchBase + filled).update(from: escape.utf8Start, count: length)
                filled += length
            }
            var runStart = 0
            var position = 0
            while position < count {
                if count - position >= 8 {
                    let word = UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
                    let found = JSONStringBytes.special(in: word)
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
                put(runStart, position)
                switch byte {
                case UInt8(ascii: "\""): put(#"\""#)
                case UInt8(ascii: "\\"): put(#"\\"#)
                case 0x0A: put(#"\n"#)
                case 0x0D: put(#"\r"#)
                case 0x09: put(#"\t"#)
                case 0x08: put(#"\b"#)
                case 0x0C: put(#"\f"#)
                default: put(controlEscapes[Int(byte)])
                }
                position += 1
                runStart = position
            }
            put(runStart, count)
            flush()
        }
    }

    /// `\u0000` ... `\u001f`.
    private static let controlEscapes: [StaticString] = [
        #"\u0000"#, #"\u0001"#, #"\u0002"#, #"\u0003"#, #"\u0004"#, #"\u0005"#, #"\u0006"#, #"\u0007"#,
        #"\u0008"#, #"\u0009"#, #"\u000a"#, #"\u000b"#, #"\u000c"#, #"\u000d"#, #"\u000e"#, #"\u000f"#,
        #"\u0010"#, #"\u0011"#, #"\u0012"#, #"\u0013"#, #"\u0014"#, #"\u0015"#, #"\u0016"#, #"\u0017"#,
        #"\u0018"#, #"\u0019"#, #"\u001a"#, #"\u001b"#, #"\u001c"#, #"\u001d"#, #"\u001e"#, #"\u001f"#,
    ]

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
