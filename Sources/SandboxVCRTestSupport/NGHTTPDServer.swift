import Foundation

/// An nghttpd process serving a temporary folder over h2c on 127.0.0.1.
public final class NGHTTPDServer: Sendable {
    /// The nghttpd executable (Debian package nghttp2-server), or `nil` when it or `stdbuf` is missing.
    public static let executable: String? =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/stdbuf")
        ? ["/usr/sbin/nghttpd", "/usr/bin/nghttpd", "/usr/local/bin/nghttpd"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        : nil

    /// The port it listens on.
    public let port: Int
    let process: ChildProcess
    let folder: URL

    /// `http://127.0.0.1:PORT`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts nghttpd and returns once it listens.
    ///
    /// - Parameters:
    ///   - files: files to serve, by name, with their text.
    ///   - trailer: a trailer field every answer ends with (`"grpc-status: 0"`), or `nil` for none.
    ///   - echoUpload: whether a POST or PUT is answered with its own body.
    ///   - requestedPort: where to listen; `nil`: a free port.
    public init(files: [String: String], trailer: String?, echoUpload: Bool = false, port requestedPort: Int? = nil)
        throws
    {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nghttpd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: folder.appendingPathComponent(name)) }
        guard let executable = Self.executable else { throw NGHTTPDError.notInstalled }
        // --no-content-length: as gRPC answers; libcurl 7.88 drops HTTP/2 trailers after a Content-Length body.
        var arguments = [
            "-oL", executable, "-v", "--no-tls", "--no-content-length", "-a", "127.0.0.1", "-d",
            folder.path,
        ]
        if let trailer { arguments += ["--trailer", trailer] }
        if echoUpload { arguments.append("--echo-upload") }
        // A free port found here may be taken by another test before nghttpd binds it: then try another.
        var attempt = 1
        while true {
            let port = try requestedPort ?? Self.closedPort()
            do {
                process = try Self.start(arguments + [String(port)], port: port)
                self.port = port
                return
            } catch NGHTTPDError.didNotStart where requestedPort == nil && attempt < 3 {
                attempt += 1
            }
        }
    }

    /// Starts nghttpd and returns once it listens on `port`, its output drained by a thread from then on.
    private static func start(_ arguments: [String], port: Int) throws -> ChildProcess {
        // stdbuf: nghttpd's output is block-buffered into a pipe; line buffering lets the listen line through.
        let process = try ChildProcess(
            URL(fileURLWithPath: "/usr/bin/stdbuf"), arguments,
            environment: ProcessInfo.processInfo.environment, stdin: .null, stderr: .null)
        // nghttpd -v prints "IPv4: listen 127.0.0.1:<port>" once it listens; then keep draining its output.
        guard let handle = process.stdout else { throw NGHTTPDError.didNotStart("no output pipe") }
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("listen 127.0.0.1:\(port)") {
            let chunk = handle.availableData
            guard !chunk.isEmpty else {
                process.send(SIGKILL)
                throw NGHTTPDError.didNotStart(String(decoding: seen, as: UTF8.self))
            }
            seen.append(chunk)
        }
        Thread { while !handle.availableData.isEmpty {} }.start()
        return process
    }

    /// Kills the server and removes its folder.
    public func stop() {
        process.send(SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: folder)
    }

    /// A port on 127.0.0.1 where nothing listens now (bound, then closed; another test may bind it next).
    static func closedPort() throws -> Int {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        return refusing.port
    }

    /// Why nghttpd could not be started: it exited before it listened (with its output so far), or is missing.
    public enum NGHTTPDError: Error {
        case didNotStart(String)
        /// nghttpd (Debian package nghttp2-server) or `stdbuf` is not installed.
        case notInstalled
    }
}
