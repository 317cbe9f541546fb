import Foundation
import SandboxVCR
import SandboxVCRModal
import SandboxVCRTestSupport
import SandboxVCRTesting
import Testing

// The README's Swift examples, compiled. Each sits between a "README example" marker and its end marker,
// verbatim (less its imports, which are this file's); `theReadmeShowsEveryExampleVerbatim` checks that README.md
// has exactly these Swift blocks, so neither can change without the other. Examples that need a
// live server (SandboxFusion, Modal) are compiled but never run.

// MARK: "Use from Swift" (a live SandboxFusion: not run)

func readmeUseFromSwift() async throws {
    // README example
    // Live, against SandboxFusion (SANDBOX_URL, default http://localhost:8080/run_code).
    let live = SandboxFusionExecutor(configuration: try .fromEnvironment())

    // Recorded: live on a miss, from the cassette ever after (mode from SANDBOX_VCR_RECORD; `never` on CI).
    // `withCassette` closes the file however the body ends, so the `.sqlite` alone holds every recording.
    let result = try await Cassette.withCassette(at: URL(fileURLWithPath: "Tests/cassettes/grader.sqlite")) {
        let request = ExecutionRequest(
            code: "print(sum(map(int, input().split())))", language: .python, stdin: "3 4\n", runTimeout: .seconds(2))
        return try await RecordingExecutor(cassette: $0, live: live).execute(request)
    }
    print(result.status, result.stdoutText)  // Success 7
    // end of README example
}

// MARK: "In tests: the .cassette trait" (records from a live SandboxFusion: not run)

@Suite(.disabled("a README example that records from a live SandboxFusion"))
struct ReadmeCassetteTraitExample {
    // README example
    @Test(.cassette("sum-two", live: try SandboxFusionExecutor(configuration: .fromEnvironment())))
    func sumTwo() async throws {
        let result = try await testExecutor.execute(ExecutionRequest(code: "print(3 + 4)", language: .python))
        #expect(result.stdoutText == "7\n")
    }
    // end of README example
}

// MARK: "Unit tests of grading logic: the fake executor" (runs)

// README example
/// Your grading code depends on `any SandboxExecutor` only.
func passes(_ code: String, stdin: String, expected: String, on executor: any SandboxExecutor) async throws -> Bool {
    let result = try await executor.execute(ExecutionRequest(code: code, language: .python, stdin: stdin))
    return result.isSuccess && Grader.outputsMatch(expected: expected, actual: result.stdoutText)
}

@Test func gradingLogic() async throws {
    let fake = FakeExecutor()
    fake.on(.codeContains("a + b"), answer: .success(stdout: "7  \n\n"))  // trailing white space is ignored
    fake.on(.codeContains("a - b"), answer: .wrongOutput(stdout: "-1\n"))
    fake.on(.codeContains("raise"), answer: .runtimeError(exitCode: 1, stderr: "Traceback ..."))
    fake.on(.codeContains("while True"), answer: .timeLimit)
    fake.on(.language(.cpp), answer: .compileError(stderr: "error: expected ';'"))
    // A script: the nth matching call gets the nth answer (then the last repeats, or `afterLast: .fail`).
    fake.on(.codeContains("flaky"), answers: [.transportError(.connectionReset), .success(stdout: "7\n")])

    #expect(try await passes("print(a + b)", stdin: "3 4\n", expected: "7\n", on: fake))
    #expect(try await !passes("print(a - b)", stdin: "3 4\n", expected: "7\n", on: fake))
    #expect(fake.requestCount == 2)
    #expect(fake.requests.first?.stdinText == "3 4\n")
}
// end of README example

// MARK: "Modal: Swift" (needs Modal credentials: not run)

func readmeModal() async throws {
    // README example
    let env = ProcessInfo.processInfo.environment
    let configuration = try ModalConfiguration.fromEnvironment(env)

    // One persistent sandbox.
    let sandbox = try await ModalSandbox.create(
        configuration: configuration,
        options: .init(image: .debianSlim(pipPackages: ["numpy"]), timeout: .seconds(600)))
    try await sandbox.writeFile("/workspace/main.py", content: Data("print(6 * 7)\n".utf8))
    let result = try await sandbox.runCommand("python3 main.py", workdir: "/workspace", timeout: .seconds(30))
    print(result.exitCode ?? -1, result.stdoutText)
    try await sandbox.terminate()

    // A pool as the grader's executor, recorded into a cassette.
    let pool = ModalSandboxPool(configuration: configuration)
    let cassette = try await Cassette.open(at: URL(fileURLWithPath: "grading.sqlite"))
    let problems = try GradingProblem.load(contentsOf: URL(fileURLWithPath: "problems.jsonl"))
    let report = await Grader(executor: RecordingExecutor(cassette: cassette, live: pool)).grade(problems)
    print(report.renderTable())
    await pool.terminate()  // waits for work in flight, then ends every sandbox

    // A recorded agent session: replays with SANDBOX_VCR_RECORD=never and no credentials.
    let session = try ModalSession(cassette: cassette, configuration: try? .fromEnvironment(env))
    _ = try await session.runCommand("git clone https://github.com/apple/swift-log /workspace/repo")
    let files = try await session.runCommand("ls", workdir: "/workspace/repo")
    print(files.stdoutText)
    try await session.terminate()
    await cassette.close()
    // end of README example
}

// MARK: "The fake Modal server" (starts the Python fake server: not run here; SandboxVCRModalTests use it)

func readmeFakeModalServer() async throws {
    // README example
    try await withFakeModalServer(.init(faults: [.throttle])) { server in
        // a client configured with server.url, server.tokenID, server.tokenSecret ...
        let stats = try server.stats()
        #expect(stats.maxAlive <= 8 && stats.sandboxesAlive == 0)
    }
    // end of README example
}

@Suite("README examples", .timeLimit(.minutes(1)))
struct ReadmeExamplesTests {
    @Test func manualClock() async throws {
        // README example
        let clock = ManualClock()
        let fake = FakeExecutor(default: .success(stdout: "hi\n"), latency: .seconds(5), clock: clock)
        async let result = fake.execute(ExecutionRequest(code: "print('hi')", language: .python))
        await clock.waitForSleepers(count: 1)  // the call is now suspended
        clock.advance(by: .seconds(5))  // ...and now it answers
        #expect(try await result.stdoutText == "hi\n")
        // end of README example
    }

    @Test func rulesFileExampleParses() throws {
        let json = """
            {
              "latencyMs": 0,
              "rules": [
                {"name": "sum", "match": {"language": "python", "codeContains": "a + b", "stdin": "3 4\\n"},
                 "result": {"kind": "success", "stdout": "7\\n"}},
                {"match": {"codeMatches": "while\\\\s+True"}, "result": {"kind": "timeLimit"}},
                {"match": {"files": {"data.csv": {"contains": "x,y"}}},
                 "results": [{"kind": "transportError", "code": "connectionReset"}, {"kind": "success", "stdout": "ok\\n"}],
                 "afterLast": "repeatLast", "latencyMs": 20}
              ],
              "default": {"kind": "runtimeError", "exitCode": 1, "stderr": "no rule matched\\n"}
            }
            """
        #expect(try String(contentsOf: Self.readmeURL, encoding: .utf8).contains(json))
        let fake = try FakeExecutor(ruleSet: FakeRuleSet.decode(Data(json.utf8)))
        #expect(fake.rules.count == 3)
        #expect(fake.rules[2].latency == .milliseconds(20))
        #expect(fake.defaultOutcome != nil)
    }

    static let readmeURL = SandboxFusionSamples.repositoryRoot().appendingPathComponent("README.md")

    /// The README's ```swift blocks, each less its leading `import` lines and the blank lines after them.
    static func swiftBlocks(in readme: String) -> (bodies: [String], imports: Set<String>) {
        var bodies: [String] = []
        var imports: Set<String> = []
        var current: [Substring]?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil {
                if line == "```swift" { current = [] }
            } else if line == "```" {
                var lines = current ?? []
                // The Package.swift snippet is a manifest, not code a test can compile: UserPackageTests builds it.
                if lines.first?.hasPrefix("// swift-tools-version") == true {
                    current = nil
                    continue
                }
                while let first = lines.first, first.hasPrefix("import ") || first.isEmpty {
                    if first.hasPrefix("import ") { imports.insert(moduleName(first)) }
                    lines.removeFirst()
                }
                bodies.append(lines.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return (bodies, imports)
    }

    /// The examples of this file: the lines between each marker and its end marker, less their common indentation.
    static func compiledExamples(in source: String) -> (bodies: [String], imports: Set<String>) {
        var bodies: [String] = []
        var imports: Set<String> = []
        var current: [Substring]?
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if line.hasPrefix("import ") { imports.insert(moduleName(line)) }
            if trimmed == "// README example" {
                current = []
            } else if trimmed == "// end of README example", let lines = current {
                let indent = lines.filter { !$0.isEmpty }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
                bodies.append(lines.map { $0.dropFirst(min(indent, $0.count)) }.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return (bodies, imports)
    }

    /// `SandboxVCRTesting` for `import SandboxVCRTesting  // a comment`.
    static func moduleName(_ importLine: Substring) -> String {
        String(importLine.dropFirst("import ".count).prefix { $0 != " " })
    }

    @Test func theReadmeShowsEveryExampleVerbatim() throws {
        let readme = try Self.swiftBlocks(in: String(contentsOf: Self.readmeURL, encoding: .utf8))
        let compiled = Self.compiledExamples(in: try String(contentsOfFile: #filePath, encoding: .utf8))
        #expect(compiled.bodies.count == 6)
        #expect(
            readme.bodies.count == compiled.bodies.count, "a README Swift block is not compiled here, or the reverse")
        for (index, shown) in readme.bodies.enumerated() {
            #expect(compiled.bodies.contains(shown), "README Swift block #\(index + 1) is not compiled here as shown")
        }
        for built in compiled.bodies {
            #expect(readme.bodies.contains(built), "this compiled example is not in README.md:\n\(built)")
        }
        #expect(readme.imports.isSubset(of: compiled.imports), "the README imports a module this file does not")
    }
}
