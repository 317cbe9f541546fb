public import Foundation

/// Removes secrets from requests and outcomes before anything is written to a cassette.
///
/// The default scrubber replaces secret-looking values with `<redacted>` in code, argv, stdin, files, stdout,
/// stderr, fetched files and messages (UTF-8 text only): Modal token ids and secrets (`ak-…`, `as-…`),
/// `Bearer …` tokens, AWS access key ids (`AKIA…`, `ASIA…`), and the values of environment-style assignments
/// whose upper-case name contains `TOKEN`, `SECRET`, `KEY` or `PASSWORD` (`API_KEY=…`, `export X_TOKEN="…"`).
/// Your hooks run after the scrubber.
public struct Redactor: Sendable {
    /// The text that replaces a secret.
    public static let placeholder = "<redacted>"

    /// Run the built-in secret scrubber.
    public var scrubsSecrets: Bool
    /// Your own request redaction, run after the scrubber.
    public var request: (@Sendable (ExecutionRequest) -> ExecutionRequest)?
    /// Your own result redaction, run after the scrubber.
    public var result: (@Sendable (ExecutionResult) -> ExecutionResult)?

    public init(
        scrubsSecrets: Bool = true, request: (@Sendable (ExecutionRequest) -> ExecutionRequest)? = nil,
        result: (@Sendable (ExecutionResult) -> ExecutionResult)? = nil
    ) {
        self.scrubsSecrets = scrubsSecrets
        self.request = request
        self.result = result
    }

    /// The default: scrub secrets, no hooks.
    public static let standard = Redactor()
    /// Write everything as it is.
    public static let none = Redactor(scrubsSecrets: false)

    /// Compiled once. `NSRegularExpression` is immutable and documented as safe to share between threads.
    private struct Pattern: @unchecked Sendable {
        let regex: NSRegularExpression?
        let template: String
    }

    private static let patterns: [Pattern] = [
        (#"\b(ak|as)-[A-Za-z0-9]{8,}"#, "$1-" + placeholder),
        (#"\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}"#, "$1 " + placeholder),
        (#"\b(AKIA|ASIA)[A-Z0-9]{16}\b"#, placeholder),
        (
            #"\b([A-Z0-9_]*(?:TOKEN|SECRET|KEY|PASSWORD)[A-Z0-9_]*)(\s*[=:]\s*)(["']?)[^\s"'<]+"#,
            "$1$2$3" + placeholder
        ),
    ].map { Pattern(regex: try? NSRegularExpression(pattern: $0.0), template: $0.1) }

    /// Words one of which every secret the patterns find contains.
    private static let triggers: [[UInt8]] = [
        "ak-", "as-", "Bearer", "AKIA", "ASIA", "TOKEN", "SECRET", "KEY", "PASSWORD",
    ]
    .map { Array($0.utf8) }

    /// Whether the bytes contain a trigger word: a fast scan that lets most texts skip the regular expressions.
    static func mayContainSecret(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        guard count > 6 else { return false }
        for index in 0..<count {
            let byte = bytes[index]
            guard
                byte == UInt8(ascii: "a") || byte == UInt8(ascii: "B") || byte == UInt8(ascii: "A")
                    || byte == UInt8(ascii: "T") || byte == UInt8(ascii: "S") || byte == UInt8(ascii: "K")
                    || byte == UInt8(ascii: "P")
            else { continue }
            for trigger in triggers where trigger[0] == byte && index + trigger.count <= count {
                var matches = true
                for offset in 1..<trigger.count where bytes[index + offset] != trigger[offset] {
                    matches = false
                    break
                }
                if matches { return true }
            }
        }
        return false
    }

    static func mayContainSecret(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { mayContainSecret(UnsafeRawBufferPointer($0)) }
    }

    /// Replaces secret-looking values in a text.
    public static func scrub(_ text: String) -> String {
        guard mayContainSecret(text) else { return text }
        var text = text
        for pattern in patterns {
            guard let regex = pattern.regex else { continue }
            let range = NSRange(text.startIndex..., in: text)
            text = regex.stringByReplacingMatches(in: text, range: range, withTemplate: pattern.template)
        }
        return text
    }

    /// Scrubs bytes that are UTF-8 text; other bytes are returned unchanged.
    public static func scrub(_ data: Data) -> Data {
        guard data.withUnsafeBytes(mayContainSecret), let text = String(data: data, encoding: .utf8) else {
            return data
        }
        let scrubbed = scrub(text)
        return scrubbed == text ? data : Data(scrubbed.utf8)
    }

    /// The request as it will be stored.
    public func redact(_ request: ExecutionRequest) -> ExecutionRequest {
        var request = request
        if scrubsSecrets {
            switch request.program {
            case .source(let language, let code):
                request.program = .source(language: language, code: Self.scrub(code))
            case .command(let argv, let workdir):
                request.program = .command(argv: argv.map(Self.scrub), workdir: workdir)
            }
            request.files = request.files.mapValues(Self.scrub)
            request.stdin = Self.scrub(request.stdin)
        }
        return self.request?(request) ?? request
    }

    /// The result as it will be stored.
    /// Fields it changed are named in ``ResultHint/redacted(field:)`` hints, so a replay says so.
    public func redact(_ result: ExecutionResult) -> ExecutionResult {
        let original = result
        var result = result
        if scrubsSecrets {
            func clean(_ outcome: CommandOutcome?) -> CommandOutcome? {
                guard var outcome else { return nil }
                outcome.stdout = Self.scrub(outcome.stdout)
                outcome.stderr = Self.scrub(outcome.stderr)
                return outcome
            }
            result.compile = clean(result.compile)
            result.run = clean(result.run)
            result.files = result.files.mapValues(Self.scrub)
            result.message = Self.scrub(result.message)
        }
        var redacted = self.result?(result) ?? result
        redacted.hints.formUnion(Self.redactedFields(from: original, to: redacted).map { .redacted(field: $0) })
        return redacted
    }

    /// The fields whose content redaction changed.
    static func redactedFields(from original: ExecutionResult, to redacted: ExecutionResult) -> [String] {
        var fields: [String] = []
        for (step, before, after) in [
            ("compile", original.compile, redacted.compile), ("run", original.run, redacted.run),
        ] {
            if before?.stdout != after?.stdout { fields.append("\(step).stdout") }
            if before?.stderr != after?.stderr { fields.append("\(step).stderr") }
        }
        if original.message != redacted.message { fields.append("message") }
        for path in Set(original.files.keys).union(redacted.files.keys).sorted()
        where original.files[path] != redacted.files[path] {
            fields.append("files[\(path)]")
        }
        return fields
    }

    /// The error as it will be stored.
    public func redact(_ error: ExecutionError) -> ExecutionError {
        guard scrubsSecrets else { return error }
        var error = error
        error.message = Self.scrub(error.message)
        error.url = error.url.map(Self.scrub)
        error.validationIssues = error.validationIssues.map {
            .init(type: $0.type, location: $0.location, message: Self.scrub($0.message))
        }
        return error
    }

    func redact(_ outcome: Cassette.Outcome) -> Cassette.Outcome {
        switch outcome {
        case .result(let result): .result(redact(result))
        case .failure(let error): .failure(redact(error))
        }
    }
}
