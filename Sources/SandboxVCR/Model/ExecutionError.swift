/// Why an execution produced no result: a typed error with a code, a message that says what happened and what
/// to do, and the details that apply (HTTP status, validation issues).
///
/// Compare errors by ``code``: `error.code == .connectionRefused`. Errors are `Codable`, so a recorded failure
/// replays as the same error. Messages never include credentials.
public struct ExecutionError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The kind of failure. An open set: compare with the static members.
    public struct Code: OpenStringValue {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Nothing listens at the address (is the server running?).
        public static let connectionRefused = Code(rawValue: "connectionRefused")
        /// The request's deadline passed before the answer came.
        public static let timedOut = Code(rawValue: "timedOut")
        /// The connection dropped before a whole answer arrived.
        public static let connectionReset = Code(rawValue: "connectionReset")
        /// Another transport failure (DNS, TLS, protocol).
        public static let transport = Code(rawValue: "transport")
        /// The server answered with an HTTP status other than 200; see ``ExecutionError/httpStatus``.
        public static let httpStatus = Code(rawValue: "httpStatus")
        /// The answer could not be decoded (not JSON, or not the expected shape).
        public static let undecodableResponse = Code(rawValue: "undecodableResponse")
        /// The sandbox failed and said so (a `SandboxError` with no result worth returning).
        public static let sandboxError = Code(rawValue: "sandboxError")
        /// The sandbox died or was terminated while in use.
        public static let sandboxTerminated = Code(rawValue: "sandboxTerminated")
        /// The calling task was cancelled; the transfer was aborted.
        public static let cancelled = Code(rawValue: "cancelled")
        /// The request cannot be run by this backend (e.g. a command on SandboxFusion).
        public static let unsupportedRequest = Code(rawValue: "unsupportedRequest")
        /// The executor is misconfigured (bad URL, missing credentials).
        public static let configuration = Code(rawValue: "configuration")
        /// A fake executor had no rule for the request.
        public static let unmatchedRequest = Code(rawValue: "unmatchedRequest")
    }

    /// One entry of a 422 answer's `detail` list (FastAPI/pydantic validation).
    public struct ValidationIssue: Hashable, Sendable, Codable, CustomStringConvertible {
        /// The pydantic error type, e.g. `missing`, `literal_error`, `json_invalid`.
        public var type: String
        /// Where the problem is, e.g. `["body", "language"]` (numbers as text).
        public var location: [String]
        /// The server's explanation.
        public var message: String

        public init(type: String, location: [String], message: String) {
            self.type = type
            self.location = location
            self.message = message
        }

        public var description: String { "\(location.joined(separator: ".")): \(message) (\(type))" }
    }

    public var code: Code
    /// What happened and what to do about it.
    public var message: String
    /// The HTTP status, for ``Code/httpStatus``.
    public var httpStatus: Int?
    /// The decoded `detail` list of a 422 answer.
    public var validationIssues: [ValidationIssue]
    /// The URL involved, with any credentials removed.
    public var url: String?
    /// How many attempts were made before giving up.
    public var attempts: Int

    public init(
        code: Code,
        message: String,
        httpStatus: Int? = nil,
        validationIssues: [ValidationIssue] = [],
        url: String? = nil,
        attempts: Int = 1
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.validationIssues = validationIssues
        self.url = url
        self.attempts = attempts
    }

    public var description: String {
        var text = "\(code): \(message)"
        if !validationIssues.isEmpty {
            text += " [" + validationIssues.map(\.description).joined(separator: "; ") + "]"
        }
        if attempts > 1 { text += " (after \(attempts) attempts)" }
        return text
    }

    /// Whether retrying the same request may help (connection failures, 502/503/504).
    public var isRetryable: Bool {
        switch code {
        case .connectionRefused, .connectionReset, .timedOut: return true
        case .httpStatus: return [502, 503, 504].contains(httpStatus ?? 0)
        default: return false
        }
    }
}
