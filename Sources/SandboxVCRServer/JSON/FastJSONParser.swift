package import SandboxVCR

/// The request path's JSON parser: the happy path over UTF-8 bytes, in one pass with bulk string decoding.
///
/// It accepts exactly what ``PythonJSONParser`` accepts and gives the same values (a fuzz target compares the two),
/// but says nothing about a body it rejects: the caller then runs ``PythonJSONParser`` for Python's exact message
/// and position. Strings without escapes are made from the bytes in one copy; strings with escapes are decoded in
/// one pass into a scratch buffer (allocated once per document) and copied from there; the scan for a string's end,
/// for escapes and for control characters reads eight bytes at a time.
package enum FastJSONParser {
    /// Parses a whole document, or returns `nil` when ``PythonJSONParser`` would reject it (or the bytes are not
    /// UTF-8, or nest deeper than ``PythonJSONParser/maximumDepth``).
    package static func parse(_ bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
            var scanner = Scanner(base: base, count: buffer.count)
            defer { scanner.scratch?.deallocate() }
            if buffer.count >= 3, base[0] == 0xEF, base[1] == 0xBB, base[2] == 0xBF { scanner.index = 3 }
            scanner.skipWhitespace()
            guard let value = scanner.value(depth: 0) else { return nil }
            scanner.skipWhitespace()
            // (Not a `?:` expression: JSONValue is ExpressibleByNilLiteral, so its `nil` would be JSON's null.)
            guard scanner.index == scanner.count else { return nil }
            return value
        }
    }

    private struct Scanner {
        let base: UnsafePointer<UInt8>
        let count: Int
        var index = 0
        /// Where strings with escapes are decoded: made at the first escape, as long as the rest of the document
        /// plus eight bytes, so a decoded string (never longer than its source) and eight-byte stores always fit.
        var scratch: UnsafeMutableBufferPointer<UInt8>?

        init(base: UnsafePointer<UInt8>, count: Int) {
            self.base = base
            self.count = count
        }

        mutating func skipWhitespace() {
            while index < count {
                switch base[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        /// Whether the ASCII `literal` starts at the current index.
        func matches(_ literal: StaticString) -> Bool {
            let length = literal.utf8CodeUnitCount
            guard count - index >= length else { return false }
            let start = literal.utf8Start
            for offset in 0..<length where base[index + offset] != start[offset] { return false }
            return true
        }

        mutating func value(depth: Int) -> JSONValue? {
            guard index < count else { return nil }
            switch base[index] {
            case UInt8(ascii: "\""):
                return string().map(JSONValue.string)
            case UInt8(ascii: "{"):
                return depth < PythonJSONParser.maximumDepth ? object(depth: depth + 1) : nil
            case UInt8(ascii: "["):
                return depth < PythonJSONParser.maximumDepth ? array(depth: depth + 1) : nil
            case UInt8(ascii: "n") where matches("null"):
                index += 4
                return .null
            case UInt8(ascii: "t") where matches("true"):
                index += 4
                return .bool(true)
            case UInt8(ascii: "f") where matches("false"):
                index += 5
                return .bool(false)
            case UInt8(ascii: "N") where matches("NaN"):
                index += 3
                return .float(.nan)
            case UInt8(ascii: "I") where matches("Infinity"):
                index += 8
                return .float(.infinity)
            case UInt8(ascii: "-") where matches("-Infinity"):
                index += 9
                return .float(-.infinity)
            default:
                return number()
            }
        }

        private func isDigit(_ position: Int) -> Bool {
            position < count && base[position] &- UInt8(ascii: "0") < 10
        }

        /// Python's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`; a `.` or exponent without
        /// digits ends the number before it (and the document then fails on what follows).
        private mutating func number() -> JSONValue? {
            let start = index
            var position = index
            if base[position] == UInt8(ascii: "-") { position += 1 }
            guard position < count else { return nil }
            if base[position] == UInt8(ascii: "0") {
                position += 1
            } else if base[position] &- UInt8(ascii: "1") < 9 {
                position += 1
                while isDigit(position) { position += 1 }
            } else {
                return nil
            }
            var isFloat = false
            if position < count, base[position] == UInt8(ascii: "."), isDigit(position + 1) {
                isFloat = true
                position += 2
                while isDigit(position) { position += 1 }
            }
            if position < count, base[position] | 0x20 == UInt8(ascii: "e") {
                var exponent = position + 1
                if exponent < count, base[exponent] == UInt8(ascii: "-") || base[exponent] == UInt8(ascii: "+") {
                    exponent += 1
                }
                if isDigit(exponent) {
                    while isDigit(exponent) { exponent += 1 }
                    isFloat = true
                    position = exponent
                }
            }
            index = position
            let lexeme = String(
                decoding: UnsafeBufferPointer(start: base + start, count: position - start), as: UTF8.self)
            if isFloat { return .float(Double(lexeme) ?? .nan) }
            return .integer(lexeme == "-0" ? "0" : lexeme)
        }

        /// A string at the current `"`; its content is validated as UTF-8 (a failure rejects the document, as
        /// ``PythonJSONParser`` refuses bytes that are not UTF-8).
        ///
        /// One pass: up to the first escape the bytes are only scanned, and a string without escapes is made from
        /// them directly; from the first escape on, runs are copied eight bytes at a time into the scratch buffer
        /// between decoded escapes, so clients' `\n` and `\uXXXX` (Python's `json.dumps` escapes everything beyond
        /// ASCII) cost little more than the bytes between them.
        private mutating func string() -> String? {
            let start = index + 1
            var position = scanToStop(from: start)
            guard position < count, base[position] >= 0x20 else { return nil }
            if base[position] == UInt8(ascii: "\"") {
                index = position + 1
                return String(
                    validating: UnsafeBufferPointer(start: base + start, count: position - start), as: UTF8.self)
            }
            if scratch == nil {
                let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: count - start + 8)
                scratch = buffer
            }
            let output = scratch!.baseAddress!
            var written = position - start
            output.update(from: base + start, count: written)
            while true {
                // At a backslash.
                guard
                    let next = Self.escape(base, count: count, at: position, into: output + written, written: &written)
                else { return nil }
                position = next
                // Copy up to the next stop, eight bytes at a time (a store may run past it: `written` never passes
                // `position - start`, and the scratch buffer holds eight bytes more than the rest of the document).
                var stop = position
                while count - stop >= 8 {
                    let word = UnsafeRawPointer(base + stop).loadUnaligned(as: UInt64.self)
                    UnsafeMutableRawPointer(output + written + (stop - position)).storeBytes(of: word, as: UInt64.self)
                    let found = JSONStringBytes.special(in: UInt64(littleEndian: word))
                    if found != 0 {
                        stop += found.trailingZeroBitCount / 8
                        break
                    }
                    stop += 8
                }
                if count - stop < 8 {
                    while stop < count {
                        let byte = base[stop]
                        if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                        output[written + stop - position] = byte
                        stop += 1
                    }
                }
                written += stop - position
                position = stop
                guard position < count, base[position] >= 0x20 else { return nil }
                if base[position] == UInt8(ascii: "\"") { break }
            }
            index = position + 1
            return String(validating: UnsafeBufferPointer(start: output, count: written), as: UTF8.self)
        }

        /// The index of the first `"`, `\` or control character at or after `start`, or `count`.
        private func scanToStop(from start: Int) -> Int {
            var position = start
            while count - position >= 8 {
                let word = UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
                let found = JSONStringBytes.special(in: word)
                if found != 0 { return position + found.trailingZeroBitCount / 8 }
                position += 8
            }
            while position < count {
                let byte = base[position]
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { return position }
                position += 1
            }
            return position
        }

        /// Decodes the escape whose backslash is at `position` into `output`, adds the bytes written to `written`,
        /// and returns the index after the escape; `nil` for an invalid escape.
        private static func escape(
            _ source: UnsafePointer<UInt8>, count: Int, at position: Int, into output: UnsafeMutablePointer<UInt8>,
            written: inout Int
        ) -> Int? {
            guard position + 1 < count else { return nil }
            let replacement: UInt8
            switch source[position + 1] {
            case UInt8(ascii: "\""): replacement = UInt8(ascii: "\"")
            case UInt8(ascii: "\\"): replacement = UInt8(ascii: "\\")
            case UInt8(ascii: "/"): replacement = UInt8(ascii: "/")
            case UInt8(ascii: "b"): replacement = 0x08
            case UInt8(ascii: "f"): replacement = 0x0C
            case UInt8(ascii: "n"): replacement = 0x0A
            case UInt8(ascii: "r"): replacement = 0x0D
            case UInt8(ascii: "t"): replacement = 0x09
            case UInt8(ascii: "u"):
                guard let (scalar, next) = unicodeEscape(source, count: count, at: position + 2) else { return nil }
                written += encode(scalar, into: output)
                return next
            default: return nil
            }
            output[0] = replacement
            written += 1
            return position + 2
        }

        /// Writes the UTF-8 bytes of `scalar` (at most 4, never more than the 6 of its escape) and returns how many.
        private static func encode(_ scalar: Unicode.Scalar, into target: UnsafeMutablePointer<UInt8>) -> Int {
            let value = scalar.value
            switch value {
            case ..<0x80:
                target[0] = UInt8(value)
                return 1
            case ..<0x800:
                target[0] = UInt8(0xC0 | value >> 6)
                target[1] = UInt8(0x80 | value & 0x3F)
                return 2
            case ..<0x10000:
                target[0] = UInt8(0xE0 | value >> 12)
                target[1] = UInt8(0x80 | value >> 6 & 0x3F)
                target[2] = UInt8(0x80 | value & 0x3F)
                return 3
            default:
                target[0] = UInt8(0xF0 | value >> 18)
                target[1] = UInt8(0x80 | value >> 12 & 0x3F)
                target[2] = UInt8(0x80 | value >> 6 & 0x3F)
                target[3] = UInt8(0x80 | value & 0x3F)
                return 4
            }
        }

        /// Decodes `XXXX` at `start` (after `\u`), pairing a high surrogate with a following `\uXXXX` low one; a
        /// lone surrogate becomes U+FFFD. As in ``PythonJSONParser``, a character must follow the digits, and a pair
        /// is read only when seven characters follow the first escape.
        private static func unicodeEscape(_ source: UnsafePointer<UInt8>, count: Int, at start: Int)
            -> (Unicode.Scalar, Int)?
        {
            var end = start + 4
            guard end < count, var code = hexValue(source + start) else { return nil }
            if (0xD800...0xDBFF).contains(code), end + 6 < count, source[end] == UInt8(ascii: "\\"),
                source[end + 1] == UInt8(ascii: "u")
            {
                guard let low = hexValue(source + end + 2) else { return nil }
                if (0xDC00...0xDFFF).contains(low) {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    end += 6
                }
            }
            return (Unicode.Scalar(code) ?? "\u{FFFD}", end)
        }

        private static func hexValue(_ start: UnsafePointer<UInt8>) -> UInt32? {
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = start[offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }

        private mutating func object(depth: Int) -> JSONValue? {
            index += 1
            skipWhitespace()
            var members: [(String, JSONValue)] = []
            if index < count, base[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            // Small objects find a repeated key by a linear search; large ones through a dictionary.
            var indexByKey: [ExactJSONKey: Int]?
            while true {
                guard index < count, base[index] == UInt8(ascii: "\""), let key = string() else { return nil }
                skipWhitespace()
                guard index < count, base[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                skipWhitespace()
                guard let value = value(depth: depth) else { return nil }
                if let existing = Self.position(of: key, in: members, indexByKey: &indexByKey) {
                    members[existing].1 = value
                } else {
                    indexByKey?[ExactJSONKey(key)] = members.count
                    members.append((key, value))
                }
                skipWhitespace()
                guard index < count else { return nil }
                if base[index] == UInt8(ascii: "}") { break }
                guard base[index] == UInt8(ascii: ",") else { return nil }
                index += 1
                skipWhitespace()
            }
            index += 1
            return .object(members)
        }

        private static func position(
            of key: String, in members: [(String, JSONValue)], indexByKey: inout [ExactJSONKey: Int]?
        ) -> Int? {
            if let indexByKey { return indexByKey[ExactJSONKey(key)] }
            if members.count < 16 { return members.firstIndex { $0.0.utf8.elementsEqual(key.utf8) } }
            var built: [ExactJSONKey: Int] = [:]
            for (offset, member) in members.enumerated() { built[ExactJSONKey(member.0)] = offset }
            indexByKey = built
            return built[ExactJSONKey(key)]
        }

        private mutating func array(depth: Int) -> JSONValue? {
            index += 1
            skipWhitespace()
            var elements: [JSONValue] = []
            if index < count, base[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                guard let element = value(depth: depth) else { return nil }
                elements.append(element)
                skipWhitespace()
                guard index < count else { return nil }
                if base[index] == UInt8(ascii: "]") { break }
                guard base[index] == UInt8(ascii: ",") else { return nil }
                index += 1
                skipWhitespace()
            }
            index += 1
            return .array(elements)
        }
    }
}
