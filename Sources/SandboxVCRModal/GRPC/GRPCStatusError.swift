import Foundation
public import SandboxVCR

/// A gRPC call that ended with a status other than `OK`: the code, the server's message, and Modal's retry hint.
public struct GRPCStatusError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A gRPC status code. An open set: compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let ok = Code(rawValue: 0)
        public static let cancelled = Code(rawValue: 1)
        public static let unknown = Code(rawValue: 2)
        public static let invalidArgument = Code(rawValue: 3)
        public static let deadlineExceeded = Code(rawValue: 4)
        public static let notFound = Code(rawValue: 5)
        public static let alreadyExists = Code(rawValue: 6)
        public static let permissionDenied = Code(rawValue: 7)
        public static let resourceExhausted = Code(rawValue: 8)
        public static let failedPrecondition = Code(rawValue: 9)
        public static let aborted = Code(rawValue: 10)
        public static let outOfRange = Code(rawValue: 11)
        public static let unimplemented = Code(rawValue: 12)
        public static let `internal` = Code(rawValue: 13)
        public static let unavailable = Code(rawValue: 14)
        public static let dataLoss = Code(rawValue: 15)
        public static let unauthenticated = Code(rawValue: 16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]

        /// The status name, e.g. `UNAVAILABLE`.
        public var description: String {
            Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "STATUS_\(rawValue)"
        }
    }

    public var code: Code
    /// The server's `grpc-message`, percent-decoded.
    public var message: String
    /// The method's full path.
    public var path: String
    /// How long Modal asked the client to wait before retrying (an `RPCRetryPolicy` in the status details).
    public var retryAfter: Duration?
    /// Whether the answer came whole (HTTP 200, every message complete) but with no `grpc-status` at all (code
    /// `UNKNOWN`): how a libcurl before 8.1 delivers an answer whose trailers it dropped
    /// (``GRPCChannel/losesStatusOfMultiplexedCalls``). The server may well have succeeded.
    public var isStatusMissing: Bool

    public init(
        code: Code, message: String, path: String = "", retryAfter: Duration? = nil, isStatusMissing: Bool = false
    ) {
        self.code = code
        self.message = message
        self.path = path
        self.retryAfter = retryAfter
        self.isStatusMissing = isStatusMissing
    }

    /// The method name of ``path``, e.g. `SandboxCreateV2`.
    public var method: String {
        path.split(separator: "/").last.map(String.init) ?? path
    }

    public var description: String {
        return "\(method.isEmpty ? "gRPC call" : method) failed with \(code)" + (message.isEmpty ? "" : ": \(message)")
    }

    /// Whether Modal's SDKs retry a call that ended with this status.
    public var isRetryable: Bool {
        [.deadlineExceeded, .unavailable, .cancelled, .internal, .unknown].contains(code)
    }

    /// The execution error for this status: UNAUTHENTICATED is a configuration problem, DEADLINE_EXCEEDED a
    /// timeout, NOT_FOUND / FAILED_PRECONDITION on sandbox calls mean the sandbox is gone.
    public func executionError(sandboxCall: Bool = false, url: String? = nil) -> ExecutionError {
        switch code {
        case .unauthenticated, .permissionDenied:
            return ExecutionError(
                code: .configuration,
                message: "Modal refused the credentials (\(self)); set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET "
                    + "(create a token with `modal token new`), or a profile in ~/.modal.toml (MODAL_CONFIG_PATH, "
                    + "MODAL_PROFILE)",
                url: url)
        case .notFound where sandboxCall, .failedPrecondition where sandboxCall:
            return ExecutionError(
                code: .sandboxTerminated,
                message: "the Modal sandbox is gone (\(self)); it was terminated, timed out or died; create a new one",
                url: url)
        case .deadlineExceeded:
            return ExecutionError(
                code: .timedOut, message: "\(self); raise the timeout if Modal is just slow", url: url)
        case .unavailable:
            return ExecutionError(
                code: .connectionReset, message: "\(self); Modal is unavailable, try again later", url: url)
        default:
            return ExecutionError(code: .sandboxError, message: "Modal answered: \(self)", url: url)
        }
    }
}
