import Foundation

/// The small subset of TOML that `~/.modal.toml` uses: `[section]` headers and `key = value` lines, values being
/// strings (basic `"…"` with escapes, or literal `'…'`), `true` / `false`, or bare words and numbers (kept as text).
public enum ModalTOML {
    /// A value of the file.
    public enum Value: Hashable, Sendable {
        case string(String)
        case bool(Bool)
        /// A number or other bare value, as written.
        case other(String)

        /// The value as text (booleans as `true` / `false`).
        public var text: String {
            switch self {
            case .string(let text), .other(let text): text
            case .bool(let value): value ? "true" : "false"
            }
        }
    }

    /// A line the parser does not understand.
    public struct ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    /// The sections of a file, by name; keys before any section go in the section named `""`.
    public static func parse(_ text: String) throws(ParseError) -> [String: [String: Value]] {
        var sections: [String: [String: Value]] = [:]
        var current = ""
        for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            let line = stripComment(Substring(rawLine)).trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[[") else {
                    throw ParseError(line: number, reason: "a section header must look like [name]")
                }
                var name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if name.count >= 2, name.first == "\"", name.last == "\"" { name = String(name.dropFirst().dropLast()) }
                guard !name.isEmpty else { throw ParseError(line: number, reason: "empty section name") }
                current = name
                sections[current, default: [:]] = sections[current, default: [:]]
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ParseError(line: number, reason: "expected key = value")
            }
            var key = line[..<equals].trimmingCharacters(in: .whitespaces)
            if key.count >= 2, key.first == "\"", key.last == "\"" { key = String(key.dropFirst().dropLast()) }
            guard !key.isEmpty else { throw ParseError(line: number, reason: "missing key before =") }
            let rawValue = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = try value(rawValue, line: number)
        }
        return sections
    }

    /// The line without a `#` comment (a `#` inside quotes is text).
    private static func stripComment(_ line: Substring) -> Substring {
        var quote: Character?
        var escaped = false
        for index in line.indices {
            let character = line[index]
            if escaped {
                escaped = false
                continue
            }
            if let open = quote {
                if character == "\\" && open == "\"" { escaped = true } else if character == open { quote = nil }
            } else if character == "\"" || character == "'" {
                quote = character
            } else if character == "#" {
                return line[..<index]
            }
        }
        return line
    }

    private static func value(_ raw: String, line: Int) throws(ParseError) -> Value {
        if raw == "true" { return .bool(true) }
        if raw == "false" { return .bool(false) }
        if raw.hasPrefix("'") {
            guard raw.count >= 2, raw.hasSuffix("'") else {
                throw ParseError(line: line, reason: "unterminated string")
            }
            return .string(String(raw.dropFirst().dropLast()))
        }
        if raw.hasPrefix("\"") {
            guard raw.count >= 2, raw.hasSuffix("\"") else {
                throw ParseError(line: line, reason: "unterminated string")
            }
            var result = ""
            var escaped = false
            for character in raw.dropFirst().dropLast() {
                if escaped {
                    switch character {
                    case "n": result.append("\n")
                    case "t": result.append("\t")
                    case "r": result.append("\r")
                    case "\\": result.append("\\")
                    case "\"": result.append("\"")
                    default: result.append("\\"); result.append(character)
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    result.append(character)
                }
            }
            return .string(result)
        }
        guard !raw.isEmpty else { throw ParseError(line: line, reason: "missing value after =") }
        return .other(raw)
    }
}
