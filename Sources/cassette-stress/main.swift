import Foundation
import SandboxVCR
import Synchronization

// A test peer: records into a cassette from a separate process, so tests can run several processes on one
// file and kill one mid-recording. Not a product.
//
//   cassette-stress record PATH PREFIX COUNT SHARED   record COUNT own requests and SHARED common ones, print "done N"
//   cassette-stress crash PATH AFTER                 record from 16 tasks; SIGKILL itself once AFTER commits are done
//   cassette-stress open PATH                        open, replay the first interaction, print "open_ms X rss_mb Y"
#if canImport(Glibc)
    import Glibc
#endif

/// Answers every request at once with its stdin echoed.
struct InstantExecutor: SandboxExecutor {
    func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        ExecutionResult(
            status: .success, run: CommandOutcome(status: .finished, exitCode: 0, stdout: request.stdin),
            backend: .fake)
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: cassette-stress record|crash PATH ...\n".utf8))
    exit(2)
}
if arguments[1] == "open" {
    let start = ContinuousClock.now
    let opened = try await Cassette.open(at: URL(fileURLWithPath: arguments[2]))
    let elapsed = ContinuousClock.now - start
    let first = try await opened.interactions(limit: 1)
    if let interaction = first.first {
        _ = try? await RecordingExecutor(cassette: opened, mode: .never).execute(interaction.request)
    }
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let rss =
        status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?
        .split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
    let milliseconds = elapsed.inSeconds * 1000
    print("open_ms \(milliseconds) rss_mb \(rss / 1024)")
    exit(0)
}
let cassette = try await Cassette.open(at: URL(fileURLWithPath: arguments[2]))
let executor = RecordingExecutor(cassette: cassette, mode: .missing, live: InstantExecutor())

switch arguments[1] {
case "record":
    let prefix = arguments[3]
    let count = Int(arguments[4]) ?? 0
    let shared = Int(arguments[5]) ?? 0
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<count {
            group.addTask {
                _ = try await executor.execute(
                    ExecutionRequest(code: "print(\(index))", language: .python, stdin: "\(prefix)-\(index)"))
            }
        }
        for index in 0..<shared {
            group.addTask {
                let result = try await executor.execute(
                    ExecutionRequest(code: "shared", language: .python, stdin: "shared-\(index)"))
                precondition(result.stdoutText == "shared-\(index)")
            }
        }
        try await group.waitForAll()
    }
    try await cassette.flush()
    await cassette.close()
    print("done \(count + shared)")
case "crash":
    let after = Int(arguments[3]) ?? 100
    try await crash(executor: executor, after: after)
default:
    exit(2)
}

final class Counter: Sendable {
    let value = Mutex(0)
}

func crash(executor: RecordingExecutor, after: Int) async throws {
    let committed = Counter()
    try await withThrowingTaskGroup(of: Void.self) { group in
        for task in 0..<16 {
            group.addTask {
                var index = 0
                while true {
                    _ = try await executor.execute(
                        ExecutionRequest(code: "print(1)", language: .python, stdin: "task\(task)-\(index)"))
                    index += 1
                    let done = committed.value.withLock { value in
                        value += 1
                        return value
                    }
                    if done == after {
                        try await executor.cassette.flush()
                        FileHandle.standardOutput.write(Data("committed \(done)\n".utf8))
                        kill(getpid(), SIGKILL)
                    }
                }
            }
        }
        try await group.waitForAll()
    }
}
