import Foundation
import SandboxVCRTestSupport
import Testing

/// The fault suite's file-descriptor exhaustion (issue 12 item 10): at its open-files limit, `serve` must not spin
/// on `accept` (it used to: thousands of failing `accept4` calls a second, a core busy), and must serve again once
/// descriptors are free. The limit of the running child is lowered with `prlimit`; CPU time comes from `/proc`.
@Suite(
    .serialized,
    .enabled(
        if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit")
            && FileManager.default.fileExists(atPath: "/proc/self/stat"),
        "needs Linux's /proc and util-linux's prlimit"))
struct DescriptorExhaustionTests {
    @Test func atTheOpenFilesLimitTheServerWaitsQuietlyAndServesOnceDescriptorsAreFree() async throws {
        let cassette = repositoryRoot.appendingPathComponent("Fixtures/grading-demo/cassette.sqlite").path
        // No idle timeout: the connections below hold their descriptors until the test lets them go.
        let serve = try await ServeProcess.start(
            ["--cassette", cassette, "--record", "never", "--idle-timeout", "0"], logLevel: "notice")
        defer { serve.terminate() }
        let pid = serve.process.processIdentifier
        let port = serve.port
        #expect(try await ping(port: port) == 200)

        let limit = try openDescriptors(of: pid) + 16
        let prlimit = try await CommandRunner.run(
            URL(fileURLWithPath: "/usr/bin/prlimit"), ["--pid", "\(pid)", "--nofile=\(limit):\(limit)"])
        try #require(prlimit.status == 0, "\(prlimit.stderrText)")

        // More connections than descriptors are left: the kernel queues the rest and accept fails with EMFILE.
        // (Connecting to a loopback listener with room in its backlog does not block.)
        var connections = try (0..<40).map { _ in try RawHTTPConnection(port: port) }
        #expect(try await waitUntil { serve.log.text.contains("cannot accept connections") }, "\(serve.log.text)")

        // The measurement window. Spinning on accept, the server used 2.0 s of CPU in it (on a shared machine with a
        // load of 9 on 2 cores); backing off, it makes a few accept calls a second.
        let window = Duration.seconds(3)
        let before = try cpuSeconds(of: pid)
        try await Task.sleep(for: window)
        let used = try cpuSeconds(of: pid) - before
        #expect(used < 0.3, "\(used) s of CPU in \(window) at the open-files limit")
        #expect(!serve.log.text.contains("accepting connections again"), "the pressure lasted the whole window")

        connections.removeAll()
        #expect(try await ping(port: port) == 200)
        #expect(serve.log.text.contains("accepting connections again"))
        #expect(try await serve.stop() == 0)
    }

    /// `GET /v1/ping` on a new connection; fails rather than hangs if no answer comes within 60 s.
    private func ping(port: Int) async throws -> Int {
        try await RawHTTP.onThread {
            let connection = try RawHTTPConnection(port: port)
            connection.setReadTimeout(seconds: 60)
            return try connection.exchange(RawHTTP.request(method: "GET", path: "/v1/ping")).status
        }
    }

    /// Checks `condition` every 20 ms for up to 60 s; whether it became true.
    private func waitUntil(_ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try condition()
    }

    private func openDescriptors(of pid: Int32) throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    }

    /// User plus system CPU time of the process, from `/proc/PID/stat`.
    private func cpuSeconds(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
        let fields = try #require(stat.split(separator: ")").last).split(separator: " ")
        let ticks = try #require(Double(fields[11])) + #require(Double(fields[12]))
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
