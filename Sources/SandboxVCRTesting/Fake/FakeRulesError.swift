/// Why a fake executor's rules file could not be used: what is wrong, in which file and which rule.
public struct FakeRulesError: CodedError, Hashable, Sendable, CustomStringConvertible {
    /// The kind of problem. An open set: compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The file could not be read (missing, unreadable).
        public static let unreadableFile = Code(rawValue: "unreadableFile")
        /// The file is not JSON, or not the rules shape (a wrong type, a missing or unknown key).
        public static let invalidJSON = Code(rawValue: "invalidJSON")
        /// A rule is well-formed JSON but makes no sense (unknown kind, empty script, bad regex...).
        public static let invalidRule = Code(rawValue: "invalidRule")
    }

    public var code: Code
    /// What is wrong and how to fix it.
    public var message: String
    /// The rules file, when the rules came from one.
    public var file: String?
    /// The index of the offending rule in `rules` (0-based), when one rule is at fault.
    public var ruleIndex: Int?
    /// Where in the JSON the problem is, e.g. `rules[2].result.kind`.
    public var path: String?

    public init(code: Code, message: String, file: String? = nil, ruleIndex: Int? = nil, path: String? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.ruleIndex = ruleIndex
        self.path = path
    }

    public var description: String {
        var place: [String] = []
        if let file { place.append(file) }
        if let ruleIndex { place.append("rule #\(ruleIndex)") }
        if let path { place.append("at \(path)") }
        return "\(code): " + (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + message
    }
}
