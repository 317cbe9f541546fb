public import Foundation

/// The JSON form of a ``FakeExecutor``'s rules, as read by `sandbox-vcr run --backend fake --rules FILE`.
///
/// ```json
/// {
///   "latencyMs": 0,
///   "rules": [
///     {"name": "sum", "match": {"language": "python", "codeContains": "a + b", "stdin": "3 4\n"},
///      "result": {"kind": "success", "stdout": "7\n"}},
///     {"match": {"codeMatches": "while\\s+True"}, "result": {"kind": "timeLimit"}},
///     {"match": {"files": {"data.csv": {"contains": "x,y"}}},
///      "results": [{"kind": "transportError", "code": "connectionReset"}, {"kind": "success", "stdout": "ok\n"}],
///      "afterLast": "repeatLast", "latencyMs": 20}
///   ],
///   "default": {"kind": "runtimeError", "exitCode": 1, "stderr": "no rule\n"}
/// }
/// ```
///
/// Rules are tried in order; every key of `match` must hold (no `match`, or `{}`, matches everything). A rule has
/// `result` (one answer) or `results` (a script: the nth matching request gets the nth answer; `afterLast` is
/// `repeatLast`, `fail` or `fallThrough`). Without `default`, an unmatched request throws. Unknown keys are
/// errors, so a typo cannot silently match everything.
public struct FakeRuleSet: Codable, Sendable, Hashable {
    public var rules: [Rule]
    /// The answer when no rule matches.
    public var `default`: Answer?
    /// Simulated latency in milliseconds for rules that set none.
    public var latencyMs: Double?

    public init(rules: [Rule] = [], default defaultAnswer: Answer? = nil, latencyMs: Double? = nil) {
        self.rules = rules
        self.default = defaultAnswer
        self.latencyMs = latencyMs
    }

    /// One rule.
    public struct Rule: Codable, Sendable, Hashable {
        public var name: String?
        public var match: Match?
        public var result: Answer?
        public var results: [Answer]?
        /// What a script does past its last answer; `nil` is ``FakeRule/AfterLast/repeatLast``.
        public var afterLast: FakeRule.AfterLast?
        public var latencyMs: Double?

        public init(
            name: String? = nil, match: Match? = nil, result: Answer? = nil, results: [Answer]? = nil,
            afterLast: FakeRule.AfterLast? = nil, latencyMs: Double? = nil
        ) {
            self.name = name
            self.match = match
            self.result = result
            self.results = results
            self.afterLast = afterLast
            self.latencyMs = latencyMs
        }
    }

    /// What a rule matches: every key given must hold.
    public struct Match: Codable, Sendable, Hashable {
        public var language: Language?
        /// The code, exactly.
        public var code: String?
        public var codeContains: String?
        /// An ICU regular expression that must find a match in the code.
        public var codeMatches: String?
        /// The stdin, exactly.
        public var stdin: String?
        public var stdinContains: String?
        /// The command line, exactly.
        public var argv: [String]?
        public var argvContains: String?
        /// Files by path: `{}` (exists), `{"equals": text}` or `{"contains": text}`.
        public var files: [String: FileMatch]?

        public init(
            language: Language? = nil, code: String? = nil, codeContains: String? = nil, codeMatches: String? = nil,
            stdin: String? = nil, stdinContains: String? = nil, argv: [String]? = nil, argvContains: String? = nil,
            files: [String: FileMatch]? = nil
        ) {
            self.language = language
            self.code = code
            self.codeContains = codeContains
            self.codeMatches = codeMatches
            self.stdin = stdin
            self.stdinContains = stdinContains
            self.argv = argv
            self.argvContains = argvContains
            self.files = files
        }
    }

    /// A condition on one file.
    public struct FileMatch: Codable, Sendable, Hashable {
        public var equals: String?
        public var contains: String?

        public init(equals: String? = nil, contains: String? = nil) {
            self.equals = equals
            self.contains = contains
        }
    }

    /// One answer. ``kind`` says which; the other keys that apply to it:
    ///
    /// | kind | keys |
    /// |---|---|
    /// | `success`, `wrongOutput` | `stdout`, `stderr` |
    /// | `runtimeError` | `exitCode` (default 1), `stdout`, `stderr` |
    /// | `compileError` | `exitCode` (default 1), `stderr` |
    /// | `timeLimit` | `stdout`, `stderr` |
    /// | `killedBySignal` | `signal` (default 9), `stdout`, `stderr` |
    /// | `sandboxError` | `message` |
    /// | `transportError` | `code` (an ``ExecutionError/Code``, default `connectionRefused`), `message` |
    /// | `sandboxFusion` | `response`: a SandboxFusion `/run_code` answer, verbatim |
    ///
    /// A key that does not apply to the kind is an error (``FakeRulesError/Code/invalidRule``), as is an unknown
    /// kind in a rules file.
    public struct Answer: Codable, Sendable, Hashable {
        public var kind: Kind
        public var stdout: String?
        public var stderr: String?
        public var exitCode: Int?
        public var signal: Int?
        public var message: String?
        /// The error code of a `transportError`.
        public var code: ExecutionError.Code?
        public var response: SandboxFusionWire.RunCodeResponse?

        public init(
            kind: Kind, stdout: String? = nil, stderr: String? = nil, exitCode: Int? = nil, signal: Int? = nil,
            message: String? = nil, code: ExecutionError.Code? = nil,
            response: SandboxFusionWire.RunCodeResponse? = nil
        ) {
            self.kind = kind
            self.stdout = stdout
            self.stderr = stderr
            self.exitCode = exitCode
            self.signal = signal
            self.message = message
            self.code = code
            self.response = response
        }

        /// What an answer is. A closed set: a rules file with any other `kind` is rejected.
        public enum Kind: String, Codable, Sendable, Hashable, CaseIterable, CustomStringConvertible {
            case success, wrongOutput, runtimeError, compileError, timeLimit, killedBySignal, sandboxError
            case transportError, sandboxFusion

            public var description: String { rawValue }

            /// The keys this kind accepts besides `kind`.
            public var acceptedKeys: Set<String> {
                switch self {
                case .success, .wrongOutput, .timeLimit: ["stdout", "stderr"]
                case .runtimeError: ["exitCode", "stdout", "stderr"]
                case .compileError: ["exitCode", "stderr"]
                case .killedBySignal: ["signal", "stdout", "stderr"]
                case .sandboxError: ["message"]
                case .transportError: ["code", "message"]
                case .sandboxFusion: ["response"]
                }
            }
        }
    }
}

// MARK: Loading

extension FakeRuleSet {
    /// Reads a rules file.
    ///
    /// - Throws: ``FakeRulesError`` naming the file (and the rule, when one is at fault).
    public static func load(from url: URL) throws(FakeRulesError) -> FakeRuleSet {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw FakeRulesError(
                code: .unreadableFile,
                message: "cannot read the fake rules file (\(error.localizedDescription)); check the path",
                file: url.path)
        }
        return try decode(data, source: url.path)
    }

    /// Decodes rules from JSON.
    ///
    /// - Parameter source: The file name to put in errors, if any.
    /// - Throws: ``FakeRulesError`` with code ``FakeRulesError/Code/invalidJSON``, or
    ///   ``FakeRulesError/Code/invalidRule`` for an unknown `kind` or `afterLast`.
    public static func decode(_ data: Data, source: String? = nil) throws(FakeRulesError) -> FakeRuleSet {
        do {
            return try JSONDecoder().decode(FakeRuleSet.self, from: data)
        } catch var error as FakeRulesError {  // an unknown name of a closed set (`kind`, `afterLast`)
            error.file = source
            throw error
        } catch let error as DecodingError {
            throw FakeRulesError(decoding: error, file: source)
        } catch {
            throw FakeRulesError(code: .invalidJSON, message: "\(error)", file: source)
        }
    }

    /// Builds the executor's rules.
    ///
    /// - Throws: ``FakeRulesError`` with code ``FakeRulesError/Code/invalidRule`` and the rule's index.
    public func makeRules(source: String? = nil) throws(FakeRulesError) -> [FakeRule] {
        var made: [FakeRule] = []
        for (index, rule) in rules.enumerated() {
            do {
                made.append(try rule.makeRule(index: index))
            } catch var error {
                error.file = source
                error.ruleIndex = index
                throw error
            }
        }
        return made
    }

    /// Builds the default outcome, if any.
    public func makeDefault(source: String? = nil) throws(FakeRulesError) -> FakeOutcome? {
        guard let answer = self.default else { return nil }
        do {
            return try answer.makeOutcome(path: "default")
        } catch var error {
            error.file = source
            throw error
        }
    }
}

extension FakeRuleSet.Rule {
    func makeRule(index: Int) throws(FakeRulesError) -> FakeRule {
        let path = "rules[\(index)]"
        let answers: [FakeOutcome]
        switch (result, results) {
        case (let result?, nil):
            answers = [try result.makeOutcome(path: path + ".result")]
        case (nil, let results?):
            guard !results.isEmpty else {
                throw FakeRulesError(
                    code: .invalidRule, message: "\"results\" is empty; give at least one answer",
                    path: path + ".results")
            }
            var made: [FakeOutcome] = []
            for (position, answer) in results.enumerated() {
                made.append(try answer.makeOutcome(path: path + ".results[\(position)]"))
            }
            answers = made
        case (nil, nil):
            throw FakeRulesError(
                code: .invalidRule, message: "the rule has no answer; give \"result\" or \"results\"", path: path)
        case (_?, _?):
            throw FakeRulesError(
                code: .invalidRule, message: "the rule has both \"result\" and \"results\"; keep one", path: path)
        }
        return FakeRule(
            try (match ?? FakeRuleSet.Match()).makeMatcher(path: path + ".match"),
            answers: answers, afterLast: afterLast ?? .repeatLast, latency: try milliseconds(latencyMs, path: path),
            name: name)
    }
}

func milliseconds(_ value: Double?, path: String) throws(FakeRulesError) -> Duration? {
    guard let value else { return nil }
    guard value.isFinite, value >= 0 else {
        throw FakeRulesError(
            code: .invalidRule, message: "latencyMs must be a number of milliseconds >= 0, not \(value)",
            path: path + ".latencyMs")
    }
    return Duration(secondsClamped: value / 1000)
}

extension FakeRuleSet.Match {
    func makeMatcher(path: String) throws(FakeRulesError) -> FakeMatcher {
        var matcher = FakeMatcher.any
        if let language { matcher = matcher && .language(language) }
        if let code { matcher = matcher && .codeEquals(code) }
        if let codeContains { matcher = matcher && .codeContains(codeContains) }
        if let codeMatches {
            do {
                matcher = matcher && (try FakeMatcher.codeMatches(codeMatches))
            } catch var error {
                error.path = path + ".codeMatches"
                throw error
            }
        }
        if let stdin { matcher = matcher && .stdinEquals(stdin) }
        if let stdinContains { matcher = matcher && .stdinContains(stdinContains) }
        if let argv { matcher = matcher && .argvEquals(argv) }
        if let argvContains { matcher = matcher && .argvContains(argvContains) }
        for (filePath, condition) in (files ?? [:]).sorted(by: { $0.key < $1.key }) {
            switch (condition.equals, condition.contains) {
            case (nil, nil): matcher = matcher && .file(filePath)
            case (let text?, nil): matcher = matcher && .file(filePath, equals: text)
            case (nil, let text?): matcher = matcher && .file(filePath, contains: text)
            case (_?, _?):
                throw FakeRulesError(
                    code: .invalidRule, message: "a file condition has both \"equals\" and \"contains\"; keep one",
                    path: path + ".files.\(filePath)")
            }
        }
        return matcher
    }
}

extension FakeRuleSet.Answer {
    /// The keys this answer sets besides `kind`.
    var presentKeys: Set<String> {
        var keys: Set<String> = []
        if stdout != nil { keys.insert("stdout") }
        if stderr != nil { keys.insert("stderr") }
        if exitCode != nil { keys.insert("exitCode") }
        if signal != nil { keys.insert("signal") }
        if message != nil { keys.insert("message") }
        if code != nil { keys.insert("code") }
        if response != nil { keys.insert("response") }
        return keys
    }

    func makeOutcome(path: String) throws(FakeRulesError) -> FakeOutcome {
        let accepted = kind.acceptedKeys
        let extra = presentKeys.subtracting(accepted)
        guard extra.isEmpty else {
            throw FakeRulesError(
                code: .invalidRule,
                message: "\(extra.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) does not apply to kind "
                    + "\"\(kind)\"; it accepts "
                    + (accepted.isEmpty ? "no other key" : accepted.sorted().joined(separator: ", ")),
                path: path)
        }
        switch kind {
        case .success: return .success(stdout: stdout ?? "", stderr: stderr ?? "")
        case .wrongOutput: return .success(stdout: stdout ?? "", stderr: stderr ?? "")
        case .runtimeError: return .runtimeError(exitCode: exitCode ?? 1, stdout: stdout ?? "", stderr: stderr ?? "")
        case .compileError: return .compileError(stderr: stderr ?? "", exitCode: exitCode ?? 1)
        case .timeLimit: return .timeLimit(stdout: stdout ?? "", stderr: stderr ?? "")
        case .killedBySignal: return .killedBySignal(signal ?? 9, stdout: stdout ?? "", stderr: stderr ?? "")
        case .sandboxError: return message.map { .sandboxError(message: $0) } ?? .sandboxError()
        case .transportError: return .transportError(code ?? .connectionRefused, message: message)
        case .sandboxFusion:
            guard let response else {
                throw FakeRulesError(
                    code: .invalidRule, message: "kind \"sandboxFusion\" needs \"response\" (a /run_code answer)",
                    path: path)
            }
            do {
                var result = try SandboxFusionWire.result(from: response)
                result.backend = .fake
                return .result(result)
            } catch {
                throw FakeRulesError(code: .invalidRule, message: error.message, path: path + ".response")
            }
        }
    }
}

// MARK: Strict decoding (unknown keys are errors)

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws a `DecodingError` naming the first key of this object that is not in `allowed`.
    func rejectUnknownKeys(_ allowed: Set<String>) throws {
        let container = try self.container(keyedBy: AnyCodingKey.self)
        if let unknown = container.allKeys.map(\.stringValue).filter({ !allowed.contains($0) }).sorted().first {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: codingPath + [AnyCodingKey(stringValue: unknown)],
                    debugDescription: "unknown key \"\(unknown)\"; the keys allowed here are "
                        + allowed.sorted().joined(separator: ", ")))
        }
    }
}

/// The value of a closed set (an enum) named `rawValue` in a rules file.
///
/// - Throws: ``FakeRulesError`` with code ``FakeRulesError/Code/invalidRule`` at `codingPath` when the name is
///   not one of the set's, listing the names it accepts.
func closedValue<Value: RawRepresentable & CaseIterable>(
    _ rawValue: String, named name: String, at codingPath: [any CodingKey]
) throws(FakeRulesError) -> Value where Value.RawValue == String {
    guard let value = Value(rawValue: rawValue) else {
        let location = FakeRulesError.location(of: codingPath)
        throw FakeRulesError(
            code: .invalidRule,
            message: "unknown \(name) \"\(rawValue)\"; use one of "
                + Value.allCases.map(\.rawValue).joined(separator: ", "),
            ruleIndex: location.ruleIndex, path: location.path)
    }
    return value
}

extension FakeRuleSet {
    private enum CodingKeys: String, CodingKey, CaseIterable { case rules, `default`, latencyMs }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(Set(CodingKeys.allCases.map(\.rawValue)))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.rules = try container.decode([Rule].self, forKey: .rules)
        self.default = try container.decodeIfPresent(Answer.self, forKey: .default)
        self.latencyMs = try container.decodeIfPresent(Double.self, forKey: .latencyMs)
    }
}

extension FakeRuleSet.Rule {
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, match, result, results, afterLast, latencyMs
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(Set(CodingKeys.allCases.map(\.rawValue)))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decodeIfPresent(String.self, forKey: .name)
        self.match = try container.decodeIfPresent(FakeRuleSet.Match.self, forKey: .match)
        self.result = try container.decodeIfPresent(FakeRuleSet.Answer.self, forKey: .result)
        self.results = try container.decodeIfPresent([FakeRuleSet.Answer].self, forKey: .results)
        self.afterLast = try container.decodeIfPresent(String.self, forKey: .afterLast).map {
            (name: String) throws(FakeRulesError) -> FakeRule.AfterLast in
            try closedValue(name, named: "afterLast", at: decoder.codingPath + [CodingKeys.afterLast])
        }
        self.latencyMs = try container.decodeIfPresent(Double.self, forKey: .latencyMs)
    }
}

extension FakeRuleSet.Match {
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case language, code, codeContains, codeMatches, stdin, stdinContains, argv, argvContains, files
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(Set(CodingKeys.allCases.map(\.rawValue)))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.language = try container.decodeIfPresent(Language.self, forKey: .language)
        self.code = try container.decodeIfPresent(String.self, forKey: .code)
        self.codeContains = try container.decodeIfPresent(String.self, forKey: .codeContains)
        self.codeMatches = try container.decodeIfPresent(String.self, forKey: .codeMatches)
        self.stdin = try container.decodeIfPresent(String.self, forKey: .stdin)
        self.stdinContains = try container.decodeIfPresent(String.self, forKey: .stdinContains)
        self.argv = try container.decodeIfPresent([String].self, forKey: .argv)
        self.argvContains = try container.decodeIfPresent(String.self, forKey: .argvContains)
        self.files = try container.decodeIfPresent([String: FakeRuleSet.FileMatch].self, forKey: .files)
    }
}

extension FakeRuleSet.FileMatch {
    private enum CodingKeys: String, CodingKey, CaseIterable { case equals, contains }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(Set(CodingKeys.allCases.map(\.rawValue)))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.equals = try container.decodeIfPresent(String.self, forKey: .equals)
        self.contains = try container.decodeIfPresent(String.self, forKey: .contains)
    }
}

extension FakeRuleSet.Answer {
    private enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, stdout, stderr, exitCode, signal, message, code, response
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(Set(CodingKeys.allCases.map(\.rawValue)))
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.kind = try closedValue(
            container.decode(String.self, forKey: .kind), named: "kind", at: decoder.codingPath + [CodingKeys.kind])
        self.stdout = try container.decodeIfPresent(String.self, forKey: .stdout)
        self.stderr = try container.decodeIfPresent(String.self, forKey: .stderr)
        self.exitCode = try container.decodeIfPresent(Int.self, forKey: .exitCode)
        self.signal = try container.decodeIfPresent(Int.self, forKey: .signal)
        self.message = try container.decodeIfPresent(String.self, forKey: .message)
        self.code = try container.decodeIfPresent(ExecutionError.Code.self, forKey: .code)
        self.response = try container.decodeIfPresent(SandboxFusionWire.RunCodeResponse.self, forKey: .response)
    }
}

extension FakeRulesError {
    /// A decoding failure, located: the JSON path and, under `rules`, the rule index.
    init(decoding error: DecodingError, file: String?) {
        let context: DecodingError.Context
        let what: String
        switch error {
        case .typeMismatch(let type, let ctx):
            context = ctx
            what = "expected \(Self.jsonName(type)) (\(ctx.debugDescription))"
        case .valueNotFound(let type, let ctx):
            context = ctx
            what = "expected \(Self.jsonName(type)), found null"
        case .keyNotFound(let key, let ctx):
            context = DecodingError.Context(
                codingPath: ctx.codingPath + [key], debugDescription: ctx.debugDescription)
            what = "missing required key \"\(key.stringValue)\""
        case .dataCorrupted(let ctx):
            context = ctx
            let underlying = (ctx.underlyingError as NSError?).map { ": \($0.localizedDescription)" } ?? ""
            what = ctx.codingPath.isEmpty ? "the file is not valid JSON\(underlying)" : ctx.debugDescription
        @unknown default:
            context = DecodingError.Context(codingPath: [], debugDescription: "\(error)")
            what = "\(error)"
        }
        let location = Self.location(of: context.codingPath)
        self.init(
            code: .invalidJSON, message: what + "; see the rules format in FakeRuleSet's documentation", file: file,
            ruleIndex: location.ruleIndex, path: location.path)
    }

    /// A coding path as a JSON path (`rules[2].result.kind`, `nil` for the top) and, under `rules`, the rule index.
    static func location(of codingPath: [any CodingKey]) -> (path: String?, ruleIndex: Int?) {
        var path = ""
        for key in codingPath {
            if let index = key.intValue {
                path += "[\(index)]"
            } else {
                path += (path.isEmpty ? "" : ".") + key.stringValue
            }
        }
        let ruleIndex: Int? =
            codingPath.count >= 2 && codingPath[0].stringValue == "rules" ? codingPath[1].intValue : nil
        return (path.isEmpty ? nil : path, ruleIndex)
    }

    static func jsonName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Double.Type: "a number"
        case is [String].Type: "an array of strings"
        default: "\(type)"
        }
    }
}

// MARK: Executor

extension FakeExecutor {
    /// An executor with the rules of a rule set.
    ///
    /// - Throws: ``FakeRulesError`` when a rule makes no sense (with its index).
    public convenience init(ruleSet: FakeRuleSet, clock: any Clock<Duration> = ContinuousClock())
        throws(FakeRulesError)
    {
        self.init(
            rules: try ruleSet.makeRules(), default: try ruleSet.makeDefault(),
            latency: try milliseconds(ruleSet.latencyMs, path: "") ?? .zero, clock: clock)
    }

    /// An executor with the rules of a JSON rules file (format: ``FakeRuleSet``).
    ///
    /// - Throws: ``FakeRulesError`` naming the file and, when one rule is at fault, its index.
    public convenience init(rulesFile: URL, clock: any Clock<Duration> = ContinuousClock()) throws(FakeRulesError) {
        let ruleSet = try FakeRuleSet.load(from: rulesFile)
        let source = rulesFile.path
        let latency: Duration?
        do {
            latency = try milliseconds(ruleSet.latencyMs, path: "")
        } catch var error {
            error.file = source
            throw error
        }
        self.init(
            rules: try ruleSet.makeRules(source: source), default: try ruleSet.makeDefault(source: source),
            latency: latency ?? .zero, clock: clock)
    }
}
