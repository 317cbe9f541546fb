internal import Foundation

/// Decides which parts of a request count when matching it against recordings.
///
/// A request's key is the SHA-256 of the canonical bytes (`RequestKeyEncoding`, versioned and independent of how
/// cassettes store requests) of the request after ``normalize(_:)``: maps
/// sorted by path, every default spelled out. Two requests match when their keys are equal. The key is
/// computed from the request as the caller made it, before redaction; a cassette must be replayed with the
/// matcher it was recorded with (a different matcher gives different keys).
public struct RequestMatcher: Sendable {
    /// Leave run and compile timeouts and the memory limit out of the key.
    public var ignoresLimits = false
    /// Leave these input files (by path) out of the key.
    public var ignoredFiles: Set<String> = []
    /// Leave stdin out of the key.
    public var ignoresStdin = false
    /// Treat `\r\n` and `\r` in code as `\n`.
    public var normalizesLineEndings = false
    /// Remove trailing spaces and tabs from each line of code, and trailing blank lines.
    public var trimsTrailingWhitespace = false
    /// A last normalization step of your own (e.g. removing a varying seed from the code).
    public var normalizer: (@Sendable (ExecutionRequest) -> ExecutionRequest)?

    public init(
        ignoresLimits: Bool = false, ignoredFiles: Set<String> = [], ignoresStdin: Bool = false,
        normalizesLineEndings: Bool = false, trimsTrailingWhitespace: Bool = false,
        normalizer: (@Sendable (ExecutionRequest) -> ExecutionRequest)? = nil
    ) {
        self.ignoresLimits = ignoresLimits
        self.ignoredFiles = ignoredFiles
        self.ignoresStdin = ignoresStdin
        self.normalizesLineEndings = normalizesLineEndings
        self.trimsTrailingWhitespace = trimsTrailingWhitespace
        self.normalizer = normalizer
    }

    /// Every part of the request counts.
    public static let exact = RequestMatcher()

    /// The request with the ignored parts reset and the code normalized.
    public func normalize(_ request: ExecutionRequest) -> ExecutionRequest {
        var request = request
        if ignoresLimits {
            request.runTimeout = .zero
            request.compileTimeout = .zero
            request.memoryLimitMB = nil
        }
        for path in ignoredFiles { request.files[path] = nil }
        if ignoresStdin { request.stdin = Data() }
        if normalizesLineEndings || trimsTrailingWhitespace {
            func clean(_ text: String) -> String {
                var text = text
                if normalizesLineEndings {
                    text = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
                }
                if trimsTrailingWhitespace {
                    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
                        var line = Substring(line)
                        while let last = line.last, last == " " || last == "\t" { line = line.dropLast() }
                        return line
                    }
                    while let last = lines.last, last.isEmpty { lines.removeLast() }
                    text = lines.joined(separator: "\n")
                }
                return text
            }
            switch request.program {
            case .source(let language, let code): request.program = .source(language: language, code: clean(code))
            case .command(let argv, let workdir): request.program = .command(argv: argv.map(clean), workdir: workdir)
            }
        }
        if let normalizer { request = normalizer(request) }
        return request
    }

    /// The key of a request: SHA-256 of the canonical encoding of the normalized request.
    public func key(for request: ExecutionRequest) -> ContentHash { key(for: request, cache: Self.digests) }

    /// Digests of large parts seen recently by any matcher in the process.
    private static let digests = PartDigestCache()

    func key(for request: ExecutionRequest, cache: PartDigestCache?) -> ContentHash {
        ContentHash.sha256(RequestKeyEncoding.bytes(of: normalize(request), digests: cache))
    }

    /// The key of step `k` of a session: SHA-256 of the previous step's key and this request's key.
    public static func chainedKey(previous: ContentHash, current: ContentHash) -> ContentHash {
        ContentHash.sha256(previous.bytes + current.bytes)
    }
}
