public import SandboxVCR

extension JSONValue {
    /// The bytes `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` writes: what FastAPI's
    /// `JSONResponse` sends.
    public var pythonJSONBytes: [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        write(to: &output)
        return output
    }

    /// The same as text.
    public var pythonJSONText: String { String(decoding: pythonJSONBytes, as: UTF8.self) }

    private func write(to output: inout [UInt8]) {
        switch self {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let value): output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let digits): output.append(contentsOf: digits.utf8)
        case .float(let value): output.append(contentsOf: Self.pythonRepr(value).utf8)
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let values):
            output.append(UInt8(ascii: "["))
            for (index, value) in values.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let members):
            output.append(UInt8(ascii: "{"))
            for (index, (key, value)) in members.enumerated() {
                if index > 0 { output.append(UInt8(ascii: ",")) }
                Self.writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Python's `repr(float)`, which `json.dumps` uses (`NaN` and `Infinity` as Python writes them).
    static func pythonRepr(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        // Swift's shortest round-trip form matches Python's repr for the usual cases ("1.0", "1e-05", "1e+16").
        return value.description
    }

    private static func writeString(_ value: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in writeEscaped(bytes, to: &output) }
        output.append(UInt8(ascii: "\""))
    }

    /// Appends `bytes` with JSON's escapes, copying the runs between escapes in bulk (eight bytes are checked at a
    /// time), so a megabyte of plain output costs a scan and one copy.
    static func writeEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
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
            output.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: position - runStart))
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: #"\\"#.utf8)
            case 0x0A: output.append(contentsOf: #"\n"#.utf8)
            case 0x0D: output.append(contentsOf: #"\r"#.utf8)
            case 0x09: output.append(contentsOf: #"\t"#.utf8)
            case 0x08: output.append(contentsOf: #"\b"#.utf8)
            case 0x0C: output.append(contentsOf: #"\f"#.utf8)
            default:
                let hex: StaticString = "0123456789abcdef"
                output.append(contentsOf: #"\u00"#.utf8)
                output.append(hex.utf8Start[Int(byte >> 4)])
                output.append(hex.utf8Start[Int(byte & 0xF)])
            }
            position += 1
            runStart = position
        }
        output.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: count - runStart))
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
