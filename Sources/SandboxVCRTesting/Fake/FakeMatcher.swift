public import Foundation

/// Which requests a ``FakeExecutor`` rule answers: a predicate with a description for diagnostics.
///
/// Combine matchers with ``and(_:)`` or `&&`:
///
/// ```swift
/// fake.on(.language(.python) && .stdinEquals("3 4\n"), answer: .success(stdout: "7\n"))
/// ```
public struct FakeMatcher: Sendable, CustomStringConvertible {
    /// How the matcher reads in diagnostics, e.g. `code contains "print"`.
    public let description: String
    let predicate: @Sendable (ExecutionRequest) -> Bool
    /// Whether this is ``any`` (dropped from combinations).
    let isAny: Bool

    /// A matcher from any predicate.
    ///
    /// - Parameters:
    ///   - description: How the matcher reads in diagnostics.
    ///   - predicate: Whether a request matches.
    public init(_ description: String, _ predicate: @escaping @Sendable (ExecutionRequest) -> Bool) {
        self.description = description
        self.predicate = predicate
        self.isAny = false
    }

    private init(anyRequest: ()) {
        self.description = "any request"
        self.predicate = { _ in true }
        self.isAny = true
    }

    /// Whether `request` matches.
    public func matches(_ request: ExecutionRequest) -> Bool { predicate(request) }

    /// Matches when both matchers match.
    public func and(_ other: FakeMatcher) -> FakeMatcher {
        if isAny { return other }
        if other.isAny { return self }
        let (first, second) = (predicate, other.predicate)
        return FakeMatcher("\(description) && \(other.description)") { first($0) && second($0) }
    }

    /// Matches when both matchers match.
    public static func && (lhs: FakeMatcher, rhs: FakeMatcher) -> FakeMatcher { lhs.and(rhs) }

    /// Matches every request.
    public static let any = FakeMatcher(anyRequest: ())

    /// Matches a request equal to this one (every field, defaults included).
    public static func request(_ expected: ExecutionRequest) -> FakeMatcher {
        FakeMatcher("request == {\(expected.summary)}") { $0 == expected }
    }

    /// Matches source code in this language.
    public static func language(_ language: Language) -> FakeMatcher {
        FakeMatcher("language == \(language)") { $0.language == language }
    }

    /// Matches source code equal to `code`.
    public static func codeEquals(_ code: String) -> FakeMatcher {
        FakeMatcher("code == \(quote(code))") { $0.code == code }
    }

    /// Matches source code that contains `text`.
    public static func codeContains(_ text: String) -> FakeMatcher {
        FakeMatcher("code contains \(quote(text))") { $0.code?.contains(text) == true }
    }

    /// Matches source code in which the regular expression `pattern` finds a match.
    ///
    /// - Throws: ``FakeRulesError`` with code ``FakeRulesError/Code/invalidRule`` when `pattern` does not compile.
    public static func codeMatches(_ pattern: String) throws(FakeRulesError) -> FakeMatcher {
        let regex = try compile(pattern)
        return FakeMatcher("code matches /\(pattern)/") { request in
            guard let code = request.code else { return false }
            return regex.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil
        }
    }

    /// Matches a request whose stdin equals `text` (UTF-8).
    public static func stdinEquals(_ text: String) -> FakeMatcher {
        let bytes = Data(text.utf8)
        return FakeMatcher("stdin == \(quote(text))") { $0.stdin == bytes }
    }

    /// Matches a request whose stdin, as text, contains `text`.
    public static func stdinContains(_ text: String) -> FakeMatcher {
        FakeMatcher("stdin contains \(quote(text))") { $0.stdinText.contains(text) }
    }

    /// Matches a command request with exactly this command line.
    public static func argvEquals(_ argv: [String]) -> FakeMatcher {
        FakeMatcher("argv == \(argv)") { $0.argv == argv }
    }

    /// Matches a command request with `argument` among its arguments (`argv[0]` included).
    public static func argvContains(_ argument: String) -> FakeMatcher {
        FakeMatcher("argv contains \(quote(argument))") { $0.argv?.contains(argument) == true }
    }

    /// Matches a request that writes a file at `path`.
    public static func file(_ path: String) -> FakeMatcher {
        FakeMatcher("file \(quote(path)) exists") { $0.files[path] != nil }
    }

    /// Matches a request whose file at `path` has exactly these bytes.
    public static func file(_ path: String, equals content: Data) -> FakeMatcher {
        FakeMatcher("file \(quote(path)) == \(FakeOutcome.quote(content))") { $0.files[path] == content }
    }

    /// Matches a request whose file at `path` has exactly this text (UTF-8).
    public static func file(_ path: String, equals text: String) -> FakeMatcher {
        file(path, equals: Data(text.utf8))
    }

    /// Matches a request whose file at `path`, read as UTF-8 text, contains `text`.
    public static func file(_ path: String, contains text: String) -> FakeMatcher {
        FakeMatcher("file \(quote(path)) contains \(quote(text))") { request in
            guard let content = request.files[path] else { return false }
            return String(decoding: content, as: UTF8.self).contains(text)
        }
    }

    static func quote(_ text: String) -> String { FakeOutcome.quote(Data(text.utf8)) }

    static func compile(_ pattern: String) throws(FakeRulesError) -> NSRegularExpression {
        do {
            return try NSRegularExpression(pattern: pattern)
        } catch {
            throw FakeRulesError(
                code: .invalidRule,
                message: "the regular expression /\(pattern)/ does not compile (\(error.localizedDescription)); "
                    + "check its syntax (ICU regular expressions, as NSRegularExpression reads them)")
        }
    }
}
