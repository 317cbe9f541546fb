internal import GRDB

extension CassetteError {
    /// A SQLite failure reported by GRDB, as a cassette error naming the file and what to do.
    ///
    /// See https://www.sqlite.org/rescode.html for the codes.
    init(_ error: DatabaseError, path: String) {
        let message = error.message ?? "\(error.resultCode)"
        switch error.resultCode {
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            self.init(
                code: .corrupted,
                message: "the file is damaged (\(message)); run `sandbox-vcr cassette verify \(path)`, then restore it "
                    + "from version control or delete it and re-record",
                path: path)
        case .SQLITE_READONLY:
            self.init(
                code: .readOnly,
                message: "the cassette cannot be written (\(message)); make the file and its folder writable, or "
                    + "replay with record mode `never`",
                path: path)
        case .SQLITE_MISUSE where message.contains("closed"):
            self.init(code: .io, message: "the cassette was closed; open it again to use it", path: path)
        default:
            self.init(
                code: .io,
                message:
                    "SQLite failed (\(error.resultCode.rawValue)/\(error.extendedResultCode.rawValue): \(message)); "
                    + "check that the file and its folder exist and are accessible and the disk is not full",
                path: path)
        }
    }
}
