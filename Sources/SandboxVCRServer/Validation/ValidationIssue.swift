import SandboxVCR

/// One entry of a FastAPI 422 answer's `detail` list, in the order and shape pydantic 2.6 writes it:
/// `{type, loc, msg, input, ctx?, url?}`.
struct ValidationIssue: Sendable, Equatable {
    /// The pydantic error type, e.g. `missing`, `literal_error`, `float_parsing`.
    var type: String
    /// Where: `["body", "language"]`, or `["body", 41]` for a JSON syntax error at character 41.
    var location: [JSONValue]
    var message: String
    /// The offending input, echoed back.
    var input: JSONValue
    var context: JSONValue?
    /// Whether pydantic adds its documentation link (FastAPI's own `json_invalid` has none).
    var hasDocumentationURL = true

    static let documentationURLPrefix = "https://errors.pydantic.dev/2.6/v/"

    var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("type", .string(type)), ("loc", .array(location)), ("msg", .string(message)), ("input", input),
        ]
        if let context { members.append(("ctx", context)) }
        if hasDocumentationURL { members.append(("url", .string(Self.documentationURLPrefix + type))) }
        return .object(members)
    }

    /// The 422 body for a list of issues: `{"detail": [...]}`.
    static func body(for issues: [ValidationIssue]) -> JSONValue {
        .object([("detail", .array(issues.map(\.json)))])
    }

    static func missing(at location: [JSONValue], input: JSONValue) -> ValidationIssue {
        ValidationIssue(type: "missing", location: location, message: "Field required", input: input)
    }
}
