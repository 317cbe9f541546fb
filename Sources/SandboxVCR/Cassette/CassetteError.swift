/// Why a cassette could not be opened, read or written, or why a replay found no recording.
///
/// Compare by ``code``: `error.code == .miss`. The message names the file and says what to do.
public struct CassetteError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure. An open set: compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The file exists but is not a SandboxVCR cassette (a text file, or another SQLite database).
        public static let notACassette = Code(rawValue: "notACassette")
        /// The file is damaged (SQLite reports corruption, or a blob no longer matches its hash).
        public static let corrupted = Code(rawValue: "corrupted")
        /// The cassette was written by a newer sandbox-vcr with a schema this version cannot read.
        public static let newerSchema = Code(rawValue: "newerSchema")
        /// The cassette cannot be written (a read-only file or folder, or opened read-only).
        public static let readOnly = Code(rawValue: "readOnly")
        /// No recording matches a request, and the record mode forbids calling the live executor.
        public static let miss = Code(rawValue: "miss")
        /// A request was made more times than it was recorded, and the exhaustion policy is `fail`.
        public static let exhausted = Code(rawValue: "exhausted")
        /// Reading or writing the file failed (missing file, disk full, lock timeout).
        public static let io = Code(rawValue: "io")
        /// A cassette name or path is not acceptable (empty, absolute, or escaping its folder with `..`).
        public static let invalidName = Code(rawValue: "invalidName")
        /// The cassette has no replay stamps to rely on (`prune --never-replayed` on a cassette whose replays were
        /// never stamped).
        public static let notTracked = Code(rawValue: "notTracked")
    }

    public var code: Code
    /// What happened and what to do about it.
    public var message: String
    /// The cassette file involved.
    public var path: String
    /// For a miss: the recordings nearest to the request, closest first (the message describes them).
    public var nearest: [Cassette.Interaction] = []

    public init(code: Code, message: String, path: String) {
        self.code = code
        self.message = message
        self.path = path
    }

    /// The code, the file and the message; the file is named once (a miss message names it already).
    public var description: String {
        message.contains(path) ? "cassette \(code): \(message)" : "cassette \(code) (\(path)): \(message)"
    }
}
