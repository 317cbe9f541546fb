package import SandboxVCR

/// A JSON parser that accepts and rejects exactly what Python's `json.loads` does, with the same error messages
/// and positions (character offsets), so a malformed body gets FastAPI's `json_invalid` answer byte for byte.
///
/// Follows CPython's C scanner (`Modules/_json.c`): strict strings (no raw control characters), `NaN`,
/// `Infinity` and `-Infinity` accepted, a UTF-8 byte order mark skipped (as `json.loads(bytes)` does). Nesting
/// deeper than ``maximumDepth`` fails as Python's `RecursionError` does, for which FastAPI answers 400.
///
/// It builds strings one scalar at a time: the request path runs ``FastJSONParser`` first and this parser only for
/// the bodies that one rejects, to say why.
package struct PythonJSONParser {
    /// A parse failure: the message and character offset Python's `JSONDecodeError` would carry.
    package struct DecodeError: Error, Equatable {
        package var message: String
        package var position: Int
    }

    /// The deepest nesting of arrays and objects accepted: Python's default recursion limit, which its C scanner
    /// counts against (the real server fails a little earlier, its own frames being on the stack).
    package static let maximumDepth = 1000

    /// Why scanning stopped: a decode error, or nesting past ``maximumDepth``.
    private enum Failure: Error {
        case decode(DecodeError)
        case tooDeep
    }

    private let text: [Unicode.Scalar]
    private var position = 0

    private init(text: [Unicode.Scalar]) { self.text = text }

    /// Parses a whole document.
    ///
    /// - Returns: `nil` when FastAPI answers 400 rather than 422: the bytes are not UTF-8, or they nest deeper than
    ///   ``maximumDepth``.
    /// - Throws: ``DecodeError`` as Python would raise it.
    package static func parse(_ bytes: some Collection<UInt8>) throws(DecodeError) -> JSONValue? {
        guard var string = String(validating: bytes, as: UTF8.self) else { return nil }
        if string.unicodeScalars.first == "\u{FEFF}" { string.unicodeScalars.removeFirst() }
        var parser = PythonJSONParser(text: Array(string.unicodeScalars))
        do throws(Failure) {
            parser.skipWhitespace()
            let value = try parser.scanValue(depth: 0)
            parser.skipWhitespace()
            if parser.position != parser.text.count {
                throw Failure.decode(DecodeError(message: "Extra data", position: parser.position))
            }
            return value
        } catch {
            switch error {
            case .decode(let decodeError): throw decodeError
            case .tooDeep: return nil
            }
        }
    }

    private func character(at index: Int) -> Unicode.Scalar? {
        index < text.count ? text[index] : nil
    }

    private static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r"
    }

    private mutating func skipWhitespace() {
        while position < text.count, Self.isWhitespace(text[position]) { position += 1 }
    }

    /// Whether `literal` starts at the current position.
    private func matches(_ literal: String) -> Bool {
        var index = position
        for scalar in literal.unicodeScalars {
            guard index < text.count, text[index] == scalar else { return false }
            index += 1
        }
        return true
    }

    private mutating func scanValue(depth: Int) throws(Failure) -> JSONValue {
        guard let first = character(at: position) else {
            throw .decode(DecodeError(message: "Expecting value", position: position))
        }
        switch first {
        case "\"":
            return .string(try scanString())
        case "{":
            guard depth < Self.maximumDepth else { throw .tooDeep }
            return try scanObject(depth: depth + 1)
        case "[":
            guard depth < Self.maximumDepth else { throw .tooDeep }
            return try scanArray(depth: depth + 1)
        case "n" where matches("null"):
            position += 4
            return .null
        case "t" where matches("true"):
            position += 4
            return .bool(true)
        case "f" where matches("false"):
            position += 5
            return .bool(false)
        case "N" where matches("NaN"):
            position += 3
            return .float(.nan)
        case "I" where matches("Infinity"):
            position += 8
            return .float(.infinity)
        case "-" where matches("-Infinity"):
            position += 9
            return .float(-.infinity)
        default:
            return try scanNumber()
        }
    }

    private mutating func scanNumber() throws(Failure) -> JSONValue {
        let start = position
        var index = position
        func isDigit(_ index: Int) -> Bool {
            guard let scalar = character(at: index) else { return false }
            return scalar >= "0" && scalar <= "9"
        }
        if character(at: index) == "-" {
            index += 1
            if index >= text.count { throw .decode(DecodeError(message: "Expecting value", position: start)) }
        }
        if let scalar = character(at: index), scalar >= "1" && scalar <= "9" {
            index += 1
            while isDigit(index) { index += 1 }
        } else if character(at: index) == "0" {
            index += 1
        } else {
            throw .decode(DecodeError(message: "Expecting value", position: start))
        }
        var isFloat = false
        if character(at: index) == ".", isDigit(index + 1) {
            isFloat = true
            index += 2
            while isDigit(index) { index += 1 }
        }
        if let scalar = character(at: index), scalar == "e" || scalar == "E" {
            let exponentStart = index
            index += 1
            if let sign = character(at: index), sign == "-" || sign == "+" { index += 1 }
            let digitsStart = index
            while isDigit(index) { index += 1 }
            if index > digitsStart { isFloat = true } else { index = exponentStart }
        }
        position = index
        var lexeme = String(String.UnicodeScalarView(text[start..<index]))
        if isFloat { return .float(Double(lexeme) ?? .nan) }
        if lexeme == "-0" { lexeme = "0" }
        return .integer(lexeme)
    }

    private mutating func scanString() throws(Failure) -> String {
        let begin = position
        var index = position + 1
        var result = String.UnicodeScalarView()
        while true {
            var chunkEnd = index
            var terminator: Unicode.Scalar?
            while chunkEnd < text.count {
                let scalar = text[chunkEnd]
                if scalar == "\"" || scalar == "\\" {
                    terminator = scalar
                    break
                }
                if scalar.value <= 0x1F {
                    throw .decode(DecodeError(message: "Invalid control character at", position: chunkEnd))
                }
                chunkEnd += 1
            }
            guard let terminator else {
                throw .decode(DecodeError(message: "Unterminated string starting at", position: begin))
            }
            result.append(contentsOf: text[index..<chunkEnd])
            if terminator == "\"" {
                position = chunkEnd + 1
                return String(result)
            }
            var next = chunkEnd + 1
            guard next < text.count else {
                throw .decode(DecodeError(message: "Unterminated string starting at", position: begin))
            }
            let escape = text[next]
            if escape != "u" {
                let replacement: Unicode.Scalar? =
                    switch escape {
                    case "\"": "\""
                    case "\\": "\\"
                    case "/": "/"
                    case "b": "\u{08}"
                    case "f": "\u{0C}"
                    case "n": "\n"
                    case "r": "\r"
                    case "t": "\t"
                    default: nil
                    }
                guard let replacement else {
                    throw .decode(DecodeError(message: "Invalid \\escape", position: chunkEnd))
                }
                result.append(replacement)
                index = next + 1
                continue
            }
            next += 1
            var end = next + 4
            guard end < text.count else {
                throw .decode(DecodeError(message: "Invalid \\uXXXX escape", position: next - 1))
            }
            guard var code = hexValue(from: next, to: end) else {
                throw .decode(DecodeError(message: "Invalid \\uXXXX escape", position: end - 5))
            }
            if (0xD800...0xDBFF).contains(code), end + 6 < text.count, text[end] == "\\", text[end + 1] == "u" {
                let lowStart = end + 2
                end += 6
                guard let low = hexValue(from: lowStart, to: end) else {
                    throw .decode(DecodeError(message: "Invalid \\uXXXX escape", position: end - 5))
                }
                if (0xDC00...0xDFFF).contains(low) {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    end -= 6
                }
            }
            // A lone surrogate cannot live in a Swift string; it becomes U+FFFD.
            result.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            index = end
        }
    }

    private func hexValue(from start: Int, to end: Int) -> UInt32? {
        var value: UInt32 = 0
        for index in start..<end {
            guard let digit = hexDigit(text[index]) else { return nil }
            value = value << 4 | digit
        }
        return value
    }

    private func hexDigit(_ scalar: Unicode.Scalar) -> UInt32? {
        switch scalar {
        case "0"..."9": scalar.value - 48
        case "a"..."f": scalar.value - 87
        case "A"..."F": scalar.value - 55
        default: nil
        }
    }

    private mutating func scanObject(depth: Int) throws(Failure) -> JSONValue {
        var members: [(String, JSONValue)] = []
        var indexByKey: [ExactJSONKey: Int] = [:]
        position += 1
        skipWhitespace()
        if character(at: position) == "}" {
            position += 1
            return .object(members)
        }
        while true {
            guard character(at: position) == "\"" else {
                throw .decode(
                    DecodeError(message: "Expecting property name enclosed in double quotes", position: position))
            }
            let key = try scanString()
            skipWhitespace()
            guard character(at: position) == ":" else {
                throw .decode(DecodeError(message: "Expecting ':' delimiter", position: position))
            }
            position += 1
            skipWhitespace()
            let value = try scanValue(depth: depth)
            if let existing = indexByKey[ExactJSONKey(key)] {
                members[existing].1 = value
            } else {
                indexByKey[ExactJSONKey(key)] = members.count
                members.append((key, value))
            }
            skipWhitespace()
            if character(at: position) == "}" { break }
            guard character(at: position) == "," else {
                throw .decode(DecodeError(message: "Expecting ',' delimiter", position: position))
            }
            position += 1
            skipWhitespace()
        }
        position += 1
        return .object(members)
    }

    private mutating func scanArray(depth: Int) throws(Failure) -> JSONValue {
        var elements: [JSONValue] = []
        position += 1
        skipWhitespace()
        if character(at: position) == "]" {
            position += 1
            return .array(elements)
        }
        while true {
            elements.append(try scanValue(depth: depth))
            skipWhitespace()
            if character(at: position) == "]" { break }
            guard character(at: position) == "," else {
                throw .decode(DecodeError(message: "Expecting ',' delimiter", position: position))
            }
            position += 1
            skipWhitespace()
        }
        position += 1
        return .array(elements)
    }
}

/// An object key compared by its exact UTF-8, as Python compares `str` keys: Swift's `String` equality would merge
/// canonically equivalent keys ("é" as U+00E9 and as "e" + U+0301), which Python keeps apart.
struct ExactJSONKey: Hashable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (lhs: ExactJSONKey, rhs: ExactJSONKey) -> Bool { lhs.text.utf8.elementsEqual(rhs.text.utf8) }

    func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
