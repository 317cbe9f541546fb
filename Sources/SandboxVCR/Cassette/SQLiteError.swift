internal import CSQLite

/// A failed SQLite call: the primary and extended result codes, SQLite's message and the database file.
///
/// See https://www.sqlite.org/rescode.html for the codes.
struct SQLiteError: Error, CustomStringConvertible {
    /// The primary result code (`SQLITE_BUSY`, `SQLITE_CORRUPT`, ...).
    var code: Int32
    /// The extended result code (`SQLITE_READONLY_DBMOVED`, ...).
    var extendedCode: Int32
    /// SQLite's own explanation.
    var message: String
    /// The database file.
    var path: String
    /// The SQL that failed, when there was one.
    var sql: String?

    var description: String {
        "SQLite error \(code) (extended \(extendedCode)) on \(path): \(message)" + (sql.map { " [\($0)]" } ?? "")
    }

    var isCorrupt: Bool { code == SQLITE_CORRUPT || code == SQLITE_NOTADB }
    var isReadOnly: Bool { code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM }
}
