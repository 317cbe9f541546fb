import SandboxVCR
import Testing

@Suite("SandboxFusion: configuration and retry policy")
struct SandboxFusionConfigurationTests {
    @Test func defaultsMatchTheTinkerClient() throws {
        let configuration = try SandboxFusionConfiguration.fromEnvironment([:])
        #expect(configuration.endpoints == ["http://localhost:8080"])
        #expect(configuration.maxConcurrency == 4)
    }

    @Test func sandboxURLIsTheRunCodeURL() throws {
        let configuration = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_URL": "http://10.1.2.3:9000/run_code", "SANDBOX_MAX_CONCURRENCY": "16",
        ])
        #expect(configuration.endpoints == ["http://10.1.2.3:9000"])
        #expect(configuration.maxConcurrency == 16)
    }

    @Test func theOfficialClientsVariableIsABaseURL() throws {
        let configuration = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_FUSION_ENDPOINT": "http://sandbox:8080/"
        ])
        #expect(configuration.endpoints == ["http://sandbox:8080"])
    }

    @Test func sandboxURLWinsOverTheOfficialVariable() throws {
        let configuration = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_URL": "http://a:1/run_code", "SANDBOX_FUSION_ENDPOINT": "http://b:2",
        ])
        #expect(configuration.endpoints == ["http://a:1"])
        let emptyURL = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_URL": " ", "SANDBOX_FUSION_ENDPOINT": "http://b:2",
        ])
        #expect(emptyURL.endpoints == ["http://b:2"])
    }

    @Test func commasListSeveralEndpoints() throws {
        let configuration = try SandboxFusionConfiguration.fromEnvironment([
            "SANDBOX_URL": "http://a:1/run_code, http://b:2/run_code,,http://c:3"
        ])
        #expect(configuration.endpoints == ["http://a:1", "http://b:2", "http://c:3"])
    }

    @Test(arguments: [
        ["SANDBOX_URL": "localhost:8080/run_code"],
        ["SANDBOX_URL": "ftp://host/run_code"],
        ["SANDBOX_URL": ","],
        ["SANDBOX_MAX_CONCURRENCY": "0"],
        ["SANDBOX_MAX_CONCURRENCY": "many"],
    ])
    func badValuesAreConfigurationErrors(environment: [String: String]) {
        let error = #expect(throws: ExecutionError.self) { try SandboxFusionConfiguration.fromEnvironment(environment) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("SANDBOX_") == true)
    }

    @Test func credentialsInAURLAreNotRepeatedInErrors() {
        let error = #expect(throws: ExecutionError.self) {
            try SandboxFusionConfiguration.fromEnvironment(["SANDBOX_URL": "gopher://me:hunter2@host/run_code"])
        }
        #expect(error?.message.contains("hunter2") == false)
    }

    @Test func backoffDoublesUpToTheMaximumWithBoundedJitter() {
        let policy = SandboxFusionConfiguration.RetryPolicy(
            maxAttempts: 10, baseDelay: .milliseconds(100), maxDelay: .seconds(1), jitter: 0.2)
        #expect(policy.delay(afterAttempt: 1, random: 0.5) == .milliseconds(100))
        #expect(policy.delay(afterAttempt: 2, random: 0.5) == .milliseconds(200))
        #expect(policy.delay(afterAttempt: 3, random: 0.5) == .milliseconds(400))
        #expect(policy.delay(afterAttempt: 8, random: 0.5) == .seconds(1))
        #expect(policy.delay(afterAttempt: 1, random: 0) == .milliseconds(80))
        #expect(policy.delay(afterAttempt: 1, random: 1) == .milliseconds(120))
    }

    @Test func onlyConnectionFailuresAndGatewayErrorsAreRetried() {
        let policy = SandboxFusionConfiguration.RetryPolicy()
        func error(_ code: ExecutionError.Code, _ status: Int? = nil) -> ExecutionError {
            ExecutionError(code: code, message: "", httpStatus: status)
        }
        #expect(policy.shouldRetry(error(.connectionRefused)))
        #expect(policy.shouldRetry(error(.connectionReset)))
        for status in [502, 503, 504] { #expect(policy.shouldRetry(error(.httpStatus, status))) }
        for status in [400, 404, 405, 422, 500] { #expect(!policy.shouldRetry(error(.httpStatus, status))) }
        #expect(!policy.shouldRetry(error(.timedOut)))
        #expect(SandboxFusionConfiguration.RetryPolicy(retriesTimeouts: true).shouldRetry(error(.timedOut)))
        #expect(!policy.shouldRetry(error(.transport)))
        #expect(!policy.shouldRetry(error(.cancelled)))
    }
}
