import Foundation
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTestSupport
import Testing

@Suite("Modal: the sandbox pool, recording and replay", .serialized)
struct ModalPoolTests {
    @Test("64 concurrent runInWorkdir calls on a pool of 8: never more than 8 alive, rate respected, all retired")
    func concurrentPool() async throws {
        let rate = 20
        try await withFakeModalServer { server in
            let pool = ModalSandboxPool(
                configuration: modalConfiguration(for: server, poolSize: 8, creationRateLimit: Double(rate)))
            let outputs = try await withThrowingTaskGroup(of: (Int, ModalCommandResult).self) { group in
                for index in 0..<64 {
                    group.addTask {
                        let result = try await pool.runInWorkdir(
                            files: ["input.txt": Data("run \(index)\n".utf8)],
                            command: "cat input.txt; pwd; cat; echo", timeout: .seconds(30),
                            stdin: Data("stdin \(index)".utf8))
                        return (index, result)
                    }
                }
                var outputs: [Int: ModalCommandResult] = [:]
                for try await (index, result) in group { outputs[index] = result }
                return outputs
            }
            await pool.terminate()
            #expect(outputs.count == 64)
            var folders = Set<String>()
            for (index, result) in outputs {
                let lines = result.stdoutText.split(separator: "\n").map(String.init)
                #expect(lines.first == "run \(index)")
                #expect(lines.last == "stdin \(index)")
                #expect(result.exitCode == 0)
                if lines.count >= 2 { folders.insert(lines[1]) }
            }
            #expect(folders.count == 64)
            #expect(folders.allSatisfy { $0.contains("/workspace/") })

            let stats = try server.stats()
            #expect(stats.maxAlive <= 8)
            #expect(stats.sandboxesAlive == 0)
            #expect(pool.aliveCount == 0)
            #expect(stats.sandboxesCreated >= 64)
            #expect(stats.sandboxesTerminated == stats.sandboxesCreated)
            // The rate: any `rate` creations after one are at least about a second later (tolerance for the
            // server's clock seeing requests a little earlier or later than the client sent them).
            let created = stats.createdAt.sorted()
            for index in 0..<max(0, created.count - rate) {
                #expect(created[index + rate] - created[index] >= 0.8)
            }
        }
    }

    @Test("execute: python, bash, a compiled cpp program, a command with files and fetchFiles, unsupported language")
    func executeRequests() async throws {
        try await withFakeModalServer { server in
            let pool = ModalSandboxPool(configuration: modalConfiguration(for: server), keepsWarm: false)
            let python = try await pool.execute(
                ExecutionRequest(code: "print(input()[::-1])", language: .python, stdin: "abc\n"))
            #expect(python.status == .success)
            #expect(python.stdoutText == "cba\n")
            #expect(python.backend == .modal)
            #expect(python.compile == nil)

            let cpp = try await pool.execute(
                ExecutionRequest(
                    code:
                        "#include <cstdio>\nint main(){int a,b;scanf(\"%d %d\",&a,&b);printf(\"%d\\n\",a*b);return 4;}",
                    language: .cpp, stdin: "6 7\n"))
            #expect(cpp.compile?.exitCode == 0)
            #expect(cpp.stdoutText == "42\n")
            #expect(cpp.run?.exitCode == 4)
            #expect(cpp.status == .failed)

            let broken = try await pool.execute(ExecutionRequest(code: "int main( {", language: .cpp))
            #expect(broken.compile?.exitCode != 0)
            #expect(broken.run == nil)
            #expect(broken.status == .failed)

            let command = try await pool.execute(
                ExecutionRequest(
                    argv: ["bash", "-c", "cat in.txt > out.txt; echo \"$0\" done", "quoted 'arg'"],
                    files: ["in.txt": Data("copied".utf8)], fetchFiles: ["out.txt", "missing.txt"]))
            #expect(command.stdoutText == "quoted 'arg' done\n")
            #expect(command.files == ["out.txt": Data("copied".utf8)])

            let slow = try await pool.execute(
                ExecutionRequest(code: "while true; do :; done", language: .bash, runTimeout: .seconds(1)))
            #expect(slow.run?.status == .timeLimitExceeded)
            #expect(slow.status == .failed)

            let limited = try await pool.execute(
                ExecutionRequest(code: "ulimit -v", language: .bash, memoryLimitMB: 256))
            #expect(limited.stdoutText == "262144\n")

            let unsupported = await #expect(throws: ExecutionError.self) {
                try await pool.execute(ExecutionRequest(code: "x", language: .lean))
            }
            #expect(unsupported?.code == .unsupportedRequest)
            await pool.terminate()
            #expect(try server.stats().sandboxesAlive == 0)
        }
    }

    @Test("the grading demo runs through the pool, recorded; replayed with the server stopped gives the same report")
    func gradingDemoRecordReplay() async throws {
        let folder = try temporaryFolder("modal-grading")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassetteURL = folder.appendingPathComponent("grading.sqlite")
        let problems = try GradingProblem.load(
            contentsOf: packageRoot().appendingPathComponent("Fixtures/grading-demo/problems.jsonl"))
        let logs = CapturedLogs()
        let server = try await FakeModalServer.start()
        let recorded: GradeReport
        do {
            let pool = ModalSandboxPool(
                configuration: modalConfiguration(for: server, poolSize: 8, creationRateLimit: 100),
                logger: logs.logger())
            let cassette = try await Cassette.open(at: cassetteURL)
            let recording = RecordingExecutor(cassette: cassette, mode: .all, live: pool)
            recorded = await Grader(executor: recording, maxConcurrency: 8).grade(problems)
            await pool.terminate()
            try await cassette.flush()
            #expect(try server.stats().sandboxesAlive == 0)
            // No token in the cassette's bytes (main file and WAL), before closing.
            for suffix in ["", "-wal"] {
                let path = cassetteURL.path + suffix
                guard let bytes = FileManager.default.contents(atPath: path) else { continue }
                #expect(bytes.range(of: Data(server.tokenSecret.utf8)) == nil)
                #expect(bytes.range(of: Data(server.tokenID.utf8)) == nil)
            }
            await cassette.close()
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        #expect(recorded.testCount == 96)
        #expect(recorded.executionErrors.isEmpty)
        #expect(recorded.expectationsMet, "unmet: \(recorded.unmetExpectations)")
        let logText = logs.all.joined(separator: "\n")
        #expect(!logs.all.isEmpty)
        #expect(!logText.contains(server.tokenSecret))
        #expect(!logText.contains(server.tokenID))

        for suffix in ["", "-wal"] {
            guard let bytes = FileManager.default.contents(atPath: cassetteURL.path + suffix) else { continue }
            #expect(bytes.range(of: Data(server.tokenSecret.utf8)) == nil)
        }

        let cassette = try await Cassette.open(at: cassetteURL, readOnly: true, create: false)
        let replaying = RecordingExecutor(cassette: cassette, mode: .never, live: nil)
        let replayed = await Grader(executor: replaying, maxConcurrency: 8).grade(problems)
        await cassette.close()
        #expect(replayed == recorded)
    }

    @Test("the pool rides out UNAVAILABLE and throttling on every RPC")
    func poolUnderFaults() async throws {
        try await withFakeModalServer(.init(faults: [.unavailableOnce, .throttle])) { server in
            let pool = ModalSandboxPool(configuration: modalConfiguration(for: server, poolSize: 4))
            let results = try await withThrowingTaskGroup(of: ExecutionResult.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        try await pool.execute(ExecutionRequest(code: "print(\(index) * 2)", language: .python))
                    }
                }
                return try await group.reduce(into: [ExecutionResult]()) { $0.append($1) }
            }
            await pool.terminate()
            #expect(Set(results.map(\.stdoutText)) == Set((0..<8).map { "\($0 * 2)\n" }))
            let stats = try server.stats()
            #expect(stats.faultsInjected > 0)
            #expect(stats.maxAlive <= 4)
            #expect(stats.sandboxesAlive == 0)
        }
    }
}
