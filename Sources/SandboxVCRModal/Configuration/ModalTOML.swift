import Foundation
import TOMLKit

/// The profiles of a `~/.modal.toml` file, parsed by TOMLKit (toml++, the whole TOML 1.0 grammar).
///
/// A profile is a top-level table (`[name]`); keys outside any table go in the section named `""`. Only scalar
/// values are kept: strings, booleans, and numbers as text. Arrays, dates and nested tables are skipped: Modal's
/// profiles have none.
///
/// See https://toml.io/en/v1.0.0 for the grammar and https://marzer.github.io/tomlplusplus/ for the parser.
enum ModalTOML {
    /// A value of the file.
    enum Value: Hashable, Sendable {
        case string(String)
        case bool(Bool)
        /// A number, as text (`8080`, `2.5`).
        case other(String)

        /// The value as text (booleans as `true` / `false`).
        var text: String {
            switch self {
            case .string(let text), .other(let text): text
            case .bool(let value): value ? "true" : "false"
            }
        }
    }

    /// Why a file is not valid TOML, and where.
    ///
    /// The reason never quotes the file: toml++ quotes the piece of text it could not read (a number too large, a
    /// key defined twice), and that piece may be a token, so every quoted fragment longer than one character is
    /// replaced by `'…'`. The line and column say where to look.
    struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        var line: Int
        var column: Int
        var reason: String
        var description: String { "line \(line), column \(column): \(reason)" }
    }

    /// The sections of a file, by name; keys before any section go in the section named `""`.
    ///
    /// - Throws: ``ParseError`` when the text is not valid TOML.
    static func parse(_ text: String) throws(ParseError) -> [String: [String: Value]] {
        try refuseAssertionTriggers(text)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ParseError(
                line: error.source.begin.line, column: error.source.begin.column,
                reason: redacted(error.description))
        } catch {
            throw ParseError(line: 0, column: 0, reason: "the TOML parser failed")
        }
        var sections: [String: [String: Value]] = [:]
        for key in table.keys {
            guard let node = table[key] else { continue }
            if let profile = node.table {
                var values: [String: Value] = [:]
                for name in profile.keys {
                    if let value = profile[name].flatMap(scalar) { values[name] = value }
                }
                sections[key] = values
            } else if let value = scalar(node) {
                sections["", default: [:]][key] = value
            }
        }
        return sections
    }

    private static func scalar(_ node: any TOMLValueConvertible) -> Value? {
        switch node.type {
        case .string: node.string.map(Value.string)
        case .bool: node.bool.map(Value.bool)
        case .int: node.int.map { .other(String($0)) }
        case .double: node.double.map { .other(String($0)) }
        default: nil
        }
    }

    /// Refuses the two shapes on which toml++ 3.4 (vendored by TOMLKit 0.6.0, built without `NDEBUG`) stops the
    /// process with a failed `assert` instead of a parse error (found by fuzzing, `Fixtures/fuzz/modal-toml`): a
    /// table name part that starts with neither a bare-key character nor a quote (`[*]`), and a date-time whose
    /// time does not start with a digit (`1979-05-27Tx`). String literals on a line are set aside first.
    private static func refuseAssertionTriggers(_ text: String) throws(ParseError) {
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = Array(withoutStrings(line).utf8)
            func isKeyStart(_ byte: UInt8) -> Bool {
                switch byte {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""),
                    UInt8(ascii: "'"):
                    true
                default: false
                }
            }
            func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D }
            var position = 0
            while position < code.count, isBlank(code[position]) { position += 1 }
            if position < code.count, code[position] == UInt8(ascii: "[") {
                // A table header: each name part, after `[`, `[[` or `.`, starts with a key character.
                var expectsKey = true
                position += 1
                if position < code.count, code[position] == UInt8(ascii: "[") { position += 1 }
                while position < code.count, code[position] != UInt8(ascii: "]") || expectsKey {
                    let byte = code[position]
                    if isBlank(byte) {
                        position += 1
                        continue
                    }
                    if expectsKey, !isKeyStart(byte) {
                        throw ParseError(
                            line: index + 1, column: position + 1, reason: "a table name must be a bare or quoted key")
                    }
                    expectsKey = byte == UInt8(ascii: ".")
                    position += 1
                }
            }
            // A date (four digits, dash, two, dash, two) then `T` or `t` must go on with a digit.
            if code.count >= 11 {
                for start in 0...(code.count - 11) where code[start + 10] | 0x20 == UInt8(ascii: "t") {
                    let isDigit = { (offset: Int) in code[start + offset] &- UInt8(ascii: "0") < 10 }
                    let isDate =
                        [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy(isDigit) && code[start + 4] == UInt8(ascii: "-")
                        && code[start + 7] == UInt8(ascii: "-")
                    if isDate, start + 11 >= code.count || !isDigit(11) {
                        throw ParseError(
                            line: index + 1, column: start + 12, reason: "a date-time's time must start with a digit")
                    }
                }
            }
        }
    }

    /// The line with the contents of its one-line string literals removed (their quotes kept).
    private static func withoutStrings(_ line: Substring) -> String {
        var result = ""
        var quote: Character?
        var escaped = false
        for character in line {
            if let open = quote {
                if escaped {
                    escaped = false
                } else if character == "\\", open == "\"" {
                    escaped = true
                } else if character == open {
                    quote = nil
                    result.append(character)
                }
                continue
            }
            if character == "#" { break }
            if character == "\"" || character == "'" { quote = character }
            result.append(character)
        }
        return result
    }

    /// The parser's message with every quoted fragment of two characters or more replaced by `'…'`.
    static func redacted(_ message: String) -> String {
        var result = ""
        var rest = Substring(message)
        while let open = rest.firstIndex(of: "'") {
            result += rest[...open]
            let afterOpen = rest.index(after: open)
            guard let close = rest[afterOpen...].firstIndex(of: "'") else {
                // An unclosed quote: nothing after it is shown.
                return result + "…"
            }
            let fragment = rest[afterOpen..<close]
            result += fragment.count <= 1 ? String(fragment) : "…"
            result += "'"
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}
