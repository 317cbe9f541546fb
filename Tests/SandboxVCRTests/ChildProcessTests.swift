import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The test support's own process spawning and refused port, which every end-to-end test stands on.
@Suite struct ChildProcessTests {
    static let shell = URL(fileURLWithPath: "/bin/sh")

    static func run(_ script: String, stdin: Data = Data()) async throws -> CommandRunner.Output {
        try await CommandRunner.run(shell, ["-c", script], stdin: stdin, timeout: .seconds(60))
    }

    @Test func exitCodesSignalsAndStreamsArriveApart() async throws {
        let exited = try await Self.run("cat; echo to-stderr >&2; exit 3", stdin: Data("piped".utf8))
        #expect(exited.status == 3)
        #expect(exited.reason == .exit)
        #expect(exited.stdoutText == "piped")
        #expect(exited.stderrText == "to-stderr\n")

        let signalled = try await Self.run("kill -TERM $$")
        #expect(signalled.status == SIGTERM)
        #expect(signalled.reason == .uncaughtSignal)
    }

    @Test func theChildGetsOnlyItsThreeStreamsNoBlockedSignalsAndItsFolder() async throws {
        // A descriptor this process opens without close-on-exec must not reach the child.
        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { for end in ends { close(end) } }
        // Each program is the spawned child itself (a shell would block signals while it waits for its own).
        let descriptors = try await CommandRunner.run(URL(fileURLWithPath: "/bin/ls"), ["/proc/self/fd"])
        // 0, 1, 2, and the one ls reads the folder with.
        #expect(descriptors.stdoutText.split(separator: "\n").sorted() == ["0", "1", "2", "3"])
        let status = try await CommandRunner.run(URL(fileURLWithPath: "/bin/grep"), ["SigBlk", "/proc/self/status"])
        #expect(status.stdoutText == "SigBlk:\t0000000000000000\n")
        let folder = FileManager.default.temporaryDirectory.resolvingSymlinksInPath()
        let pwd = try await CommandRunner.run(URL(fileURLWithPath: "/bin/pwd"), [], currentDirectory: folder)
        #expect(pwd.stdoutText == folder.path + "\n")
    }

    @Test func aChildStillRunningAfterItsTimeIsKilledAndSaysSo() async throws {
        let output = try await CommandRunner.run(Self.shell, ["-c", "exec sleep 600"], timeout: .milliseconds(300))
        #expect(output.reason == .uncaughtSignal)
        #expect(output.status == SIGKILL)
        #expect(output.stderrText.contains("killed"))
    }

    @Test func anExitedChildReportsWhatItUsed() async throws {
        let child = try ChildProcess(
            Self.shell, ["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"], environment: [:], stdin: .null,
            stdout: .null, stderr: .null)
        #expect(await child.exit.wait(timeout: .seconds(60)) == 0)
        let usage = try #require(child.usage)
        #expect(usage.cpuTime > .zero)
        #expect(usage.peakResidentKiB > 0)
    }

    @Test func aMissingExecutableIsASpawnError() {
        #expect(throws: ChildProcess.SpawnError.self) {
            _ = try ChildProcess(URL(fileURLWithPath: "/nonexistent/program"), [], environment: [:])
        }
    }

    @Test func aRefusingPortRefusesUntilClosed() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let error = await #expect(throws: ExecutionError.self) {
            try await HTTPClient().execute(HTTPRequest(url: "http://127.0.0.1:\(refusing.port)/"))
        }
        #expect(error?.code == .connectionRefused)
        // While it is held, no server can be given the port.
        let server = try LoopbackHTTPServer { _ in .dropConnection }
        defer { server.shutdown() }
        #expect(server.port != refusing.port)
    }
}
