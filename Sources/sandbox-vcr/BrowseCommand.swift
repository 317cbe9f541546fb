import ArgumentParser
import Foundation
import SandboxVCR
import SandboxVCRServer

extension CassetteCommand {
    /// `browse`: the cassette in the browser, read-only, on a loopback port.
    struct Browse: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "browse",
            abstract: "Open a cassette in the browser: every interaction, sortable, searchable, read-only.",
            discussion: """
                Serves a page on a loopback port and prints its URL (open it in a browser); runs until Ctrl-C. The \
                list sorts by time or size, filters never-replayed recordings, recorded failures and sessions, and \
                searches code, argv, stdin and stdout; a click shows the request, the answer and the steps of its \
                session. The cassette is opened read-only and nothing is written.
                """)

        @Argument(help: "The cassette file (.sqlite).")
        var cassette: String

        @Option(help: "The address to listen on (loopback unless --allow-remote).")
        var host = "127.0.0.1"

        @Option(help: "The port (0 picks a free one).")
        var port = 0

        @Flag(help: "Allow a non-loopback --host: anyone who can reach it can read the cassette.")
        var allowRemote = false

        @Option(help: "Write the page's URL to this file once listening.")
        var readyFile: String?

        func validate() throws {
            if !(0...65_535).contains(port) { throw ValidationError("--port \(port) is not a port") }
            if !ServeConfiguration.isLoopback(host: host) && !allowRemote {
                throw ValidationError(
                    "--host \(host) is not a loopback address; the browser shows the whole cassette to anyone who "
                        + "can reach it: add --allow-remote if that is what you want")
            }
        }

        func run() async throws {
            let browser: CassetteBrowser
            do {
                browser = try await CassetteBrowser.open(URL(fileURLWithPath: cassette))
            } catch {
                throw commandFailure("cassette browse", "\(error)", status: ExitCode(2))
            }
            let readyFile = readyFile
            let count = browser.cassette.url.lastPathComponent
            do {
                try await browser.run(host: host, port: port) { url in
                    if let readyFile {
                        try? Data((url + "\n").utf8).write(to: URL(fileURLWithPath: readyFile), options: .atomic)
                    }
                    FileHandle.standardOutput.write(Data("sandbox-vcr cassette browse: \(count) at \(url)\n".utf8))
                }
            } catch {
                throw commandFailure("cassette browse", "the server failed: \(error)", status: ExitCode(2))
            }
            await browser.cassette.close()
        }
    }
}
