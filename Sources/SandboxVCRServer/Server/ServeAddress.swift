internal import Foundation

/// Where the server listens once it is up.
public struct ServeAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    /// The bound port (the real one when port 0 was asked).
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `http://HOST:PORT` (IPv6 hosts in brackets).
    public var url: String {
        let shownHost = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "http://\(shownHost):\(port)"
    }

    public var description: String { url }

    /// The readiness line printed on standard output: `sandbox-vcr serve: listening on http://127.0.0.1:PORT`.
    public var readinessLine: String { "sandbox-vcr serve: listening on \(url)" }

    /// Writes ``url`` (and a newline), then `extraLines` (e.g. `modal: URL`), to `path` atomically: a temporary file
    /// in the same folder, then a rename, so a script polling for the file never reads it half written.
    ///
    /// - Throws: ``ServeError`` with code ``ServeError/Code/readyFile``.
    public func writeReadyFile(to path: String, extraLines: [String] = []) throws(ServeError) {
        let destination = URL(fileURLWithPath: path)
        let temporary = destination.deletingLastPathComponent()
            .appendingPathComponent(
                ".\(destination.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try Data(([url] + extraLines).map { $0 + "\n" }.joined().utf8).write(to: temporary)
            if rename(temporary.path, destination.path) != 0 {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ServeError(
                code: .readyFile,
                message: "could not write the ready file \(path) (\(error)); check that its folder exists and is "
                    + "writable")
        }
    }
}
