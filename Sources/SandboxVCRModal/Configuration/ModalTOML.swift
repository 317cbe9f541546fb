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
