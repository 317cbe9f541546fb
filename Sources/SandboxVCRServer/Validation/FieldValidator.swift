import SandboxVCR

/// Pydantic 2.6's lax-mode checks for the field types the SandboxFusion API uses, as FastAPI runs them on a
/// parsed JSON body (Python mode): same acceptance, same error types, messages and inputs.
struct FieldValidator {
    /// The issues found so far, in pydantic's order (fields in declaration order, then items in order).
    var issues: [ValidationIssue] = []

    private mutating func fail(
        _ type: String, _ message: String, at location: [JSONValue], input: JSONValue,
        context: JSONValue? = nil
    ) {
        issues.append(ValidationIssue(type: type, location: location, message: message, input: input, context: context))
    }

    /// `str`: only strings.
    mutating func string(_ value: JSONValue, at location: [JSONValue]) -> String? {
        if case .string(let text) = value { return text }
        fail("string_type", "Input should be a valid string", at: location, input: value)
        return nil
    }

    /// `Optional[str]`: a string or null (`.some(nil)` for null, `nil` when invalid).
    mutating func optionalString(_ value: JSONValue, at location: [JSONValue]) -> String?? {
        if case .null = value { return .some(nil) }
        return string(value, at: location).map { .some($0) }
    }

    /// `float`: numbers, booleans, and strings that parse as numbers (inf and nan allowed).
    mutating func float(_ value: JSONValue, at location: [JSONValue]) -> Double? {
        switch value {
        case .float(let number): return number
        case .bool(let flag): return flag ? 1 : 0
        case .integer(let digits):
            if let number = Double(digits), number.isFinite { return number }
        case .string(let text):
            if let number = Self.parseFloat(text) { return number }
            fail(
                "float_parsing", "Input should be a valid number, unable to parse string as a number", at: location,
                input: value)
            return nil
        default: break
        }
        fail("float_type", "Input should be a valid number", at: location, input: value)
        return nil
    }

    /// `int`: integers, booleans, floats without a fraction, and strings that parse as integers.
    mutating func integer(_ value: JSONValue, at location: [JSONValue]) -> Int? {
        switch value {
        case .integer(let digits):
            if let number = Int(digits) { return number }
            fail(
                "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size",
                at: location, input: value)
            return nil
        case .bool(let flag): return flag ? 1 : 0
        case .float(let number):
            if !number.isFinite {
                fail("finite_number", "Input should be a finite number", at: location, input: value)
            } else if number.truncatingRemainder(dividingBy: 1) != 0 {
                fail(
                    "int_from_float", "Input should be a valid integer, got a number with a fractional part",
                    at: location, input: value)
            } else if number > Double(Int.min), number < Double(Int.max) {
                return Int(number)
            } else {
                fail(
                    "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size",
                    at: location, input: value)
            }
            return nil
        case .string(let text):
            if let number = Self.parseInteger(text) { return number }
            fail(
                "int_parsing", "Input should be a valid integer, unable to parse string as an integer",
                at: location, input: value)
            return nil
        default:
            fail("int_type", "Input should be a valid integer", at: location, input: value)
            return nil
        }
    }

    /// `Literal[...]` of strings.
    mutating func literal(_ value: JSONValue, allowed: [String], at location: [JSONValue]) -> String? {
        if case .string(let text) = value, allowed.contains(text) { return text }
        let expected = Self.expectedText(allowed)
        fail(
            "literal_error", "Input should be \(expected)", at: location, input: value,
            context: .object([("expected", .string(expected))]))
        return nil
    }

    /// `List[str]`.
    mutating func stringList(_ value: JSONValue, at location: [JSONValue]) -> [String]? {
        guard case .array(let elements) = value else {
            fail("list_type", "Input should be a valid list", at: location, input: value)
            return nil
        }
        var result: [String] = []
        var isValid = true
        for (index, element) in elements.enumerated() {
            if let text = string(element, at: location + [.integer(String(index))]) {
                result.append(text)
            } else {
                isValid = false
            }
        }
        return isValid ? result : nil
    }

    /// `Dict[str, Optional[str]]` (or `Dict[str, str]` when `allowsNull` is false).
    mutating func stringDictionary(_ value: JSONValue, allowsNull: Bool, at location: [JSONValue])
        -> [String: String?]?
    {
        guard case .object(let members) = value else {
            fail("dict_type", "Input should be a valid dictionary", at: location, input: value)
            return nil
        }
        var result: [String: String?] = [:]
        var isValid = true
        for (key, element) in members {
            let itemLocation = location + [.string(key)]
            if allowsNull {
                if let text = optionalString(element, at: itemLocation) { result[key] = text } else { isValid = false }
            } else if let text = string(element, at: itemLocation) {
                result[key] = text
            } else {
                isValid = false
            }
        }
        return isValid ? result : nil
    }

    /// `'a', 'b' or 'c'`: how pydantic lists a literal's values.
    static func expectedText(_ allowed: [String]) -> String {
        let quoted = allowed.map { "'\($0)'" }
        guard quoted.count > 1 else { return quoted.first ?? "" }
        return quoted.dropLast().joined(separator: ", ") + " or " + quoted[quoted.count - 1]
    }

    /// Rust's `f64::from_str` after trimming, as pydantic-core uses it (no hex forms, `_` between digits allowed).
    static func parseFloat(_ text: String) -> Double? {
        var trimmed = text.trimmingWhitespace()
        if trimmed.contains("_") { trimmed = stripUnderscores(trimmed) ?? "" }
        guard !trimmed.isEmpty, !trimmed.contains(where: { $0 == "x" || $0 == "X" || $0 == "(" || $0 == "p" })
        else { return nil }
        let lowered = trimmed.lowercased()
        let unsigned = lowered.hasPrefix("-") || lowered.hasPrefix("+") ? String(lowered.dropFirst()) : lowered
        if ["inf", "infinity", "nan"].contains(unsigned) {
            let magnitude: Double = unsigned == "nan" ? .nan : .infinity
            return lowered.hasPrefix("-") ? -magnitude : magnitude
        }
        guard unsigned.first.map({ $0.isASCII && ($0.isNumber || $0 == ".") }) == true else { return nil }
        return Double(trimmed)
    }

    /// Pydantic-core's `str_as_int`: trimmed, optional sign, digits, optional `.000` tail, `_` between digits.
    static func parseInteger(_ text: String) -> Int? {
        var trimmed = text.trimmingWhitespace()
        if trimmed.contains("_") { trimmed = stripUnderscores(trimmed) ?? "" }
        if let dot = trimmed.firstIndex(of: "."), trimmed[trimmed.index(after: dot)...].allSatisfy({ $0 == "0" }) {
            trimmed = String(trimmed[..<dot])
        }
        return Int(trimmed)
    }

    private static func stripUnderscores(_ text: String) -> String? {
        let characters = Array(text)
        var result = ""
        for (index, character) in characters.enumerated() {
            if character == "_" {
                guard index > 0, index < characters.count - 1, characters[index - 1].isNumber,
                    characters[index + 1].isNumber
                else { return nil }
                continue
            }
            result.append(character)
        }
        return result
    }
}

extension String {
    /// Without leading and trailing Unicode white space (Rust's `str::trim`).
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let end = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[start...end])
    }
}
