public import Foundation
public import Logging

/// Runs requests on live SandboxFusion servers over HTTP (`POST /run_code`), with a limit on requests in
/// flight, retries with jittered exponential backoff for connection failures and 502/503/504, and load spread
/// over several endpoints.
///
/// ```swift
/// let executor = SandboxFusionExecutor(configuration: try .fromEnvironment())
/// let result = try await executor.execute(ExecutionRequest(code: "print(1)", language: .python))
/// ```
public final class SandboxFusionExecutor: SandboxExecutor {
    public let configuration: SandboxFusionConfiguration
    let client: HTTPClient
    let logger: Logger
    private let balancer: SandboxFusionEndpointBalancer

    /// Creates an executor and its HTTP client.
    ///
    /// - Parameters:
    ///   - configuration: endpoints, concurrency, timeouts and retries.
    ///   - logger: logs retries at `notice` and requests at `debug`; no-op by default.
    public init(
        configuration: SandboxFusionConfiguration = SandboxFusionConfiguration(),
        logger: Logger = Logger(label: "sandbox-vcr.sandboxfusion", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        var configuration = configuration
        configuration.endpoints = configuration.endpoints.map(SandboxFusionConfiguration.normalizedBase)
        if configuration.endpoints.isEmpty { configuration.endpoints = ["http://localhost:8080"] }
        self.configuration = configuration
        self.logger = logger
        self.client = HTTPClient(
            configuration: .init(
                maxConcurrentRequests: configuration.maxConcurrency,
                httpVersion: .http1_1,
                connectTimeout: configuration.connectTimeout),
            logger: logger)
        self.balancer = SandboxFusionEndpointBalancer(count: configuration.endpoints.count)
    }

    /// Runs one request with `POST /run_code`.
    ///
    /// - Returns: the result, whatever the program did; a `SandboxError` answer is a result with status
    ///   ``ExecutionStatus/sandboxError`` and the server's message.
    /// - Throws: ``ExecutionError``: ``ExecutionError/Code/unsupportedRequest`` (a command line, binary stdin),
    ///   ``ExecutionError/Code/httpStatus`` for an answer other than 200 (a 422's `detail` decoded into
    ///   ``ExecutionError/validationIssues``), ``ExecutionError/Code/undecodableResponse``, or a transport code
    ///   after the retries allowed.
    public func execute(_ request: ExecutionRequest) async throws -> ExecutionResult {
        let body = try SandboxFusionWire.runCodeBody(for: request)
        let data = try Self.encode(body)
        logger.debug("run_code", metadata: ["request": "\(request.summary)"])
        let (response, url, attempts) = try await send(
            method: "POST", path: "/run_code", body: data, timeout: configuration.attemptTimeout(for: request))
        guard response.status == 200 else {
            var error = Self.httpStatusError(status: response.status, body: response.body, url: url)
            error.attempts = attempts
            throw error
        }
        return try SandboxFusionWire.decodeResult(from: response.body)
    }

    /// Checks that every endpoint answers `GET /v1/ping` with `"pong"`.
    ///
    /// - Throws: ``ExecutionError`` for the first endpoint that does not.
    public func ping() async throws {
        for base in configuration.endpoints {
            let url = base + "/v1/ping"
            let response = try await client.execute(
                HTTPRequest(method: "GET", url: url), timeout: configuration.requestTimeout ?? .seconds(10))
            guard response.status == 200 else {
                throw Self.httpStatusError(status: response.status, body: response.body, url: url)
            }
            guard (try? JSONValue(data: response.body)) == .string("pong") else {
                throw ExecutionError(
                    code: .undecodableResponse,
                    message: "\(HTTPClient.redactedURL(url)) answered \(SandboxFusionWire.preview(response.body)) "
                        + "instead of \"pong\"; check that the URL points at a SandboxFusion server",
                    url: HTTPClient.redactedURL(url))
            }
        }
    }

    // MARK: Shared plumbing

    /// Sends a request to the least-loaded endpoint, retrying as the policy allows.
    ///
    /// - Returns: the last answer (any status the policy does not retry, or the last retried one), the URL it
    ///   came from, and the number of attempts.
    func send(method: String, path: String, body: Data, timeout: Duration) async throws
        -> (response: HTTPResponse, url: String, attempts: Int)
    {
        let policy = configuration.retryPolicy
        var attempt = 0
        while true {
            attempt += 1
            let index = balancer.acquire()
            let url = configuration.endpoints[index] + path
            let failure: ExecutionError
            do {
                let response = try await client.execute(
                    HTTPRequest(
                        method: method, url: url,
                        headers: body.isEmpty ? [:] : ["Content-Type": "application/json"], body: body),
                    timeout: timeout)
                balancer.release(index)
                if response.status == 200 { return (response, url, attempt) }
                failure = Self.httpStatusError(status: response.status, body: response.body, url: url)
                guard attempt < policy.maxAttempts, policy.shouldRetry(failure) else {
                    return (response, url, attempt)
                }
            } catch var error as ExecutionError {
                balancer.release(index)
                error.attempts = attempt
                guard attempt < policy.maxAttempts, policy.shouldRetry(error) else { throw error }
                failure = error
            } catch {
                balancer.release(index)
                throw error
            }
            let delay = policy.delay(afterAttempt: attempt)
            logger.notice(
                "retrying SandboxFusion request",
                metadata: ["attempt": "\(attempt)", "error": "\(failure)", "delay": "\(delay)"])
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw ExecutionError(
                    code: .cancelled, message: "the task was cancelled while waiting to retry (\(failure.message))",
                    url: HTTPClient.redactedURL(url), attempts: attempt)
            }
        }
    }

    /// The error for an answer other than 200: a 422's `detail` list becomes ``ExecutionError/validationIssues``;
    /// other bodies are summarised (a `{"detail": "..."}` text, or the first bytes).
    ///
    /// - Parameters:
    ///   - status: the HTTP status.
    ///   - body: the answer's body.
    ///   - url: the URL that answered (credentials are removed).
    public static func httpStatusError(status: Int, body: Data, url: String) -> ExecutionError {
        let shownURL = HTTPClient.redactedURL(url)
        if let validation = try? JSONDecoder().decode(SandboxFusionWire.ValidationErrorBody.self, from: body) {
            let issues = validation.detail.map {
                ExecutionError.ValidationIssue(
                    type: $0.type, location: $0.loc.map(\.description), message: $0.msg)
            }
            return ExecutionError(
                code: .httpStatus,
                message: "\(shownURL) rejected the request as invalid (HTTP \(status)); fix the fields listed",
                httpStatus: status, validationIssues: issues, url: shownURL)
        }
        let summary: String
        if let detail = (try? JSONValue(data: body))?["detail"]?.stringValue {
            summary = detail
        } else {
            summary = SandboxFusionWire.preview(body, limit: 200)
        }
        let advice: String =
            switch status {
            case 404, 405: "; check that the URL points at a SandboxFusion server's /run_code"
            case 502, 503, 504: "; the server or a proxy in front of it is overloaded or down, try again later"
            case 500...599: "; the server failed, see its log"
            default: ""
            }
        return ExecutionError(
            code: .httpStatus, message: "\(shownURL) answered HTTP \(status): \(summary)\(advice)",
            httpStatus: status, url: shownURL)
    }

    static func encode<T: Encodable>(_ value: T) throws(ExecutionError) -> Data {
        do {
            return try JSONEncoder().encode(value)
        } catch {
            throw ExecutionError(code: .unsupportedRequest, message: "the request cannot be encoded as JSON: \(error)")
        }
    }
}
