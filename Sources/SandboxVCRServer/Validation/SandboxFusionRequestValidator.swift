package import SandboxVCR

/// Reads a `/run_code` or `/run_jupyter` request the way the real server (FastAPI + pydantic 2.6) does, giving
/// either the decoded body or the exact error answer the real server would send.
package enum SandboxFusionRequestValidator {
    /// Why a body was refused: the HTTP status and the JSON answer.
    package struct Rejection: Error, Sendable {
        package var status: Int
        package var body: JSONValue
    }

    /// What FastAPI hands to pydantic: `nil` for no body (empty, or JSON `null`).
    ///
    /// FastAPI parses the body as JSON when there is no content type or it is `application/json` or
    /// `application/*+json`; any other content type hands over the raw text (which then fails model validation).
    static func bodyValue(_ bytes: [UInt8], contentType: String?) throws(Rejection) -> JSONValue? {
        if bytes.isEmpty { return nil }
        guard isJSON(contentType: contentType) else {
            return .string(String(decoding: bytes, as: UTF8.self))
        }
        // The fast parser takes every body Python accepts; Python's own rules run only to say why one is refused.
        if let parsed = FastJSONParser.parse(bytes) {
            if case .null = parsed { return nil }
            return parsed
        }
        let parsed: JSONValue?
        do {
            parsed = try PythonJSONParser.parse(bytes)
        } catch {
            let issue = ValidationIssue(
                type: "json_invalid", location: ["body", .integer(String(error.position))],
                message: "JSON decode error", input: .object([]),
                context: .object([("error", .string(error.message))]), hasDocumentationURL: false)
            throw Rejection(status: 422, body: ValidationIssue.body(for: [issue]))
        }
        guard let parsed else {
            throw Rejection(status: 400, body: .object([("detail", "There was an error parsing the body")]))
        }
        if case .null = parsed { return nil }
        return parsed
    }

    /// Whether FastAPI treats the content type as JSON (Python's `email.message` parsing; a value without a
    /// `/` counts as `text/plain`).
    static func isJSON(contentType: String?) -> Bool {
        guard let contentType, contentType != "application/json" else { return true }
        guard !contentType.allSatisfy(\.isWhitespace) else { return true }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        let parts = mediaType.trimmingWhitespace().lowercased().split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0] == "application" else { return false }
        return parts[1] == "json" || parts[1].hasSuffix("+json")
    }

    /// The members of a model's input, or the issue pydantic reports for a body that is missing or not an object.
    static func modelMembers(_ value: JSONValue?) throws(Rejection) -> JSONValue {
        guard let value else {
            throw Rejection(status: 422, body: ValidationIssue.body(for: [.missing(at: ["body"], input: .null)]))
        }
        guard case .object = value else {
            let issue = ValidationIssue(
                type: "model_attributes_type", location: ["body"],
                message: "Input should be a valid dictionary or object to extract fields from", input: value)
            throw Rejection(status: 422, body: ValidationIssue.body(for: [issue]))
        }
        return value
    }

    /// Validates a `/run_code` body (pydantic's `RunCodeRequest`, fields in declaration order).
    package static func runCodeBody(_ bytes: [UInt8], contentType: String?) throws(Rejection)
        -> SandboxFusionWire.RunCodeBody
    {
        let object = try modelMembers(try bodyValue(bytes, contentType: contentType))
        var validator = FieldValidator()
        func field(_ name: String) -> (JSONValue?, [JSONValue]) {
            (object[name], ["body", .string(name)])
        }

        var compileTimeout: Double?
        var runTimeout: Double?
        var memoryLimit: Int?
        var code: String?
        var stdin: String?
        var language: String?
        var files: [String: String?]?
        var fetchFiles: [String]?

        if case (let value?, let location) = field("compile_timeout") {
            compileTimeout = validator.float(value, at: location)
        }
        if case (let value?, let location) = field("run_timeout") { runTimeout = validator.float(value, at: location) }
        if case (let value?, let location) = field("memory_limit_MB") {
            memoryLimit = validator.integer(value, at: location)
        }
        switch field("code") {
        case (let value?, let location): code = validator.string(value, at: location)
        case (nil, let location): validator.issues.append(.missing(at: location, input: object))
        }
        if case (let value?, let location) = field("stdin") {
            stdin = validator.optionalString(value, at: location) ?? nil
        }
        switch field("language") {
        case (let value?, let location):
            language = validator.literal(
                value, allowed: Language.sandboxFusionLanguages.map(\.rawValue), at: location)
        case (nil, let location): validator.issues.append(.missing(at: location, input: object))
        }
        if case (let value?, let location) = field("files") {
            files = validator.stringDictionary(value, allowsNull: true, at: location)
        }
        if case (let value?, let location) = field("fetch_files") {
            fetchFiles = validator.stringList(value, at: location)
        }
        guard validator.issues.isEmpty, let code, let language else {
            throw Rejection(status: 422, body: ValidationIssue.body(for: validator.issues))
        }
        return SandboxFusionWire.RunCodeBody(
            code: code, language: language, compile_timeout: compileTimeout, run_timeout: runTimeout,
            memory_limit_MB: memoryLimit, stdin: stdin, files: files, fetch_files: fetchFiles)
    }

    /// Validates a `/run_jupyter` body (pydantic's `RunJupyterRequest`) and returns its members.
    package static func runJupyterBody(_ bytes: [UInt8], contentType: String?) throws(Rejection) -> JSONValue {
        let object = try modelMembers(try bodyValue(bytes, contentType: contentType))
        var validator = FieldValidator()
        func field(_ name: String) -> (JSONValue?, [JSONValue]) {
            (object[name], ["body", .string(name)])
        }
        switch field("cells") {
        case (let value?, let location): _ = validator.stringList(value, at: location)
        case (nil, let location): validator.issues.append(.missing(at: location, input: object))
        }
        if case (let value?, let location) = field("cell_timeout") { _ = validator.float(value, at: location) }
        if case (let value?, let location) = field("total_timeout") { _ = validator.float(value, at: location) }
        if case (let value?, let location) = field("memory_limit_MB") { _ = validator.integer(value, at: location) }
        if case (let value?, let location) = field("kernel") {
            _ = validator.literal(value, allowed: ["python3"], at: location)
        }
        if case (let value?, let location) = field("files") {
            _ = validator.stringDictionary(value, allowsNull: false, at: location)
        }
        if case (let value?, let location) = field("fetch_files") { _ = validator.stringList(value, at: location) }
        guard validator.issues.isEmpty else {
            throw Rejection(status: 422, body: ValidationIssue.body(for: validator.issues))
        }
        return object
    }
}
