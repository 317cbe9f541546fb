import Foundation
import GRDB

/// Plain SQL on a file, outside the cassette API: to damage or inspect a cassette the way a user or a bug could.
enum RawSQLite {
    static func execute(_ sql: String, in url: URL) throws {
        let queue = try DatabaseQueue(path: url.path)
        try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
        try queue.close()
    }

    /// The first column of the first row, as text.
    static func text(_ sql: String, in url: URL) throws -> String? {
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: url.path, configuration: configuration)
        defer { try? queue.close() }
        return try queue.read { try String.fetchOne($0, sql: sql) }
    }
}
