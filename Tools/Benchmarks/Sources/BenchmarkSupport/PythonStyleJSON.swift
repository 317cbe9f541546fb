/// A JSON writer that produces the exact bytes of the payloads' peers: Python's `json.dumps` with its defaults, or
/// FastAPI's `JSONResponse` (what SandboxFusion answers with).
///
/// Hand-written because Foundation's encoders choose their own escaping and separators, and the point of the
/// payloads is to send what the real peers send.
struct PythonStyleJSON {
    /// Whose output to reproduce.
    enum Style {
        /// `json.dumps(value)`: `", "` and `": "` separators, anything outside printable ASCII as `\uXXXX`
        /// (surrogate pairs above U+FFFF).
        case pythonDumps
        /// `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`: compact, UTF-8.
        case fastAPI
    }

    let style: Style
    private(set) var bytes: [UInt8] = []
    /// Whether the next member of the open object or array needs a separator before it.
    private var needsSeparator = false

    init(style: Style) { self.style = style }

    mutating func beginObject() {
        bytes.append(UInt8(ascii: "{"))
        needsSeparator = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsSeparator = true
    }

    /// A member's key and the colon; its value follows.
    mutating func key(_ name: String) {
        if needsSeparator { bytes += style == .pythonDumps ? Array(", ".utf8) : [UInt8(ascii: ",")] }
        string(name)
        bytes += style == .pythonDumps ? Array(": ".utf8) : [UInt8(ascii: ":")]
        needsSeparator = false
    }

    /// A member whose value is a string.
    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    /// A literal value written as it is (`null`, a number), or text between values.
    mutating func raw(_ text: String) {
        bytes += Array(text.utf8)
        needsSeparator = true
    }

    /// A quoted, escaped string.
    mutating func string(_ value: String) {
        bytes.reserveCapacity(bytes.count + value.utf8.count + 2)
        bytes.append(UInt8(ascii: "\""))
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case "\\": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case "\n": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case "\r": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case "\t": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case "\u{08}": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case "\u{0C}": bytes += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case _ where scalar.value < 0x20 || (scalar.value == 0x7F && style == .pythonDumps):
                escape(UInt16(scalar.value))
            case _ where scalar.value < 0x80: bytes.append(UInt8(scalar.value))
            case _ where style == .fastAPI: bytes += Array(String(scalar).utf8)
            case _ where scalar.value > 0xFFFF:
                let value = scalar.value - 0x1_0000
                escape(UInt16(0xD800 + (value >> 10)))
                escape(UInt16(0xDC00 + (value & 0x3FF)))
            default: escape(UInt16(scalar.value))
            }
        }
        bytes.append(UInt8(ascii: "\""))
        needsSeparator = true
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// `\uXXXX` in lower-case hex, as Python writes it.
    private mutating func escape(_ unit: UInt16) {
        let hex = Self.hex
        bytes += [
            UInt8(ascii: "\\"), UInt8(ascii: "u"), hex[Int(unit >> 12)], hex[Int(unit >> 8 & 0xF)],
            hex[Int(unit >> 4 & 0xF)], hex[Int(unit & 0xF)],
        ]
    }
}
