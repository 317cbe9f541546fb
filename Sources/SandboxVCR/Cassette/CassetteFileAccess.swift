internal import Foundation

/// How a cassette file can be opened, decided before SQLite sees it: whether it exists and looks like SQLite,
/// whether it (and its folder) can be written, and so which path to hand SQLite.
struct CassetteFileAccess: Sendable {
    /// Open read-only: asked for, or the file or its folder is not writable.
    var isReadOnly: Bool
    /// The path or URI SQLite opens: an `immutable=1` URI for a file nothing can write (no WAL index possible).
    var sqlitePath: String
    /// Whether the file and its folder can be written (else SQLite must open it read-only).
    var isWritable = true

    /// - Throws: ``CassetteError`` `io` (missing file, unreadable file or folder), `notACassette` (not SQLite).
    init(url: URL, readOnly: Bool, create: Bool) throws {
        let path = url.path
        let manager = FileManager.default
        isReadOnly = readOnly
        sqlitePath = path
        guard manager.fileExists(atPath: path) else {
            guard create, !readOnly else {
                throw CassetteError(
                    code: .io,
                    message: "no cassette at this path; check the path, or record one first (record mode `missing`)",
                    path: path)
            }
            do {
                try manager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            } catch {
                throw CassetteError(
                    code: .io, message: "cannot create the cassette's folder (\(error)); check permissions", path: path)
            }
            return
        }
        try Self.checkHeader(path: path)
        var info = stat()
        let hasNoWriteBits = stat(path, &info) == 0 && info.st_mode & 0o222 == 0
        if !readOnly
            && (access(path, W_OK) != 0 || hasNoWriteBits || access(url.deletingLastPathComponent().path, W_OK) != 0)
        {
            isReadOnly = true
            isWritable = false
            // Without write access SQLite cannot use the WAL index; read the file as immutable unless a WAL with
            // committed data is present (then a plain read-only open reads it).
            var walInfo = stat()
            if stat(path + "-wal", &walInfo) != 0 || walInfo.st_size == 0 { sqlitePath = Self.immutableURI(path) }
        }
    }

    /// A `file:` URI with `immutable=1` (https://www.sqlite.org/uri.html); Debian's SQLite accepts URIs in plain
    /// opens (`SQLITE_USE_URI`).
    private static func immutableURI(_ path: String) -> String {
        var escaped = ""
        for character in path.unicodeScalars {
            switch character {
            case "%": escaped += "%25"
            case "?": escaped += "%3f"
            case "#": escaped += "%23"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return "file:\(escaped)?immutable=1"
    }

    /// Rejects files that cannot be SQLite databases before SQLite sees them.
    private static func checkHeader(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CassetteError(code: .io, message: "the file cannot be read; check its permissions", path: path)
        }
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 16)) ?? Data()
        if header.isEmpty { return }
        if header != Data("SQLite format 3\0".utf8) {
            throw CassetteError(
                code: .notACassette,
                message: "the file is not a SQLite database, so not a cassette; pass the path of a `.sqlite` "
                    + "cassette, or move this file away and record a new cassette",
                path: path)
        }
    }
}
