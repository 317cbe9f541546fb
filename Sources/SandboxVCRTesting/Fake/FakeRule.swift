/// One rule of a ``FakeExecutor``: which requests it answers, and with what.
///
/// A rule with several answers is a script: the nth request it matches gets the nth answer, and
/// ``afterLast`` decides what happens past the end.
public struct FakeRule: Sendable, CustomStringConvertible {
    /// What a script does once every answer has been given. A closed set: a rules file with another name is
    /// rejected.
    public enum AfterLast: String, Hashable, Sendable, Codable, CaseIterable, CustomStringConvertible {
        /// Keep giving the last answer (the default).
        case repeatLast
        /// Throw an ``ExecutionError`` with code ``ExecutionError/Code/unmatchedRequest``.
        case fail
        /// Step aside: the request goes on to the next rules (and the default).
        case fallThrough

        public var description: String { rawValue }
    }

    /// Which requests the rule answers.
    public var matcher: FakeMatcher
    /// The answers, in order; never empty.
    public var answers: [FakeOutcome]
    /// What happens once every answer was given.
    public var afterLast: AfterLast
    /// Simulated latency for this rule, overriding the executor's.
    public var latency: Duration?
    /// A name for diagnostics.
    public var name: String?

    /// A rule that gives `answers` in turn to the requests `matcher` accepts.
    ///
    /// - Precondition: `answers` is not empty.
    public init(
        _ matcher: FakeMatcher,
        answers: [FakeOutcome],
        afterLast: AfterLast = .repeatLast,
        latency: Duration? = nil,
        name: String? = nil
    ) {
        precondition(!answers.isEmpty, "a FakeRule needs at least one answer")
        self.matcher = matcher
        self.answers = answers
        self.afterLast = afterLast
        self.latency = latency
        self.name = name
    }

    /// A rule that always gives `answer` to the requests `matcher` accepts.
    public init(_ matcher: FakeMatcher, answer: FakeOutcome, latency: Duration? = nil, name: String? = nil) {
        self.init(matcher, answers: [answer], latency: latency, name: name)
    }

    public var description: String {
        var text = name.map { "\"\($0)\": " } ?? ""
        text += matcher.description + " -> "
        if answers.count == 1 {
            text += answers[0].description
        } else {
            text += "[" + answers.map(\.description).joined(separator: ", ") + "] then \(afterLast)"
        }
        if let latency { text += " after \(latency)" }
        return text
    }
}
