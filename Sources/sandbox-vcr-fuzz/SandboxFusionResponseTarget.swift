import Foundation
import SandboxVCR

/// The SandboxFusion client reading an answer: a `/run_code` result (``SandboxFusionWire/decodeResult(from:)``), a
/// `/run_jupyter` result, and an error answer (``SandboxFusionExecutor/httpStatusError(status:body:url:)``).
///
/// Checks: only ``ExecutionError`` is thrown; a decoded result written back in the wire form decodes to the same
/// result; an error never shows the URL's password.
enum SandboxFusionResponseTarget: FuzzTarget {
    static let name = "sandboxfusion-response"

    private static let password = "hunter2-fuzz"
    private static let url = "http://fuzz:\(password)@127.0.0.1:8080/run_code"

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        let body = Data(input)
        if let result = try? SandboxFusionWire.decodeResult(from: body) {
            try checkRoundTrip(result, input: input)
        }
        if let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeResponse.self, from: body) {
            _ = SandboxFusionRunResponse(wire).stdout
        }
        _ = try? JSONDecoder().decode(SandboxFusionJupyterResponse.self, from: body)
        for status in [422, 500] {
            let error = SandboxFusionExecutor.httpStatusError(status: status, body: body, url: url)
            guard error.code == .httpStatus, error.httpStatus == status else {
                throw FuzzFailure("HTTP \(status) gave the error \(error); input: \(preview(input))")
            }
            let shown = error.description + (error.url ?? "")
            if shown.contains(password), !String(decoding: input, as: UTF8.self).contains(password) {
                throw FuzzFailure("the error shows the URL's password: \(error); input: \(preview(input))")
            }
        }
    }

    /// The result in the wire form (what `serve` answers) reads back as the same result.
    static func checkRoundTrip(_ result: ExecutionResult, input: [UInt8]) throws(FuzzFailure) {
        // A number JSON cannot hold (an overflowing execution time) is not written: nothing to compare.
        guard let again = try? JSONEncoder().encode(SandboxFusionWire.response(from: result)) else { return }
        let reread: ExecutionResult
        do {
            reread = try SandboxFusionWire.decodeResult(from: again)
        } catch {
            throw FuzzFailure(
                "a decoded result written back does not decode: \(error); written: \(preview(again)); "
                    + "input: \(preview(input))")
        }
        guard reread == result else {
            throw FuzzFailure(
                "a decoded result written back decodes differently: \(result) then \(reread); "
                    + "input: \(preview(input))")
        }
    }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        var seeds: [FuzzSeed] = []
        for sample in try SandboxFusionSampleFiles.exchanges(in: fixtures) {
            if let response = sample.responseBody { seeds.append(FuzzSeed(sample.name, response)) }
        }
        for (index, body) in try GradingDemoFiles.responseBodies(in: fixtures).prefix(8).enumerated() {
            seeds.append(FuzzSeed("grading-demo-\(index)", body))
        }
        let corners = [
            #"{"status": "Failed", "message": "", "compile_result": null, "run_result": {"status": "Finished", "#
                + #""execution_time": 0.5, "return_code": -9, "stdout": "[DecodeError] x", "stderr": null}, "#
                + #""executor_pod_name": "pod-1", "files": {"out.txt": "aGVsbG8="}}"#,
            #"{"detail": [{"type": "missing", "loc": ["body", "code"], "msg": "Field required", "input": {}}]}"#,
            #"{"detail": "Not Found"}"#,
        ]
        for (index, text) in corners.enumerated() { seeds.append(FuzzSeed("corner-\(index)", Array(text.utf8))) }
        return seeds
    }
}
