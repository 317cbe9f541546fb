public import Foundation
public import SandboxVCR

/// The JSON the web pages read (`/ui/api/...`): rows of a list and the detail of one row. Every text is sent as a
/// JSON string and shown by the page as text, never as markup; secrets are scrubbed (``Redactor/standard``) before
/// anything is encoded, and long values are cut (``WebViews/maximumTextBytes``).
public enum WebViews {
    /// The most bytes of one shown value (code, stdin, an output, a file); the rest is summarised.
    public static let maximumTextBytes = 256 * 1024

    /// One line of a list.
    public struct Row: Encodable, Sendable {
        public var id: Int64
        /// ISO 8601 with milliseconds, UTC.
        public var time: String
        public var endpoint: String?
        public var outcome: String
        public var language: String?
        public var durationMilliseconds: Double?
        public var key: String?
        public var summary: String
        public var status: Int?
        public var sandbox: String?
        public var session: String?
        public var step: Int?
        public var size: Int?
        public var neverReplayed: Bool?
        public var redacted: Bool?

        public init(
            id: Int64, time: String, endpoint: String? = nil, outcome: String, language: String? = nil,
            durationMilliseconds: Double? = nil, key: String? = nil, summary: String, status: Int? = nil,
            sandbox: String? = nil, session: String? = nil, step: Int? = nil, size: Int? = nil,
            neverReplayed: Bool? = nil, redacted: Bool? = nil
        ) {
            self.id = id
            self.time = time
            self.endpoint = endpoint
            self.outcome = outcome
            self.language = language
            self.durationMilliseconds = durationMilliseconds
            self.key = key
            self.summary = summary
            self.status = status
            self.sandbox = sandbox
            self.session = session
            self.step = step
            self.size = size
            self.neverReplayed = neverReplayed
            self.redacted = redacted
        }
    }

    /// A file of a request or a result.
    public struct File: Encodable, Sendable {
        public var name: String
        public var bytes: Int
        /// The content as UTF-8 text, or `base64:` and the base64 of a binary file (both cut when long).
        public var text: String
    }

    public struct Request: Encodable, Sendable {
        public var language: String?
        public var code: String?
        public var argv: [String]?
        public var workdir: String?
        public var stdin: String
        public var files: [File]
        public var runTimeout: Double
        public var compileTimeout: Double
        public var memoryLimitMB: Int?
        public var fetchFiles: [String]
    }

    public struct Result: Encodable, Sendable {
        public var status: String
        public var message: String
        public var exitCode: Int?
        public var signal: Int?
        public var stdout: String
        public var stderr: String
        public var compileStderr: String?
        public var wallTime: Double?
        public var hints: [String]
        public var files: [File]
    }

    /// One field of a recorded and a requested request, side by side.
    public struct FieldPair: Encodable, Sendable {
        public var name: String
        public var recorded: String
        public var requested: String
        public var same: Bool
    }

    /// A recording near a missed request.
    public struct Nearest: Encodable, Sendable {
        public var id: Int64
        public var recordedAt: String
        public var summary: String
        public var fields: [FieldPair]
    }

    /// Everything about one row.
    public struct Detail: Encodable, Sendable {
        public var id: Int64
        public var title: String
        /// Label and value pairs (time, outcome, duration, key...).
        public var facts: [[String]]
        public var request: Request?
        public var result: Result?
        public var error: String?
        public var nearest: [Nearest]
        /// The other steps of its Modal sandbox or cassette session, in order.
        public var timeline: [Row]
        public var timelineTitle: String?
        /// Whether the detail was dropped (an old request) and only the row is known.
        public var detailDropped: Bool

        public init(
            id: Int64, title: String, facts: [[String]], request: Request?, result: Result?, error: String?,
            nearest: [Nearest], timeline: [Row], timelineTitle: String?, detailDropped: Bool
        ) {
            self.id = id
            self.title = title
            self.facts = facts
            self.request = request
            self.result = result
            self.error = error
            self.nearest = nearest
            self.timeline = timeline
            self.timelineTitle = timelineTitle
            self.detailDropped = detailDropped
        }
    }

    /// A page of rows.
    public struct Page: Encodable, Sendable {
        public var total: Int
        public var offset: Int
        public var rows: [Row]

        public init(total: Int, offset: Int, rows: [Row]) {
            self.total = total
            self.offset = offset
            self.rows = rows
        }
    }

    // MARK: Building

    static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func time(_ date: Date) -> String { date.formatted(timeFormat) }

    public static func request(_ raw: ExecutionRequest) -> Request {
        let request = Redactor.standard.redact(raw)
        var view = Request(
            stdin: text(request.stdin), files: files(request.files), runTimeout: request.runTimeout.inSeconds,
            compileTimeout: request.compileTimeout.inSeconds, memoryLimitMB: request.memoryLimitMB,
            fetchFiles: request.fetchFiles.sorted())
        switch request.program {
        case .source(let language, let code):
            view.language = language.rawValue
            view.code = cut(code)
        case .command(let argv, let workdir):
            view.argv = argv.map(cut)
            view.workdir = workdir
        }
        return view
    }

    public static func result(_ raw: ExecutionResult) -> Result {
        let result = Redactor.standard.redact(raw)
        return Result(
            status: result.status.rawValue, message: cut(result.message), exitCode: result.run?.exitCode,
            signal: result.run?.signal, stdout: text(result.stdout), stderr: text(result.stderr),
            compileStderr: result.compile.map { text($0.stderr) }, wallTime: result.run?.wallTime,
            hints: result.hints.map(\.description).sorted(), files: files(result.files))
    }

    public static func nearest(_ interaction: Cassette.Interaction, requested: ExecutionRequest) -> Nearest {
        Nearest(
            id: interaction.id, recordedAt: time(interaction.recordedAt), summary: interaction.request.summary,
            fields: fieldPairs(recorded: interaction.request, requested: Redactor.standard.redact(requested)))
    }

    /// Every field of two requests, recorded beside requested (the page marks those that differ).
    public static func fieldPairs(recorded: ExecutionRequest, requested: ExecutionRequest) -> [FieldPair] {
        var pairs: [FieldPair] = []
        func add(_ name: String, _ old: String, _ new: String) {
            pairs.append(FieldPair(name: name, recorded: old, requested: new, same: old == new))
        }
        switch (recorded.program, requested.program) {
        case (.source(let oldLanguage, let oldCode), .source(let newLanguage, let newCode)):
            add("language", oldLanguage.rawValue, newLanguage.rawValue)
            add("code", cut(oldCode), cut(newCode))
        case (.command(let oldArgv, let oldDir), .command(let newArgv, let newDir)):
            add("argv", oldArgv.joined(separator: "\n"), newArgv.joined(separator: "\n"))
            add("workdir", oldDir ?? "", newDir ?? "")
        default:
            add("program", recorded.summary, requested.summary)
        }
        add("stdin", text(recorded.stdin), text(requested.stdin))
        let paths = Set(recorded.files.keys).union(requested.files.keys).sorted()
        for path in paths {
            add(
                "file \(path)", recorded.files[path].map(text) ?? "(absent)",
                requested.files[path].map(text) ?? "(absent)")
        }
        add("run timeout", seconds(recorded.runTimeout), seconds(requested.runTimeout))
        add("compile timeout", seconds(recorded.compileTimeout), seconds(requested.compileTimeout))
        add(
            "memory limit", recorded.memoryLimitMB.map { "\($0) MB" } ?? "none",
            requested.memoryLimitMB.map { "\($0) MB" } ?? "none")
        add(
            "fetch files", recorded.fetchFiles.sorted().joined(separator: ", "),
            requested.fetchFiles.sorted().joined(separator: ", "))
        return pairs
    }

    static func seconds(_ duration: Duration) -> String { "\(duration.inSeconds) s" }

    static func files(_ files: [String: Data]) -> [File] {
        files.keys.sorted().map { File(name: $0, bytes: files[$0]?.count ?? 0, text: text(files[$0] ?? Data())) }
    }

    /// Bytes as text: UTF-8 when they are, else `base64:` and their base64; cut at ``maximumTextBytes``.
    static func text(_ data: Data) -> String {
        let shown = data.prefix(maximumTextBytes)
        let rest = data.count - shown.count
        let suffix = rest > 0 ? "\n… (\(rest) more bytes not shown)" : ""
        if let text = String(validating: shown, as: UTF8.self) { return text + suffix }
        if rest > 0,
            let text = String(validating: shown.dropLast(3), as: UTF8.self) ?? String(
                validating: shown.dropLast(2), as: UTF8.self) ?? String(validating: shown.dropLast(), as: UTF8.self)
        {
            return text + suffix
        }
        return "base64:" + shown.base64EncodedString() + suffix
    }

    /// A string cut at ``maximumTextBytes`` (on a character boundary).
    public static func cut(_ text: String) -> String {
        let utf8 = text.utf8
        guard utf8.count > maximumTextBytes else { return text }
        let kept = String(text[..<utf8.index(utf8.startIndex, offsetBy: maximumTextBytes)])
        return kept + "\n… (\(utf8.count - kept.utf8.count) more bytes not shown)"
    }

    /// JSON for the pages: camel-case keys, and `<`, `>`, `&` escaped so that no value can close a `<script>`.
    public static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return Array(#"{"error":"could not encode"}"#.utf8) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(data.count + 64)
        for byte in data {
            switch byte {
            case UInt8(ascii: "<"): bytes.append(contentsOf: Array(#"\u003c"#.utf8))
            case UInt8(ascii: ">"): bytes.append(contentsOf: Array(#"\u003e"#.utf8))
            case UInt8(ascii: "&"): bytes.append(contentsOf: Array(#"\u0026"#.utf8))
            default: bytes.append(byte)
            }
        }
        return bytes
    }
}

/// Case-insensitive (ASCII) search of text for the pages' search boxes.
public struct TextQuery: Sendable {
    let needle: [UInt8]

    /// `nil` for an empty or blank query.
    public init?(_ query: String) {
        let trimmed = query.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        needle = trimmed.utf8.map(Self.lower)
    }

    static func lower(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
    }

    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches(bytes: $0) }
    }

    public func matches(_ data: Data) -> Bool {
        data.withUnsafeBytes { matches(bytes: $0.bindMemory(to: UInt8.self)) }
    }

    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let count = needle.count
        guard bytes.count >= count, let first = needle.first else { return false }
        var index = 0
        let last = bytes.count - count
        while index <= last {
            if Self.lower(bytes[index]) == first {
                var offset = 1
                while offset < count, Self.lower(bytes[index + offset]) == needle[offset] { offset += 1 }
                if offset == count { return true }
            }
            index += 1
        }
        return false
    }

    /// Whether the request's code (or argv), stdin or file names contain the query.
    public func matches(_ request: ExecutionRequest) -> Bool {
        switch request.program {
        case .source(_, let code): if matches(code) { return true }
        case .command(let argv, let workdir):
            if argv.contains(where: matches) || workdir.map(matches) == true { return true }
        }
        return matches(request.stdin) || request.files.keys.contains(where: matches)
    }

    /// Whether the request matches, as the page would show it (secrets scrubbed): a query can't find a secret.
    public func matchesRedacted(_ request: ExecutionRequest) -> Bool {
        matches(request) && matches(Redactor.standard.redact(request))
    }
}
