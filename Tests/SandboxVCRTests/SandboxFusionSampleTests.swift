import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import Testing

/// Shared by the SandboxFusion suites: the repository's samples and a loopback server answering from them.
enum SandboxFusionTestFixtures {
    static let samples: SandboxFusionSamples = {
        do { return try SandboxFusionSamples.fromRepository() } catch { fatalError("cannot load samples: \(error)") }
    }()

    /// Names of the `/run_code` samples whose body is a request ``SandboxFusionExecutor/execute(_:)`` can send.
    static let executableSampleNames: [String] = samples.samples.filter { $0.executionRequest != nil }.map(\.name)

    /// Names of the samples answered with a status other than 200.
    static let errorSampleNames: [String] = samples.samples.filter { $0.httpStatus != 200 }.map(\.name)

    static func sample(_ name: String) throws -> SandboxFusionSamples.Sample {
        try #require(samples[name], "no sample \(name)")
    }

    /// An executor for these servers, retrying fast (1 ms) so fault tests stay quick.
    static func executor(
        _ servers: LoopbackHTTPServer..., maxConcurrency: Int = 4, maxAttempts: Int = 3,
        requestTimeout: Duration? = nil
    ) -> SandboxFusionExecutor {
        SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(
                endpoints: servers.map { $0.baseURL + "/run_code" }, maxConcurrency: maxConcurrency,
                requestTimeout: requestTimeout,
                retryPolicy: .init(
                    maxAttempts: maxAttempts, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))))
    }

    static func sampleServer() throws -> LoopbackHTTPServer {
        try LoopbackHTTPServer(handler: samples.handler())
    }
}

@Suite("SandboxFusion: the live client against real samples over loopback", .timeLimit(.minutes(1)))
struct SandboxFusionSampleTests {
    @Test func theSamplesAreLoaded() {
        #expect(SandboxFusionTestFixtures.samples.samples.count >= 44)
        #expect(SandboxFusionTestFixtures.executableSampleNames.count >= 30)
        #expect(SandboxFusionTestFixtures.errorSampleNames.count == 8)
    }

    @Test(arguments: SandboxFusionTestFixtures.executableSampleNames)
    func executeGivesTheSampleAnswer(name: String) async throws {
        let sample = try SandboxFusionTestFixtures.sample(name)
        let request = try #require(sample.executionRequest)
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let executor = SandboxFusionTestFixtures.executor(server)
        if sample.httpStatus == 200 {
            let result = try await executor.execute(request)
            #expect(result == (try SandboxFusionWire.decodeResult(from: sample.responseBody)))
            #expect(result.status.rawValue == sample.response["status"]?.stringValue)
            #expect(result.backend == .sandboxFusion)
        } else {
            let error = await #expect(throws: ExecutionError.self) { try await executor.execute(request) }
            #expect(error?.code == .httpStatus)
            #expect(error?.httpStatus == sample.httpStatus)
            #expect(error?.attempts == 1)
        }
        #expect(server.statistics.requests == 1)
    }

    /// Every error sample, sent byte for byte (most cannot be produced by `execute`), mapped to an error.
    @Test(arguments: SandboxFusionTestFixtures.errorSampleNames)
    func everyErrorAnswerBecomesATypedError(name: String) async throws {
        let sample = try SandboxFusionTestFixtures.sample(name)
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        var headers = HTTPHeaders()
        for (field, value) in sample.requestHeaders { headers.add(name: field, value: value) }
        let url = server.baseURL + sample.path
        let response = try await HTTPClient().execute(
            HTTPRequest(method: sample.method, url: url, headers: headers, body: sample.requestBody))
        #expect(response.status == sample.httpStatus)
        let error = SandboxFusionExecutor.httpStatusError(status: response.status, body: response.body, url: url)
        #expect(error.code == .httpStatus)
        #expect(error.httpStatus == sample.httpStatus)
        #expect(error.url == url)
        if sample.httpStatus == 422 {
            guard case .array(let detail)? = sample.response["detail"] else {
                Issue.record("422 sample without a detail list")
                return
            }
            #expect(error.validationIssues.count == detail.count)
            #expect(error.validationIssues.map(\.type) == detail.compactMap { $0["type"]?.stringValue })
            #expect(error.validationIssues.map(\.message) == detail.compactMap { $0["msg"]?.stringValue })
            #expect(error.description.contains(error.validationIssues[0].message))
        } else {
            #expect(error.validationIssues.isEmpty)
            #expect(error.message.contains("Method Not Allowed"))
        }
        #expect(!error.isRetryable)
    }

    @Test func anUnknownLanguageIsRejectedWithItsLocation() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let error = await #expect(throws: ExecutionError.self) {
            try await SandboxFusionTestFixtures.executor(server).execute(
                ExecutionRequest(code: "print(1)", language: "cobol"))
        }
        #expect(error?.httpStatus == 422)
        #expect(error?.validationIssues.first?.location == ["body", "language"])
        #expect(error?.validationIssues.first?.type == "literal_error")
        #expect(server.statistics.requests == 1)
    }

    @Test func malformedJSONKeepsANumericLocation() async throws {
        let sample = try SandboxFusionTestFixtures.sample("13")
        let error = SandboxFusionExecutor.httpStatusError(status: 422, body: sample.responseBody, url: "http://x/")
        #expect(error.validationIssues.first?.location == ["body", "41"])
        #expect(error.validationIssues.first?.type == "json_invalid")
    }

    @Test func aSandboxErrorIsAResultWithTheServerMessage() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(
            try #require(try SandboxFusionTestFixtures.sample("41").executionRequest))
        #expect(result.status == .sandboxError)
        #expect(result.message.contains("'sql'"))
        #expect(result.run == nil)
    }

    @Test func timeLimitsAreReported() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let executor = SandboxFusionTestFixtures.executor(server)
        let run = try await executor.execute(try #require(try SandboxFusionTestFixtures.sample("06").executionRequest))
        #expect(run.status == .failed)
        #expect(run.run?.status == .timeLimitExceeded)
        #expect(run.run?.exitCode == nil)
        let compile = try await executor.execute(
            try #require(try SandboxFusionTestFixtures.sample("30").executionRequest))
        #expect(compile.compile?.status == .timeLimitExceeded)
        #expect(compile.run == nil)
    }

    @Test func aCompileErrorHasNoRunStep() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(
            try #require(try SandboxFusionTestFixtures.sample("09").executionRequest))
        #expect(result.status == .failed)
        #expect(result.compile?.exitCode == 1)
        #expect(result.compile?.stderrText.contains("error") == true)
        #expect(result.run == nil)
    }

    @Test(arguments: [("43", ResultHint.Step.run, 9), ("44", .run, 11)])
    func signalsAreHinted(name: String, step: ResultHint.Step, signal: Int) async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(
            try #require(try SandboxFusionTestFixtures.sample(name).executionRequest))
        #expect(result.hints.contains(.killedBySignal(step: step, signal: signal)))
        #expect(result.run?.signal == signal)
        #expect(result.status == .failed)
    }

    @Test func silentlyTruncatedOutputIsHinted() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(
            try #require(try SandboxFusionTestFixtures.sample("18").executionRequest))
        #expect(result.stdout.count == SandboxFusionWire.observedStreamLimit)
        #expect(
            result.hints.contains(
                .outputPossiblyTruncated(step: .run, stream: .stdout, limit: SandboxFusionWire.observedStreamLimit)))
        #expect(result.status == .success)
    }

    @Test func nonUTF8OutputReplacedByTheServerIsHinted() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let result = try await SandboxFusionTestFixtures.executor(server).execute(
            try #require(try SandboxFusionTestFixtures.sample("16").executionRequest))
        #expect(result.hints.contains(.outputReplacedByDecodeError(step: .run, stream: .stdout)))
        #expect(result.stdoutText.hasPrefix("[DecodeError]"))
    }

    @Test func fetchedFilesComeBackDecoded() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let sample = try SandboxFusionTestFixtures.sample("07")
        let result = try await SandboxFusionTestFixtures.executor(server).execute(try #require(sample.executionRequest))
        #expect(!result.files.isEmpty)
        #expect(result.files.values.contains { String(decoding: $0, as: UTF8.self).contains("result data") })
    }

    @Test func aMegabyteOfStdinIsSent() async throws {
        let server = try SandboxFusionTestFixtures.sampleServer()
        defer { server.shutdown() }
        let request = try #require(try SandboxFusionTestFixtures.sample("31").executionRequest)
        #expect(request.stdin.count > 900_000)
        let result = try await SandboxFusionTestFixtures.executor(server).execute(request)
        #expect(result.status == .success)
    }
}
