import BenchmarkSupport
import Foundation
import Logging
import SandboxVCR
import SandboxVCRModal
import SandboxVCRModalServer
import SandboxVCRTestSupport
import Synchronization

/// The shape of the synthetic cassette and of the load that replays it.
enum ModalPlan {
    /// Live sandboxes at once: each runs its execs one after another.
    static let concurrency = 64
    /// Execs per recorded (and per live) sandbox: a round of ``concurrency`` sandboxes runs 10,240 execs.
    static let execsPerSandbox = 160
    /// Execs of one round.
    static var execsPerRound: Int { concurrency * execsPerSandbox }

    /// The command of exec `exec` (1-based) of sandbox `sandbox`: unique in the cassette, so a live sandbox binds
    /// to its recording by its first exec. Its tokens are short, so nothing is taken for an invented value.
    static func command(sandbox: Int, exec: Int) -> String { "echo s\(sandbox)-\(exec)" }

    /// What the recorded command printed.
    static func stdout(sandbox: Int, exec: Int) -> Data { Data("s\(sandbox)-\(exec)\n".utf8) }
}

/// What one recorded sandbox of the Swift client looks like: its image layers (what `ImageGetOrCreate` sends for
/// `ModalImage.debianSlim()`, which replay must match), its timeout, and an exec's call (argv prefix, workdir,
/// timeout), learned by recording one sandbox through an in-process `ModalServer` in mode `all` in front of
/// `Tools/fake_modal_server.py`.
struct ModalTemplate {
    var image: ImageSpec
    var sandboxTimeoutSecs: UInt32
    var exec: ExecCall

    /// Records `echo learn` in one sandbox and reads it back from the cassette.
    ///
    /// - Throws: ``BenchmarkFailure`` when the recording holds no such sandbox; `FakeModalServer.Failure` when
    ///   Tools/.venv is missing (run Tools/setup).
    static func learn(in folder: URL) async throws -> ModalTemplate {
        let cassetteURL = folder.appendingPathComponent("learn.sqlite")
        let fake = try await FakeModalServer.start(
            FakeModalServer.Options(), filePath: ModalFixture.packageRoot.appendingPathComponent("Package.swift").path)
        do {
            let cassette = try await Cassette.open(at: cassetteURL)
            var configuration = ModalServeConfiguration()
            configuration.mode = .all
            configuration.upstreamURL = fake.url
            let server = try await ModalServer(
                configuration: configuration, cassette: cassette, logger: ModalFixture.logger)
            let running = Task { try await server.run() }
            let url = try await server.listeningURL()
            let client = ModalClient(
                configuration: ModalConfiguration(tokenID: fake.tokenID, tokenSecret: fake.tokenSecret, serverURL: url))
            let sandbox = try await ModalSandbox.create(client: client, options: ModalFixture.options)
            let result = try await sandbox.runCommand("echo learn")
            try await sandbox.terminate()
            server.beginShutdown()
            try await running.value
            await server.finish()
            guard result.stdoutText == "learn\n" else {
                throw BenchmarkFailure("the fake Modal server answered \(result) to `echo learn`")
            }
            var interactions: [Cassette.Interaction] = []
            try await cassette.forEachInteraction { interactions.append($0) }
            await cassette.close()
            await fake.stop()
            let sandboxes = ModalSessionCoding.sandboxes(from: interactions).sandboxes
            guard sandboxes.count == 1, let recorded = sandboxes.first, let exec = recorded.execs.first,
                exec.call.argv.last == "echo learn"
            else {
                throw BenchmarkFailure("the learning cassette holds \(sandboxes.count) sandboxes, not one with `echo learn`")
            }
            return ModalTemplate(image: recorded.image, sandboxTimeoutSecs: recorded.timeoutSecs, exec: exec.call)
        } catch {
            await fake.stop()
            throw error
        }
    }

    /// The call of a command, as the Swift client sends `runCommand(command)`.
    func call(_ command: String) -> ExecCall {
        var call = exec
        call.argv[call.argv.count - 1] = command
        return call
    }
}

/// The replaying server over the synthetic cassette, and the Swift client that drives it.
final class ModalFixture {
    static let packageRoot: URL = {
        // Tools/Benchmarks/Benchmarks/ModalBenchmarks/ModalReplayFixture.swift → the root package.
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 { url.deleteLastPathComponent() }
        return url
    }()

    /// Warnings only (a miss is one): the server logs each sandbox at `info`.
    static let logger: Logger = {
        var logger = Logger(label: "modal-bench")
        logger.logLevel = .warning
        return logger
    }()

    static let options = ModalSandbox.Options()

    let folder: URL
    let cassette: Cassette
    let server: ModalServer
    let running: Task<Void, any Error>
    let client: ModalClient

    /// Learns the client's image, writes the cassette (``ModalPlan/concurrency`` sandboxes of
    /// ``ModalPlan/execsPerSandbox`` execs each), starts a replaying server (mode `never`) and a client of it.
    init() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("modal-bench-\(getpid())")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        Self.created.withLock { $0.append(folder) }
        self.folder = folder
        let template = try await ModalTemplate.learn(in: folder)

        let cassetteURL = folder.appendingPathComponent("replay.sqlite")
        let writer = try await Cassette.open(at: cassetteURL)
        let date = Date()
        for sandbox in 0..<ModalPlan.concurrency {
            let session = ModalSessionCoding.newSessionID()
            var batch = [
                ModalSessionCoding.sandboxInteraction(
                    session: session, image: template.image, timeoutSecs: template.sandboxTimeoutSecs,
                    at: date + Double(sandbox))
            ]
            for exec in 1...ModalPlan.execsPerSandbox {
                let recorded = RecordedExec(
                    step: exec, call: template.call(ModalPlan.command(sandbox: sandbox, exec: exec)),
                    stdout: RecordedStream(chunks: [ModalPlan.stdout(sandbox: sandbox, exec: exec)]),
                    stderr: RecordedStream(), exit: .code(0), duration: 0.002)
                batch.append(
                    ModalSessionCoding.execInteraction(
                        session: session, exec: recorded, at: date + Double(sandbox), duration: 0.002))
            }
            try await writer.record(batch)
        }
        await writer.close()

        cassette = try await Cassette.open(at: cassetteURL, readOnly: true, create: false)
        var configuration = ModalServeConfiguration()
        configuration.mode = .never
        let server = try await ModalServer(configuration: configuration, cassette: cassette, logger: Self.logger)
        self.server = server
        running = Task { try await server.run() }
        let url = try await server.listeningURL()
        client = ModalClient(
            configuration: ModalConfiguration(tokenID: "ak-bench", tokenSecret: "as-bench", serverURL: url))
    }

    deinit { server.beginShutdown() }

    /// The folders to remove when the process exits (the benchmark runner keeps each benchmark's state until then).
    private static let created: Mutex<[URL]> = {
        atexit {
            for url in ModalFixture.created.withLock({ $0 }) { try? FileManager.default.removeItem(at: url) }
        }
        return Mutex([])
    }()

    /// What ``run(rounds:afterRound:)`` measured.
    struct Figures {
        /// Each exec's latency (`runCommand`, start to result), in nanoseconds, in no particular order.
        var latencies: [Int]
        var execs: Int
        /// From the first sandbox's creation to the last one's termination.
        var elapsed: Duration
        var execsPerSecond: Double { Double(execs) / elapsed.seconds }
    }

    /// Runs `rounds` rounds. In each, ``ModalPlan/concurrency`` tasks each create a sandbox, run its
    /// ``ModalPlan/execsPerSandbox`` execs one after another (each checked: exit 0 and the recorded stdout), and
    /// terminate it; the next round starts once every sandbox ended (ended sandboxes give their recording back).
    ///
    /// - Parameter afterRound: called after each round with its number (1-based), outside the timed work.
    /// - Throws: ``BenchmarkFailure`` on a wrong answer; the client's error on a miss.
    func run(rounds: Int, afterRound: (Int) async throws -> Void = { _ in }) async throws -> Figures {
        var latencies: [Int] = []
        latencies.reserveCapacity(rounds * ModalPlan.execsPerRound)
        var elapsed = Duration.zero
        for round in 1...rounds {
            let start = ContinuousClock.now
            latencies += try await runRound()
            elapsed += ContinuousClock.now - start
            try await afterRound(round)
        }
        return Figures(latencies: latencies, execs: rounds * ModalPlan.execsPerRound, elapsed: elapsed)
    }

    private func runRound() async throws -> [Int] {
        let client = client
        return try await withThrowingTaskGroup(of: [Int].self) { group in
            for sandboxIndex in 0..<ModalPlan.concurrency {
                group.addTask {
                    let sandbox = try await ModalSandbox.create(client: client, options: Self.options)
                    var latencies: [Int] = []
                    latencies.reserveCapacity(ModalPlan.execsPerSandbox)
                    let clock = ContinuousClock()
                    for exec in 1...ModalPlan.execsPerSandbox {
                        let command = ModalPlan.command(sandbox: sandboxIndex, exec: exec)
                        let start = clock.now
                        let result = try await sandbox.runCommand(command)
                        latencies.append((clock.now - start).nanoseconds)
                        guard result.exitCode == 0, result.stdout == ModalPlan.stdout(sandbox: sandboxIndex, exec: exec)
                        else {
                            throw BenchmarkFailure("`\(command)` answered \(result)")
                        }
                    }
                    try await sandbox.terminate()
                    return latencies
                }
            }
            return try await group.reduce(into: [Int]()) { $0 += $1 }
        }
    }

    /// The server's counters (`replayed`, `misses`, `sandboxes`, …).
    var statistics: [String: Int] { server.statistics.snapshot }
}
