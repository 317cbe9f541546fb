public import Foundation

/// A stdin/stdout programming problem with its tests and candidate solutions, one line of a problems JSONL
/// file (the format of `Fixtures/grading-demo/problems.jsonl`).
///
/// ```json
/// {"id": "sum-two", "title": "Sum of two integers", "statement": "...", "time_limit_s": 2,
///  "tests": [{"input": "3 4\n", "output": "7\n"}],
///  "candidates": [{"id": "py-correct", "language": "python", "intent": "correct", "code": "..."}]}
/// ```
public struct GradingProblem: Codable, Hashable, Sendable, Identifiable {
    /// One test: the program's stdin and the stdout expected.
    public struct Test: Codable, Hashable, Sendable {
        public var input: String
        public var output: String

        public init(input: String, output: String) {
            self.input = input
            self.output = output
        }
    }

    /// What a candidate was written to do. An open set: compare with the static members.
    public struct Intent: OpenStringValue {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// Solves the problem: expected reward 1.0. Every other intent expects 0.0.
        public static let correct = Intent(rawValue: "correct")
        public static let wrongAnswer = Intent(rawValue: "wrong_answer")
        public static let runtimeError = Intent(rawValue: "runtime_error")
        public static let timeLimit = Intent(rawValue: "time_limit")
        public static let compileError = Intent(rawValue: "compile_error")

        /// The reward a candidate with this intent should get: 1.0 for ``correct``, else 0.0.
        public var expectedReward: Double { self == .correct ? 1 : 0 }
    }

    /// A candidate solution.
    public struct Candidate: Codable, Hashable, Sendable, Identifiable {
        public var id: String
        public var language: Language
        /// What it was written to do, when known.
        public var intent: Intent?
        public var code: String

        public init(id: String, language: Language, intent: Intent? = nil, code: String) {
            self.id = id
            self.language = language
            self.intent = intent
            self.code = code
        }
    }

    public var id: String
    public var title: String
    public var statement: String
    /// The run timeout of every test (sent as `run_timeout`; `time_limit_s` seconds in the JSON Lines file).
    public var timeLimit: Duration
    public var tests: [Test]
    public var candidates: [Candidate]

    public init(
        id: String, title: String = "", statement: String = "", timeLimit: Duration, tests: [Test],
        candidates: [Candidate]
    ) {
        self.id = id
        self.title = title
        self.statement = statement
        self.timeLimit = timeLimit
        self.tests = tests
        self.candidates = candidates
    }

    private enum CodingKeys: String, CodingKey {
        case id, title, statement, timeLimit = "time_limit_s", tests, candidates
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id),
            title: try container.decodeIfPresent(String.self, forKey: .title) ?? "",
            statement: try container.decodeIfPresent(String.self, forKey: .statement) ?? "",
            timeLimit: Duration(secondsClamped: try container.decode(Double.self, forKey: .timeLimit)),
            tests: try container.decode([Test].self, forKey: .tests),
            candidates: try container.decode([Candidate].self, forKey: .candidates))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(title, forKey: .title)
        try container.encode(statement, forKey: .statement)
        try container.encode(timeLimit.inSeconds, forKey: .timeLimit)
        try container.encode(tests, forKey: .tests)
        try container.encode(candidates, forKey: .candidates)
    }
}

// MARK: JSON Lines

extension GradingProblem {
    /// Reads a problems file: JSON Lines, one problem a line (blank lines skipped).
    ///
    /// - Throws: ``GradingError`` naming the file, and the line for a line that does not decode.
    public static func load(contentsOf url: URL) throws(GradingError) -> [GradingProblem] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw GradingError(
                code: .unreadableFile,
                message: "cannot read the problems file (\(error.localizedDescription)); check the path",
                file: url.path)
        }
        return try decodeJSONLines(data, source: url.path)
    }

    /// Decodes problems from JSON Lines.
    ///
    /// - Parameters:
    ///   - data: The JSON Lines, one problem per line.
    ///   - source: The file name to put in errors, if any.
    /// - Throws: ``GradingError`` with code ``GradingError/Code/invalidProblem`` and the 1-based line number.
    public static func decodeJSONLines(_ data: Data, source: String? = nil) throws(GradingError) -> [GradingProblem] {
        var problems: [GradingProblem] = []
        var seen: [String: Int] = [:]
        let decoder = JSONDecoder()
        for (offset, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let number = offset + 1
            guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { continue }
            let problem: GradingProblem
            do {
                problem = try decoder.decode(GradingProblem.self, from: Data(line))
            } catch {
                throw GradingError(
                    code: .invalidProblem, message: describe(error) + "; each line must be one problem object",
                    file: source, line: number)
            }
            if let first = seen[problem.id] {
                throw GradingError(
                    code: .invalidProblem,
                    message: "problem id \"\(problem.id)\" is already used on line \(first); ids must be unique",
                    file: source, line: number)
            }
            seen[problem.id] = number
            problems.append(problem)
        }
        return problems
    }

    /// A decoding error as one readable phrase with the JSON path, e.g. `tests[1].output: missing key`.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += (text.isEmpty ? "" : ".") + key.stringValue
                }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing key \"\(path(context.codingPath + [key]))\""
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(type), found null"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "not valid JSON" : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
