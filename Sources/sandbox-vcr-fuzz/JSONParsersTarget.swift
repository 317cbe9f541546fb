import Foundation
import SandboxVCR
import SandboxVCRServer

/// `serve`'s request parsing: ``FastJSONParser`` and ``PythonJSONParser`` must accept and reject the same bodies and
/// decode them to the same values (issue 15), and a value written as `serve` answers (`pythonJSONBytes`) must read
/// back the same; the `/run_code` and `/run_jupyter` validators must not crash, and a body they refuse must get an
/// answer that is JSON again.
enum JSONParsersTarget: FuzzTarget {
    static let name = "json-parsers"

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        try compareParsers(input)
        try validate(input)
    }

    /// Same accept/reject, same values: compared with `==` (exact integers, NaN equal to NaN) and by the bytes
    /// Python's `json.dumps` would write (the exact scalars of strings and keys, the key order).
    static func compareParsers(_ input: [UInt8]) throws(FuzzFailure) {
        let fast = FastJSONParser.parse(input)
        let python: Result<JSONValue?, PythonJSONParser.DecodeError>
        do {
            python = .success(try PythonJSONParser.parse(input))
        } catch {
            python = .failure(error)
        }
        switch (fast, python) {
        case (.none, .failure), (.none, .success(.none)):
            return
        case (.some(let fast), .failure(let error)):
            throw FuzzFailure(
                "FastJSONParser accepted a body PythonJSONParser rejects (\(error.message): \(error.position)); "
                    + "fast: \(excerpt(fast)); input: \(preview(input))")
        case (.some(let fast), .success(.none)):
            throw FuzzFailure(
                "FastJSONParser accepted a body PythonJSONParser answers 400 for (not UTF-8, or nested too deep); "
                    + "fast: \(excerpt(fast)); input: \(preview(input))")
        case (.none, .success(.some(let python))):
            throw FuzzFailure(
                "FastJSONParser rejected a body PythonJSONParser accepts; python: \(excerpt(python)); "
                    + "input: \(preview(input))")
        case (.some(let fast), .success(.some(let python))):
            let written = fast.pythonJSONBytes
            guard fast == python, written == python.pythonJSONBytes else {
                throw FuzzFailure(
                    "the parsers decode different values; fast: \(excerpt(fast)); python: \(excerpt(python)); "
                        + "input: \(preview(input))")
            }
            // The value as `serve` writes it (Python's `json.dumps`) reads back as the same value.
            guard let reread = FastJSONParser.parse(written), reread == fast, reread.pythonJSONBytes == written else {
                throw FuzzFailure(
                    "the value written back (\(preview(written, limit: 200))) does not read back as the same value; "
                        + "input: \(preview(input))")
            }
        }
    }

    /// The validators, then what `serve` does with an accepted `/run_code` body (the request and its key).
    static func validate(_ input: [UInt8]) throws(FuzzFailure) {
        do {
            let body = try SandboxFusionRequestValidator.runCodeBody(input, contentType: nil)
            if let request = try? SandboxFusionWire.request(from: body) {
                _ = RequestMatcher.exact.key(for: request)
            }
        } catch {
            try checkAnswer(error, route: "/run_code", input: input)
        }
        do {
            _ = try SandboxFusionRequestValidator.runJupyterBody(input, contentType: nil)
        } catch {
            try checkAnswer(error, route: "/run_jupyter", input: input)
        }
    }

    /// A refusal is a 400 or a 422 whose answer (which echoes the input) Python's `json.loads` reads back.
    static func checkAnswer(_ rejection: SandboxFusionRequestValidator.Rejection, route: String, input: [UInt8])
        throws(FuzzFailure)
    {
        guard rejection.status == 400 || rejection.status == 422 else {
            throw FuzzFailure("\(route) refused a body with HTTP \(rejection.status); input: \(preview(input))")
        }
        let answer = rejection.body.pythonJSONBytes
        do {
            _ = try PythonJSONParser.parse(answer)
        } catch {
            throw FuzzFailure(
                "\(route)'s \(rejection.status) answer is not JSON (\(error.message): \(error.position)): "
                    + "\(preview(answer)); input: \(preview(input))")
        }
    }

    private static func excerpt(_ value: JSONValue) -> String { preview(value.pythonJSONBytes, limit: 200) }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        var seeds: [FuzzSeed] = []
        for sample in try SandboxFusionSampleFiles.exchanges(in: fixtures) {
            if let body = sample.requestBody { seeds.append(FuzzSeed("\(sample.name)-request", body)) }
            if let response = sample.responseBody { seeds.append(FuzzSeed("\(sample.name)-response", response)) }
        }
        for (index, body) in try GradingDemoFiles.requestBodies(in: fixtures).prefix(8).enumerated() {
            seeds.append(FuzzSeed("grading-demo-\(index)", body))
        }
        // The corners of Python's grammar that the samples do not reach.
        let corners: [(String, String)] = [
            ("nonfinite", #"{"a": NaN, "b": Infinity, "c": -Infinity, "d": [1e400, -1e400, -0, -0.0, 1E+2]}"#),
            ("integers", #"[0, -0, 12345678901234567890123456789, -9223372036854775809, 1.5e-7, 2E-308]"#),
            ("escapes", #"{"s": "\u00e9\ud83d\ude00\ud800\udc00\ud800 \\ \/ \b\f\n\r\t \"", "\u0000": "\u001f"}"#),
            ("lone-surrogates", #"["\udc00", "\ud800", "\ud800\u0041", "\ud83d\ude0"]"#),
            ("duplicate-keys", #"{"code": "print(1)", "language": "python", "code": "print(2)", "é": 1, "é": 2}"#),
            ("bom", "\u{FEFF}{\"code\": \"print(1)\", \"language\": \"python\"}"),
            ("whitespace", " \t\r\n[ 1 , { } , [ ] , \"\" , true , false , null ] \n"),
            ("jupyter", #"{"cells": ["print(1)", "x = 2"], "cell_timeout": 5, "kernel": "python3", "files": {}}"#),
            (
                "run-code-all-fields",
                #"{"code": "print(input())", "language": "python", "compile_timeout": 1.5, "run_timeout": 2, "#
                    + #""memory_limit_MB": 256, "stdin": "x\n", "files": {"a.txt": "aGk=", "b": null}, "#
                    + #""fetch_files": ["a.txt"]}"#
            ),
        ]
        for (name, text) in corners { seeds.append(FuzzSeed(name, Array(text.utf8))) }
        return seeds
    }
}
