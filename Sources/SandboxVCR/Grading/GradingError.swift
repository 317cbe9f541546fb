/// Why problems could not be loaded for grading: what is wrong, in which file and on which line.
public struct GradingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of problem. An open set: compare with the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The problems file could not be read.
        public static let unreadableFile = Code(rawValue: "unreadableFile")
        /// A line is not a problem object (bad JSON, a missing key, a wrong type, a duplicate id).
        public static let invalidProblem = Code(rawValue: "invalidProblem")
    }

    public var code: Code
    /// What is wrong and how to fix it.
    public var message: String
    /// The problems file, when there is one.
    public var file: String?
    /// The 1-based line at fault, when one is.
    public var line: Int?

    public init(code: Code, message: String, file: String? = nil, line: Int? = nil) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String {
        let place = [file, line.map { "line \($0)" }].compactMap { $0 }.joined(separator: ", ")
        return "\(code): " + (place.isEmpty ? "" : place + ": ") + message
    }
}
