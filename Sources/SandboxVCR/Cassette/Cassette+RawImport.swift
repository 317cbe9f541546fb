public import Foundation

extension Cassette {
    /// What an import did.
    public struct ImportReport: Sendable, Hashable {
        /// Exchanges stored as results (HTTP 200).
        public var results = 0
        /// Exchanges stored as recorded errors (HTTP 4xx/5xx).
        public var errors = 0
        /// Exchanges left out, with why (not `POST /run_code`, or a body that is not a run_code request).
        public var skipped: [String] = []

        public init() {}
        /// Interactions written.
        public var imported: Int { results + errors }
    }

    /// Imports raw SandboxFusion exchanges: `samples/*.json` files (`{request, http_status, response,
    /// client_elapsed_s}`), a `.jsonl` file of such objects (grading-demo `exchanges.jsonl`), or a folder of them.
    ///
    /// Only `POST /run_code` exchanges with a body that reads as a run_code request are imported: HTTP 200 as
    /// results, other statuses as recorded ``ExecutionError/Code/httpStatus`` errors (with validation issues), so
    /// replay reproduces them. Identical requests get ordinals 0, 1, … in file order.
    ///
    /// - Parameters:
    ///   - urls: files or folders.
    ///   - matcher: the matcher whose keys the replaying executor will use.
    ///   - redactor: what to scrub before writing.
    public func importExchanges(
        from urls: [URL], matcher: RequestMatcher = .exact, redactor: Redactor = .standard
    ) async throws -> ImportReport {
        var report = ImportReport()
        var files: [URL] = []
        for url in urls {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: url.path)
                    .filter { $0.hasSuffix(".json") || $0.hasSuffix(".jsonl") }.sorted()
                files += names.map { url.appendingPathComponent($0) }
            } else {
                files.append(url)
            }
        }
        var next: [ContentHash: Int] = [:]
        var batch: [NewInteraction] = []
        var batchBytes = 0
        /// Reads one exchange into the batch; the batch is recorded every 1,000 exchanges or 16 MB of input, so
        /// memory stays near one batch whatever the size of the files.
        func add(_ object: Any, named name: String, bytes: Int) async throws {
            switch Self.exchange(object, redactor: redactor) {
            case .failure(let reason):
                report.skipped.append("\(name): \(reason.reason)")
            case .success(let (request, outcome, duration)):
                let key = matcher.key(for: request)
                let ordinal = try next[key] ?? nextOrdinal(for: key)
                next[key] = ordinal + 1
                if case .result = outcome { report.results += 1 } else { report.errors += 1 }
                batch.append(
                    NewInteraction(
                        key: key, ordinal: ordinal, request: redactor.redact(request), outcome: outcome,
                        duration: duration))
                batchBytes += bytes
                if batch.count >= 1000 || batchBytes >= 16 << 20 {
                    try await record(batch)
                    batch.removeAll(keepingCapacity: true)
                    batchBytes = 0
                }
            }
        }
        for file in files {
            let data: Data
            do {
                // Mapped: a large file costs address space, not resident memory, while its lines are read.
                data = try Data(contentsOf: file, options: .mappedIfSafe)
            } catch {
                throw CassetteError(code: .io, message: "cannot read \(file.path): \(error)", path: path)
            }
            if file.pathExtension == "jsonl" {
                for (number, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
                    let object = try? JSONSerialization.jsonObject(with: Data(line))
                    try await add(object as Any, named: "\(file.lastPathComponent):\(number + 1)", bytes: line.count)
                }
            } else {
                let object = try? JSONSerialization.jsonObject(with: data)
                try await add(object as Any, named: file.lastPathComponent, bytes: data.count)
            }
        }
        try await record(batch)
        return report
    }

    private struct Skip: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func exchange(_ object: Any, redactor: Redactor) -> Result<
        (ExecutionRequest, Outcome, Double?), Skip
    > {
        guard let exchange = object as? [String: Any], let request = exchange["request"] as? [String: Any] else {
            return .failure(Skip("not an exchange object"))
        }
        guard (request["method"] as? String) == "POST", (request["path"] as? String) == "/run_code" else {
            return .failure(Skip("\(request["method"] ?? "?") \(request["path"] ?? "?") is not POST /run_code"))
        }
        guard let status = exchange["http_status"] as? Int else { return .failure(Skip("no http_status")) }
        guard let bodyObject = request["body"] as? [String: Any],
            let bodyData = try? JSONSerialization.data(withJSONObject: bodyObject),
            let body = try? JSONDecoder().decode(SandboxFusionWire.RunCodeBody.self, from: bodyData)
        else {
            return .failure(Skip("the body is not a run_code request (HTTP \(status))"))
        }
        let executionRequest: ExecutionRequest
        do {
            executionRequest = try SandboxFusionWire.request(from: body)
        } catch {
            return .failure(Skip("the body cannot be read: \(error.message)"))
        }
        let duration = (exchange["client_elapsed_s"] as? NSNumber)?.doubleValue
        let response = exchange["response"]
        if status == 200 {
            guard let responseObject = response as? [String: Any],
                let responseData = try? JSONSerialization.data(withJSONObject: responseObject),
                let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeResponse.self, from: responseData)
            else {
                return .failure(Skip("HTTP 200 without a run_code answer"))
            }
            do {
                let result = try SandboxFusionWire.result(from: wire)
                return .success((executionRequest, redactor.redact(.result(result)), duration))
            } catch {
                return .failure(Skip("the answer cannot be read: \(error.message)"))
            }
        }
        var issues: [ExecutionError.ValidationIssue] = []
        var detailText = ""
        if let answer = response as? [String: Any] {
            if let detail = answer["detail"] as? [[String: Any]] {
                for item in detail {
                    let location = (item["loc"] as? [Any] ?? []).map { "\($0)" }
                    issues.append(
                        .init(
                            type: item["type"] as? String ?? "", location: location,
                            message: item["msg"] as? String ?? ""))
                }
            } else if let detail = answer["detail"] as? String {
                detailText = ": \(detail)"
            }
        }
        let error = ExecutionError(
            code: .httpStatus,
            message: "the server answered HTTP \(status)\(detailText)"
                + (status == 422 ? "; the request was rejected as invalid, fix the fields listed" : ""),
            httpStatus: status, validationIssues: issues)
        return .success((executionRequest, redactor.redact(.failure(error)), duration))
    }
}
