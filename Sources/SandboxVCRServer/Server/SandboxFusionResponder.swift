internal import Hummingbird
internal import Logging
internal import NIOCore
internal import SandboxVCR
internal import SandboxVCRWebUI

/// Routes and answers one HTTP request for ``SandboxFusionServer``; never throws (every failure is an answer).
struct SandboxFusionResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let server: SandboxFusionServer

    /// The allowed methods of each known path (for 405 and its `Allow` header).
    private static let routes: [String: HTTPRequest.Method] = [
        "/run_code": .post, "/run_jupyter": .post, "/v1/ping": .get, "/stats": .get,
    ]

    /// What the request log line says about one answer.
    private struct Answer {
        var response: Response
        var outcome: ExecutionOutcome.Source?
        /// The cassette key, the live call's duration: what the executor said of a `/run_code` call.
        var execution: ExecutionOutcome?
        var request: ExecutionRequest?
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let path = request.uri.path
        let method = request.method
        if let journal = server.journal, DashboardRoutes.isDashboardPath(path) {
            return DashboardRoutes.answer(to: request, server: server, journal: journal)
        }
        let knownMethod = Self.routes[path]
        let control = path.hasPrefix("/sandbox-vcr/") ? server.cassetteControl : nil
        let isKnown = knownMethod != nil || (control != nil && CassetteControlRoutes.routes[path] != nil)
        let endpoint = "\(method) \(path)"
        server.statistics.recordRequest(endpoint: isKnown ? endpoint : "other")

        let answer: Answer
        if let control {
            answer = Answer(response: await CassetteControlRoutes.answer(to: request, control: control))
        } else if let knownMethod {
            if method == knownMethod || (method == .head && knownMethod == .get) {
                answer = await answerKnown(path: path, request: request)
            } else {
                var response = Self.json(status: 405, ["detail": "Method Not Allowed"])
                response.headers[.allow] = knownMethod.rawValue
                answer = Answer(response: response)
            }
        } else {
            answer = Answer(response: Self.json(status: 404, ["detail": "Not Found"]))
        }
        if answer.outcome == nil, answer.response.status.code >= 400 { server.statistics.recordRejected() }
        let duration = ContinuousClock.now - start
        log(method: method, path: path, answer: answer, duration: duration)
        if let journal = server.journal, control == nil, path != "/v1/ping", path != "/stats" {
            journal.record(Self.journalEntry(endpoint: endpoint, answer: answer, duration: duration))
        }
        return answer.response
    }

    private func answerKnown(path: String, request: Request) async -> Answer {
        switch path {
        case "/v1/ping":
            return Answer(response: Self.json(status: 200, "pong"))
        case "/stats":
            return Answer(response: Self.json(status: 200, server.statistics.snapshot.json))
        default:
            let body: [UInt8]
            switch await Self.collectBody(of: request, limit: server.configuration.maxBodyBytes) {
            case .success(let bytes): body = bytes
            case .failure(let tooLarge): return Answer(response: tooLarge.response)
            }
            let contentType = request.headers[.contentType]
            return path == "/run_code"
                ? await runCode(body: body, contentType: contentType)
                : await runJupyter(body: body, contentType: contentType)
        }
    }

    // MARK: /run_code

    private func runCode(body: [UInt8], contentType: String?) async -> Answer {
        let wireBody: SandboxFusionWire.RunCodeBody
        do {
            wireBody = try SandboxFusionRequestValidator.runCodeBody(body, contentType: contentType)
        } catch {
            return Answer(response: Self.json(status: error.status, error.body))
        }
        let executionRequest: ExecutionRequest
        do {
            // Strict base64 first: a file with a line break or space fails at once, and only then is it cleaned.
            executionRequest = try SandboxFusionWire.request(from: wireBody)
        } catch {
            do {
                executionRequest = try SandboxFusionWire.request(from: Self.withLenientBase64Files(wireBody))
            } catch {
                // The real server fails while writing the files and says so in a SandboxError (sample 19).
                let message = "exception on running code \(wireBody.code): \(error.message) None"
                return Answer(response: Self.runCodeResponse(.init(status: "SandboxError", message: message)))
            }
        }
        let outcome: ExecutionOutcome
        do {
            let server = self.server
            outcome = try await server.limiter.withPermit {
                await server.shutdownDeadline.race {
                    await server.executor.outcome(of: executionRequest)
                } onDeadline: {
                    ExecutionOutcome(source: .error, result: .failure(ShutdownDeadline.cancelledError))
                }
            }
        } catch {
            outcome = ExecutionOutcome(source: .error, result: .failure(error))
        }
        server.statistics.record(outcome.source)
        let response: Response
        switch outcome.result {
        case .success(let executionResult):
            response = Self.json(
                status: 200,
                JSONValue(
                    SandboxFusionWire.response(from: executionResult), fileOrder: wireBody.fetch_files ?? []))
        case .failure(let error):
            if let diagnostics = outcome.missDiagnostics {
                response = Self.runCodeResponse(.init(status: "SandboxError", message: diagnostics))
                server.logger.warning("replay miss", metadata: ["diagnostics": "\(diagnostics)"])
            } else {
                response = Self.response(for: error)
            }
        }
        return Answer(response: response, outcome: outcome.source, execution: outcome, request: executionRequest)
    }

    /// The body with each file's base64 stripped of characters outside the base64 alphabet (line breaks, spaces),
    /// which the real server's `base64.b64decode` skips too. The request path calls it only after strict decoding
    /// failed.
    static func withLenientBase64Files(_ body: SandboxFusionWire.RunCodeBody) -> SandboxFusionWire.RunCodeBody {
        guard let files = body.files, files.values.contains(where: { $0.map(hasNonBase64Bytes) == true }) else {
            return body
        }
        var lenient = body
        lenient.files = files.mapValues { content in
            content.map { String(decoding: $0.utf8.filter { base64Alphabet[Int($0)] == 1 }, as: UTF8.self) }
        }
        return lenient
    }

    /// 1 for each byte value in the base64 alphabet (with `=`), else 0.
    private static let base64Alphabet: [UInt8] = (0..<256).map { value in
        switch UInt8(value) {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="):
            1
        default: 0
        }
    }

    private static func hasNonBase64Bytes(_ text: String) -> Bool {
        text.utf8.contains { base64Alphabet[Int($0)] == 0 }
    }

    /// The answer for an executor error other than a miss (see the table on ``SandboxFusionServer``).
    static func response(for error: any Error) -> Response {
        if error is CancellationError {
            return json(status: 503, ["detail": "the request was cancelled because the server is shutting down"])
        }
        guard let error = error as? ExecutionError else {
            return json(status: 500, ["detail": .string("sandbox-vcr serve: the executor failed: \(error)")])
        }
        switch error.code {
        case .unmatchedRequest, .sandboxError, .sandboxTerminated, .unsupportedRequest:
            return runCodeResponse(.init(status: "SandboxError", message: error.message))
        case .httpStatus where error.httpStatus == 422 && !error.validationIssues.isEmpty:
            let items: [JSONValue] = error.validationIssues.map { issue in
                let location: [JSONValue] = issue.location.map { part in
                    Int(part).map { .integer(String($0)) } ?? .string(part)
                }
                return .object([
                    ("type", .string(issue.type)), ("loc", .array(location)), ("msg", .string(issue.message)),
                ])
            }
            return json(status: 422, .object([("detail", .array(items))]))
        case .httpStatus:
            let status = error.httpStatus.map { "HTTP \($0)" } ?? "an HTTP error"
            return json(status: 502, ["detail": .string("the upstream SandboxFusion answered \(status): \(error)")])
        case .timedOut:
            return json(status: 504, ["detail": .string("the upstream SandboxFusion did not answer in time: \(error)")])
        case .cancelled:
            return json(status: 503, ["detail": .string("the upstream call was cancelled: \(error)")])
        case .connectionRefused, .connectionReset, .transport, .undecodableResponse:
            return json(status: 502, ["detail": .string("the upstream SandboxFusion failed: \(error)")])
        default:
            return json(status: 500, ["detail": .string("sandbox-vcr serve: the executor failed: \(error)")])
        }
    }

    // MARK: /run_jupyter

    private func runJupyter(body: [UInt8], contentType: String?) async -> Answer {
        let object: JSONValue
        do {
            object = try SandboxFusionRequestValidator.runJupyterBody(body, contentType: contentType)
        } catch {
            return Answer(response: Self.json(status: error.status, error.body))
        }
        guard let handler = server.jupyterHandler else {
            let answer: JSONValue = .object([
                ("status", "SandboxError"),
                (
                    "message",
                    .string(
                        "sandbox-vcr serve does not support /run_jupyter: it replays /run_code requests only; call "
                            + "/run_code, or run a real SandboxFusion for notebooks")
                ),
                ("driver", .null), ("cells", []), ("executor_pod_name", .null), ("files", .object([])),
            ])
            server.statistics.record(.error)
            return Answer(response: Self.json(status: 200, answer), outcome: .error)
        }
        do {
            let answer = try await server.limiter.withPermit { try await handler(object) }
            server.statistics.record(.live)
            return Answer(response: Self.json(status: 200, answer), outcome: .live)
        } catch {
            server.statistics.record(.error)
            return Answer(response: Self.response(for: error), outcome: .error)
        }
    }

    // MARK: Bodies and answers

    private struct BodyTooLarge: Error {
        var response: Response
    }

    /// Reads the whole body, refusing (413) anything over `limit` bytes without reading the rest.
    private static func collectBody(of request: Request, limit: Int) async -> Result<[UInt8], BodyTooLarge> {
        let tooLarge = BodyTooLarge(
            response: json(
                status: 413,
                [
                    "detail": .string(
                        "the request body is larger than this server's limit of \(limit) bytes; "
                            + "start sandbox-vcr serve with a larger --max-body-bytes")
                ]))
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            return .failure(tooLarge)
        }
        var bytes: [UInt8] = []
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > 0 {
            bytes.reserveCapacity(declared)
        }
        do {
            for try await buffer in request.body {
                guard bytes.count + buffer.readableBytes <= limit else { return .failure(tooLarge) }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
        } catch {
            return .failure(
                BodyTooLarge(response: json(status: 400, ["detail": "There was an error parsing the body"])))
        }
        return .success(bytes)
    }

    static func json(status: Int, _ value: JSONValue) -> Response {
        Response(
            status: HTTPResponse.Status(code: status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: value.pythonJSONBuffer()))
    }

    static func runCodeResponse(_ response: SandboxFusionWire.RunCodeResponse) -> Response {
        json(status: 200, JSONValue(response))
    }

    // MARK: Logging

    /// The dashboard's entry for one answer: its values, shared, not copied.
    private static func journalEntry(endpoint: String, answer: Answer, duration: Duration) -> RequestJournal.Entry {
        let status = answer.response.status.code
        guard let outcome = answer.execution else {
            return RequestJournal.Entry(
                endpoint: endpoint, outcome: answer.outcome?.rawValue ?? (status >= 400 ? "rejected" : "live"),
                duration: duration, status: status, note: status >= 400 ? "HTTP \(status)" : nil)
        }
        var result: ExecutionResult?
        var error: String?
        var nearest: [Cassette.Interaction] = []
        switch outcome.result {
        case .success(let value): result = value
        case .failure(let failure):
            error = outcome.missDiagnostics ?? "\(failure)"
            nearest = (failure as? CassetteError)?.nearest ?? []
        }
        return RequestJournal.Entry(
            endpoint: endpoint, outcome: outcome.source.rawValue, duration: duration, status: status,
            key: outcome.key,
            detail: RequestJournal.Detail(request: answer.request, result: result, error: error, nearest: nearest))
    }

    private func log(method: HTTPRequest.Method, path: String, answer: Answer, duration: Duration) {
        guard server.logger.logLevel <= .info else { return }
        var metadata: Logger.Metadata = [
            "method": "\(method)", "path": "\(path)", "status": "\(answer.response.status.code)",
            "duration_ms": "\(Self.milliseconds(duration))",
        ]
        if let outcome = answer.outcome { metadata["outcome"] = "\(outcome)" }
        if let execution = answer.execution {
            if let keyPrefix = execution.keyPrefix { metadata["key"] = "\(keyPrefix)" }
            if let latency = execution.liveDuration { metadata["upstream_ms"] = "\(Self.milliseconds(latency))" }
        }
        if let request = answer.request { metadata["request"] = "\(request.summary)" }
        server.logger.info("request", metadata: metadata)
    }

    private static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(((Double(seconds) * 1e3 + Double(attoseconds) / 1e15) * 100).rounded() / 100)
    }
}
