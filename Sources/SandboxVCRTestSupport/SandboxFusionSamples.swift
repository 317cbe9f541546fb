public import Foundation
public import SandboxVCR

/// The real SandboxFusion exchanges in `Fixtures/sandboxfusion/samples`, and a ``LoopbackHTTPServer`` handler
/// that answers from them.
public struct SandboxFusionSamples: Sendable {
    /// One captured exchange.
    public struct Sample: Sendable, Hashable {
        /// What a sample's request carried.
        public enum Body: Sendable, Hashable {
            case none
            /// Raw text (malformed JSON, an empty body, a non-JSON content type).
            case text(String)
            case json(JSONValue)
        }

        /// The file name without `.json`, e.g. `01-python-hello`.
        public var name: String
        public var method: String
        public var path: String
        public var requestHeaders: [String: String]
        public var body: Body
        public var httpStatus: Int
        /// The answer, with any output elided in the sample file restored to its full length.
        public var response: JSONValue

        /// The answer's bytes as the server would send them.
        public var responseBody: Data { response.encoded() }

        /// The request as an ``ExecutionRequest``, for a `/run_code` sample whose body is a valid request.
        public var executionRequest: ExecutionRequest? {
            guard path == "/run_code", case .json(let json) = body,
                let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: json.encoded())
            else { return nil }
            return try? SandboxFusionWire.request(from: wire)
        }

        /// The body bytes to send to reproduce the request exactly.
        public var requestBody: Data {
            switch body {
            case .none: Data()
            case .text(let text): Data(text.utf8)
            case .json(let json): json.encoded()
            }
        }
    }

    public var samples: [Sample]

    /// Loads every `*.json` sample with a `request` in `directory` (sorted by name).
    public init(directory: URL) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        var samples: [Sample] = []
        for name in names {
            let json = try JSONValue(data: Data(contentsOf: directory.appendingPathComponent(name)))
            guard let request = json["request"], case .object = request,
                let method = request["method"]?.stringValue, let path = request["path"]?.stringValue,
                case .integer(let digits)? = json["http_status"], let status = Int(digits),
                let response = json["response"]
            else { continue }
            var headers: [String: String] = [:]
            if case .object(let fields)? = request["headers"] {
                for (key, value) in fields { headers[key.lowercased()] = value.stringValue ?? "" }
            }
            let body: Sample.Body =
                switch request["body"] {
                case nil, .null?: .none
                case .string(let text)?: .text(text)
                case let value?: .json(value)
                }
            samples.append(
                Sample(
                    name: String(name.dropLast(5)), method: method, path: path, requestHeaders: headers, body: body,
                    httpStatus: status, response: Self.restoringElisions(response)))
        }
        self.samples = samples
    }

    /// Loads the samples of the repository that holds `filePath` (walks up to the folder with `Package.swift`).
    public static func fromRepository(filePath: String = #filePath) throws -> SandboxFusionSamples {
        try SandboxFusionSamples(
            directory: repositoryRoot(filePath: filePath).appendingPathComponent("Fixtures/sandboxfusion/samples"))
    }

    /// The folder holding `Package.swift` above `filePath`.
    public static func repositoryRoot(filePath: String = #filePath) -> URL {
        CommandRunner.packageRoot(from: filePath)
    }

    /// The sample with this name (e.g. `18-large-stdout-300KB-silent-truncation`) or name prefix (`18`).
    public subscript(name: String) -> Sample? {
        samples.first { $0.name == name } ?? samples.first { $0.name.hasPrefix(name + "-") }
    }

    /// The sample whose request this is: same method and path, and a body equal as a JSON value (or, for
    /// `/run_code`, one that means the same request once the server's defaults are filled in).
    public func sample(matching request: LoopbackHTTPServer.ReceivedRequest) -> Sample? {
        let path = request.path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.path
        let candidates = samples.filter { $0.method == request.method && $0.path == path }
        let json = try? JSONValue(data: request.body)
        let contentType = request.headers.first(name: "content-type")?.lowercased() ?? ""
        func contentTypeMatches(_ sample: Sample) -> Bool {
            guard let expected = sample.requestHeaders["content-type"]?.lowercased() else { return true }
            return contentType.hasPrefix(expected)
        }
        // Exact matches first.
        for sample in candidates where contentTypeMatches(sample) {
            switch sample.body {
            case .none where request.body.isEmpty: return sample
            case .text(let text) where request.body == Data(text.utf8): return sample
            case .json(let value) where json == value: return sample
            default: continue
            }
        }
        // Then the same run_code request with defaults spelt out or left out.
        guard path == "/run_code", let json,
            let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: json.encoded()),
            let asked = try? SandboxFusionWire.request(from: wire)
        else { return nil }
        return candidates.first { contentTypeMatches($0) && $0.executionRequest == asked }
    }

    /// A handler answering each request with its sample's status and answer, and 404 with a `detail` naming
    /// the request when no sample matches.
    public func handler() -> LoopbackHTTPServer.Handler {
        let samples = self
        return { request in
            guard let sample = samples.sample(matching: request) else {
                let detail = JSONValue.makeObject([
                    "detail": .string(
                        "no sample matches \(request.method) \(request.path) with body "
                            + String(decoding: request.body.prefix(200), as: UTF8.self))
                ])
                return .respond(.json(status: 404, detail.encoded()))
            }
            return .respond(.json(status: sample.httpStatus, sample.responseBody))
        }
    }

    /// Restores strings shortened as `head...<N chars total, elided in this sample file>...tail` to N characters,
    /// repeating the head's last character (the samples elide runs of one character only).
    static func restoringElisions(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text):
            guard let open = text.range(of: "...<"),
                let close = text.range(of: ">...", range: open.upperBound..<text.endIndex)
            else { return value }
            let marker = text[open.upperBound..<close.lowerBound]
            guard marker.hasSuffix(" chars total, elided in this sample file"),
                let total = Int(marker.prefix { $0.isNumber })
            else { return value }
            let head = text[..<open.lowerBound]
            let tail = text[close.upperBound...]
            let missing = total - head.count - tail.count
            guard missing > 0, let fill = head.last else { return value }
            return .string(String(head) + String(repeating: fill, count: missing) + String(tail))
        case .array(let items): return .array(items.map(restoringElisions))
        case .object(let members): return .object(members.map { ($0.0, restoringElisions($0.1)) })
        default: return value
        }
    }
}
