internal import Hummingbird
internal import NIOCore
internal import SandboxVCR

/// The control API of `serve --control`, under `/sandbox-vcr/` (off the SandboxFusion paths). Answers are 200 with:
///
/// - `POST /sandbox-vcr/cassette` `{"path", "mode", "test"}`: `{"active": {"path", "mode", "test"}, "closed": REPORT}`
/// - `GET /sandbox-vcr/cassette`: `{"active": REPORT}`
/// - `DELETE /sandbox-vcr/cassette`: `{"closed": REPORT}`
/// - `POST /sandbox-vcr/next` `{"path", "mode", "test"}`: `{"prepared": {"path", "mode", "test"}}`: opens the next
///   test's cassette ahead (``CassetteControl/prepare(_:)``), so that its `POST /sandbox-vcr/cassette` is quick
/// - `GET /sandbox-vcr/unused`: `{"cassettes": [{"path", "recordings", "unused": [{"id", "request"}]}]}`
///
/// `path` is an absolute, normalized path ending in `.sqlite`; `mode` is `never`, `missing`, `all` or `live`; `test`
/// (optional) is echoed. A REPORT (`null` when no cassette is or was active) has `test`, `path`, `mode`,
/// `cassette_exists`, `requests`, `hits`, `misses`, `recorded`, `live`, `errors`, `miss_diagnostics`,
/// `error_messages` and `used_recordings` (ids), plus `modal` with `--modal-port` (its counts, `miss_diagnostics` and
/// `error_messages`). A refusal is `{"error": CODE, "detail": MESSAGE}` (see
/// ``CassetteControlError``) with 400, 404, 405, 409, 413, 415 or 422.
enum CassetteControlRoutes {
    /// The largest control body accepted.
    static let maxBodyBytes = 64 * 1024
    /// The longest accepted path and test name, in UTF-8 bytes.
    static let maxPathBytes = 4096
    static let maxTestBytes = 4096

    static let routes: [String: [HTTPRequest.Method]] = [
        "/sandbox-vcr/cassette": [.post, .get, .delete], "/sandbox-vcr/unused": [.get], "/sandbox-vcr/next": [.post],
    ]

    static func answer(to request: Request, control: CassetteControl) async -> Response {
        let path = request.uri.path
        guard let methods = routes[path] else {
            return refusal(
                CassetteControlError(
                    code: .notFound,
                    message: "no control endpoint \(path); the endpoints are /sandbox-vcr/cassette (POST, GET, "
                        + "DELETE), /sandbox-vcr/next (POST) and /sandbox-vcr/unused (GET)"))
        }
        let method = request.method == .head ? .get : request.method
        guard methods.contains(method) else {
            var response = refusal(
                CassetteControlError(
                    code: .methodNotAllowed,
                    message: "\(path) accepts \(methods.map(\.rawValue).joined(separator: ", ")), not \(method)"))
            response.headers[.allow] = methods.map(\.rawValue).joined(separator: ", ")
            return response
        }
        switch (path, method) {
        case ("/sandbox-vcr/unused", _):
            return ok(["cassettes": .array(await control.unusedRecordings().map(json))])
        case (_, .get):
            return ok(["active": control.currentReport.map(json) ?? .null])
        case (_, .delete):
            return ok(["closed": await control.deactivate().map(json) ?? .null])
        case ("/sandbox-vcr/next", _):
            do throws(CassetteControlError) {
                let activation = try await self.activation(from: request)
                try await control.prepare(activation)
                return ok(["prepared": summary(activation)])
            } catch {
                return refusal(error)
            }
        default:
            do throws(CassetteControlError) {
                let activation = try await self.activation(from: request)
                let closed = try await control.activate(activation)
                return ok(["active": summary(activation), "closed": closed.map(json) ?? .null])
            } catch {
                return refusal(error)
            }
        }
    }

    /// `{"path", "mode", "test"}` of an activation.
    static func summary(_ activation: CassetteControl.Activation) -> JSONValue {
        .object([
            ("path", .string(activation.path)), ("mode", .string(activation.mode.rawValue)),
            ("test", activation.test.map(JSONValue.string) ?? .null),
        ])
    }

    // MARK: Reading the activation

    /// Reads and checks a `POST /sandbox-vcr/cassette` body.
    static func activation(from request: Request) async throws(CassetteControlError) -> CassetteControl.Activation {
        let mediaType = request.headers[.contentType]?.split(separator: ";").first?
            .filter { $0 != " " && $0 != "\t" }.lowercased()
        guard mediaType == "application/json" else {
            // A browser sends a cross-site POST without a preflight only with a form content type: requiring JSON
            // keeps web pages from switching cassettes (or creating files) on a developer's machine.
            throw CassetteControlError(
                code: .unsupportedMediaType,
                message: "send the body as JSON with Content-Type: application/json (got "
                    + "\(request.headers[.contentType].map { "\"\($0)\"" } ?? "none"))")
        }
        var bytes: [UInt8] = []
        do {
            for try await buffer in request.body {
                guard bytes.count + buffer.readableBytes <= maxBodyBytes else {
                    throw CassetteControlError(
                        code: .bodyTooLarge, message: "the control body is larger than \(maxBodyBytes) bytes")
                }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
        } catch let error as CassetteControlError {
            throw error
        } catch {
            throw CassetteControlError(code: .invalidRequest, message: "the body could not be read: \(error)")
        }
        return try activation(fromBody: bytes)
    }

    /// Checks a `POST /sandbox-vcr/cassette` body's fields.
    static func activation(fromBody bytes: [UInt8]) throws(CassetteControlError) -> CassetteControl.Activation {
        let example = #"{"path": "/abs/cassettes/test_x.sqlite", "mode": "never", "test": "test_x.py::test_y"}"#
        guard let value = FastJSONParser.parse(bytes), case .object(let members) = value else {
            throw CassetteControlError(
                code: .invalidRequest, message: "the body must be a JSON object such as \(example)")
        }
        var path: String?
        var mode: String?
        var test: String?
        for (name, value) in members {
            switch (name, value) {
            case ("path", .string(let text)): path = text
            case ("mode", .string(let text)): mode = text
            case ("test", .string(let text)): test = text
            case ("test", .null): test = nil
            case ("path", _), ("mode", _), ("test", _):
                throw CassetteControlError(code: .invalidRequest, message: "\"\(name)\" must be a string")
            default:
                throw CassetteControlError(
                    code: .invalidRequest,
                    message: "unknown field \"\(String(name.prefix(100)))\"; the fields are path, mode and test")
            }
        }
        guard let path else {
            throw CassetteControlError(code: .invalidRequest, message: "\"path\" is missing; send \(example)")
        }
        guard let mode else {
            throw CassetteControlError(code: .invalidRequest, message: "\"mode\" is missing; send \(example)")
        }
        guard let recordMode = RecordMode(rawValue: mode) else {
            throw CassetteControlError(
                code: .invalidMode,
                message: "\"\(String(mode.prefix(100)))\" is not a record mode; use never, missing, all or live")
        }
        try checkPath(path)
        if let test, test.utf8.count > maxTestBytes {
            throw CassetteControlError(
                code: .invalidRequest, message: "\"test\" is longer than \(maxTestBytes) bytes")
        }
        return CassetteControl.Activation(path: path, mode: recordMode, test: test)
    }

    /// Accepts an absolute, normalized path of at most ``maxPathBytes`` bytes naming a `.sqlite` file.
    static func checkPath(_ path: String) throws(CassetteControlError) {
        func refuse(_ why: String) -> CassetteControlError {
            CassetteControlError(code: .invalidPath, message: "the cassette path \(why)")
        }
        guard path.utf8.count <= maxPathBytes else { throw refuse("is longer than \(maxPathBytes) bytes") }
        guard !path.utf8.contains(0) else { throw refuse("contains a NUL byte") }
        guard path.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw refuse("contains a control character")
        }
        guard path.hasPrefix("/") else { throw refuse("\"\(path)\" is not absolute; send an absolute path") }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard !components.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) else {
            throw refuse("\"\(path)\" is not normalized (empty, `.` or `..` components); resolve it first")
        }
        guard path.hasSuffix(".sqlite"), components.last != ".sqlite" else {
            throw refuse("\"\(path)\" does not name a .sqlite file; cassettes are NAME.sqlite files")
        }
    }

    // MARK: Answers

    static func json(_ report: CassetteControl.Report) -> JSONValue {
        func number(_ value: Int) -> JSONValue { .integer(String(value)) }
        return .object(
            [
                ("test", report.activation.test.map(JSONValue.string) ?? .null),
                ("path", .string(report.activation.path)), ("mode", .string(report.activation.mode.rawValue)),
                ("cassette_exists", .bool(report.cassetteExists)),
                ("requests", number(report.requests)), ("hits", number(report.hits)), ("misses", number(report.misses)),
                ("recorded", number(report.recorded)), ("live", number(report.live)), ("errors", number(report.errors)),
                ("miss_diagnostics", .array(report.missDiagnostics.map(JSONValue.string))),
                ("error_messages", .array(report.errorMessages.map(JSONValue.string))),
                ("used_recordings", .array(report.usedRecordings.map { .integer(String($0)) })),
            ] + (report.companion.map { [($0.name, json($0))] } ?? []))
    }

    static func json(_ report: CassetteControl.CompanionReport) -> JSONValue {
        .object(
            report.counts.sorted { $0.key < $1.key }.map { ($0.key, .integer(String($0.value))) } + [
                ("miss_diagnostics", .array(report.missDiagnostics.map(JSONValue.string))),
                ("error_messages", .array(report.errorMessages.map(JSONValue.string))),
            ])
    }

    static func json(_ cassette: CassetteControl.UnusedRecordings) -> JSONValue {
        .object([
            ("path", .string(cassette.path)), ("recordings", .integer(String(cassette.recordingCount))),
            (
                "unused",
                .array(
                    cassette.unused.map {
                        .object([("id", .integer(String($0.id))), ("request", .string($0.summary))])
                    })
            ),
        ])
    }

    static func ok(_ members: KeyValuePairs<String, JSONValue>) -> Response {
        SandboxFusionResponder.json(status: 200, .object(members.map { ($0.key, $0.value) }))
    }

    static func refusal(_ error: CassetteControlError) -> Response {
        SandboxFusionResponder.json(
            status: status(of: error.code),
            .object([("error", .string(error.code.rawValue)), ("detail", .string(error.message))]))
    }

    static func status(of code: CassetteControlError.Code) -> Int {
        switch code {
        case .notFound: 404
        case .methodNotAllowed: 405
        case .noLiveBackend: 409
        case .bodyTooLarge: 413
        case .unsupportedMediaType: 415
        case .invalidPath, .invalidMode, .cassette: 422
        default: 400
        }
    }
}
