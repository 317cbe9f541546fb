import Foundation
import Logging
import Synchronization

/// Log lines on standard error in swift-log's `StreamLogHandler` format (`TIME LEVEL LABEL: KEY=VALUE ... [SOURCE]
/// MESSAGE`), at a fraction of its cost: `serve` logs every request, and the stream handler formats the local time
/// and builds its metadata text anew for each line (about a quarter of a replay's CPU).
struct CommandLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    private let label: String

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, provided in provided } }
        if let explicit = event.metadata { fields.merge(explicit) { _, explicit in explicit } }
        if let error = event.error {
            fields["error.message"] = "\(error)"
            fields["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = LocalTimestamp.now()
        line.reserveCapacity(256)
        line += " \(event.level)"
        if !label.isEmpty { line += " " + label }
        line += ":"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            line += " " + key + "=" + value.description
        }
        line += " [" + event.source + "] " + event.message.description + "\n"
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { buffer in
            // One write per line (a pipe takes up to 4 KB at once), so lines from several threads do not mix.
            var offset = 0
            while offset < buffer.count {
                let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // standard error is gone: nothing to tell anyone
                }
            }
        }
    }
}

/// The local time as `2026-12-01T16:10:03+0000`, formatted once a second.
private enum LocalTimestamp {
    private static let cache = Mutex<(second: time_t, text: String)>((-1, ""))

    static func now() -> String {
        var now = time(nil)
        if let cached = cache.withLock({ $0.second == now ? $0.text : nil }) { return cached }
        var parts = tm()
        guard localtime_r(&now, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        let text = String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        cache.withLock { $0 = (now, text) }
        return text
    }
}
